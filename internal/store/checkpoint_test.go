package store

import (
	"bytes"
	"testing"
	"time"
)

func TestCheckpoints(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		if _, ok, err := s.LoadCheckpoint(ctx, "detectors"); ok || err != nil {
			t.Fatalf("empty store: ok=%v err=%v", ok, err)
		}
		at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		c := StateCheckpoint{Name: "detectors", Mark: 42, Shards: 3, Data: []byte{0, 1, 2, 255}, SavedAt: at}
		if err := s.SaveCheckpoint(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.LoadCheckpoint(ctx, "detectors")
		if err != nil || !ok || got.Mark != 42 || got.Shards != 3 || !bytes.Equal(got.Data, c.Data) || !got.SavedAt.Equal(at) {
			t.Fatalf("loaded %+v ok=%v err=%v", got, ok, err)
		}
		// The next one replaces it, whatever its mark (a reset spool starts
		// again at 1).
		c.Mark, c.Data = 3, []byte("after a spool reset")
		if err := s.SaveCheckpoint(ctx, c); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.LoadCheckpoint(ctx, "detectors"); got.Mark != 3 || string(got.Data) != "after a spool reset" {
			t.Fatalf("after a second save: %+v", got)
		}
		if err := s.SaveCheckpoint(ctx, StateCheckpoint{}); err == nil {
			t.Fatal("a checkpoint without a name was saved")
		}
	})
}
