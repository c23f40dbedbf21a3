package eval

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestParseSeeds(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []uint64
		err  bool
	}{
		{"1-5", []uint64{1, 2, 3, 4, 5}, false},
		{"1,3,7", []uint64{1, 3, 7}, false},
		{"3-4, 10, 3", []uint64{3, 4, 10}, false},
		{"7", []uint64{7}, false},
		{"5-1", nil, true},
		{"a", nil, true},
		{"", nil, true},
		{"1-5000", nil, true},
	} {
		got, err := ParseSeeds(c.in)
		if (err != nil) != c.err || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseSeeds(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

func f(v float64) *float64 { return &v }

func TestAggregateSeeds(t *testing.T) {
	card := func(det bool, ttd *float64, exposed, ordinary, hb int) Scorecard {
		return Scorecard{
			Scenarios: []ScenarioScore{
				{Name: "a", Detected: det, TimeToDetectSeconds: ttd, RecordsExposedBeforeContainment: exposed, RecordsTouched: 100},
				{Name: "b", Detected: true, TimeToDetectSeconds: f(1), RecordsTouched: 1},
			},
			FalsePositives: FalsePositives{Ordinary: ordinary, PerTenKIdentitiesPerDay: float64(ordinary),
				ByDetector: map[string]int{"geo": ordinary}, HardBenign: HardBenignFP{Alerts: hb, ByName: map[string]int{"twin": hb}}},
		}
	}
	runs := []SeedRun{
		{Seed: 1, Scorecard: card(true, f(30), 5, 1, 0), Variants: map[string]string{"a": "network=hosting-abroad"}},
		{Seed: 2, Scorecard: card(false, nil, 100, 0, 1)},
		{Seed: 3, Scorecard: card(true, f(10), 2, 2, 0)},
		{Seed: 4, Scorecard: card(true, f(90), 7, 0, 0)},
	}
	s := AggregateSeeds(runs)
	a := s.Scenarios[0]
	if a.Name != "a" || a.Runs != 4 || a.Detected != 3 || !reflect.DeepEqual(a.Missed, []uint64{2}) {
		t.Fatalf("a = %+v", a)
	}
	if *a.TimeToDetectMin != 10 || *a.TimeToDetectMedian != 30 || *a.TimeToDetectMax != 90 {
		t.Errorf("ttd = %v/%v/%v, want 10/30/90", *a.TimeToDetectMin, *a.TimeToDetectMedian, *a.TimeToDetectMax)
	}
	if a.RecordsExposed != 114 || a.RecordsTouched != 400 {
		t.Errorf("records %d/%d", a.RecordsExposed, a.RecordsTouched)
	}
	if b := s.Scenarios[1]; b.Detected != 4 || *b.TimeToDetectMedian != 1 {
		t.Errorf("b = %+v", b)
	}
	fp := s.FalsePositives
	if fp.Ordinary != 3 || fp.HardBenign != 1 || fp.MeanPerTenKIdentitiesPerDay != 0.75 || fp.ByDetector["geo"] != 3 || fp.HardBenignByName["twin"] != 1 {
		t.Errorf("fp = %+v", fp)
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"Seeds: 1, 2, 3, 4", "network=hosting-abroad", "canonical", "3/4", "10s / 30s / 1m30s", "114/400", "ordinary 3 alerts", "hard-benign 1 alert"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}

func TestAggregateSeedsIncidents(t *testing.T) {
	card := func(n int, mixed int) Scorecard {
		return Scorecard{
			Scenarios: []ScenarioScore{{Name: "a", Detected: true, Incidents: n}},
			Incidents: &IncidentsScore{Incidents: n + 1, MixedScenarios: mixed, Precursors: 1},
		}
	}
	s := AggregateSeeds([]SeedRun{{Seed: 1, Scorecard: card(1, 0)}, {Seed: 2, Scorecard: card(3, 1)},
		{Seed: 3, Scorecard: card(1, 0)}, {Seed: 4, Scorecard: card(2, 0)}})
	a := s.Scenarios[0]
	if !reflect.DeepEqual(a.Incidents, []int{1, 3, 1, 2}) || *a.IncidentsMedian != 1.5 || *a.IncidentsMax != 3 {
		t.Fatalf("incidents %v median %v max %v, want [1 3 1 2] 1.5 3", a.Incidents, *a.IncidentsMedian, *a.IncidentsMax)
	}
	if want := (SeedsIncidents{Incidents: 11, MixedScenarios: 1, Precursors: 4}); s.Incidents != want {
		t.Errorf("incidents over seeds %+v, want %+v", s.Incidents, want)
	}
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "1.5 / 3") || !strings.Contains(b.String(), "Incidents over all seeds: 11; mixing two scenarios 1") {
		t.Errorf("text:\n%s", b.String())
	}
}
