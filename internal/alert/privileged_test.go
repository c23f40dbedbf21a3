package alert_test

import (
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
)

// lined is a finding of detector det counted in line of evidence line.
func lined(entity, det, line string, at time.Duration, score float64, privileged bool) event.Finding {
	x := f(entity, det, at, score)
	x.Kind, x.Line, x.Privileged = det+"_"+line, line, privileged
	return x
}

// Lines of evidence (Finding.Line) within one detector count separately;
// findings without one count once per detector, as before; a finding
// naming another detector as its line shares that detector's line. The privileged
// multiplier weighs an entity's whole risk — the findings before the
// privileged one included, whatever their order — and nothing else.
func TestLinesAndPrivilegedMultiplier(t *testing.T) {
	tests := []struct {
		name     string
		mult     float64
		findings []event.Finding
		want     string // changes
		risk     float64
	}{
		{"two lines of one detector add up", 1, []event.Finding{
			lined("a", "priv", "hours", 0, 45, false), lined("a", "priv", "export", time.Minute, 50, false),
		}, "raised a/priv n=2\nclosed a/priv n=2", 95},
		{"one line repeating does not stack", 1, []event.Finding{
			lined("a", "priv", "hours", 0, 45, false), lined("a", "priv", "hours", time.Minute, 50, false),
		}, "", 0},
		{"a finding in another detector's line does not corroborate it", 1, []event.Finding{
			f("a", "off_hours", 0, 45), lined("a", "priv", "off_hours", time.Minute, 50, false),
		}, "", 0},
		{"kinds without a line stay one line", 1, []event.Finding{
			{Detector: "priv", Kind: "x", Entity: f("a", "", 0, 0).Entity, Time: t0, Score: 45},
			{Detector: "priv", Kind: "y", Entity: f("a", "", 0, 0).Entity, Time: t0.Add(time.Minute), Score: 50},
		}, "", 0},
		{"the multiplier weighs a privileged entity", 1.5, []event.Finding{
			f("a", "geo", 0, 25), lined("a", "priv", "export", time.Minute, 50, true),
		}, "raised a/priv n=2\nclosed a/priv n=2", 112.5},
		{"the earlier findings are weighed too, in either order", 1.5, []event.Finding{
			lined("a", "priv", "export", 0, 50, true), f("a", "geo", time.Minute, 25),
		}, "raised a/priv n=2\nclosed a/priv n=2", 112.5},
		{"an entity without a privileged finding is not weighed", 1.5, []event.Finding{
			f("a", "geo", 0, 25), f("a", "route", time.Minute, 50),
		}, "", 0},
		{"multiplier 1 is none", 1, []event.Finding{
			f("a", "geo", 0, 25), lined("a", "priv", "export", time.Minute, 50, true),
		}, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &rec{}
			s, err := alert.New(alert.Options{Window: time.Hour, PrivilegedMultiplier: tc.mult, Sinks: []alert.Sink{r}})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range tc.findings {
				s.Process([]event.Finding{x})
			}
			s.Flush()
			if got := strings.Join(r.changes, "\n"); got != tc.want {
				t.Fatalf("changes:\n%s\nwant:\n%s", got, tc.want)
			}
			for _, a := range r.last {
				if a.Risk != tc.risk {
					t.Errorf("risk %v, want %v", a.Risk, tc.risk)
				}
				// The contributions add up to the risk.
				var sum float64
				for _, x := range a.Findings {
					sum += x.Contribution
				}
				if sum != tc.risk {
					t.Errorf("contributions add up to %v, risk %v", sum, tc.risk)
				}
				if tc.mult != 1 && !strings.Contains(a.Explanation, "weighed ×1.5") {
					t.Errorf("explanation does not say the risk was weighed: %s", a.Explanation)
				}
			}
			// Explain scores the same findings the same way.
			b, err := alert.Explain(alert.Options{PrivilegedMultiplier: tc.mult}, tc.findings, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.risk != 0 && b.Risk != tc.risk {
				t.Errorf("Explain: risk %v, want %v", b.Risk, tc.risk)
			}
		})
	}
}

// A checkpoint keeps whether an entity's risk is weighed.
func TestSnapshotKeepsPrivileged(t *testing.T) {
	run := func(cut bool) string {
		r := &rec{}
		s, _ := alert.New(alert.Options{PrivilegedMultiplier: 1.5, Sinks: []alert.Sink{r}})
		s.Process([]event.Finding{lined("a", "priv", "hours", 0, 30, true)})
		if cut {
			b, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			s, _ = alert.New(alert.Options{PrivilegedMultiplier: 1.5, Sinks: []alert.Sink{r}})
			if err := s.Restore(b); err != nil {
				t.Fatal(err)
			}
		}
		s.Process([]event.Finding{f("a", "geo", time.Minute, 35)}) // (30 + 35) × 1.5 = 97.5
		s.Flush()
		return strings.Join(r.changes, "\n")
	}
	want := "raised a/geo n=2\nclosed a/geo n=2"
	if got := run(false); got != want {
		t.Fatalf("uninterrupted: %q, want %q", got, want)
	}
	if got := run(true); got != want {
		t.Fatalf("after a restore: %q, want %q", got, want)
	}
}

// The multiplier weighs the evidence that comes with privileged evidence:
// within one risk half-life of the latest privileged finding. An admin's
// judged and unalarming export does not make an ordinary bulk read four
// days later alert (the simulator's admin-weekend-maintenance twin:
// privileged_bulk_export 50 on Tuesday, record_volume 75 on Saturday).
func TestPrivilegedWeightLastsOneHalfLife(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name     string
		findings []event.Finding
		want     string
		risk     float64 // the last finding's risk, alert or not
	}{
		{"four days later: not weighed", []event.Finding{
			lined("a", "priv", "export", 0, 50, true), f("a", "volume", 4*day, 75),
		}, "", 78.1},
		{"half a day later: weighed", []event.Finding{
			lined("a", "priv", "hours", 0, 30, true), f("a", "geo", 12*time.Hour, 45),
		}, "raised a/geo n=2\nclosed a/geo n=2", 99.3},
		{"a new privileged finding weighs again", []event.Finding{
			lined("a", "priv", "export", 0, 50, true), lined("a", "priv", "hours", 4*day, 30, true), f("a", "volume", 4*day+time.Minute, 45),
		}, "raised a/volume n=2\nclosed a/volume n=2", 117.2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &rec{}
			s, err := alert.New(alert.Options{Window: time.Hour, PrivilegedMultiplier: 1.5, Sinks: []alert.Sink{r}})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range tc.findings {
				s.Process([]event.Finding{x})
			}
			s.Flush()
			if got := strings.Join(r.changes, "\n"); got != tc.want {
				t.Fatalf("changes:\n%s\nwant:\n%s", got, tc.want)
			}
			b, err := alert.Explain(alert.Options{PrivilegedMultiplier: 1.5}, tc.findings, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if b.Risk != tc.risk {
				t.Errorf("Explain: risk %v, want %v (privileged %v)", b.Risk, tc.risk, b.Privileged)
			}
		})
	}
}
