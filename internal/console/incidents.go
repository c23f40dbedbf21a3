package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/report"
	"github.com/haechi-sec/haechi/internal/store"
)

// incidentsPageSize is how many incidents a page of the incidents list
// shows; overviewIncidents how many open ones the overview leads with.
const (
	incidentsPageSize = 50
	overviewIncidents = 10
)

// incidentRow is an incident as a list shows it: with its combined exact
// scope's total (Records; ScopeNote says why there is none).
type incidentRow struct {
	store.Incident
	Records   int64
	ScopeNote string
}

// URL is the incident's page.
func (r incidentRow) URL() string { return incidentURL(r.ID) }

func incidentURL(id string) string { return "/incidents/" + url.PathEscape(id) }

// incidentRows adds each incident's scope total, reading the ledger once
// per incident, with one audit entry for the page (what names the
// incidents and the records).
func (c *Console) incidentRows(r *http.Request, list []store.Incident, page string) []incidentRow {
	out := make([]incidentRow, len(list))
	totals := make(map[string]int64, len(list))
	for i, in := range list {
		out[i].Incident = in
		res, err := ledger.IncidentScope(r.Context(), c.opts.Store, in)
		if err != nil {
			out[i].ScopeNote = "no scope: " + err.Error()
			continue
		}
		out[i].Records, totals[in.ID] = res.Total, res.Total
	}
	if len(totals) > 0 {
		c.audit(r, "console_incident_scope_read", map[string]any{"page": page, "incidents": totals})
	}
	return out
}

type incidentsView struct {
	State, Severity string
	States, Sevs    []string
	FilterErr       string
	Rows            []incidentRow
	// Older links the next page ("" at the end), First the first page
	// when this is not it.
	Older, First template.URL
	Cursor       string
	PageSize     int
	// Refresh is the address of this list's rows (the live script
	// fetches it when alerts arrive); "" on later pages, which do not
	// change under the reader.
	Refresh template.URL
}

// incidents lists incidents, newest start first, 50 a page (keyset: the
// older link names the page's last incident), filtered by state and
// minimum severity. With partial=rows it answers only the table's rows
// (the live script's refresh; top=N keeps the first N, as the overview
// shows them).
func (c *Console) incidents(w http.ResponseWriter, r *http.Request) {
	qv := r.URL.Query()
	v := incidentsView{States: []string{store.IncidentOpen, store.IncidentContained, store.IncidentClosed},
		Sevs: []string{"low", "medium", "high", "critical"}, PageSize: incidentsPageSize,
		State: qv.Get("state"), Severity: qv.Get("severity"), Cursor: qv.Get("cursor")}
	q, err := api.IncidentQuery(func(k string) string {
		switch k {
		case "state", "severity":
			return qv.Get(k)
		case "after":
			return qv.Get("cursor")
		}
		return ""
	})
	if err != nil {
		msg := err.Error()
		if strings.HasPrefix(msg, "after:") {
			msg = "cursor: not a page link of this list; start again from the first page"
		}
		v.FilterErr, v.State, v.Severity, v.Cursor = msg, "", "", ""
		q = store.IncidentQuery{}
	}
	filter := url.Values{}
	for k, val := range map[string]string{"state": v.State, "severity": v.Severity} {
		if val != "" {
			filter.Set(k, val)
		}
	}
	link := func(cursor string) template.URL {
		vals := url.Values{}
		for k := range filter {
			vals.Set(k, filter.Get(k))
		}
		if cursor != "" {
			vals.Set("cursor", cursor)
		}
		if len(vals) == 0 {
			return "/incidents"
		}
		return template.URL("/incidents?" + vals.Encode()) // #nosec G203 -- a constant path and an encoded query
	}
	q.Limit = incidentsPageSize + 1
	list, err := c.opts.Store.ListIncidents(r.Context(), q)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading incidents failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	if len(list) > incidentsPageSize {
		list = list[:incidentsPageSize]
		last := list[len(list)-1]
		v.Older = link(api.IncidentCursorString(store.IncidentCursor{Start: last.Start, ID: last.ID}))
	}
	if v.Cursor != "" {
		v.First = link("")
	} else {
		vals := url.Values{"partial": {"rows"}}
		for k := range filter {
			vals.Set(k, filter.Get(k))
		}
		v.Refresh = template.URL("/incidents?" + vals.Encode()) // #nosec G203 -- a constant path and an encoded query
	}
	if top, err := strconv.Atoi(qv.Get("top")); qv.Get("partial") == "rows" && err == nil && top > 0 && top < len(list) {
		list = list[:top] // the overview's open incidents
	}
	v.Rows = c.incidentRows(r, list, "incidents")
	if qv.Get("partial") == "rows" {
		c.renderFragment(w, r, "incidents", "incidentRows", v)
		return
	}
	code := http.StatusOK
	if v.FilterErr != "" {
		code = http.StatusBadRequest
	}
	c.render(w, r, code, "incidents", view{Title: "Incidents", Nav: "incidents", Live: true, Data: v})
}

// renderFragment renders one template of a page, without the layout.
func (c *Console) renderFragment(w http.ResponseWriter, r *http.Request, page, name string, data any) {
	var b strings.Builder
	if err := c.pages[page].ExecuteTemplate(&b, name, data); err != nil {
		c.opts.Logger.Error("console: render", "page", page, "fragment", name, "err", err)
		http.Error(w, "the console could not render this fragment; this is a bug, please report it", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	pageHeaders(h, pageCSP)
	_, _ = fmt.Fprint(w, b.String())
}

// graphColumn is one kind of entity in an incident's graph, in the order
// keys → tokens → sources → principals.
type graphColumn struct {
	Kind  string
	Nodes []graphNode
}

type graphNode struct {
	incident.Node
	To []event.EntityKey // the entities it links to
}

// incidentGraph lays the graph out in columns by kind, each node with the
// entities it links to.
func incidentGraph(g incident.Graph) []graphColumn {
	to := map[event.EntityKey][]event.EntityKey{}
	for _, e := range g.Edges {
		to[e.From] = append(to[e.From], e.To)
	}
	order := []event.EntityKind{event.EntitySigningKey, event.EntityToken, event.EntitySource, event.EntityPrincipal}
	names := map[event.EntityKind]string{event.EntitySigningKey: "keys", event.EntityToken: "tokens",
		event.EntitySource: "sources", event.EntityPrincipal: "principals"}
	byKind := map[event.EntityKind][]graphNode{}
	var other []graphNode
	for _, n := range g.Nodes {
		gn := graphNode{Node: n, To: to[n.Entity]}
		if _, ok := names[n.Entity.Kind]; ok {
			byKind[n.Entity.Kind] = append(byKind[n.Entity.Kind], gn)
		} else {
			other = append(other, gn)
		}
	}
	var out []graphColumn
	for _, k := range order {
		if len(byKind[k]) > 0 {
			out = append(out, graphColumn{Kind: names[k], Nodes: byKind[k]})
		}
	}
	if len(other) > 0 {
		out = append(out, graphColumn{Kind: "other", Nodes: other})
	}
	return out
}

// maxIncidentTimeline is how many timeline steps the incident page shows;
// the report has every one.
const maxIncidentTimeline = 200

type incidentView struct {
	Incident store.Incident
	Merged   string // the alias asked for, when the page was reached by one
	Report   *report.Report
	Timeline []report.Step // the first maxIncidentTimeline of Report.Timeline
	Graph    []graphColumn
	Omitted  int // graph nodes left out (incident.Graph.Omitted)
	GraphErr string
	ByType   []kv
	ByField  []kv
	Export   struct{ CSV, NDJSON template.URL }
	Alerts   alertPage
	Pending  []actionGroup
	Done     []store.Action
	Verdicts []string
	States   []string
}

func (c *Console) incidentPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx := r.Context()
	in, err := c.opts.Store.GetIncident(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no incident %q.", id), "Pick an incident from the incidents list; its id may have been mistyped.")
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading the incident failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	if in.ID != id {
		// A merged or refounded incident's id: the surviving incident.
		http.Redirect(w, r, incidentURL(in.ID)+"?merged="+url.QueryEscape(id), http.StatusFound) // #nosec G710 -- a path on this origin, the ids escaped
		return
	}
	rep, err := report.BuildIncident(ctx, c.opts.Store, in.ID, time.Time{}, c.opts.Regimes, c.opts.Now())
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading the incident's alerts failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	c.audit(r, "console_incident_scope_read", map[string]any{"incident_id": in.ID, "records": scopeTotal(rep.Scope)})
	v := incidentView{Incident: in, Report: rep, Timeline: rep.Timeline, Merged: r.URL.Query().Get("merged"),
		Verdicts: []string{store.VerdictTruePositive, store.VerdictFalsePositive, store.VerdictBenign},
		States:   []string{store.IncidentOpen, store.IncidentContained, store.IncidentClosed}}
	if len(v.Timeline) > maxIncidentTimeline {
		v.Timeline = v.Timeline[:maxIncidentTimeline]
	}
	var body incident.Incident
	if err := json.Unmarshal(in.Body, &body); err != nil {
		v.GraphErr = "the incident's detail could not be read: " + err.Error()
	} else {
		v.Graph, v.Omitted = incidentGraph(body.Graph), body.Graph.Omitted
	}
	if rep.Scope != nil {
		v.ByType, v.ByField = sortedKV(rep.Scope.ByType), sortedKV(rep.Scope.ByField)
		exp := "/v1/scope?" + url.Values{"incident": {in.ID}}.Encode()
		v.Export.CSV = template.URL(exp + "&export=csv")       // #nosec G203 -- a constant path and an encoded query
		v.Export.NDJSON = template.URL(exp + "&export=ndjson") // #nosec G203 -- a constant path and an encoded query
	}
	cur, err := parsePageCursor(r.URL.Query().Get("cursor"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error(), "Open the incident again from the incidents list.")
		return
	}
	link := func(pc *pageCursor) template.URL {
		u := incidentURL(in.ID)
		if pc != nil {
			u += "?cursor=" + url.QueryEscape(pc.String())
		}
		return template.URL(u + "#alerts") // #nosec G203 -- a path on this origin, the id and cursor escaped
	}
	if v.Alerts, err = c.alertPage(ctx, store.AlertQuery{Incident: in.ID}, cur, link); err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading the incident's alerts failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	var pending []store.Action
	for _, a := range rep.Actions {
		if a.State == store.ActionPendingApproval {
			pending = append(pending, a)
		} else if len(v.Done) < maxDoneActions {
			v.Done = append(v.Done, a)
		}
	}
	v.Pending = c.pendingGroups(ctx, pending)
	c.render(w, r, http.StatusOK, "incident", view{Title: in.Title, Nav: "incidents", Data: v})
}

// maxDoneActions is how many decided or delivered actions the incident
// page lists; the report has every one.
const maxDoneActions = 100

func (c *Console) incidentReport(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rep, err := report.BuildIncident(r.Context(), c.opts.Store, id, time.Time{}, c.opts.Regimes, c.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no incident %q.", id), "Pick an incident from the incidents list.")
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Building the report failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	c.writeReport(w, r, rep, map[string]any{"incident_id": rep.Alert.ID})
}

// incidentVerdict records an analyst's state and verdict on an incident
// through the store (store.SetIncidentVerdict: audited as
// incident_verdict, announced to the incident receiver). No verdict is
// preselected on the form: a post with neither a verdict nor a state is
// refused, and a false positive needs a reason.
func (c *Console) incidentVerdict(w http.ResponseWriter, r *http.Request) {
	if !c.sameOriginPost(r) {
		c.fail(w, r, http.StatusForbidden, "This form was posted from another site.", "Use the console's own page.")
		return
	}
	id := r.PathValue("id")
	verdict, state := r.PostFormValue("verdict"), r.PostFormValue("state")
	note := strings.TrimSpace(r.PostFormValue("note"))
	switch {
	case verdict == "" && state == "":
		c.fail(w, r, http.StatusBadRequest, "No verdict or state was chosen.",
			"Go back and choose a verdict (true positive, false positive or benign), a state, or both: none is preselected, so a verdict is always a decision.")
		return
	case verdict != "" && !store.ValidVerdict(verdict):
		c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Unknown verdict %q.", verdict), "Go back and pick true positive, false positive or benign.")
		return
	case state != "" && !store.ValidIncidentState(state):
		c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Unknown state %q.", state), "Go back and pick open, contained or closed.")
		return
	case verdict == store.VerdictFalsePositive && note == "":
		c.fail(w, r, http.StatusBadRequest, "A false positive needs a reason.", "Go back and say why this incident is wrong: the audit log and the detectors' tuning keep it.")
		return
	}
	in, err := c.opts.Store.SetIncidentVerdict(r.Context(), store.IncidentVerdict{IncidentID: id, State: state, Verdict: verdict,
		Note: note, By: by(r), At: c.opts.Now().UTC()})
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no incident %q.", id), "Pick an incident from the incidents list.")
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Recording the verdict failed: "+err.Error(), "Try again; check the server's log if it persists.")
		return
	}
	http.Redirect(w, r, incidentURL(in.ID)+"?done=incident_verdict#verdict", http.StatusSeeOther) // #nosec G710 -- a path on this origin, the id path-escaped
}

// openIncidents returns the newest open incidents for the overview, with
// their scope totals.
func (c *Console) openIncidents(r *http.Request) ([]incidentRow, error) {
	list, err := c.opts.Store.ListIncidents(r.Context(), store.IncidentQuery{State: store.IncidentOpen, Limit: overviewIncidents})
	if err != nil {
		return nil, err
	}
	return c.incidentRows(r, list, "overview"), nil
}

// incidentOf returns the id of the incident alert id is in ("" when none,
// or when it cannot be read: the page goes on without the link).
func (c *Console) incidentOf(ctx context.Context, id string) string {
	in, err := c.opts.Store.IncidentOfAlert(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.opts.Logger.Error("console: incident of alert", "alert", id, "err", err)
	}
	return in
}
