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
