package alert

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// scanPreviewFindings is how preview chose and ordered its findings before
// held findings were indexed by entity: a scan of every held finding and a
// stable sort of the copies. previewFindings must agree with it.
func scanPreviewFindings(held []event.Finding, f event.Finding) ([]event.Finding, bool) {
	var fs []event.Finding
	id := f.ID()
	for i := range held {
		h := &held[i]
		if h.Entity != f.Entity {
			continue
		}
		if h.Withdraws == id {
			return nil, false
		}
		if compareFindings(*h, f) <= 0 {
			fs = append(fs, *h)
		}
	}
	slices.SortStableFunc(fs, compareFindings)
	return fs, true
}

// scanLastImmediate is lastImmediate by a scan of every held finding.
func scanLastImmediate(held []event.Finding, k event.EntityKey) int {
	j := -1
	for i := range held {
		if h := &held[i]; h.Immediate && h.Withdraws == 0 && h.Entity == k && (j < 0 || compareFindings(*h, held[j]) > 0) {
			j = i
		}
	}
	return j
}

// TestPreviewFindingsMatchScan compares the indexed preview with the scan
// on random held sets as findings arrive and the watermark releases them:
// few entities and coarse times, so ties are common; duplicates that
// compare equal but differ in fields the order ignores (Immediate,
// Privileged), so a sort that is not stable in held's order shows; and
// withdrawals of held findings; and restores from snapshots.
func TestPreviewFindingsMatchScan(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	for seed := range uint64(15) {
		rng := rand.New(rand.NewPCG(seed, 34))
		s, err := New(Options{Ordered: true, RaiseAhead: true, Lateness: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		ents := []event.EntityKey{{Kind: event.EntityPrincipal, ID: "a"}, {Kind: event.EntityPrincipal, ID: "b"}, {Kind: event.EntitySource, ID: "a"}, {Kind: event.EntityPrincipal, ID: "c"}}
		var wm time.Time
		var all []event.Finding
		checks := 0
		for step := range 60 {
			var batch []event.Finding
			for range rng.IntN(8) {
				x := event.Finding{Detector: []string{"d1", "d2"}[rng.IntN(2)], Kind: "k", Title: "T",
					Entity: ents[rng.IntN(len(ents))], Time: t0.Add(time.Duration(step/2+rng.IntN(20)) * time.Minute),
					Score: float64(20 + 10*rng.IntN(4)), Severity: event.SeverityLow, Explanation: "e", Evidence: []string{fmt.Sprint("ev", rng.IntN(3))},
					Immediate: rng.IntN(4) == 0, Privileged: rng.IntN(2) == 0}
				switch r := rng.IntN(10); {
				case r == 0 && len(all) > 0: // a duplicate, differing where the order does not look
					x = all[rng.IntN(len(all))]
					x.Privileged = !x.Privileged
					x.Immediate = x.Withdraws == 0 && !x.Immediate // a withdrawal is never immediate
				case r == 1 && len(all) > 0: // a withdrawal
					w := all[rng.IntN(len(all))]
					x = event.Finding{Detector: w.Detector, Kind: "withdrawn", Entity: w.Entity, Time: w.Time, Severity: event.SeverityLow, Withdraws: w.ID(), Explanation: "late event"}
				}
				batch = append(batch, x)
				all = append(all, x)
			}
			s.Process(batch)
			if rng.IntN(3) == 0 {
				wm = t0.Add(time.Duration(step/2) * time.Minute)
				s.Advance(wm)
			}
			if rng.IntN(10) == 0 && len(batch) > 0 { // a restore replaces held
				b, err := s.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				s.lastImmediate(ents[0]) // the index is up to date
				s.Process(slices.Clone(batch))
				if err := s.Restore(b); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range ents {
				if got, want := s.lastImmediate(k), scanLastImmediate(s.held, k); got != want {
					t.Fatalf("seed %d step %d %v: lastImmediate %d, scan %d", seed, step, k, got, want)
				}
			}
			for i := range s.held {
				f := s.held[i]
				if f.Withdraws != 0 {
					continue
				}
				want, wantOK := scanPreviewFindings(s.held, f)
				got, gotOK := s.previewFindings(&f)
				if gotOK != wantOK || !reflect.DeepEqual(slices.Clone(got), want) {
					t.Fatalf("seed %d step %d finding %d: preview findings\n%v %v\nscan\n%v %v", seed, step, i, gotOK, got, wantOK, want)
				}
				checks++
			}
		}
		if checks == 0 {
			t.Fatalf("seed %d: nothing compared", seed)
		}
	}
}
