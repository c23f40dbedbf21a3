package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// citer emits, for every event, one finding citing it and an event it
// saw before, one citing only the earlier event, and at the end of time
// one citing the last event from a timer.
type citer struct{}

func (citer) Name() string { return "citer" }
func (citer) Key(ev *event.Event) (event.EntityKey, bool) {
	return event.EntityKey{Kind: event.EntityPrincipal, ID: "all"}, true
}
func (citer) NewShard() engine.Shard { return &citerShard{} }

type citerShard struct{ prev string }

func (s *citerShard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	ref := c.Ref(ev)
	if s.prev != "" {
		c.Emit(event.Finding{Kind: "both", Entity: key, Time: ev.Time, Score: 50, Evidence: []string{s.prev, ref}})
		c.Emit(event.Finding{Kind: "earlier", Entity: key, Time: ev.Time, Score: 50, Evidence: []string{s.prev}})
	}
	s.prev = ref
}

func (s *citerShard) Advance(c *engine.Context, wm time.Time) {
	if wm.Equal(engine.EndOfTime) && s.prev != "" {
		c.Emit(event.Finding{Kind: "timer", Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "all"}, Time: t0, Score: 50, Evidence: []string{s.prev}})
	}
}

// The engine cites the event whose processing emitted a finding, when the
// finding cites it — who acted, with which credential, from where — and
// nothing else: not an earlier event, not from a timer.
func TestEmitCitesTheEventProcessed(t *testing.T) {
	e, err := engine.New(engine.Options{Detectors: []engine.Detector{citer{}}, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := ev("a", "m:1", 0)
	b := ev("b", "m:2", time.Second)
	b.Outcome = event.OutcomeFailure
	b.Source.IP, b.Source.ASN, b.Source.Country, b.UserAgent = netip.MustParseAddr("203.0.113.9"), 64500, "SG", "curl/8.1"
	b.Token.ID, b.Token.KeyID = "tk-1", "key-1"
	got := map[string][]event.Citation{}
	for _, o := range collect(t, e, []event.Event{a, b}) {
		for _, f := range o.Findings {
			got[f.Kind] = f.Cited
		}
	}
	want := map[string][]event.Citation{
		"both": {{Ref: "b", Success: false, Principal: "m:2", Token: "tk-1", Key: "key-1", Source: "203.0.113.9",
			ASN: 64500, UserAgent: "curl/8.1", Country: "SG"}},
		"earlier": nil,
		"timer":   nil,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("citations (-want +got):\n%s", diff)
	}
}
