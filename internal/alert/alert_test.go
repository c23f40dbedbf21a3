package alert_test

import (
	"fmt"
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

func TestGroupingPerEntityDetectorAndWindow(t *testing.T) {
	r := &rec{}
	s := newStage(t, r, 0)
	s.Process([]event.Finding{
		f("a", "d1", 0, 50),
		f("a", "d1", 10*time.Minute, 95), // same alert, raises score and severity
		f("a", "d2", 10*time.Minute, 40), // other detector: own alert
		f("b", "d1", 20*time.Minute, 40), // other entity: own alert
	})
	s.Process([]event.Finding{f("a", "d1", 59*time.Minute, 10)}) // extends a/d1 to 1h59m
	s.Process([]event.Finding{f("a", "d1", 61*time.Minute, 10)}) // still open: joins
	s.Process([]event.Finding{f("b", "d1", 81*time.Minute, 10)}) // b/d1 ended at 1h20m: a new alert
	s.Flush()
	want := []string{
		"raised a/d1 n=1", "raised a/d2 n=1", "raised b/d1 n=1", "updated a/d1 n=2",
		"updated a/d1 n=3",
		"updated a/d1 n=4",
		"closed b/d1 n=1", "raised b/d1 n=1",
		"closed a/d1 n=4", "closed a/d2 n=1", "closed b/d1 n=1",
	}
	if got := strings.Join(r.changes, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("changes:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	first := r.last[alert.ID(event.EntityKey{Kind: event.EntityPrincipal, ID: "a"}, "d1", t0)]
	if first.Score != 95 || first.Severity != event.SeverityCritical || first.FindingCount != 4 || len(first.Findings) != 4 {
		t.Errorf("merged alert: score %v severity %v count %d findings %d", first.Score, first.Severity, first.FindingCount, len(first.Findings))
	}
	if !first.Time.Equal(t0) || !first.WindowEnd.Equal(t0.Add(2*time.Hour+time.Minute)) || !first.LastTime.Equal(t0.Add(61*time.Minute)) {
		t.Errorf("times: %v %v %v", first.Time, first.WindowEnd, first.LastTime)
	}
	if !strings.HasPrefix(first.Explanation, "score 95") || !strings.Contains(first.Explanation, "4 findings") {
		t.Errorf("explanation %q", first.Explanation)
	}
}

func TestSessionWindowStopsAtMaxSpan(t *testing.T) {
	r := &rec{}
	s, _ := alert.New(alert.Options{Window: time.Hour, MaxSpan: 3 * time.Hour, Sinks: []alert.Sink{r}})
	var fs []event.Finding
	for m := 0; m <= 5*60; m += 30 { // a finding every 30 minutes for five hours
		fs = append(fs, f("a", "d", time.Duration(m)*time.Minute, 80))
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
		for i := 1; i < len(a.Findings); i++ {
			if a.Findings[i].Time.Before(a.Findings[i-1].Time) {
				t.Fatalf("findings not in time order")
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
	s.Process([]event.Finding{f("a", "d", 0, 50)})
	s.Process([]event.Finding{f("a", "d", time.Second, 60)})
	if len(raised.Findings) != 1 || raised.Score != 50 {
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

func TestMinScore(t *testing.T) {
	r := &rec{}
	s, err := alert.New(alert.Options{MinScore: 40, Sinks: []alert.Sink{r}})
	if err != nil {
		t.Fatal(err)
	}
	s.Process([]event.Finding{f("a", "d", 0, 30)})                               // weak, alone: no alert
	s.Process([]event.Finding{f("b", "d", 0, 60), f("b", "d", time.Second, 30)}) // weak joins an open alert
	s.Flush()
	want := "raised b/d n=1\nupdated b/d n=2\nclosed b/d n=2"
	if got := strings.Join(r.changes, "\n"); got != want {
		t.Fatalf("changes:\n%s\nwant:\n%s", got, want)
	}
	if s.Findings() != 3 || s.Raised() != 1 {
		t.Fatalf("findings %d raised %d", s.Findings(), s.Raised())
	}
}
