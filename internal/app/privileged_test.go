package app_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/privileged"
	"github.com/haechi-sec/haechi/internal/event"
)

// A privileged identity taken over and used for a bulk export alerts
// before the export's second request — through the whole pipeline, the
// default configuration (every detector, threshold 90) with the company's
// time zone set to the fixtures' (Asia/Seoul), one event per batch,
// unordered and ordered. The hard-benign twins raise nothing: an admin's
// Saturday maintenance from the office (known network and country, no
// export) with another admin's weekday work, and an admin reading metrics
// at 22:00 from a home network it never used, without exporting.
//
// The takeovers other than the first export in pages of 100 records of
// scattered ids, so the export line (the day's sensitive records ≥ 4 × the
// admin's busiest day of 30) crosses at the first page and record_volume
// (distinct records per hour) only at the second. Each needs the alerting
// change: before it, the first page's evidence was
//   - takeover_domestic (night, a broadband network it never used):
//     principal_geo's new network 25 + privileged_identity 50 = 75;
//   - takeover_workday (office hours, a network it never used): 25 + 50;
//   - takeover_office_night (night, the office network): 50, the company's
//     off-hours (30) and the export (50) being one detector's line;
//
// none of which alerts. takeover_workday needs the privileged multiplier
// (75 × 1.5), takeover_office_night both the multiplier and the export and
// hours being separate lines (80 × 1.5; 80 unweighed, 50 × 1.5 as one line):
// without either, these alert only at the second page (checked). The night at home (night_new_network:
// 25 + 30, × 1.5 = 82.5) stays below.
func TestPrivilegedTakeoverAlertsBeforeSecondExportPage(t *testing.T) {
	for _, tc := range []struct {
		dir string
		// firstExport is the time of the export's first request; zero
		// for a hard-benign twin (no alert).
		firstExport string
	}{
		{"takeover", "2025-06-07T17:01:00Z"},
		{"takeover_domestic", "2025-06-04T14:02:00Z"},
		{"takeover_workday", "2025-06-04T06:02:00Z"},
		{"takeover_office_night", "2025-06-04T14:02:00Z"},
		{"weekend_maintenance", ""},
		// A privileged identity's first night in a country it never used
		// alerts (new country and the company's off-hours); the rest of
		// its week there, its office-VPN sessions and its next Saturday
		// of maintenance at home do not.
		{"traveller_habit", "2025-06-03T16:00:00Z"},
		{"night_new_network", ""},
	} {
		evs := readCase(t, "../detect/privileged/testdata/"+tc.dir+"/events.ndjson")
		for _, ordered := range []bool{false, true} {
			changes := runPrivileged(t, evs, ordered)
			var raised []event.Alert
			for _, c := range changes {
				if c.c == alert.Raised {
					raised = append(raised, c.a)
				}
			}
			if tc.firstExport == "" {
				for _, a := range raised {
					t.Errorf("%s (ordered %v): alert on %s at %s: %s", tc.dir, ordered, a.Entity, a.Time.Format(time.RFC3339), a.Explanation)
				}
				continue
			}
			first, _ := time.Parse(time.RFC3339, tc.firstExport)
			i := slices.IndexFunc(raised, func(a event.Alert) bool { return a.Entity == event.EntityKey{Kind: event.EntityPrincipal, ID: "e:9"} })
			if i < 0 {
				t.Errorf("%s (ordered %v): no alert on principal:e:9; raised %d", tc.dir, ordered, len(raised))
				continue
			}
			a := raised[i]
			if n := len(raised); n != 1 {
				t.Errorf("%s (ordered %v): %d alerts, want 1", tc.dir, ordered, n)
			}
			if a.Time.After(first) {
				t.Errorf("%s (ordered %v): alert at %s, after the export's first request (%s); the second came 30 s later",
					tc.dir, ordered, a.Time.Format(time.RFC3339), tc.firstExport)
			}
			if !slices.ContainsFunc(a.Findings, func(f event.Finding) bool { return f.Detector == privileged.Name && f.Privileged }) {
				t.Errorf("%s (ordered %v): the alert holds no privileged_identity finding: %s", tc.dir, ordered, a.Explanation)
			}
			t.Logf("%s (ordered %v): alert at %s, risk %.1f: %s", tc.dir, ordered, a.Time.Format(time.RFC3339), a.Risk, a.Explanation)
		}
	}
}

func runPrivileged(t *testing.T, evs []event.Event, ordered bool) []alertChange {
	t.Helper()
	cfg := config.Default()
	cfg.Detectors.PrivilegedIdentity.TimeZone = "Asia/Seoul"
	cfg.Alerts.Ordered = ordered
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var changes []alertChange
	sink := alert.SinkFunc(func(c alert.Change, a event.Alert) { changes = append(changes, alertChange{c, a}) })
	p, err := app.NewPipeline(app.PipelineOptions{Config: cfg, Sinks: []alert.Sink{sink},
		InputName: func(uint32) string { return "events" }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	ctx := context.Background()
	for i := range evs { // one event per batch, as a live source
		if err := p.SubmitFrom(ctx, "shipper", time.Time{}, slices.Clone(evs[i:i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.EndOrigin(ctx, "shipper"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return changes
}

// The configuration's default privileged roles and sensitive actions are
// the detector's (config may not import the detector).
func TestPrivilegedDefaultsAgree(t *testing.T) {
	if !slices.Equal(config.DefaultPrivilegedRoles, privileged.DefaultRoles) {
		t.Errorf("config roles %v, detector %v", config.DefaultPrivilegedRoles, privileged.DefaultRoles)
	}
	if !slices.Equal(config.DefaultSensitiveActions, privileged.DefaultSensitiveActions) {
		t.Errorf("config actions %v, detector %v", config.DefaultSensitiveActions, privileged.DefaultSensitiveActions)
	}
}
