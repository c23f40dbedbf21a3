package sim

import (
	"bytes"
	"context"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

func run(t testing.TB, o Options) ([]byte, *truth.Truth) {
	t.Helper()
	var buf bytes.Buffer
	tr, err := Generate(context.Background(), o, &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), tr
}

func TestDeterministic(t *testing.T) {
	o := Options{Seed: 7, Days: 2, Customers: 5000}
	a, ta := run(t, o)
	b, tb := run(t, o)
	if !bytes.Equal(a, b) {
		t.Fatal("same options, different output")
	}
	if !reflect.DeepEqual(ta, tb) {
		t.Fatal("same options, different truth")
	}
	c, _ := run(t, Options{Seed: 8, Days: 2, Customers: 5000})
	if bytes.Equal(a, c) {
		t.Fatal("different seeds, same output")
	}
}

func TestStreamAndTruth(t *testing.T) {
	o := Options{Seed: 1, Days: 2, Customers: 10_000}
	out, tr := run(t, o)
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	r := decode.NewReader(bytes.NewReader(out), 0, 0)
	held := map[string]bool{}
	for _, b := range tr.HardBenign {
		if b.Name == "auth-log-shipper-stall" {
			for _, id := range b.EventIDs {
				held[id] = true
			}
		}
	}
	ids := map[string]int64{}
	var last time.Time
	var ev event.Event
	n := 0
	datasets := map[string]int{}
	for {
		err := r.Next(&ev)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("line %d: %v", r.Line(), err)
		}
		n++
		if ev.Time.Before(last) {
			// Only mints a stalled auth shipper held back come late.
			if ev.Dataset != event.DatasetToken || !held[ev.ID] {
				t.Fatalf("line %d: time %v before %v", r.Line(), ev.Time, last)
			}
		} else {
			last = ev.Time
		}
		if ev.ID == "" {
			t.Fatalf("line %d: no event.id", r.Line())
		}
		if _, dup := ids[ev.ID]; dup {
			t.Fatalf("line %d: duplicate id %s", r.Line(), ev.ID)
		}
		ids[ev.ID] = int64(r.Line())
		datasets[ev.Dataset]++
		if ev.Source.IP.IsValid() && !ev.Source.IP.IsPrivate() && (ev.Source.Country == "" || ev.Source.ASN == 0 || ev.Source.ASOrg == "") {
			t.Fatalf("line %d: public address without enrichment", r.Line())
		}
		if ev.Dataset == event.DatasetGateway && ev.Token.ID == "" {
			t.Fatalf("line %d: gateway event without token", r.Line())
		}
	}
	t.Logf("%d events, %v", n, datasets)
	// 10k customers × 2 days: ~1.7k sessions/day plus staff, services, partners, scenarios.
	if n < 15_000 || n > 150_000 {
		t.Errorf("%d events for 2 days of 10k customers: implausible", n)
	}
	for _, ds := range []string{event.DatasetGateway, event.DatasetToken, event.DatasetLogin, event.DatasetRoster, event.DatasetKeys} {
		if datasets[ds] == 0 {
			t.Errorf("no %s events", ds)
		}
	}
	got := map[string]bool{}
	for _, s := range tr.Scenarios {
		got[s.Name] = true
		if len(s.MaliciousEventIDs) == 0 || len(s.AttackerEntities) == 0 || s.RecordsTouched == 0 {
			t.Errorf("%s: %d events, %d entities, %d records", s.Name, len(s.MaliciousEventIDs), len(s.AttackerEntities), s.RecordsTouched)
		}
		for _, id := range s.MaliciousEventIDs {
			if _, ok := ids[id]; !ok {
				t.Fatalf("%s: malicious event %s not in output", s.Name, id)
			}
		}
		if s.FirstMalicious.After(s.LastMalicious) || s.FirstMalicious.IsZero() {
			t.Errorf("%s: first %v last %v", s.Name, s.FirstMalicious, s.LastMalicious)
		}
		t.Logf("%s: %d events, %d entities, %d records, %v – %v", s.Name, len(s.MaliciousEventIDs), len(s.AttackerEntities), s.RecordsTouched, s.FirstMalicious, s.LastMalicious)
	}
	for _, name := range ScenarioNames() {
		if !got[name] {
			t.Errorf("scenario %s missing from truth", name)
		}
	}
	for _, b := range tr.HardBenign {
		for _, id := range b.EventIDs {
			if _, ok := ids[id]; !ok {
				t.Fatalf("%s: benign event %s not in output", b.Name, id)
			}
		}
		t.Logf("benign %s: %d events, %d entities", b.Name, len(b.EventIDs), len(b.Entities))
	}
	if len(tr.HardBenign) < 4 {
		t.Errorf("only %d hard-benign sets", len(tr.HardBenign))
	}
}

func TestOneDayAllScenarios(t *testing.T) {
	_, tr := run(t, Options{Seed: 3, Days: 1, Customers: 2000})
	if len(tr.Scenarios) != len(ScenarioNames()) {
		t.Fatalf("%d scenarios in a 1-day run", len(tr.Scenarios))
	}
}

func TestNoScenarios(t *testing.T) {
	_, tr := run(t, Options{Seed: 1, Days: 1, Customers: 2000, Scenarios: []string{}})
	if len(tr.Scenarios) != 0 {
		t.Fatalf("scenarios=none gave %d scenarios", len(tr.Scenarios))
	}
	_, tr = run(t, Options{Seed: 1, Days: 1, Customers: 2000, Scenarios: []string{"ghost-key"}})
	if len(tr.Scenarios) != 1 || tr.Scenarios[0].Name != "ghost-key" {
		t.Fatalf("got %+v", tr.Scenarios)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Days: -1}, "Days"},
		{Options{Customers: -1}, "Customers"},
		{Options{Customers: MaxCustomers + 1}, "Customers"},
		{Options{Scenarios: []string{"nope"}}, "Scenarios"},
	} {
		err := c.o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", c.o, err, c.want)
		}
		if _, gerr := Generate(context.Background(), c.o, io.Discard, nil); gerr == nil {
			t.Errorf("Generate accepted %+v", c.o)
		}
	}
	if err := (Options{}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Generate(ctx, Options{Days: 1, Customers: 1000}, io.Discard, nil); err == nil {
		t.Fatal("no error after cancel")
	}
}

func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	peak := func(days int) uint64 {
		var m runtime.MemStats
		var max uint64
		_, err := Generate(context.Background(), Options{Seed: 2, Days: days, Customers: 3000, Scenarios: []string{}}, io.Discard,
			func(int64, time.Time) {
				runtime.ReadMemStats(&m)
				if m.HeapInuse > max {
					max = m.HeapInuse
				}
			})
		if err != nil {
			t.Fatal(err)
		}
		return max
	}
	a, b := peak(2), peak(6)
	if b > 3*a+(8<<20) {
		t.Errorf("heap in use grows with days: %d → %d", a, b)
	}
}

// TestPeriodBounded: whatever the hour the period starts at, no event lies
// at or beyond Start+Days (a shift or a scrape begun near the end would
// otherwise run on past it — and a demo ending "now" would post events
// dated in the future).
func TestPeriodBounded(t *testing.T) {
	for _, h := range []int{0, 5, 13, 23} {
		start := time.Date(2026, 3, 1, h, 0, 0, 0, time.UTC)
		o := Options{Seed: 3, Days: 1, Customers: 2000, Start: start}
		out, tr := run(t, o)
		end := start.Add(24 * time.Hour)
		r := decode.NewReader(bytes.NewReader(out), 0, 0)
		var ev event.Event
		var last time.Time
		for {
			err := r.Next(&ev)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("start %v: line %d: %v", start, r.Line(), err)
			}
			last = ev.Time
		}
		if !last.Before(end) {
			t.Errorf("start %v: last event at %v, not before the end %v", start, last, end)
		}
		for _, s := range tr.Scenarios {
			if !s.LastMalicious.Before(end) {
				t.Errorf("start %v: scenario %s labelled at %v, past the end", start, s.Name, s.LastMalicious)
			}
		}
	}
}
