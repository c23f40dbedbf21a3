package store

import (
	"testing"
	"time"
)

func TestPartitionCheckpoints(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		if _, ok, err := s.LoadPartitionCheckpoint(ctx, "g", "ev-by-key", 1); ok || err != nil {
			t.Fatalf("empty store: ok=%v err=%v", ok, err)
		}
		at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		cs := []PartitionCheckpoint{
			{Group: "g", Topic: "ev-by-key", Partition: 1, NextOffset: 100, Data: []byte("a"), SavedAt: at},
			{Group: "g", Topic: "ev-by-role", Partition: 0, NextOffset: 7, Data: []byte("b"), SavedAt: at},
		}
		if err := s.SavePartitionCheckpoints(ctx, cs); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.LoadPartitionCheckpoint(ctx, "g", "ev-by-role", 0)
		if err != nil || !ok || got.NextOffset != 7 || string(got.Data) != "b" || !got.SavedAt.Equal(at) {
			t.Fatalf("loaded %+v ok=%v err=%v", got, ok, err)
		}
		// A late writer with an older offset does not undo a newer checkpoint.
		old := cs[0]
		old.NextOffset, old.Data = 50, []byte("stale")
		if err := s.SavePartitionCheckpoints(ctx, []PartitionCheckpoint{old}); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.LoadPartitionCheckpoint(ctx, "g", "ev-by-key", 1); got.NextOffset != 100 || string(got.Data) != "a" {
			t.Fatalf("a stale checkpoint replaced a newer one: %+v", got)
		}
		newer := cs[0]
		newer.NextOffset, newer.Data = 200, []byte("c")
		if err := s.SavePartitionCheckpoints(ctx, []PartitionCheckpoint{newer}); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.LoadPartitionCheckpoint(ctx, "g", "ev-by-key", 1); got.NextOffset != 200 || string(got.Data) != "c" {
			t.Fatalf("after a newer save: %+v", got)
		}
		if _, ok, _ := s.LoadPartitionCheckpoint(ctx, "other", "ev-by-key", 1); ok {
			t.Fatal("another group sees the checkpoint")
		}
		if err := s.SavePartitionCheckpoints(ctx, []PartitionCheckpoint{{Topic: "t"}}); err == nil {
			t.Fatal("a checkpoint without a group was saved")
		}
	})
}
