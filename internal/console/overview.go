package console

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/report"
	"github.com/haechi-sec/haechi/internal/store"
)

type cachedClocks struct {
	at     time.Time
	report *report.Report
}

type sevCount struct {
	Severity string
	N        int
}

type detectorHealth struct {
	Name     string
	Findings float64
	Last     time.Time
}

type overviewView struct {
	Incidents   []incidentRow // the newest open incidents
	IncidentErr string
	BySeverity  []sevCount
	ByState     []sevCount
	Total       int
	Capped      bool
	Recent      []event.Alert
	Stats       Stats
	Detectors   []detectorHealth
	Approvals   []actionGroup // identical pending actions merged
	Clocks      []runningClock
	// Simulated is Options.Simulated; ClockNow the moment the clocks are
	// measured from (the simulated time when Simulated is set).
	Simulated string
	ClockNow  time.Time
	// Drills are the continuous drills' verdicts; DrillsOff says this
	// process runs none, DrillErr that reading them failed.
	Drills    []DrillStatus
	DrillsOff bool
	DrillErr  string
}

type runningClock struct {
	Alert    event.Alert
	Clock    report.Clock
	Left     time.Duration
	Overdue  bool
	ReportID string
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	alerts, err := c.opts.Store.ListAlerts(ctx, store.AlertQuery{Limit: store.MaxListLimit, WithFindings: true})
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading alerts failed: "+err.Error(), "Check the server's log and that the data directory is readable; then reload.")
		return
	}
	v := overviewView{Total: len(alerts), Capped: len(alerts) == store.MaxListLimit, Stats: c.stats.read()}
	if c.opts.DrillFindings != nil {
		// Detection health counts the deployment's own findings, not
		// the drills'.
		for d, n := range c.opts.DrillFindings() {
			if _, ok := v.Stats.Findings[d]; ok {
				v.Stats.Findings[d] = max(v.Stats.Findings[d]-n, 0)
			}
		}
	}
	sev := map[event.Severity]int{}
	state := map[string]int{}
	last := c.opts.Hub.LastFindings()
	for i := range alerts {
		a := &alerts[i]
		sev[a.Severity]++
		state[string(a.State)]++
		for _, f := range a.Findings {
			if f.Time.After(last[f.Detector]) {
				last[f.Detector] = f.Time
			}
		}
	}
	for s := event.SeverityCritical; s >= event.SeverityLow; s-- {
		v.BySeverity = append(v.BySeverity, sevCount{s.String(), sev[s]})
	}
	for s, n := range state {
		v.ByState = append(v.ByState, sevCount{s, n})
	}
	sort.Slice(v.ByState, func(i, j int) bool { return v.ByState[i].Severity < v.ByState[j].Severity })
	v.Recent = alerts[:min(len(alerts), 10)]
	names := map[string]bool{}
	for d := range v.Stats.Findings {
		// The ledger's writers run as engine detectors; they find nothing.
		if !strings.HasPrefix(d, "ledger_") {
			names[d] = true
		}
	}
	for d := range last {
		names[d] = true
	}
	for d := range names {
		v.Detectors = append(v.Detectors, detectorHealth{Name: d, Findings: v.Stats.Findings[d], Last: last[d]})
	}
	sort.Slice(v.Detectors, func(i, j int) bool { return v.Detectors[i].Name < v.Detectors[j].Name })
	if pending, err := c.opts.Store.ListActions(ctx, store.ActionQuery{State: store.ActionPendingApproval, Limit: 4 * maxApprovals}); err != nil {
		c.opts.Logger.Error("console: pending approvals", "err", err)
	} else {
		v.Approvals = groupActions(pending)
		v.Approvals = v.Approvals[:min(len(v.Approvals), maxApprovals)]
	}
	v.Simulated = c.opts.Simulated
	v.ClockNow = c.clockNow(v.Stats, alerts)
	v.Clocks = c.runningClocks(r, alerts, v.ClockNow)
	if v.Incidents, err = c.openIncidents(r); err != nil {
		c.opts.Logger.Error("console: open incidents", "err", err)
		v.IncidentErr = "Reading incidents failed: " + err.Error()
	}
	if c.opts.Drills == nil {
		v.DrillsOff = true
	} else if v.Drills, err = c.opts.Drills(ctx); err != nil {
		c.opts.Logger.Error("console: drills", "err", err)
		v.DrillErr = "Reading the drills' results failed: " + err.Error()
	}
	c.render(w, r, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", Live: true, Data: v})
}

// clockAlerts is how many of the newest critical alerts the overview
// shows regulators' clocks for; clockTTL how long one report is reused.
const (
	clockAlerts = 3
	clockTTL    = 2 * time.Minute
)

// clockNow is the moment regulators' clocks are measured from: now, or,
// on simulated data (Options.Simulated), the simulated time — the event-
// time watermark, or the latest alert's last finding when that is later
// (or the watermark is not known).
func (c *Console) clockNow(st Stats, alerts []event.Alert) time.Time {
	if c.opts.Simulated == "" {
		return c.opts.Now()
	}
	t := st.Watermark
	for i := range alerts {
		if alerts[i].LastTime.After(t) {
			t = alerts[i].LastTime
		}
	}
	return t
}

// runningClocks returns the applicable deadlines still ahead (or just
// missed) for the newest critical alerts, measured from now.
func (c *Console) runningClocks(r *http.Request, alerts []event.Alert, now time.Time) []runningClock {
	var out []runningClock
	n := 0
	for i := range alerts {
		a := &alerts[i]
		if a.Severity < event.SeverityCritical || n == clockAlerts {
			continue
		}
		n++
		rep := c.cachedReport(r, a.ID, c.opts.Now())
		if rep == nil {
			continue
		}
		for _, cl := range rep.Clocks {
			if !cl.Applies {
				continue
			}
			left := cl.Deadline.Sub(now)
			out = append(out, runningClock{Alert: *a, Clock: cl, Left: left, Overdue: left < 0, ReportID: a.ID})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Clock.Deadline.Before(out[j].Clock.Deadline) })
	return out[:min(len(out), maxClocks)]
}

// maxApprovals is how many groups of pending actions the overview lists
// (the newest).
const maxApprovals = 50

// maxClocks is how many running deadlines the overview lists (the
// soonest); every one is in its alert's report.
const maxClocks = 6

func (c *Console) cachedReport(r *http.Request, id string, now time.Time) *report.Report {
	c.clockMu.Lock()
	cc, ok := c.clocks[id]
	c.clockMu.Unlock()
	if ok && now.Sub(cc.at) < clockTTL {
		return cc.report
	}
	rep, err := report.Build(r.Context(), c.opts.Store, id, time.Time{}, c.opts.Regimes, now)
	if err != nil {
		c.opts.Logger.Warn("console: clocks", "alert", id, "err", err)
		return nil
	}
	c.audit(r, "console_clocks_read", map[string]any{"alert_id": id, "records": scopeTotal(rep.Scope)})
	c.clockMu.Lock()
	if len(c.clocks) > 64 {
		clear(c.clocks)
	}
	c.clocks[id] = cachedClocks{at: now, report: rep}
	c.clockMu.Unlock()
	return rep
}

func scopeTotal(r *ledger.Result) int64 {
	if r == nil {
		return 0
	}
	return r.Total
}
