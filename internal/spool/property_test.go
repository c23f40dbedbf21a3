package spool

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestRandomInterleavings runs random Append/Commit/DeleteThrough/read/reopen
// sequences against a model: the records after the resume point are exactly
// the ones appended, offsets never repeat, Committed survives reopening.
func TestRandomInterleavings(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: int64(64 + rng.IntN(400)), NoSync: true}
			s := openT(t, opts)
			model := map[uint64][]byte{}
			next, committed, deleted := uint64(1), uint64(0), uint64(0)
			for step := range 400 {
				switch op := rng.IntN(10); {
				case op < 5:
					recs := make([][]byte, 1+rng.IntN(4))
					for i := range recs {
						recs[i] = payload(rng, step*10+i, int(opts.SegmentBytes)-frameHeader)
					}
					first, last, err := s.Append(context.Background(), recs...)
					if err != nil {
						t.Fatal(err)
					}
					if first != next || last != next+uint64(len(recs))-1 {
						t.Fatalf("step %d: Append = [%d,%d], want first %d", step, first, last, next)
					}
					for i, r := range recs {
						model[first+uint64(i)] = r
					}
					next = last + 1
				case op < 7 && next > 1:
					off := uint64(rng.IntN(int(next)))
					if err := s.Commit(off); err != nil {
						t.Fatal(err)
					}
					committed = max(committed, off)
					deleted = max(deleted, committed)
				case op < 8 && next > 1:
					off := uint64(rng.IntN(int(next)))
					if err := s.DeleteThrough(off); err != nil {
						t.Fatal(err)
					}
					deleted = max(deleted, off)
				case op < 9:
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					s = openT(t, opts)
				default:
					st := s.Stats()
					if st.Committed != committed || st.NextOffset != next || st.FirstOffset > deleted+1 {
						t.Fatalf("step %d: stats %+v, model next %d committed %d deleted %d", step, st, next, committed, deleted)
					}
					from := max(committed+1, st.FirstOffset)
					if from <= next {
						from += uint64(rng.IntN(int(next - from + 1)))
					}
					for _, r := range mustReadAll(t, s, from) {
						if !bytes.Equal(r.data, model[r.off]) {
							t.Fatalf("step %d: record %d = %q, want %q", step, r.off, r.data, model[r.off])
						}
					}
				}
			}
		})
	}
}
