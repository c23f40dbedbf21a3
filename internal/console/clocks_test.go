package console_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/console"
	"github.com/haechi-sec/haechi/internal/event"
)

// The entity page's two charts span the same days, the risk line and the
// baseline have legend entries, and the figures are written in full.
func TestEntityCharts(t *testing.T) {
	e := newEnv(t, false)
	body := e.do(t, "GET", "/entities/key/k-1", "", nil).Body.String()
	for _, want := range []string{
		`<span class="swatch line critical"></span>risk at alert`,               // the risk line's swatch (styled: TestSeriesClassesStyled)
		`<span class="swatch line s1"></span>own baseline`,                      // the baseline's legend
		`<g class="series line critical" data-series="risk at alert"><polyline`, // drawn
		`<circle class="marker"`,                                                // a marker on its one point
	} {
		if !strings.Contains(body, want) {
			t.Errorf("entity page lacks %q", want)
		}
	}
	first := regexp.MustCompile(`text-anchor="start">([^<]+)<`)
	var starts []string
	for _, id := range []string{`id="records-chart"`, `id="scores-chart"`} {
		i := strings.Index(body, id)
		if i < 0 {
			t.Fatalf("no %s", id)
		}
		m := first.FindStringSubmatch(body[i:])
		if m == nil {
			t.Fatalf("%s: no time axis", id)
		}
		starts = append(starts, m[1])
	}
	if starts[0] != starts[1] {
		t.Errorf("the charts start on different days: records %q, scores %q", starts[0], starts[1])
	}
}

// An applicable deadline already past is marked overdue on the alert's
// page; on simulated data (the demo) the clocks are measured in simulated
// time and say so, never against the wall clock.
func TestClocks(t *testing.T) {
	const sim = "the demo plays 14 simulated days in 2m0s"
	for _, tc := range []struct {
		name      string
		simulated string
		path      string
		want, not []string
	}{
		{"overdue on the alert page", "", "/alerts/al-old",
			[]string{`<tr class="overdue"><td>Korea Network Act</td>`, "overdue by 6 h 0 min", "42 h 0 min left"}, []string{"simulated time"}},
		{"ahead on the alert page", "", "/alerts/al-crit",
			[]string{"22 h 0 min left"}, []string{`<tr class="overdue">`, "overdue by"}},
		{"overview, wall clock", "", "/",
			[]string{"Korea Network Act</b> — overdue by 6 h 0 min", "Korea Network Act</b> — 22 h 0 min left"}, []string{"simulated time"}},
		// The simulated time is the latest event seen (al-crit's, 2 h
		// before the wall clock): 24 h left of al-crit's Network Act clock.
		{"overview, simulated", sim, "/",
			[]string{`id="clocks-simulated"`, sim, "Korea Network Act</b> — 24 h 0 min left <span class=\"clock sim\">simulated time</span>"}, []string{"22 h 0 min left"}},
		{"alert page, simulated", sim, "/alerts/al-crit",
			[]string{`id="clocks-simulated"`, "24 h 0 min left <span class=\"clock sim\">simulated time</span>"}, []string{"22 h 0 min left"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvWith(t, false, func(o *console.Options) { o.Simulated = tc.simulated })
			// A critical alert 30 h old: its 24 h clock ran out 6 h ago.
			old := event.Alert{ID: "al-old", Time: now.Add(-30 * time.Hour), LastTime: now.Add(-30 * time.Hour),
				Entity: event.EntityKey{Kind: event.EntitySigningKey, ID: "k-old"}, Severity: event.SeverityCritical, Score: 95, Risk: 95,
				Title: "Old forged token", State: event.AlertOpen, Detector: "token_provenance"}
			if err := e.st.SaveAlerts(context.Background(), []event.Alert{old}); err != nil {
				t.Fatal(err)
			}
			w := e.do(t, "GET", tc.path, "", nil)
			body := w.Body.String()
			if w.Code != 200 {
				t.Fatalf("GET %s: %d\n%s", tc.path, w.Code, body)
			}
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("GET %s lacks %q", tc.path, s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(body, s) {
					t.Errorf("GET %s has %q", tc.path, s)
				}
			}
		})
	}
}
