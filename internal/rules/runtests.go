package rules

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestResult is the outcome of one inline test.
type TestResult struct {
	Rule, Test, File string
	Line             int
	Pass             bool
	Diff             string // what differed, "" when Pass
	Findings         []event.Finding
}

// testShards is how many shards a test's engine runs: more than one, so
// tests catch rules that depend on seeing events of other entities.
const testShards = 2

// RunTests runs every inline test of every rule (disabled rules included)
// through the real decoder and engine, each rule on its own, and returns
// the results in rule then test order.
func (s *Set) RunTests() []TestResult {
	var out []TestResult
	for _, r := range s.Rules {
		for _, t := range r.Tests {
			out = append(out, runTest(r, t))
		}
	}
	return out
}

func runTest(r *Rule, t Test) TestResult {
	res := TestResult{Rule: r.ID, Test: t.Name, File: r.File, Line: t.Line}
	if res.Line == 0 {
		res.Line = r.Line
	}
	rule, err := r.forTest(t)
	if err != nil {
		res.Diff = err.Error()
		return res
	}
	evs, err := decodeEvents(t)
	if err != nil {
		res.Diff = err.Error()
		return res
	}
	got, err := runEngine(&Set{Rules: []*Rule{rule}}, evs)
	if err != nil {
		res.Diff = err.Error()
		return res
	}
	res.Findings = got
	res.Diff = diff(t.Expect, got)
	res.Pass = res.Diff == ""
	return res
}

// forTest returns an enabled copy of r with the test's lists and fresh
// counters, so tests never touch the running rule's state.
func (r *Rule) forTest(t Test) (*Rule, error) {
	cond := r.Cond
	if len(t.Lists) > 0 {
		cc, ok := r.Cond.(*celCondition)
		if !ok {
			return nil, errors.New("lists: only CEL conditions read lists")
		}
		c, err := cc.withLists(t.Lists)
		if err != nil {
			return nil, fmt.Errorf("lists: %w", err)
		}
		cond = c
	}
	cp := &Rule{
		ID: r.ID, Title: r.Title, Description: r.Description, Severity: r.Severity, Score: r.Score,
		Tags: r.Tags, Entity: r.Entity, File: r.File, Line: r.Line, Cond: cond, Agg: r.Agg,
	}
	if err := cp.normalize(); err != nil {
		return nil, err
	}
	return cp, nil
}

func decodeEvents(t Test) ([]event.Event, error) {
	dec := decode.NewDecoder()
	evs := make([]event.Event, 0, len(t.Events))
	for i, line := range t.Events {
		var ev event.Event
		if err := dec.Decode([]byte(line), &ev); err != nil {
			where := fmt.Sprintf("event %d", i+1)
			if i < len(t.EventLines) && t.EventLines[i] > 0 {
				where += fmt.Sprintf(" (line %d)", t.EventLines[i])
			}
			var le *decode.LineError
			if errors.As(err, &le) {
				return nil, fmt.Errorf("%s is not a valid contract event: %s", where, le.Reason)
			}
			return nil, fmt.Errorf("%s is not a valid contract event: %v", where, err)
		}
		ev.Line = uint32(i + 1)
		evs = append(evs, ev)
	}
	return evs, nil
}

// runEngine runs evs through an engine with s's detectors, one event per
// batch as a live source delivers them, and returns the findings in a
// stable order.
func runEngine(s *Set, evs []event.Event) ([]event.Finding, error) {
	eng, err := engine.New(engine.Options{
		Detectors: Detectors(NewHolder(s)),
		Shards:    testShards,
		InputName: func(uint32) string { return "event" },
	})
	if err != nil {
		return nil, err
	}
	var got []event.Finding
	done := make(chan struct{})
	go func() {
		defer close(done)
		for out := range eng.Output() {
			got = append(got, out.Findings...)
		}
	}()
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(context.Background()) }()
	var subErr error
	for i := range evs {
		if err := eng.Submit(context.Background(), engine.Batch{Events: evs[i : i+1 : i+1]}); err != nil {
			subErr = err
			break
		}
	}
	eng.Close()
	err = errors.Join(subErr, <-runErr)
	<-done
	slices.SortStableFunc(got, func(a, b event.Finding) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Entity.String(), b.Entity.String())
	})
	return got, err
}

// diff describes how got differs from want, "" when it does not.
func diff(want Expect, got []event.Finding) string {
	var b strings.Builder
	if len(got) != want.Findings {
		fmt.Fprintf(&b, "findings: want %d, got %d\n", want.Findings, len(got))
	}
	if want.Entities != nil {
		w := slices.Sorted(slices.Values(want.Entities))
		g := make([]string, 0, len(got))
		for _, f := range got {
			g = append(g, f.Entity.ID)
		}
		slices.Sort(g)
		if !slices.Equal(w, g) {
			fmt.Fprintf(&b, "entities: want [%s], got [%s]\n", strings.Join(w, " "), strings.Join(g, " "))
		}
	}
	if b.Len() == 0 {
		return ""
	}
	if len(got) > 0 {
		b.WriteString("got findings:\n")
		for _, f := range got {
			fmt.Fprintf(&b, "  %s: %s\n", f.Entity, f.Explanation)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}
