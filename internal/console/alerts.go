package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/report"
	"github.com/haechi-sec/haechi/internal/store"
)

// alertsPageSize is how many alerts a page of the alerts list shows.
const alertsPageSize = 50

type alertsView struct {
	Filter    AlertFilter
	FilterErr string
	Alerts    []event.Alert
	// Newer and Older link the previous and next pages ("" when there is
	// none); First the first page, when this is not it.
	Newer, Older, First template.URL
	Cursor              string // this page's cursor ("" on the first page)
	PageSize            int
	Detectors           []string
	States              []string
	Kinds               []string
	Windows             []string
	Sevs                []string
}

func (c *Console) alerts(w http.ResponseWriter, r *http.Request) {
	v := alertsView{Kinds: []string{"principal", "source", "token", "key", "record"}, Windows: []string{"1h", "24h", "7d", "30d"},
		Sevs: []string{"low", "medium", "high", "critical"}, PageSize: alertsPageSize}
	f, err := ParseAlertFilter(r.URL.Query())
	cur, cerr := parsePageCursor(r.URL.Query().Get("cursor"))
	if err == nil {
		err = cerr
	}
	if err != nil {
		v.FilterErr = err.Error()
		f, cur = AlertFilter{}, pageCursor{}
	}
	v.Filter = f
	ctx := r.Context()
	link := func(pc *pageCursor) template.URL {
		vals := f.Values()
		if pc != nil {
			vals.Set("cursor", pc.String())
		}
		return template.URL("/alerts?" + vals.Encode()) // #nosec G203 -- a constant path and an encoded query
	}
	pg, err := c.alertPage(ctx, f.Query(c.opts.Now()), cur, link)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading alerts failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	v.Alerts, v.Newer, v.Older, v.First, v.Cursor = pg.Alerts, pg.Newer, pg.Older, pg.First, pg.Cursor
	facets, err := c.opts.Store.ListAlertFacets(ctx)
	if err != nil {
		c.opts.Logger.Error("console: alert facets", "err", err)
	}
	v.Detectors, v.States = withValue(facets.Detectors, f.Detector), withValue(facets.States, f.State)
	code := http.StatusOK
	if v.FilterErr != "" {
		code = http.StatusBadRequest
	}
	c.render(w, r, code, "alerts", view{Title: "Alerts", Nav: "alerts", Live: true, Data: v})
}

// alertPage is one keyset page of an alert listing and its links.
type alertPage struct {
	Alerts []event.Alert
	// Newer and Older link the previous and next pages ("" when there is
	// none); First the first page, when this is not it.
	Newer, Older, First template.URL
	Cursor              string // this page's cursor ("" on the first page)
}

// alertPage reads the page of q at cur (alertsPageSize alerts, newest
// first), link making a page's address from its cursor (nil: the first).
// The store applies q's filter, so every page but the last is full.
func (c *Console) alertPage(ctx context.Context, q store.AlertQuery, cur pageCursor, link func(*pageCursor) template.URL) (alertPage, error) {
	var pg alertPage
	// One alert more than a page says whether there is another page.
	q.Limit = alertsPageSize + 1
	if cur.Newer {
		q.Newer = cur.At
	} else {
		q.Older = cur.At
	}
	list, err := c.opts.Store.ListAlerts(ctx, q)
	if err == nil && cur.Newer && len(list) <= alertsPageSize {
		// Back at the top: the previous page is the first one.
		cur, q.Newer = pageCursor{}, store.AlertCursor{}
		list, err = c.opts.Store.ListAlerts(ctx, q)
	}
	if err != nil {
		return pg, err
	}
	var more bool // alerts beyond this page in its direction
	if len(list) > alertsPageSize {
		more = true
		if cur.Newer {
			list = list[1:] // the extra one is the newest
		} else {
			list = list[:alertsPageSize]
		}
	}
	pg.Alerts = list
	// A page reached going newer has older alerts (the cursor's); one
	// reached going older has newer ones unless it is the first.
	hasNewer, hasOlder := more, more
	if cur.Newer {
		hasOlder = true
	} else {
		hasNewer = cur.At != store.AlertCursor{}
	}
	if len(list) > 0 {
		if hasNewer {
			pg.Newer = link(&pageCursor{Newer: true, At: store.CursorOf(&list[0])})
		}
		if hasOlder {
			pg.Older = link(&pageCursor{At: store.CursorOf(&list[len(list)-1])})
		}
	}
	if cur.At != (store.AlertCursor{}) {
		pg.Cursor, pg.First = cur.String(), link(nil)
	}
	return pg, nil
}

// withValue returns the choices with the chosen value among them.
func withValue(choices []string, chosen string) []string {
	if chosen == "" || slices.Contains(choices, chosen) {
		return choices
	}
	return append(slices.Clone(choices), chosen)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// ---- alert detail ----

type alertView struct {
	Alert    event.Alert
	Findings []event.Finding // shown (the first maxFindings unless all)
	All      bool
	Report   *report.Report
	Feedback []store.Feedback
	Pending  []actionGroup // pending actions, identical ones (other alerts' too) merged
	Done     []store.Action
	Verdicts []string
	Incident string // the incident the alert is in ("" when none)
	// Clocks are the report's clocks with what is left of each (or by
	// how much it is overdue), measured from ClockNow: now, or the
	// simulated time when Simulated (Options.Simulated) is set.
	Clocks    []alertClock
	ClockNow  time.Time
	Simulated string
}

// alertClock is one regulator's clock of an alert.
type alertClock struct {
	report.Clock
	Left    time.Duration
	Overdue bool
}

// alertClocks measures the clocks of rep from now: an applicable
// deadline already past is overdue.
func alertClocks(clocks []report.Clock, now time.Time) []alertClock {
	out := make([]alertClock, 0, len(clocks))
	for _, cl := range clocks {
		left := cl.Deadline.Sub(now)
		out = append(out, alertClock{Clock: cl, Left: left, Overdue: cl.Applies && left < 0})
	}
	return out
}

func (c *Console) alert(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rep, err := report.Build(r.Context(), c.opts.Store, id, time.Time{}, c.opts.Regimes, c.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no alert %q.", id), "Pick an alert from the alerts list; its id may have been mistyped.")
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading the alert failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	c.audit(r, "console_alert_scope_read", map[string]any{"alert_id": id, "records": scopeTotal(rep.Scope)})
	v := alertView{Alert: rep.Alert, Report: rep, Verdicts: []string{store.VerdictFalsePositive, store.VerdictTruePositive, store.VerdictBenign},
		Findings: rep.Alert.Findings, All: true}
	if r.URL.Query().Get("findings") != "all" && len(v.Findings) > maxFindings {
		v.Findings, v.All = v.Findings[:maxFindings], false
	}
	if v.Feedback, err = c.opts.Store.ListFeedback(r.Context(), id); err != nil {
		c.opts.Logger.Error("console: feedback", "err", err)
	}
	var pending []store.Action
	for _, a := range rep.Actions {
		if a.State == store.ActionPendingApproval {
			pending = append(pending, a)
		} else {
			v.Done = append(v.Done, a)
		}
	}
	v.Pending = c.pendingGroups(r.Context(), pending)
	v.Incident = c.incidentOf(r.Context(), id)
	v.Simulated = c.opts.Simulated
	v.ClockNow = c.clockNow(c.stats.read(), []event.Alert{rep.Alert})
	v.Clocks = alertClocks(rep.Clocks, v.ClockNow)
	c.render(w, r, http.StatusOK, "alert", view{Title: rep.Alert.Title, Nav: "alerts", Data: v})
}

func (c *Console) report(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rep, err := report.Build(r.Context(), c.opts.Store, id, time.Time{}, c.opts.Regimes, c.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no alert %q.", id), "Pick an alert from the alerts list.")
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Building the report failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	c.writeReport(w, r, rep, map[string]any{"alert_id": id})
}

// writeReport sends rep as HTML or, with format=md, Markdown, audited as
// console_report_read with detail (and the records and format) once it
// is rendered: a refused format read nothing.
func (c *Console) writeReport(w http.ResponseWriter, r *http.Request, rep *report.Report, detail map[string]any) {
	format := r.URL.Query().Get("format")
	var b strings.Builder
	ctype := "text/html; charset=utf-8"
	var err error
	switch format {
	case "", "html":
		err = rep.WriteHTML(&b)
	case "md":
		err = rep.WriteMarkdown(&b)
		ctype = "text/markdown; charset=utf-8"
	default:
		c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Unknown report format %q.", format), "Use format=html or format=md.")
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Rendering the report failed: "+err.Error(), "Check the server's log.")
		return
	}
	detail["records"], detail["format"] = scopeTotal(rep.Scope), format
	c.audit(r, "console_report_read", detail)
	h := w.Header()
	h.Set("Content-Type", ctype)
	pageHeaders(h, report.HTMLContentSecurityPolicy())
	_, _ = fmt.Fprint(w, b.String())
}

// sameOriginPost refuses, when auth is off (no session, no CSRF token), a
// form post that a browser says came from elsewhere.
func (c *Console) sameOriginPost(r *http.Request) bool {
	if c.opts.Auth != nil {
		return true // Guard checked the CSRF token
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	return true
}

func (c *Console) feedback(w http.ResponseWriter, r *http.Request) {
	if !c.sameOriginPost(r) {
		c.fail(w, r, http.StatusForbidden, "This form was posted from another site.", "Use the console's own page.")
		return
	}
	id := r.PathValue("id")
	verdict, note := r.PostFormValue("verdict"), strings.TrimSpace(r.PostFormValue("note"))
	if verdict == "" {
		c.fail(w, r, http.StatusBadRequest, "No verdict was chosen.", "Go back and choose false positive, true positive or benign: none is preselected, so a verdict is always a decision.")
		return
	}
	if !store.ValidVerdict(verdict) {
		c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Unknown verdict %q.", verdict), "Go back and pick false positive, true positive or benign.")
		return
	}
	if verdict == store.VerdictFalsePositive && note == "" {
		c.fail(w, r, http.StatusBadRequest, "A false positive needs a reason.", "Go back and say why this alert is wrong: the audit log and the detectors' tuning keep it.")
		return
	}
	_, err := c.opts.Store.AddFeedback(r.Context(), store.Feedback{AlertID: id, Verdict: verdict, Note: note, By: by(r), At: c.opts.Now().UTC(),
		SuppressFor: c.opts.FeedbackSuppression})
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no alert %q.", id), "Pick an alert from the alerts list.")
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Recording the verdict failed: "+err.Error(), "Try again; check the server's log if it persists.")
		return
	}
	http.Redirect(w, r, alertURL(id)+"?done=feedback#feedback", http.StatusSeeOther) // #nosec G710 -- a path on this origin, the id path-escaped
}

// maxFindings is how many findings the alert page shows unless asked for
// all of them.
const maxFindings = 20
