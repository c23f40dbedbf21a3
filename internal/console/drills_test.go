package console_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/console"
	"github.com/haechi-sec/haechi/internal/store"
)

// TestOverviewDrills: the overview shows each drill's latest run — its
// status, time to alert, why it failed or could not run, a link to a
// failed run's regression alert — and when it last passed; and says so
// when the process runs no drills or reading them fails.
func TestOverviewDrills(t *testing.T) {
	passed := now.Add(-3 * time.Hour)
	statuses := []console.DrillStatus{
		{Name: "forged-token", Kind: "forged_token", Within: 2 * time.Minute,
			Last:       &store.DrillRun{Run: "forged-token-1", Drill: "forged-token", Status: "passed", Started: now.Add(-10 * time.Minute), TimeToAlert: 1234567 * time.Microsecond},
			LastPassed: now.Add(-10 * time.Minute)},
		{Name: "terminated-identity", Kind: "terminated_identity", Within: time.Minute,
			Last: &store.DrillRun{Run: "terminated-identity-2", Drill: "terminated-identity", Status: "failed", Started: now.Add(-5 * time.Minute),
				Reason: "no alert about the drill's entity within 1m0s; expected detector terminated_identity"},
			LastPassed: passed},
		{Name: "token-hijack", Kind: "token_hijack", Within: time.Minute,
			Last: &store.DrillRun{Run: "token-hijack-3", Drill: "token-hijack", Status: "cannot_run", Started: now.Add(-5 * time.Minute),
				Reason: "cannot run: missing stream auth.token"}},
		{Name: "canary-read", Kind: "canary_read", Within: time.Minute},
	}
	for _, c := range []struct {
		name   string
		drills func(context.Context) ([]console.DrillStatus, error)
		want   []string
		not    []string
	}{
		{"results", func(context.Context) ([]console.DrillStatus, error) { return statuses, nil },
			[]string{`id="drills"`, `data-drill="forged-token" data-status="passed"`, "1.235s", "forged_token, within 2m0s",
				`data-drill="terminated-identity" data-status="failed"`, "expected detector terminated_identity", `href="/alerts/al-drill-terminated-identity-2"`,
				"2026-11-23 09:00:00", // when terminated-identity last passed
				`data-drill="token-hijack" data-status="cannot_run"`, "cannot run: missing stream auth.token", ">cannot run<",
				`data-drill="canary-read"><td>`, "not run yet", "never"},
			[]string{"No drills run in this process", `href="/alerts/al-drill-forged-token-1"`}},
		{"none configured", func(context.Context) ([]console.DrillStatus, error) { return nil, nil },
			[]string{`id="drills"`, "No drill is configured"}, nil},
		{"read fails", func(context.Context) ([]console.DrillStatus, error) { return nil, errors.New("disk on fire") },
			[]string{"Reading the drills&#39; results failed: disk on fire"}, nil},
		{"no drills in this process", nil, []string{`id="drills"`, "No drills run in this process"}, []string{"<table class=\"drills\""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnvWith(t, true, func(o *console.Options) { o.Drills = c.drills })
			sess, _ := e.login(t, e.analyst)
			w := e.do(t, "GET", "/", "", nil, sess)
			body := w.Body.String()
			if w.Code != 200 {
				t.Fatalf("GET /: %d", w.Code)
			}
			for _, s := range c.want {
				if !strings.Contains(body, s) {
					t.Errorf("the overview lacks %q", s)
				}
			}
			for _, s := range c.not {
				if strings.Contains(body, s) {
					t.Errorf("the overview has %q", s)
				}
			}
		})
	}
}
