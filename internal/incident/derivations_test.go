package incident

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// randomWorld makes alerts over small pools of keys, tokens, principals
// and sources, so that the alerts accused (the subjects) in one set name
// the keys, tokens and principals other alerts' evidence cites, and
// leaving one out changes what those join through.
type randomWorld struct {
	r      *rand.Rand
	fx     *facts
	nEvent int
	kinds  []string
}

func (w *randomWorld) entity() event.EntityKey {
	switch w.r.IntN(4) {
	case 0:
		return ent(event.EntitySigningKey, fmt.Sprintf("key-%d", w.r.IntN(4)))
	case 1:
		return ent(event.EntityToken, fmt.Sprintf("tk-%d", w.r.IntN(8)))
	case 2:
		return ent(event.EntityPrincipal, fmt.Sprintf("u-%d", w.r.IntN(8)))
	}
	return ent(event.EntitySource, fmt.Sprintf("10.0.0.%d", w.r.IntN(8)))
}

// event stores the facts of a new cited event and returns its reference;
// unknown (no facts) one time in ten.
func (w *randomWorld) event() string {
	w.nEvent++
	ref := fmt.Sprintf("ev-%d", w.nEvent)
	if w.r.IntN(10) == 0 {
		return ref
	}
	w.fx.events[ref] = EventFacts{Success: w.r.IntN(3) > 0, Principal: fmt.Sprintf("u-%d", w.r.IntN(8)),
		Token: fmt.Sprintf("tk-%d", w.r.IntN(8)), Key: fmt.Sprintf("key-%d", w.r.IntN(4)),
		Source: fmt.Sprintf("10.0.0.%d", w.r.IntN(8)), ASN: uint32(64500 + w.r.IntN(3)),
		UserAgent: fmt.Sprintf("client/%d", w.r.IntN(3)), Country: []string{"KR", "US", "CN"}[w.r.IntN(3)]}
	return ref
}

func (w *randomWorld) finding(at time.Time, subject event.EntityKey) event.Finding {
	f := event.Finding{Detector: "d", Kind: w.kinds[w.r.IntN(len(w.kinds))], Entity: subject, Time: at,
		Score: float64(40 + w.r.IntN(60)), Severity: event.Severity(1 + w.r.IntN(4))}
	for range w.r.IntN(4) {
		f.Evidence = append(f.Evidence, w.event())
	}
	if w.r.IntN(3) == 0 {
		f.Related = append(f.Related, w.entity())
	}
	return f
}

func (w *randomWorld) alert(i int, start time.Time) event.Alert {
	at := start.Add(time.Duration(w.r.IntN(72*60)) * time.Minute)
	subject := w.entity()
	a := event.Alert{ID: fmt.Sprintf("al-%03d", i), Time: at, LastTime: at, Entity: subject, Detector: "d",
		State: event.AlertOpen, Title: "t", Score: 50, Severity: event.SeverityHigh}
	for range 1 + w.r.IntN(3) {
		a.Findings = append(a.Findings, w.finding(at, subject))
	}
	a.FindingCount = len(a.Findings)
	return a
}

// grow returns a copy of a with one finding more, or with its last
// finding replaced (as many findings, other evidence), in a new slice (as
// a store reads an alert saved again).
func (w *randomWorld) grow(a event.Alert) event.Alert {
	a.LastTime = a.LastTime.Add(time.Duration(1+w.r.IntN(120)) * time.Minute)
	a.Findings = slices.Clone(a.Findings)
	if w.r.IntN(2) == 0 {
		a.Findings[len(a.Findings)-1] = w.finding(a.LastTime, a.Entity)
	} else {
		a.Findings = append(a.Findings, w.finding(a.LastTime, a.Entity))
	}
	a.FindingCount = len(a.Findings)
	return a
}

// TestGroupWithEqualsGroup: on random sequences of regroupings — random
// subsets of a growing set of alerts (the neighbourhoods a keeper
// regroups), alerts growing or changing (a new findings slice), withdrawn, facts
// learning references they did not know — GroupWith reusing one
// Derivations across every call gives exactly what Group gives afresh.
func TestGroupWithEqualsGroup(t *testing.T) {
	reused := 0
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 22))
		w := &randomWorld{r: r, fx: newFacts(), kinds: []string{"hosting_network", "token_never_minted",
			"token_binding_hosting", "token_binding_client", "token_binding_country", "login_failure_fanout",
			"record_volume", "source_fanout"}}
		for i := range 8 {
			w.fx.sources[fmt.Sprintf("10.0.0.%d", i)] = r.IntN(30)
		}
		d := NewDerivations()
		var all []event.Alert
		for step := range 60 {
			switch n := r.IntN(10); {
			case n < 4 || len(all) < 4:
				all = append(all, w.alert(len(all), t0))
			case n < 6:
				i := r.IntN(len(all))
				all[i] = w.grow(all[i])
			case n < 7:
				i := r.IntN(len(all))
				a := all[i]
				a.State = event.AlertWithdrawn
				all[i] = a
			case n < 8:
				// Facts learn a reference they did not know.
				for ref := range w.nEvent {
					if _, ok := w.fx.events[fmt.Sprintf("ev-%d", ref+1)]; !ok {
						w.fx.events[fmt.Sprintf("ev-%d", ref+1)] = EventFacts{Success: true, Principal: "u-1", Token: "tk-1", Key: "key-1"}
						break
					}
				}
			}
			// A random subset of the alerts, in a random order.
			var set []event.Alert
			for _, a := range all {
				if r.IntN(3) > 0 {
					set = append(set, a)
				}
			}
			r.Shuffle(len(set), func(i, j int) { set[i], set[j] = set[j], set[i] })
			var fx Facts = w.fx
			if r.IntN(8) == 0 {
				fx = nil
			}
			before := d.Len()
			got := GroupWith(set, fx, Options{}, d)
			want := Group(set, fx, Options{})
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d step %d: GroupWith differs from Group:\n got %+v\nwant %+v", seed, step, got, want)
			}
			if d.Len() == before {
				reused++
			}
		}
	}
	if reused == 0 {
		t.Fatal("no regrouping reused a derivation")
	}
}

// TestDerivationsLayers: a layer's derivations answer only through it
// until merged, and merging past the limit starts over.
func TestDerivationsLayers(t *testing.T) {
	fx := newFacts()
	alerts := ghostKey(fx, "", t0, 20)
	base := NewDerivations()
	layer := base.Over()
	GroupWith(alerts, fx, Options{}, layer)
	if layer.Len() != 20 || base.Len() != 0 {
		t.Fatalf("layer %d, base %d derivations; want 20, 0", layer.Len(), base.Len())
	}
	base.Merge(layer, 100)
	if base.Len() != 20 {
		t.Fatalf("base %d after merge, want 20", base.Len())
	}
	next := base.Over()
	GroupWith(alerts, fx, Options{}, next)
	if next.Len() != 0 {
		t.Fatalf("a layer over the merged base derived %d again, want 0", next.Len())
	}
	small := NewDerivations()
	small.Merge(base, 10)
	if small.Len() != 20 {
		t.Fatalf("merge past the limit holds %d, want the layer's 20", small.Len())
	}
}
