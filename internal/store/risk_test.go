package store

import (
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// Risk, contributions and figures survive the store.
func TestAlertRiskRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		at := time.Date(2025, 6, 1, 2, 0, 0, 0, time.UTC)
		e := event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"}
		a := event.Alert{ID: "al-risk", Time: at, Entity: e, Severity: event.SeverityHigh, Score: 50, Risk: 94.9,
			Title: "t", Explanation: "x", State: event.AlertOpen, Detector: "peer_route", WindowStart: at, WindowEnd: at.Add(time.Hour),
			LastTime: at, FindingCount: 2, Findings: []event.Finding{
				{Detector: "peer_route", Kind: "uncommon_route", Entity: e, Time: at, Score: 50, Severity: event.SeverityMedium,
					Evidence: []string{"ev1"}, Contribution: 50, Figures: []event.Figure{{Name: "role_share_pct", Value: 0.12}, {Name: "peers_using", Value: 0}}},
				{Detector: "off_hours", Kind: "off_hours_access", Entity: e, Time: at, Score: 45, Severity: event.SeverityMedium,
					Evidence: []string{"ev2"}, Contribution: 44.9},
			}}
		if err := s.SaveAlerts(ctx, []event.Alert{a}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAlert(ctx, "al-risk")
		if err != nil {
			t.Fatal(err)
		}
		if got.Risk != 94.9 || len(got.Findings) != 2 || got.Findings[0].Contribution != 50 || got.Findings[1].Contribution != 44.9 ||
			len(got.Findings[0].Figures) != 2 || got.Findings[0].Figures[0] != (event.Figure{Name: "role_share_pct", Value: 0.12}) ||
			got.Findings[1].Figures != nil {
			t.Fatalf("read back %+v", got)
		}
	})
}

// A false-positive verdict suppresses the alert's entity's findings of the
// detectors and kinds it held, for the configured time, in the same
// transaction as the verdict; other verdicts suppress nothing.
func TestFalsePositiveSuppresses(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		at := time.Date(2025, 6, 1, 2, 0, 0, 0, time.UTC)
		e := event.EntityKey{Kind: event.EntityPrincipal, ID: "p:partner"}
		off := event.Finding{Detector: "off_hours", Kind: "off_hours_access", Entity: e, Time: at, Score: 45, Evidence: []string{"x"}}
		route := event.Finding{Detector: "peer_route", Kind: "uncommon_route", Entity: e, Time: at, Score: 50, Evidence: []string{"y"}}
		a := event.Alert{ID: "al-fp", Time: at, Entity: e, Detector: "peer_route", State: event.AlertOpen, FindingCount: 3,
			Findings: []event.Finding{route, off, off}}
		if err := s.SaveAlerts(ctx, []event.Alert{a}); err != nil {
			t.Fatal(err)
		}
		f, err := s.AddFeedback(ctx, Feedback{AlertID: "al-fp", Verdict: VerdictTruePositive, By: "ann", At: at, SuppressFor: time.Hour})
		if err != nil || len(f.Suppressions) != 0 {
			t.Fatalf("true positive: %+v %v", f.Suppressions, err)
		}
		now := at.Add(time.Minute)
		f, err = s.AddFeedback(ctx, Feedback{AlertID: "al-fp", Verdict: VerdictFalsePositive, Note: "new integration", By: "ann", At: now, SuppressFor: 24 * time.Hour})
		if err != nil || len(f.Suppressions) != 2 {
			t.Fatalf("false positive: %+v %v", f.Suppressions, err)
		}
		list, err := s.ListSuppressions(ctx, now, false)
		if err != nil || len(list) != 2 {
			t.Fatalf("suppressions in force: %+v %v", list, err)
		}
		for _, sp := range list {
			if sp.Entity != e || sp.Alert != "al-fp" || !sp.Until.Equal(now.Add(24*time.Hour)) || !strings.Contains(sp.Reason, "new integration") {
				t.Errorf("suppression %+v", sp)
			}
			if sp.Matches(a, now) {
				t.Errorf("a finding-kind suppression stops response: %+v", sp)
			}
		}
		if !list[0].MatchesFinding(&off, now) && !list[1].MatchesFinding(&off, now) {
			t.Error("the off-hours finding is not covered")
		}
		other := off
		other.Entity.ID = "p:other"
		if list[0].MatchesFinding(&other, now) || list[1].MatchesFinding(&other, now) || list[0].MatchesFinding(&off, now.Add(25*time.Hour)) {
			t.Error("a suppression covers another entity, or outlives its time")
		}
		var kinds int
		log, _ := s.AuditLog(ctx, 0, 100)
		for _, en := range log {
			if en.Kind == "suppression" {
				kinds++
			}
		}
		if kinds != 2 {
			t.Errorf("%d suppressions audited, want 2", kinds)
		}
	})
}
