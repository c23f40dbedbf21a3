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

// changeLog records what sinks hear.
type changeLog struct{ got []string }

func (l *changeLog) Alert(c Change, a event.Alert) {
	l.got = append(l.got, fmt.Sprintf("%v %+v", c, a))
}

// TestPreviewContinuesBurst: a burst of immediate findings about one
// entity, arriving one by one in event-time order while all are held (a
// forged-token burst on one signing key), is previewed by going on from
// the previous preview — each finding processed once — and not by
// processing the whole burst again for every finding, which is quadratic
// (n(n+1)/2 findings; 6 M for 50 k events in BenchmarkClusterCost).
func TestPreviewContinuesBurst(t *testing.T) {
	const n = 2000
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	key := event.EntityKey{Kind: event.EntitySigningKey, ID: "auth-2023-01"}
	changes := 0
	s, err := New(Options{Ordered: true, RaiseAhead: true, Sinks: []Sink{SinkFunc(func(Change, event.Alert) { changes++ })}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		s.Process([]event.Finding{{Detector: "token_forgery", Kind: "forged", Title: "Forged token", Entity: key,
			Time: t0.Add(time.Duration(i) * time.Second), Score: 90, Severity: event.SeverityCritical,
			Explanation: "a token signed with a retired key", Evidence: []string{fmt.Sprint("tok-", i)}, Immediate: true}})
	}
	if s.previewed > 2*n {
		t.Fatalf("previews processed %d findings for a burst of %d (whole prefix every time: %d)", s.previewed, n, n*(n+1)/2)
	}
	if s.Raised() != 1 || changes != n {
		t.Fatalf("raised %d, sinks heard %d changes; want 1 alert raised ahead and %d changes", s.Raised(), changes, n)
	}
}

// TestPreviewContinuedEqualsAfresh: previews that go on from the previous
// one tell sinks exactly what previews processing the entity's held
// findings afresh tell them — every change, in order — and leave the same
// state, on random streams with bursts of immediate findings about few
// entities, arriving partly out of event-time order, with duplicates,
// withdrawals, watermark advances and restores.
func TestPreviewContinuedEqualsAfresh(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	ents := []event.EntityKey{{Kind: event.EntitySigningKey, ID: "k1"}, {Kind: event.EntityPrincipal, ID: "a"}, {Kind: event.EntitySource, ID: "a"}}
	continued := 0
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 35))
		var lc, la changeLog
		opts := Options{Ordered: true, RaiseAhead: true, Lateness: 10 * time.Minute, Window: 20 * time.Minute, MaxFindings: 5}
		opts.Sinks = []Sink{&lc}
		cont, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.Sinks = []Sink{&la}
		afresh, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		afresh.previewAfresh = true
		var all []event.Finding
		var saved []byte
		clock := 0 // seconds of event time the stream has reached
		for step := range 300 {
			var batch []event.Finding
			for range 1 + rng.IntN(3) {
				clock += rng.IntN(20)
				at := clock
				if rng.IntN(6) == 0 { // out of order
					at -= rng.IntN(300)
				}
				e := ents[0]
				if rng.IntN(3) == 0 {
					e = ents[rng.IntN(len(ents))]
				}
				x := event.Finding{Detector: []string{"d1", "d2"}[rng.IntN(2)], Kind: "k", Title: "T", Entity: e,
					Time: t0.Add(time.Duration(at) * time.Second), Score: float64(10 + 10*rng.IntN(4)), Severity: event.SeverityLow,
					Explanation: "e", Evidence: []string{fmt.Sprint("ev", rng.IntN(50))}, Immediate: rng.IntN(3) != 0}
				switch r := rng.IntN(20); {
				case r == 0 && len(all) > 0: // a duplicate
					x = all[rng.IntN(len(all))]
				case r == 1 && len(all) > 0: // a withdrawal
					w := all[len(all)-1-rng.IntN(min(len(all), 10))]
					x = event.Finding{Detector: w.Detector, Kind: "withdrawn", Entity: w.Entity, Time: w.Time, Severity: event.SeverityLow, Withdraws: w.ID(), Explanation: "late event"}
				}
				batch = append(batch, x)
				all = append(all, x)
			}
			before := cont.previewed
			cont.Process(slices.Clone(batch))
			afresh.Process(slices.Clone(batch))
			if n := cont.previewed - before; n > 0 && n < afresh.previewed {
				continued++
			}
			if rng.IntN(15) == 0 {
				wm := t0.Add(time.Duration(clock-rng.IntN(900)) * time.Second)
				cont.Advance(wm)
				afresh.Advance(wm)
			}
			switch rng.IntN(25) {
			case 0: // a checkpoint
				if saved, err = cont.Snapshot(); err != nil {
					t.Fatal(err)
				}
			case 1: // a takeover from the last checkpoint
				if saved != nil {
					if err := cont.Restore(saved); err != nil {
						t.Fatal(err)
					}
					if err := afresh.Restore(saved); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !reflect.DeepEqual(lc.got, la.got) {
				for i := range min(len(lc.got), len(la.got)) {
					if lc.got[i] != la.got[i] {
						t.Fatalf("seed %d step %d: change %d\ncontinued %s\nafresh    %s", seed, step, i, lc.got[i], la.got[i])
					}
				}
				t.Fatalf("seed %d step %d: %d changes continued, %d afresh", seed, step, len(lc.got), len(la.got))
			}
		}
		cont.Flush()
		afresh.Flush()
		if !reflect.DeepEqual(lc.got, la.got) {
			t.Fatalf("seed %d: changes differ after Flush", seed)
		}
		if cont.previewed >= afresh.previewed {
			t.Fatalf("seed %d: previews processed %d findings continued, %d afresh: nothing went on", seed, cont.previewed, afresh.previewed)
		}
	}
	if continued == 0 {
		t.Fatal("no preview went on from the previous one")
	}
}
