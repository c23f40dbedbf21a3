package app

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/store"
)

// The saver stores the registry's snapshot in its own row at the
// checkpoint's mark, and restoreMints takes it only at the detectors' mark.
func TestMintCheckpointRestore(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	t0 := time.Now().UTC()
	src := mint.New(mint.Options{})
	src.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: t0})
	newSaver := newCheckpointSaver(st, log, nil, nil)
	newSaver.save(Checkpoint{Mark: 7, Shards: 1, Parts: map[string][][]byte{}, Mints: src.Snapshot()})

	for _, c := range []struct {
		mark uint64
		want int
	}{{7, 1}, {8, 0}} {
		reg := mint.New(mint.Options{})
		restoreMints(ctx, st, log, c.mark, reg)
		if reg.Len() != c.want {
			t.Errorf("mark %d: %d tokens restored, want %d", c.mark, reg.Len(), c.want)
		}
		if c.want == 1 {
			if a := reg.Verify(mint.Query{TokenID: "tok-a", KeyID: "k1", Now: t0}); a.Verdict != mint.Known {
				t.Errorf("restored registry: %+v", a)
			}
		}
	}
	// A damaged row: the registry starts empty.
	if err := st.SaveCheckpoint(ctx, store.StateCheckpoint{Name: mintCheckpointName, Mark: 9, Shards: 1, Data: []byte{1, 2, 3}, SavedAt: t0}); err != nil {
		t.Fatal(err)
	}
	reg := mint.New(mint.Options{})
	restoreMints(ctx, st, log, 9, reg)
	if reg.Len() != 0 {
		t.Errorf("damaged snapshot restored %d tokens", reg.Len())
	}
}
