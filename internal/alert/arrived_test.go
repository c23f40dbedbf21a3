package alert_test

import (
	"cmp"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
)

// immediateStream is a random stream for previews: a few entities, one of
// them in a burst of immediate findings spanning several windows, others
// with some immediate findings and withdrawals of them, in an arrival
// order up to lateness late.
func immediateStream(rng *rand.Rand, lateness time.Duration) []event.Finding {
	var fs []event.Finding
	for range 300 {
		e := string(rune('a' + rng.IntN(4)))
		x := f(e, []string{"d1", "d2", "canary"}[rng.IntN(3)],
			time.Duration(rng.Int64N(int64(6*time.Hour))).Truncate(time.Second), float64(10+rng.IntN(60)))
		x.Immediate = e == "a" && rng.IntN(2) == 0 || rng.IntN(15) == 0
		fs = append(fs, x)
		if x.Immediate && rng.IntN(10) == 0 {
			fs = append(fs, withdrawal(x, "mint"))
		}
	}
	type arrival struct {
		f   event.Finding
		key time.Time
	}
	as := make([]arrival, len(fs))
	for i, x := range fs {
		as[i] = arrival{x, x.Time.Add(time.Duration(rng.Int64N(int64(lateness))))}
	}
	slices.SortStableFunc(as, func(a, b arrival) int { return a.key.Compare(b.key) })
	for i := range as {
		fs[i] = as[i].f
	}
	return fs
}

// arrivedRun feeds fs to a stage (Ordered, RaiseAhead) in Process calls
// cut after the positions in cuts (each finding its own call when cuts is
// nil), advancing the watermark at the cuts in adv. It returns the alerts
// that stand (last versions, superseded previews left out), whether each
// immediate finding's alert had been shown by the end of the call that
// brought it (unless its withdrawal had come by then), and the previews
// made.
func arrivedRun(t *testing.T, fs []event.Finding, cuts map[int]bool, adv map[int]time.Time) (standing string, shown map[event.FindingID]bool, previews int) {
	t.Helper()
	r := &rec{}
	// MaxFindings: every finding kept, so that an alert shows all it holds.
	s, err := alert.New(alert.Options{Window: time.Hour, Lateness: 5 * time.Minute, Ordered: true, RaiseAhead: true,
		MaxFindings: 10000, Sinks: []alert.Sink{r}})
	if err != nil {
		t.Fatal(err)
	}
	heard := map[event.FindingID]bool{} // immediate findings in an alert sinks heard of
	hear := func() {
		for _, a := range r.last {
			for _, h := range a.Findings {
				if h.Immediate {
					heard[h.ID()] = true
				}
			}
		}
	}
	shown = map[event.FindingID]bool{}
	withdrawn := map[event.FindingID]bool{}
	start := 0
	for i := range fs {
		if cuts != nil && !cuts[i] && i < len(fs)-1 {
			continue
		}
		s.Process(slices.Clone(fs[start : i+1]))
		hear()
		for _, x := range fs[start : i+1] {
			if x.Withdraws != 0 {
				withdrawn[x.Withdraws] = true
			}
		}
		for _, x := range fs[start : i+1] {
			// Not when its withdrawal has come too: no alert then.
			if x.Immediate && x.Withdraws == 0 && !withdrawn[x.ID()] {
				shown[x.ID()] = heard[x.ID()]
			}
		}
		start = i + 1
		if wm, ok := adv[i]; ok {
			s.Advance(wm)
		}
	}
	s.Flush()
	var out []event.Alert
	for _, a := range r.last {
		if !alert.Superseded(&a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b event.Alert) int { return cmp.Compare(a.ID, b.ID) })
	j, _ := json.Marshal(out)
	return string(j), shown, s.Previews()
}

// TestPreviewOncePerEntityPerCall: findings handed to Process together
// (cluster mode hands it a poll's) are previewed once per entity, not once
// per immediate finding; the alerts that stand are the same as when each
// finding comes alone, and every immediate finding whose alert was shown
// when it came alone is shown by the end of the call that brought it.
func TestPreviewOncePerEntityPerCall(t *testing.T) {
	const lateness = 10 * time.Minute
	var alone, together int
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 22))
		fs := immediateStream(rng, lateness)
		// The watermark moves at random positions, to what the arrivals
		// guarantee there (every later finding is at most lateness late).
		adv := map[int]time.Time{}
		cuts := map[int]bool{}
		for i := range fs {
			if rng.IntN(25) == 0 {
				low := fs[i].Time
				for _, x := range fs[i+1:] {
					if x.Time.Before(low) {
						low = x.Time
					}
				}
				adv[i] = low.Add(-time.Second)
				cuts[i] = true
			}
			if rng.IntN(20) == 0 {
				cuts[i] = true
			}
		}
		want, wantShown, n1 := arrivedRun(t, fs, nil, adv)
		got, gotShown, n2 := arrivedRun(t, fs, cuts, adv)
		alone += n1
		together += n2
		if got != want {
			t.Fatalf("seed %d: the alerts that stand differ:\n got %s\nwant %s", seed, got, want)
		}
		for id, ok := range wantShown {
			if g, due := gotShown[id]; ok && due && !g {
				for _, x := range fs {
					if x.ID() == id || x.Withdraws == id {
						t.Logf("%s %s %s imm=%v withdraws=%v", x.Entity.ID, x.Detector, x.Time.Sub(t0), x.Immediate, x.Withdraws != 0)
					}
				}
				t.Fatalf("seed %d: an immediate finding's alert shown when it came alone is not shown by the end of its call", seed)
			}
		}
	}
	t.Logf("%d previews one finding a call, %d a call of several", alone, together)
	if together >= alone { // the previews of every Advance are made either way
		t.Errorf("%d previews for calls of several findings, %d one by one: want fewer", together, alone)
	}
}

// TestPreviewOnceForABurst: a burst of one entity's immediate findings in
// one call is previewed once, and the alert each lands in is shown — also
// those of windows the burst's later findings are past.
func TestPreviewOnceForABurst(t *testing.T) {
	r := &rec{}
	s, err := alert.New(alert.Options{Window: time.Hour, Lateness: 5 * time.Minute, Ordered: true, RaiseAhead: true, Sinks: []alert.Sink{r}})
	if err != nil {
		t.Fatal(err)
	}
	var burst []event.Finding
	for i := range 48 { // three bursts two hours apart: three windows
		burst = append(burst, imm(f("a", "canary", time.Duration(i/16)*2*time.Hour+time.Duration(i%16)*time.Minute, 100)))
	}
	s.Process(burst)
	if n := s.Previews(); n != 1 {
		t.Errorf("%d previews for one call, want 1", n)
	}
	heard := map[event.FindingID]bool{}
	for _, a := range r.last {
		for _, h := range a.Findings {
			heard[h.ID()] = true
		}
	}
	for _, x := range burst {
		if !heard[x.ID()] {
			t.Fatalf("the alert of the finding at %s was not shown (alerts shown: %q)", x.Time.Sub(t0), r.changes)
		}
	}
	if len(r.last) != 3 {
		t.Errorf("%d alerts shown, want 3 (one per window): %q", len(r.last), r.changes)
	}
}

// Every finding of an ordered stage that raises alerts ahead reaches the
// finding sinks once (as often as the stream has it), with its alert's id — the immediate finding that
// opened an alert raised ahead included (it returned before telling them,
// so the risk index and the stored findings missed it).
func TestRaisedAheadFindingReachesSinks(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		fs := immediateStream(rng, 20*time.Minute)
		heard := map[event.FindingID]int{}
		alertOf := map[event.FindingID]string{}
		s, err := alert.New(alert.Options{Window: time.Hour, Lateness: 30 * time.Minute, Ordered: true, RaiseAhead: true,
			FindingSinks: []alert.FindingSink{alert.FindingSinkFunc(func(x alert.Scored) {
				heard[x.Finding.ID()]++
				alertOf[x.Finding.ID()] = x.Alert
			})}})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(fs); i += 7 {
			s.Process(slices.Clone(fs[i:min(i+7, len(fs))]))
		}
		s.Advance(t0.Add(48 * time.Hour))
		withdrawn := map[event.FindingID]bool{}
		times := map[event.FindingID]int{} // the stream may repeat a finding
		for _, x := range fs {
			if x.Withdraws != 0 {
				withdrawn[x.Withdraws] = true
			} else {
				times[x.ID()]++
			}
		}
		for _, x := range fs {
			if x.Withdraws != 0 || withdrawn[x.ID()] {
				continue
			}
			if n := heard[x.ID()]; n != times[x.ID()] {
				t.Fatalf("seed %d: finding %s/%s at %s heard %d times, want %d", seed, x.Entity.ID, x.Detector, x.Time, n, times[x.ID()])
			}
			if x.Immediate && alertOf[x.ID()] == "" {
				t.Fatalf("seed %d: immediate finding %s at %s heard without its alert", seed, x.Entity.ID, x.Time)
			}
		}
	}
}

// When an alert sink hears an alert raised, the finding sinks have heard
// the finding that raised it (a drill's verdict keeps the run's findings
// as it answers the alert; they were heard after, and the run could be
// kept without them).
func TestFindingHeardBeforeItsAlert(t *testing.T) {
	heard := map[string]int{} // alert id → findings heard with it
	var missing []string
	s, err := alert.New(alert.Options{Window: time.Hour,
		FindingSinks: []alert.FindingSink{alert.FindingSinkFunc(func(x alert.Scored) {
			if x.Alert != "" {
				heard[x.Alert]++
			}
		})},
		Sinks: []alert.Sink{alert.SinkFunc(func(c alert.Change, a event.Alert) {
			if c == alert.Raised && heard[a.ID] == 0 {
				missing = append(missing, a.ID)
			}
		})}})
	if err != nil {
		t.Fatal(err)
	}
	x := f("a", "canary", 0, 90)
	x.Immediate = true
	y := f("b", "d1", time.Minute, 95)
	s.Process([]event.Finding{x, y})
	if len(heard) == 0 || len(missing) > 0 {
		t.Fatalf("alerts raised before their finding was heard: %v (heard %v)", missing, heard)
	}
}
