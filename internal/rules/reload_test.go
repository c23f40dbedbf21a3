package rules_test

import (
	"context"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/rules"
)

// stepper runs a one-shard engine an event at a time, so a test can swap
// rule sets between events.
type stepper struct {
	t   *testing.T
	eng *engine.Engine
	out <-chan engine.Output
	err chan error
}

func newStepper(t *testing.T, h *rules.Holder) *stepper {
	eng, err := engine.New(engine.Options{Detectors: rules.Detectors(h), Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := &stepper{t: t, eng: eng, out: eng.Output(), err: make(chan error, 1)}
	go func() { s.err <- eng.Run(context.Background()) }()
	t.Cleanup(func() {
		eng.Close()
		for range s.out {
		}
		if err := <-s.err; err != nil {
			t.Error(err)
		}
	})
	return s
}

// step submits one event and returns the findings it produced.
func (s *stepper) step(line string) []event.Finding {
	var ev event.Event
	if err := decode.NewDecoder().Decode([]byte(strings.TrimSpace(line)), &ev); err != nil {
		s.t.Fatal(err)
	}
	if err := s.eng.Submit(context.Background(), engine.Batch{Events: []event.Event{ev}}); err != nil {
		s.t.Fatal(err)
	}
	return (<-s.out).Findings
}

func TestReloadKeepsStateOfUnchangedRules(t *testing.T) {
	const agg = "id: a\ntitle: A\nseverity: low\ncondition: \"true\"\naggregate: {function: count, window: 1h, threshold: 3}\n"
	const other = "id: b\ntitle: B\nseverity: low\ncondition: user.id == \"nobody\"\n"
	h := rules.NewHolder(loadSet(t, agg))
	s := newStepper(t, h)
	s.step(ev(0, "e:1", ""))
	s.step(ev(1, "e:1", ""))
	// Reloaded from scratch (new *Rule values), same definition: state stays.
	h.Swap(loadSet(t, agg+"---\n"+other))
	if got := s.step(ev(2, "e:1", "")); len(got) != 1 {
		t.Fatalf("unchanged rule lost its state across reload: %v", got)
	}
	s.step(ev(70, "e:1", ""))
	s.step(ev(71, "e:1", ""))
	// Changed threshold: a new rule version starts from nothing.
	h.Swap(loadSet(t, strings.Replace(agg, "threshold: 3", "threshold: 2", 1)))
	if got := s.step(ev(72, "e:1", "")); len(got) != 0 {
		t.Fatalf("changed rule kept old state: %v", got)
	}
	if got := s.step(ev(73, "e:1", "")); len(got) != 1 {
		t.Fatalf("changed rule did not fire: %v", got)
	}
	// Removing every rule stops the detectors.
	h.Swap(nil)
	if got := s.step(ev(200, "e:1", "")); len(got) != 0 || len(h.Load().Rules) != 0 {
		t.Fatalf("empty set fired: %v", got)
	}
}

func TestHolderLoad(t *testing.T) {
	set := loadSet(t, "id: r\ntitle: R\nseverity: low\ncondition: \"true\"\n")
	h := rules.NewHolder(set)
	if h.Load() != set {
		t.Error("Load does not return the set")
	}
}
