package alert_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
)

var t0 = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

type rec struct {
	changes []string
	last    map[string]event.Alert
}

func (r *rec) Alert(c alert.Change, a event.Alert) {
	if r.last == nil {
		r.last = map[string]event.Alert{}
	}
	r.changes = append(r.changes, fmt.Sprintf("%s %s/%s n=%d", c, a.Entity.ID, a.Detector, a.FindingCount))
	r.last[a.ID] = a
}

func f(entity, det string, at time.Duration, score float64) event.Finding {
	return event.Finding{Detector: det, Kind: "k", Title: "t " + det, Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: entity},
		Time: t0.Add(at), Score: score, Severity: event.SeverityForScore(score), Explanation: fmt.Sprintf("score %v", score), Evidence: []string{"ev"}}
}

func newStage(t *testing.T, r *rec, maxFindings int) *alert.Stage {
	t.Helper()
	s, err := alert.New(alert.Options{Window: time.Hour, Lateness: 5 * time.Minute, MaxFindings: maxFindings, Sinks: []alert.Sink{r}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGroupingPerEntityAndWindow(t *testing.T) {
	r := &rec{}
	s := newStage(t, r, 0)
	s.Process([]event.Finding{
		f("a", "d1", 0, 90),
		f("a", "d1", 10*time.Minute, 95), // same alert, raises score and severity
		f("a", "d2", 10*time.Minute, 40), // other detector, same entity: same alert
		f("b", "d1", 20*time.Minute, 90), // other entity: own alert
	})
	s.Process([]event.Finding{f("a", "d1", 59*time.Minute, 10)}) // extends a's alert to 1h59m
	s.Process([]event.Finding{f("a", "d1", 61*time.Minute, 10)}) // still open: joins
	s.Process([]event.Finding{f("b", "d1", 81*time.Minute, 95)}) // b's ended at 1h20m: a new alert
	s.Flush()
	want := []string{
		"raised a/d1 n=1", "raised b/d1 n=1", "updated a/d1 n=3",
		"updated a/d1 n=4",
		"updated a/d1 n=5",
		"closed b/d1 n=1", "raised b/d1 n=1",
		"closed a/d1 n=5", "closed b/d1 n=1",
	}
	if got := strings.Join(r.changes, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("changes:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	first := r.last[alert.ID(event.EntityKey{Kind: event.EntityPrincipal, ID: "a"}, "d1", t0)]
	if first.Score != 95 || first.Severity != event.SeverityCritical || first.FindingCount != 5 || len(first.Findings) != 5 {
		t.Errorf("merged alert: score %v severity %v count %d findings %d", first.Score, first.Severity, first.FindingCount, len(first.Findings))
	}
	if !first.Time.Equal(t0) || !first.WindowEnd.Equal(t0.Add(2*time.Hour+time.Minute)) || !first.LastTime.Equal(t0.Add(61*time.Minute)) {
		t.Errorf("times: %v %v %v", first.Time, first.WindowEnd, first.LastTime)
	}
	if !strings.HasPrefix(first.Explanation, "score 90") || !strings.Contains(first.Explanation, "5 findings") {
		t.Errorf("explanation %q", first.Explanation)
	}
	// Findings are listed by the risk they added: d1's first (90), d2's
	// (40), d1's second (+5 up to its new cap of 95), then repeats (0).
	var got []string
	for _, x := range first.Findings {
		got = append(got, fmt.Sprintf("%s:%v:+%v", x.Detector, x.Score, x.Contribution))
	}
	if w := "d1:90:+90 d2:40:+40 d1:95:+5.4 d1:10:+0 d1:10:+0"; strings.Join(got, " ") != w {
		t.Errorf("findings by contribution: %s, want %s", strings.Join(got, " "), w)
	}
}

func TestSessionWindowStopsAtMaxSpan(t *testing.T) {
	r := &rec{}
	s, _ := alert.New(alert.Options{Window: time.Hour, MaxSpan: 3 * time.Hour, Sinks: []alert.Sink{r}})
	var fs []event.Finding
	for m := 0; m <= 5*60; m += 30 { // a finding every 30 minutes for five hours
		fs = append(fs, f("a", "d", time.Duration(m)*time.Minute, 95))
	}
	s.Process(fs)
	s.Flush()
	if s.Raised() != 2 {
		t.Fatalf("raised %d alerts over five hours with a 3h max span, want 2: %v", s.Raised(), r.changes)
	}
}

func TestAdvanceClosesAfterWindowAndLateness(t *testing.T) {
	r := &rec{}
	s := newStage(t, r, 0)
	s.Process([]event.Finding{f("a", "d", 0, 95)})
	s.Advance(t0.Add(time.Hour + 5*time.Minute)) // end + lateness: still open
	if s.Open() != 1 {
		t.Fatalf("closed too early")
	}
	s.Process([]event.Finding{f("a", "d", 30*time.Minute, 95)}) // a late finding still joins, extending the end to 1h30m
	s.Advance(t0.Add(time.Hour + 35*time.Minute))
	if s.Open() != 1 {
		t.Fatal("closed before the extended end + lateness")
	}
	s.Advance(t0.Add(time.Hour + 35*time.Minute + time.Second))
	if s.Open() != 0 {
		t.Fatalf("not closed after window end + lateness")
	}
	s.Advance(t0) // backwards: no-op
	if got := r.changes[len(r.changes)-1]; got != "closed a/d n=2" {
		t.Errorf("last change %q", got)
	}
	if s.Raised() != 1 || s.Findings() != 2 {
		t.Errorf("raised %d findings %d", s.Raised(), s.Findings())
	}
}

func TestFindingCap(t *testing.T) {
	r := &rec{}
	s := newStage(t, r, 3)
	var fs []event.Finding
	for i := 0; i < 10; i++ {
		fs = append(fs, f("a", "d", time.Duration(10-i)*time.Second, 95))
	}
	s.Process(fs)
	s.Flush()
	for _, a := range r.last {
		if a.FindingCount != 10 || len(a.Findings) != 3 {
			t.Fatalf("count %d kept %d, want 10 and 3", a.FindingCount, len(a.Findings))
		}
		// The one that added risk first, then the repeats in time order.
		for i := 2; i < len(a.Findings); i++ {
			if a.Findings[i].Time.Before(a.Findings[i-1].Time) {
				t.Fatalf("repeats not in time order")
			}
		}
	}
}

func TestSinkCopiesAreIndependent(t *testing.T) {
	var raised event.Alert
	s, _ := alert.New(alert.Options{Sinks: []alert.Sink{alert.SinkFunc(func(c alert.Change, a event.Alert) {
		if c == alert.Raised {
			raised = a
		}
	})}})
	s.Process([]event.Finding{f("a", "d", 0, 95)})
	s.Process([]event.Finding{f("a", "d", time.Second, 99)})
	if len(raised.Findings) != 1 || raised.Score != 95 {
		t.Fatalf("the raised copy changed after the fact: %+v", raised)
	}
}

func TestIDIsDeterministic(t *testing.T) {
	k := event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"}
	a, b := alert.ID(k, "d", t0), alert.ID(k, "d", t0)
	if a != b || a == alert.ID(k, "d", t0.Add(time.Nanosecond)) || a == alert.ID(k, "x", t0) {
		t.Fatal("alert ids are not a function of entity, detector and start")
	}
	if !strings.HasPrefix(a, "al-") || len(a) != 23 {
		t.Fatalf("id %q", a)
	}
}

func TestNewRejectsNegative(t *testing.T) {
	if _, err := alert.New(alert.Options{Window: -1}); err == nil {
		t.Fatal("negative window accepted")
	}
}

func TestLateFindingReopensClosedAlert(t *testing.T) {
	r := &rec{}
	s := newStage(t, r, 0)
	s.Process([]event.Finding{f("a", "d", 0, 95)})
	s.Advance(t0.Add(24 * time.Hour)) // a live watermark far ahead: closes it
	if s.Open() != 0 {
		t.Fatal("not closed")
	}
	s.Process([]event.Finding{f("a", "d", 10*time.Minute, 95)}) // backfilled finding of the same window
	s.Advance(t0.Add(25 * time.Hour))
	s.Process([]event.Finding{f("a", "d", 2*time.Hour, 95)}) // another window: a new alert
	s.Flush()
	want := []string{"raised a/d n=1", "closed a/d n=1", "updated a/d n=2", "closed a/d n=2", "raised a/d n=1", "closed a/d n=1"}
	if got := strings.Join(r.changes, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("changes:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if s.Raised() != 2 {
		t.Fatalf("raised %d alerts, want 2", s.Raised())
	}
	a := r.last[alert.ID(event.EntityKey{Kind: event.EntityPrincipal, ID: "a"}, "d", t0)]
	if strings.Count(a.Explanation, "findings in this alert") != 1 {
		t.Fatalf("explanation %q", a.Explanation)
	}
}

// Risk adds up across detectors, decays, is capped per detector and is
// spent by the alert it raises.
func TestRisk(t *testing.T) {
	day := 24 * time.Hour
	imm := f("a", "canary", 0, 30)
	imm.Immediate = true
	tests := []struct {
		name     string
		findings []event.Finding
		want     string // changes
	}{
		{"a repeating signal never stacks", []event.Finding{
			f("a", "off", 0, 45), f("a", "off", time.Hour, 45), f("a", "off", 2*time.Hour, 45), f("a", "off", day, 45), f("a", "off", 2*day, 45),
		}, ""},
		{"one detector's kinds do not corroborate each other", []event.Finding{
			f("a", "volume", 0, 75), {Detector: "volume", Kind: "enum", Entity: f("a", "", 0, 0).Entity, Time: t0.Add(time.Minute), Score: 80},
		}, ""},
		{"two independent detectors add up", []event.Finding{
			f("a", "off", 0, 45), f("a", "route", 10*time.Minute, 50),
		}, "raised a/route n=2\nclosed a/route n=2"},
		{"risk decays", []event.Finding{
			f("a", "off", 0, 45), f("a", "route", 3*day, 50),
		}, ""},
		{"immediate alerts at once", []event.Finding{imm}, "raised a/canary n=1\nclosed a/canary n=1"},
		{"an alert spends the risk", []event.Finding{
			f("a", "off", 0, 45), f("a", "route", time.Minute, 50), f("a", "geo", 3*time.Hour, 40),
		}, "raised a/route n=2\nclosed a/route n=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &rec{}
			s, err := alert.New(alert.Options{Window: time.Hour, Sinks: []alert.Sink{r}})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range tc.findings {
				s.Process([]event.Finding{x})
				s.Advance(x.Time.Add(-10 * time.Minute))
			}
			s.Flush()
			if got := strings.Join(r.changes, "\n"); got != tc.want {
				t.Fatalf("changes:\n%s\nwant:\n%s", got, tc.want)
			}
			if s.Findings() != len(tc.findings) {
				t.Fatalf("findings %d", s.Findings())
			}
		})
	}
}

func TestRiskAlertExplainsContributions(t *testing.T) {
	r := &rec{}
	s, _ := alert.New(alert.Options{Sinks: []alert.Sink{r}})
	off := f("e:1", "off_hours", 0, 45)
	off.Title = "Access at unusual hours"
	route := f("e:1", "peer_route", 5*time.Minute, 50)
	route.Title = "Route its peers do not use"
	s.Process([]event.Finding{off, route})
	s.Flush()
	a := r.last[alert.ID(off.Entity, "peer_route", route.Time)]
	if a.Risk != 94.9 || a.Detector != "peer_route" || a.Severity != event.SeverityHigh || len(a.Findings) != 2 {
		t.Fatalf("alert %+v", a)
	}
	if a.Findings[0].Detector != "peer_route" || a.Findings[0].Contribution != 50 || a.Findings[1].Contribution != 45 {
		t.Errorf("findings not by contribution: %+v", a.Findings)
	}
	if want := "score 50 Risk 95 (alert at 90) from: Access at unusual hours (+45)."; !strings.HasPrefix(a.Explanation, want) {
		t.Errorf("explanation %q, want prefix %q", a.Explanation, want)
	}
}

type suppressDetector string

func (d suppressDetector) SuppressFinding(f *event.Finding) (string, bool) {
	return "sp-1", f.Detector == string(d)
}

func TestSuppressedFindingsAddNoRisk(t *testing.T) {
	r := &rec{}
	s, _ := alert.New(alert.Options{Suppressor: suppressDetector("off"), Sinks: []alert.Sink{r}})
	s.Process([]event.Finding{f("a", "off", 0, 45), f("a", "route", time.Minute, 50)})
	s.Flush()
	if len(r.changes) != 0 {
		t.Fatalf("a suppressed finding still added risk: %v", r.changes)
	}
	s.Process([]event.Finding{f("b", "route", 0, 95), f("b", "off", time.Minute, 45)})
	s.Flush()
	a := r.last[alert.ID(event.EntityKey{Kind: event.EntityPrincipal, ID: "b"}, "route", t0)]
	if len(a.Findings) != 2 || a.Findings[1].Contribution != 0 || !strings.Contains(a.Findings[1].Explanation, "Suppressed by sp-1") {
		t.Fatalf("suppressed finding in an open alert: %+v", a.Findings)
	}
}

// A stage restored from a snapshot goes on exactly as the one it was taken
// from: same changes, same alerts.
func TestSnapshotRestore(t *testing.T) {
	first := []event.Finding{
		f("a", "off", 0, 45), f("b", "route", time.Minute, 50), f("c", "d", 2*time.Minute, 95),
		f("c", "d", 3*time.Minute, 10),
	}
	second := []event.Finding{
		f("a", "route", 20*time.Minute, 50), // completes a's risk: an alert
		f("c", "e", 30*time.Minute, 40),     // joins c's open alert
		f("b", "off", 5*time.Hour, 45),      // b's route has decayed a little: still 93
	}
	run := func(cut bool) []string {
		r := &rec{}
		s := newStage(t, r, 0)
		s.Process(first)
		s.Advance(t0.Add(10 * time.Minute))
		if cut {
			b, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			s = newStage(t, r, 0)
			if err := s.Restore(b); err != nil {
				t.Fatal(err)
			}
		}
		for _, x := range second {
			s.Process([]event.Finding{x})
			s.Advance(x.Time.Add(-time.Minute))
		}
		s.Flush()
		out := append([]string{}, r.changes...)
		for id, a := range r.last {
			out = append(out, fmt.Sprintf("%s %v %v %d", id, a.Risk, a.Severity, len(a.Findings)))
		}
		slices.Sort(out[len(r.changes):])
		return out
	}
	want, got := run(false), run(true)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after a restore:\n%s\nuninterrupted:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	s := newStage(t, &rec{}, 0)
	for _, bad := range []string{"", "{", `{"v":2}`, `{"v":1,"open":[{"alert":{}}]}`} {
		if err := s.Restore([]byte(bad)); err == nil {
			t.Errorf("Restore(%q) accepted", bad)
		}
	}
}

func FuzzRestore(fz *testing.F) {
	s, _ := alert.New(alert.Options{})
	s.Process([]event.Finding{f("a", "off", 0, 45), f("c", "d", 0, 95)})
	b, _ := s.Snapshot()
	fz.Add(b)
	fz.Fuzz(func(t *testing.T, b []byte) {
		s, _ := alert.New(alert.Options{})
		if s.Restore(b) != nil {
			return
		}
		s.Process([]event.Finding{f("a", "route", time.Hour, 50)})
		s.Advance(t0.Add(48 * time.Hour))
		s.Flush()
	})
}
