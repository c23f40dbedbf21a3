package alert_test

import (
	"cmp"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
)

// orderedFindings is a random stream over a few entities and detectors,
// some immediate, over two days.
func orderedFindings(rng *rand.Rand) []event.Finding {
	var fs []event.Finding
	for range 400 {
		x := f(string(rune('a'+rng.IntN(4))), []string{"d1", "d2", "d3"}[rng.IntN(3)],
			time.Duration(rng.Int64N(int64(48*time.Hour))).Truncate(time.Second), float64(10+rng.IntN(60)))
		x.Immediate = rng.IntN(40) == 0
		fs = append(fs, x)
	}
	return fs
}

// runOrdered feeds fs to an ordered stage in an arrival order of its own:
// each finding arrives up to lateness after its time, and the watermark
// after each is what the arrivals guarantee. It returns the final alerts.
func runOrdered(t *testing.T, fs []event.Finding, rng *rand.Rand, lateness time.Duration, snapshotAt int) string {
	t.Helper()
	type arrival struct {
		f   event.Finding
		key time.Time
	}
	as := make([]arrival, len(fs))
	for i, x := range fs {
		var d time.Duration
		if rng != nil {
			d = time.Duration(rng.Int64N(int64(lateness)))
		}
		as[i] = arrival{x, x.Time.Add(d)}
	}
	slices.SortStableFunc(as, func(a, b arrival) int { return a.key.Compare(b.key) })
	r := &rec{}
	mk := func() *alert.Stage {
		s, err := alert.New(alert.Options{Window: time.Hour, Lateness: lateness, Ordered: true, Sinks: []alert.Sink{r}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := mk()
	for i, a := range as {
		if i == snapshotAt {
			b, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			s = mk()
			if err := s.Restore(b); err != nil {
				t.Fatal(err)
			}
		}
		s.Process([]event.Finding{a.f})
		// Every later arrival has key >= a.key, so time > a.key - lateness.
		s.Advance(a.key)
	}
	s.Flush()
	out := make([]event.Alert, 0, len(r.last))
	for _, a := range r.last {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b event.Alert) int { return cmp.Compare(a.ID, b.ID) })
	j, _ := json.Marshal(out)
	return string(j)
}

// Ordered: the alerts depend on the findings, not on their arrival order
// (within the allowed lateness), nor on a snapshot and restore on the way.
func TestOrderedIndependentOfArrivalOrder(t *testing.T) {
	const lateness = 5 * time.Minute
	for seed := range uint64(20) {
		fs := orderedFindings(rand.New(rand.NewPCG(seed, 1)))
		want := runOrdered(t, fs, nil, lateness, -1)
		if want == "null" || want == "[]" {
			t.Fatal("no alerts: the test proves nothing")
		}
		for run := range uint64(3) {
			rng := rand.New(rand.NewPCG(seed, 100+run))
			shuffled := slices.Clone(fs)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			snap := rng.IntN(len(fs)) // a restart from a snapshot on the way
			if got := runOrdered(t, shuffled, rng, lateness, snap); got != want {
				t.Fatalf("seed %d run %d: alerts depend on the arrival order", seed, run)
			}
		}
	}
}

func imm(x event.Finding) event.Finding {
	x.Immediate = true
	return x
}

// Ordered: an immediate finding's alert is raised when the finding
// arrives, not when the watermark has passed it; ordered processing then
// makes the same alert (Updated, never Raised again), with the findings of
// its window in event-time order.
func TestOrderedImmediateRaisedAhead(t *testing.T) {
	const lateness = 5 * time.Minute
	type step struct {
		fs      []event.Finding
		advance time.Duration // watermark after the step (0: none)
	}
	cases := []struct {
		name  string
		steps []step
		// ahead are the changes heard before the first Advance; all, the
		// changes of the whole run.
		ahead, all []string
		// id is the id of the (last) alert of entity a: its opening
		// finding's detector and time.
		idDet string
		idAt  time.Duration
		// superseded: the other alerts are previews ordered processing
		// did not confirm (alert.Superseded).
		superseded bool
	}{{
		name:  "alone",
		steps: []step{{fs: []event.Finding{imm(f("a", "canary", 10*time.Minute, 100))}}, {advance: 20 * time.Minute}, {advance: 3 * time.Hour}},
		ahead: []string{"raised a/canary n=1"},
		all:   []string{"raised a/canary n=1", "updated a/canary n=1", "closed a/canary n=1"},
		idDet: "canary", idAt: 10 * time.Minute,
	}, {
		name: "a later ordered finding joins it",
		steps: []step{
			{fs: []event.Finding{imm(f("a", "canary", 10*time.Minute, 100))}},
			{fs: []event.Finding{f("a", "d1", 20*time.Minute, 40)}},
			{advance: 40 * time.Minute}, {advance: 3 * time.Hour}},
		ahead: []string{"raised a/canary n=1"},
		all:   []string{"raised a/canary n=1", "updated a/canary n=2", "closed a/canary n=2"},
		idDet: "canary", idAt: 10 * time.Minute,
	}, {
		name: "held risk of the entity is in the preview",
		steps: []step{
			{fs: []event.Finding{f("a", "d1", 5*time.Minute, 50)}},
			{fs: []event.Finding{imm(f("a", "canary", 10*time.Minute, 100))}},
			{advance: 40 * time.Minute}, {advance: 3 * time.Hour}},
		ahead: []string{"raised a/canary n=2"},
		all:   []string{"raised a/canary n=2", "updated a/canary n=2", "closed a/canary n=2"},
		idDet: "canary", idAt: 10 * time.Minute,
	}, {
		name: "an open alert covers it: updated ahead",
		steps: []step{
			{fs: []event.Finding{f("a", "d1", 0, 95)}, advance: 20 * time.Minute},
			{fs: []event.Finding{imm(f("a", "canary", 30*time.Minute, 100))}},
			{advance: 40 * time.Minute}, {advance: 3 * time.Hour}},
		ahead: nil, // the first step advances
		all:   []string{"raised a/d1 n=1", "updated a/d1 n=2", "updated a/d1 n=2", "closed a/d1 n=2"},
		idDet: "d1", idAt: 0,
	}, {
		name: "an earlier finding arriving later supersedes it",
		steps: []step{
			{fs: []event.Finding{imm(f("a", "canary", 10*time.Minute, 100))}},
			{fs: []event.Finding{f("a", "d1", 8*time.Minute, 95)}},
			{advance: 40 * time.Minute}, {advance: 3 * time.Hour}},
		ahead: []string{"raised a/canary n=1"},
		all:   []string{"raised a/canary n=1", "raised a/d1 n=1", "updated a/d1 n=2", "withdrawn a/canary n=1", "closed a/d1 n=2"},
		idDet: "d1", idAt: 8 * time.Minute, superseded: true,
	}, {
		name: "an earlier immediate finding arriving later keeps the later one in the preview",
		steps: []step{
			{fs: []event.Finding{imm(f("a", "canary", 20*time.Minute, 100))}},
			{fs: []event.Finding{imm(f("a", "canary2", 10*time.Minute, 100))}},
			{advance: 40 * time.Minute}, {advance: 3 * time.Hour}},
		ahead: []string{"raised a/canary n=1", "raised a/canary2 n=2"},
		all:   []string{"raised a/canary n=1", "raised a/canary2 n=2", "updated a/canary2 n=2", "withdrawn a/canary n=1", "closed a/canary2 n=2"},
		idDet: "canary2", idAt: 10 * time.Minute, superseded: true,
	}, {
		name: "withdrawn after it was raised ahead: withdrawn as in one ordered process",
		steps: []step{
			{fs: []event.Finding{imm(f("a", "canary", 10*time.Minute, 100))}},
			{fs: []event.Finding{withdrawal(imm(f("a", "canary", 10*time.Minute, 100)), "mint-1")}},
			{advance: 40 * time.Minute}, {advance: 3 * time.Hour}},
		ahead: []string{"raised a/canary n=1"},
		all:   []string{"raised a/canary n=1", "withdrawn a/canary n=0"},
		idDet: "canary", idAt: 10 * time.Minute,
	}, {
		name: "its withdrawal arrived first: not raised ahead",
		steps: []step{
			{fs: []event.Finding{withdrawal(imm(f("a", "canary", 10*time.Minute, 100)), "mint-1")}},
			{fs: []event.Finding{imm(f("a", "canary", 10*time.Minute, 100))}},
			{advance: 40 * time.Minute}, {advance: 3 * time.Hour}},
		ahead: nil,
		all:   []string{"raised a/canary n=1", "withdrawn a/canary n=0"},
		idDet: "canary", idAt: 10 * time.Minute,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &rec{}
			s, err := alert.New(alert.Options{Window: time.Hour, Lateness: lateness, Ordered: true, RaiseAhead: true, Sinks: []alert.Sink{r}})
			if err != nil {
				t.Fatal(err)
			}
			var ahead []string
			advanced := false
			for _, st := range c.steps {
				s.Process(st.fs)
				if st.advance > 0 {
					if !advanced {
						ahead = slices.Clone(r.changes)
					}
					advanced = true
					s.Advance(t0.Add(st.advance))
				}
			}
			s.Flush()
			if !slices.Equal(ahead, c.ahead) {
				t.Errorf("before the watermark moved: %q, want %q", ahead, c.ahead)
			}
			if !slices.Equal(r.changes, c.all) {
				t.Errorf("changes %q, want %q", r.changes, c.all)
			}
			id := alert.ID(event.EntityKey{Kind: event.EntityPrincipal, ID: "a"}, c.idDet, t0.Add(c.idAt))
			if _, ok := r.last[id]; !ok {
				t.Errorf("no alert %s (%s at %v) among %v", id, c.idDet, c.idAt, slices.Collect(maps.Keys(r.last)))
			}
			for _, a := range r.last {
				if a.ID == id {
					if alert.Superseded(&a) {
						t.Errorf("the ordered alert %s counts as superseded: %q", a.ID, a.Explanation)
					}
					continue
				}
				if !c.superseded || !alert.Superseded(&a) || !strings.Contains(a.Explanation, "belong to alert "+id) {
					t.Errorf("alert %s %s (%s): %q, want it superseded, naming %s", a.ID, a.Detector, a.State, a.Explanation, id)
				}
			}
		})
	}
}

// Ordered: an alert raised ahead and checkpointed is not raised again
// after a restore; ordered processing updates it under the same id.
func TestOrderedRaisedAheadSurvivesRestore(t *testing.T) {
	opts := alert.Options{Window: time.Hour, Lateness: 5 * time.Minute, Ordered: true, RaiseAhead: true}
	r1 := &rec{}
	opts.Sinks = []alert.Sink{r1}
	s1, err := alert.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s1.Process([]event.Finding{imm(f("a", "canary", 10*time.Minute, 100))})
	b, err := s1.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r2 := &rec{}
	opts.Sinks = []alert.Sink{r2}
	s2, err := alert.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Restore(b); err != nil {
		t.Fatal(err)
	}
	s2.Process([]event.Finding{f("a", "d1", 12*time.Minute, 30)})
	s2.Advance(t0.Add(3 * time.Hour))
	if want := []string{"raised a/canary n=1"}; !slices.Equal(r1.changes, want) {
		t.Errorf("before the snapshot: %q, want %q", r1.changes, want)
	}
	if want := []string{"updated a/canary n=2", "closed a/canary n=2"}; !slices.Equal(r2.changes, want) {
		t.Errorf("after the restore: %q, want %q", r2.changes, want)
	}
	if s2.Raised() != 1 {
		t.Errorf("raised %d alerts, want 1", s2.Raised())
	}
	id := alert.ID(event.EntityKey{Kind: event.EntityPrincipal, ID: "a"}, "canary", t0.Add(10*time.Minute))
	if _, ok := r2.last[id]; !ok || len(r2.last) != 1 {
		t.Errorf("alerts %v, want only %s", slices.Collect(maps.Keys(r2.last)), id)
	}
}
