// Package console is haechi's web console: server-rendered pages
// (html/template), charts drawn on the server as SVG, a little of our own
// JavaScript for live updates (Server-Sent Events) and forms — all
// embedded in the binary, nothing fetched from elsewhere.
//
// Contract:
//
//   - The console owns no state but its live-update Hub and a short cache
//     of regulators' clocks; it reads the store and the access ledger and
//     writes through the same store methods the API uses (feedback,
//     action decisions), so both are audited alike.
//   - Register mounts every page on the API server, behind its
//     authenticator: pages need an analyst (or admin) token's session;
//     the login page and static assets are public. Without credentials a
//     page answers 401 with the login form; with the wrong role 403 with
//     an explanation.
//   - Every page that reads the access ledger (alert detail, entity,
//     scope, incident report, the overview's clocks) appends an audit
//     entry naming the caller.
//   - Close ends the live streams, so the HTTP server can shut down.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/report"
	"github.com/haechi-sec/haechi/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Store is what the console reads and writes.
type Store interface {
	ListAlerts(ctx context.Context, q store.AlertQuery) ([]event.Alert, error)
	GetAlert(ctx context.Context, id string) (event.Alert, error)
	ListActions(ctx context.Context, q store.ActionQuery) ([]store.Action, error)
	GetAction(ctx context.Context, id string) (store.Action, error)
	DecideAction(ctx context.Context, id string, approve bool, by, note string, now time.Time) (store.Action, error)
	AddFeedback(ctx context.Context, f store.Feedback) (store.Feedback, error)
	ListFeedback(ctx context.Context, alertID string) ([]store.Feedback, error)
	AppendAudit(ctx context.Context, t time.Time, kind, actionID string, detail any) error
	ledger.Reader
}

// SeriesSource adds series to an entity's charts (a risk engine's score
// and baseline, peers' activity): called with the entity and the window.
type SeriesSource func(ctx context.Context, e event.EntityKey, from, to time.Time) ([]Series, error)

// Options configure New.
type Options struct {
	Store Store
	// FeedbackSuppression is how long a false-positive verdict suppresses
	// the alert's entity's findings of the kinds it held (0 → it does not).
	FeedbackSuppression time.Duration
	// Auth is the API server's authenticator (nil: auth is off, no login).
	Auth *auth.Authenticator
	// Hub delivers live alert changes (nil → a hub nobody feeds).
	Hub *Hub
	// Gatherer is the process's metrics (event rate, lag, detectors).
	Gatherer prometheus.Gatherer
	// DataDir holds the last scorecard (ScorecardFile).
	DataDir string
	// Regimes are the regulators' clocks (nil → report.DefaultRegimes).
	Regimes []report.Regime
	// OnApprove is called after an approval so delivery starts at once.
	OnApprove func()
	// EntitySeries add series to the entity page's activity chart.
	EntitySeries []SeriesSource
	// LiveInterval is how often live streams send stats (0 → 2s).
	LiveInterval time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// Console serves the pages.
type Console struct {
	opts  Options
	pages map[string]*template.Template
	stats *sampler
	done  chan struct{}
	close sync.Once

	clockMu sync.Mutex
	clocks  map[string]cachedClocks
}

type cachedClocks struct {
	at     time.Time
	report *report.Report
}

// New builds the console, parsing its templates.
func New(opts Options) (*Console, error) {
	if opts.Store == nil {
		return nil, errors.New("console: no store")
	}
	if opts.Hub == nil {
		opts.Hub = NewHub()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Regimes == nil {
		opts.Regimes = report.DefaultRegimes()
	}
	if opts.LiveInterval <= 0 {
		opts.LiveInterval = 2 * time.Second
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	return &Console{opts: opts, pages: pages, stats: &sampler{g: opts.Gatherer, now: opts.Now},
		done: make(chan struct{}), clocks: map[string]cachedClocks{}}, nil
}

// pageNames are the templates, each rendered inside layout.html.
var pageNames = []string{"overview", "alerts", "alert", "entity", "scope", "scorecard", "login", "error"}

func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, n := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		out[n] = t
	}
	return out, nil
}

// Mounter is where Register mounts the pages (the API server).
type Mounter interface {
	Handle(pattern string, need auth.Need, h http.Handler, deny auth.DenyFunc)
}

// Register mounts the console's routes on m.
func (c *Console) Register(m Mounter) {
	page := func(pattern string, need auth.Need, h http.HandlerFunc) { m.Handle(pattern, need, h, c.deny) }
	page("GET /{$}", auth.NeedAnalyst, c.overview)
	page("GET /alerts", auth.NeedAnalyst, c.alerts)
	page("GET /alerts/{id}", auth.NeedAnalyst, c.alert)
	page("GET /alerts/{id}/report", auth.NeedAnalyst, c.report)
	page("POST /alerts/{id}/feedback", auth.NeedAnalyst, c.feedback)
	page("POST /actions/{id}/{decision}", auth.NeedAnalyst, c.decide)
	page("GET /entities/{kind}/{id...}", auth.NeedAnalyst, c.entity)
	page("GET /scope", auth.NeedAnalyst, c.scope)
	page("GET /scorecard", auth.NeedAnalyst, c.scorecard)
	page("GET /live", auth.NeedAnalyst, c.live)
	page("GET /login", auth.NeedPublic, c.loginPage)
	page("POST /login", auth.NeedPublic, c.login)
	page("POST /logout", auth.NeedAny, c.logout)
	// Anything else: a page that says so (JSON under /v1/), still behind
	// the login, so unknown addresses reveal nothing.
	page("GET /", auth.NeedAnalyst, c.notFound)
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", auth.NeedPublic, http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))), nil)
}

// Close ends the live streams.
func (c *Console) Close() { c.close.Do(func() { close(c.done) }) }

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string
	Caller  auth.Caller
	Auth    bool // auth is on (there is a session to log out of)
	CSRF    string
	Flash   string
	Now     time.Time
	Live    bool // the page listens to the live stream
	Data    any
	Version string
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, v view) {
	v.Now = c.opts.Now().UTC()
	v.Caller, _ = auth.CallerFrom(r.Context())
	v.Auth = c.opts.Auth != nil
	v.CSRF = auth.CSRFToken(r.Context())
	if v.Flash == "" {
		v.Flash = flashes[r.URL.Query().Get("done")]
	}
	var b strings.Builder
	if err := c.pages[name].Execute(&b, v); err != nil {
		c.opts.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "the console could not render this page ("+err.Error()+"); this is a bug, please report it", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	pageHeaders(h, pageCSP)
	w.WriteHeader(code)
	_, _ = fmt.Fprint(w, b.String())
}

// pageCSP is the console pages' Content-Security-Policy: their own
// scripts, styles and images only.
const pageCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'"

// pageHeaders sets the headers every page the console serves carries —
// its own pages and the incident reports: never cached, never sniffed as
// another type, never framed, no referrer elsewhere, and csp.
func pageHeaders(h http.Header, csp string) {
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", csp)
}

var flashes = map[string]string{
	"approved": "Action approved: it is being delivered now.",
	"rejected": "Action rejected.",
	"feedback": "Verdict recorded (and written to the audit log).",
}

// errorView is the error page's data.
type errorView struct {
	Code    int
	Message string
	What    string // what to do about it
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, code int, msg, what string) {
	c.render(w, r, code, "error", view{Title: http.StatusText(code), Data: errorView{Code: code, Message: msg, What: what}})
}

// deny answers a refused page: the login form for 401, an explanation
// for 403.
func (c *Console) deny(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if code == http.StatusUnauthorized {
		next := r.URL.RequestURI()
		if r.Method != http.MethodGet {
			next = "/"
		}
		c.render(w, r, code, "login", view{Title: "Log in", Data: loginView{Next: next, CSRF: c.opts.Auth.LoginCSRF(w, r), Error: loginMessage(msg)}})
		return
	}
	what := "Log in with a token that has the analyst or admin role (haechi tokens create --role analyst)."
	if strings.Contains(msg, "CSRF") || strings.Contains(msg, "origin") {
		what = "Go back, reload the page and submit the form again."
	}
	c.fail(w, r, code, msg, what)
}

func loginMessage(msg string) string {
	if strings.Contains(msg, "no credentials") {
		return ""
	}
	return msg
}

// audit appends an audit entry for a ledger read with the caller.
func (c *Console) audit(r *http.Request, kind string, detail map[string]any) {
	if cl, ok := auth.CallerFrom(r.Context()); ok {
		detail["by"], detail["token_id"] = cl.String(), cl.TokenID
	} else {
		detail["by"] = "console (auth off)"
	}
	detail["via"] = "console"
	if err := c.opts.Store.AppendAudit(context.WithoutCancel(r.Context()), c.opts.Now(), kind, "", detail); err != nil {
		c.opts.Logger.Error("console: audit", "kind", kind, "err", err)
	}
}

// by names the caller for decisions and feedback.
func by(r *http.Request) string {
	if cl, ok := auth.CallerFrom(r.Context()); ok {
		return cl.String()
	}
	return "console"
}

func alertURL(id string) string { return "/alerts/" + url.PathEscape(id) }

func entityURL(k event.EntityKey) string {
	return "/entities/" + url.PathEscape(string(k.Kind)) + "/" + url.PathEscape(k.ID)
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		auth.DenyJSON(w, r, http.StatusNotFound, "no such API route: "+r.URL.Path+" (see docs/ and README.md for the API)")
		return
	}
	c.fail(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".",
		"Check the address, or start from the overview; alerts, entities and scope are linked from there.")
}

// ---- overview ----

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
	BySeverity []sevCount
	ByState    []sevCount
	Total      int
	Capped     bool
	Recent     []event.Alert
	Stats      Stats
	Detectors  []detectorHealth
	Approvals  []store.Action
	Clocks     []runningClock
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
	if v.Approvals, err = c.opts.Store.ListActions(ctx, store.ActionQuery{State: store.ActionPendingApproval, Limit: 50}); err != nil {
		c.opts.Logger.Error("console: pending approvals", "err", err)
	}
	v.Clocks = c.runningClocks(r, alerts)
	c.render(w, r, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", Live: true, Data: v})
}

// clockAlerts is how many of the newest critical alerts the overview
// shows regulators' clocks for; clockTTL how long one report is reused.
const (
	clockAlerts = 3
	clockTTL    = 2 * time.Minute
)

// runningClocks returns the applicable deadlines still ahead (or just
// missed) for the newest critical alerts.
func (c *Console) runningClocks(r *http.Request, alerts []event.Alert) []runningClock {
	now := c.opts.Now()
	var out []runningClock
	n := 0
	for i := range alerts {
		a := &alerts[i]
		if a.Severity < event.SeverityCritical || n == clockAlerts {
			continue
		}
		n++
		rep := c.cachedReport(r, a.ID, now)
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

// ---- alerts list ----

type alertsView struct {
	Filter    AlertFilter
	FilterErr string
	Alerts    []event.Alert
	Scanned   int
	Capped    bool
	Detectors []string
	States    []string
	Kinds     []string
	Windows   []string
	Sevs      []string
}

func (c *Console) alerts(w http.ResponseWriter, r *http.Request) {
	v := alertsView{Kinds: []string{"principal", "source", "token", "key", "record"}, Windows: []string{"1h", "24h", "7d", "30d"},
		Sevs: []string{"low", "medium", "high", "critical"}}
	f, err := ParseAlertFilter(r.URL.Query())
	if err != nil {
		v.FilterErr = err.Error()
		f = AlertFilter{}
	}
	v.Filter = f
	all, err := c.opts.Store.ListAlerts(r.Context(), f.Query(c.opts.Now()))
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading alerts failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	v.Scanned, v.Capped = len(all), len(all) == store.MaxListLimit
	dets, states := map[string]bool{}, map[string]bool{}
	for i := range all {
		dets[all[i].Detector] = true
		states[string(all[i].State)] = true
		if f.Match(&all[i]) {
			v.Alerts = append(v.Alerts, all[i])
		}
	}
	v.Detectors, v.States = sortedKeys(dets), sortedKeys(states)
	code := http.StatusOK
	if v.FilterErr != "" {
		code = http.StatusBadRequest
	}
	c.render(w, r, code, "alerts", view{Title: "Alerts", Nav: "alerts", Live: true, Data: v})
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
	Pending  []store.Action
	Done     []store.Action
	Verdicts []string
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
	for _, a := range rep.Actions {
		if a.State == store.ActionPendingApproval {
			v.Pending = append(v.Pending, a)
		} else {
			v.Done = append(v.Done, a)
		}
	}
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
	format := r.URL.Query().Get("format")
	var b strings.Builder
	ctype := "text/html; charset=utf-8"
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
	// Audited once the report exists: a refused format read nothing.
	c.audit(r, "console_report_read", map[string]any{"alert_id": id, "records": scopeTotal(rep.Scope), "format": format})
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

func (c *Console) decide(w http.ResponseWriter, r *http.Request) {
	if !c.sameOriginPost(r) {
		c.fail(w, r, http.StatusForbidden, "This form was posted from another site.", "Use the console's own page.")
		return
	}
	id, decision := r.PathValue("id"), r.PathValue("decision")
	if decision != "approve" && decision != "reject" {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("Unknown decision %q.", decision), "Use the approve or reject button.")
		return
	}
	ctx := r.Context()
	act, err := c.opts.Store.GetAction(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no action %q.", id), "Reload the alert: the action list may have changed.")
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading the action failed: "+err.Error(), "Try again.")
		return
	}
	if cl, ok := auth.CallerFrom(ctx); ok && cl.Role != auth.RoleAdmin && act.NeedsAdmin() {
		c.fail(w, r, http.StatusForbidden, fmt.Sprintf("Action %s is held because of a %s.", act.Kind, act.Reason),
			"Deciding containment of a protected identity, key or network needs an admin; ask one to log in.")
		return
	}
	approve := decision == "approve"
	_, err = c.opts.Store.DecideAction(ctx, id, approve, by(r), strings.TrimSpace(r.PostFormValue("note")), c.opts.Now())
	switch {
	case errors.Is(err, store.ErrActionState):
		c.fail(w, r, http.StatusConflict, err.Error(), "Someone decided it already; reload the alert to see its state.")
		return
	case err != nil:
		c.fail(w, r, http.StatusInternalServerError, "Recording the decision failed: "+err.Error(), "Try again.")
		return
	}
	if approve && c.opts.OnApprove != nil {
		c.opts.OnApprove()
	}
	done := "rejected"
	if approve {
		done = "approved"
	}
	back := alertURL(act.AlertID)
	if act.AlertID == "" || r.PostFormValue("back") == "overview" {
		back = "/"
	}
	http.Redirect(w, r, back+"?done="+done+"#actions", http.StatusSeeOther)
}

// maxFindings is how many findings the alert page shows unless asked for
// all of them.
const maxFindings = 20

// ---- entity ----

type entityView struct {
	Entity    event.EntityKey
	Days      int
	From, To  time.Time
	Records   Chart
	Scores    Chart
	Alerts    []event.Alert
	HasLedger bool
	Total     int64
	ScopeURL  string
	Note      string
}

func (c *Console) entity(w http.ResponseWriter, r *http.Request) {
	e := event.EntityKey{Kind: event.EntityKind(r.PathValue("kind")), ID: r.PathValue("id")}
	switch e.Kind {
	case event.EntityPrincipal, event.EntitySigningKey, event.EntitySource, event.EntityToken, event.EntityRecord:
	default:
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("%q is not an entity kind.", e.Kind), "Entities are principal, key, token, source or record: /entities/principal/ID.")
		return
	}
	days := 30
	switch r.URL.Query().Get("days") {
	case "7":
		days = 7
	case "90":
		days = 90
	case "180":
		days = 180
	}
	ctx := r.Context()
	to := c.opts.Now().UTC()
	from := to.AddDate(0, 0, -days+1).Truncate(24 * time.Hour)
	v := entityView{Entity: e, Days: days, From: from, To: to}
	alerts, err := c.opts.Store.ListAlerts(ctx, store.AlertQuery{Entity: e, Limit: 200, WithFindings: true})
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading alerts failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	v.Alerts = alerts
	// Finding scores over time, one series per detector.
	byDet := map[string][]Point{}
	for _, a := range alerts {
		for _, f := range a.Findings {
			if f.Time.Before(from) {
				continue
			}
			byDet[f.Detector] = append(byDet[f.Detector], Point{T: f.Time, V: f.Score,
				Label: fmt.Sprintf("%s %s: score %.0f — %s", f.Detector, f.Time.UTC().Format("2006-01-02 15:04"), f.Score, f.Title)})
		}
	}
	v.Scores = Chart{Title: "Finding scores over time", YLabel: "score", From: from, To: to, YMax: 100,
		Empty: "No findings about this entity in this window."}
	for _, d := range sortedKeys(boolKeys(byDet)) {
		v.Scores.Series = append(v.Scores.Series, Series{Name: d, Style: "dots", Points: byDet[d]})
	}
	// The entity's risk when each of its alerts was raised (the alert
	// stage adds findings up per entity; docs/alerts.md).
	var risk []Point
	for _, a := range alerts {
		if a.Time.Before(from) || a.Risk == 0 {
			continue
		}
		risk = append(risk, Point{T: a.Time, V: a.Risk,
			Label: fmt.Sprintf("%s: risk %.0f — %s", a.Time.UTC().Format("2006-01-02 15:04"), a.Risk, a.Title)})
		v.Scores.YMax = max(v.Scores.YMax, a.Risk)
	}
	if len(risk) > 0 {
		slices.SortFunc(risk, func(x, y Point) int { return x.T.Compare(y.T) })
		v.Scores.Title = "Finding scores and risk over time"
		v.Scores.Series = append(v.Scores.Series, Series{Name: "risk at alert", Style: "line", Points: risk, Class: "high"})
	}
	v.Records = Chart{Title: "Records touched per day", YLabel: "records", From: from.Add(-12 * time.Hour), To: to.Truncate(24 * time.Hour).Add(12 * time.Hour),
		Empty: "The access ledger has no records touched by this entity in this window."}
	if dim, ok := ledger.OfEntity(e.Kind); ok {
		v.HasLedger = true
		pts, total, err := recordsPerDay(ctx, c.opts.Store, dim, e.ID, from, to)
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, "Reading the access ledger failed: "+err.Error(), "Check the server's log; then reload.")
			return
		}
		c.audit(r, "console_entity_ledger_read", map[string]any{"entity": e.String(), "days": days, "records": total})
		v.Total = total
		v.Records.Series = append(v.Records.Series, Series{Name: "records touched", Style: "bars", Points: pts})
		if base := ownBaseline(pts, 7); len(base) > 0 {
			v.Records.Series = append(v.Records.Series, Series{Name: "own baseline (median of the 7 days before)", Style: "line", Points: base})
		}
		q := url.Values{string(dim): {e.ID}, "from": {from.Format("2006-01-02")}, "to": {to.Format("2006-01-02")}}
		v.ScopeURL = "/scope?" + q.Encode()
	} else {
		v.Note = fmt.Sprintf("The access ledger is kept by principal, key, source, network and country; a %s has no records-per-day chart.", e.Kind)
	}
	for _, src := range c.opts.EntitySeries {
		ss, err := src(ctx, e, from, to)
		if err != nil {
			c.opts.Logger.Warn("console: entity series", "entity", e.String(), "err", err)
			continue
		}
		v.Scores.Series = append(v.Scores.Series, ss...)
	}
	c.render(w, r, http.StatusOK, "entity", view{Title: e.String(), Nav: "alerts", Data: v})
}

func boolKeys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// recordsPerDay counts, per UTC day, the distinct records (of every type)
// value of dim touched, from the ledger; total is over the whole window.
// ownBaseline is, for each day with activity, the median of the entity's
// records per day over the window days before it (days without activity
// count as 0) — the entity's own baseline, drawn against what it did.
func ownBaseline(pts []Point, window int) []Point {
	if len(pts) == 0 {
		return nil
	}
	byDay := map[int64]float64{}
	for _, p := range pts {
		byDay[ledger.Day(p.T)] = p.V
	}
	var out []Point
	for _, p := range pts {
		d := ledger.Day(p.T)
		vals := make([]float64, 0, window)
		for k := d - int64(window); k < d; k++ {
			vals = append(vals, byDay[k])
		}
		slices.Sort(vals)
		m := vals[len(vals)/2]
		if len(vals)%2 == 0 {
			m = (vals[len(vals)/2-1] + vals[len(vals)/2]) / 2
		}
		out = append(out, Point{T: p.T, V: m, Label: fmt.Sprintf("%s: own median of the %d days before %.0f", p.T.Format("2006-01-02"), window, m)})
	}
	return out
}

func recordsPerDay(ctx context.Context, rd ledger.Reader, dim ledger.Dimension, value string, from, to time.Time) ([]Point, int64, error) {
	rows, err := rd.LedgerRows(ctx, string(dim), []string{value}, ledger.Day(from), ledger.Day(to))
	if err != nil {
		return nil, 0, err
	}
	perDay := map[int64]int64{}
	all := map[string]*roaring.Bitmap{}
	for _, row := range rows {
		if row.Field != "" {
			continue
		}
		bm := roaring.New()
		if _, err := bm.FromUnsafeBytes(row.Bitmap); err != nil {
			return nil, 0, fmt.Errorf("ledger row %s=%s day %d: %w", row.Dim, row.Value, row.Day, err)
		}
		perDay[row.Day] += int64(bm.GetCardinality())
		if all[row.RType] == nil {
			all[row.RType] = roaring.New()
		}
		all[row.RType].Or(bm)
	}
	var total int64
	for _, bm := range all {
		total += int64(bm.GetCardinality())
	}
	var pts []Point
	for d := ledger.Day(from); d <= ledger.Day(to); d++ {
		if n, ok := perDay[d]; ok {
			t := ledger.DayTime(d)
			pts = append(pts, Point{T: t, V: float64(n), Label: fmt.Sprintf("%s: %d records", t.Format("2006-01-02"), n)})
		}
	}
	return pts, total, nil
}

// ---- scope explorer ----

type scopeView struct {
	Dim, Value, From, To    string
	Dims                    []string
	Asked                   bool
	Err                     string
	Result                  *ledger.Result
	ByType, ByField         []kv
	ExportCSV, ExportNDJSON template.URL // the API's exports of this scope
}

type kv struct {
	K string
	V int64
}

func sortedKV(m map[string]int64) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].V > out[j].V || out[i].V == out[j].V && out[i].K < out[j].K })
	return out
}

func (c *Console) scope(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := scopeView{Dims: []string{"key", "principal", "source", "network", "country"}, From: q.Get("from"), To: q.Get("to")}
	// The form sends dim + value; links from other pages send key=… etc.
	vals := url.Values{}
	if d, val := q.Get("dim"), strings.TrimSpace(q.Get("value")); d != "" || val != "" {
		v.Dim, v.Value = d, val
		if !ledger.Dimension(d).Valid() {
			v.Err = fmt.Sprintf("choose what to scope by: key, principal, source, network or country (got %q)", d)
		} else if val == "" {
			v.Err = "say whose scope: enter a " + d
		}
		vals.Set(d, val)
	} else {
		for _, d := range v.Dims {
			if val := q.Get(d); val != "" {
				v.Dim, v.Value = d, val
				vals.Set(d, val)
				break
			}
		}
	}
	if v.Dim == "" {
		v.Dim = "key"
	}
	for _, k := range []string{"from", "to"} {
		if s := q.Get(k); s != "" {
			vals.Set(k, s)
		}
	}
	code := http.StatusOK
	if v.Value != "" && v.Err == "" {
		v.Asked = true
		lq, err := api.ScopeQuery(vals, nil)
		if err != nil {
			v.Err = err.Error()
		} else {
			res, err := ledger.Scope(r.Context(), c.opts.Store, lq)
			if err != nil {
				c.fail(w, r, http.StatusInternalServerError, "Reading the access ledger failed: "+err.Error(), "Check the server's log; then try again.")
				return
			}
			c.audit(r, "console_scope_read", map[string]any{"query": vals.Encode(), "records": res.Total})
			v.Result, v.ByType, v.ByField = res, sortedKV(res.ByType), sortedKV(res.ByField)
			v.ExportCSV = template.URL("/v1/scope?" + vals.Encode() + "&export=csv")       // #nosec G203 -- a constant path and an encoded query
			v.ExportNDJSON = template.URL("/v1/scope?" + vals.Encode() + "&export=ndjson") // #nosec G203 -- a constant path and an encoded query
		}
	}
	if v.Err != "" {
		code = http.StatusBadRequest
	}
	c.render(w, r, code, "scope", view{Title: "Scope explorer", Nav: "scope", Data: v})
}

// ---- scorecard ----

type scorecardView struct {
	Saved SavedScorecard
	Card  Scorecard
	Have  bool
	Err   string
}

func (c *Console) scorecard(w http.ResponseWriter, r *http.Request) {
	var v scorecardView
	var err error
	if c.opts.DataDir != "" {
		v.Saved, v.Have, err = LoadScorecard(c.opts.DataDir)
		if err == nil && v.Have {
			if err = json.Unmarshal(v.Saved.Scorecard, &v.Card); err != nil {
				v.Have = false
				err = fmt.Errorf("read scorecard: %w", err)
			}
		}
		if err != nil {
			v.Err = err.Error()
		}
	}
	c.render(w, r, http.StatusOK, "scorecard", view{Title: "Scorecard", Nav: "scorecard", Data: v})
}

// ---- login ----

type loginView struct {
	Next  string
	CSRF  string
	Error string
}

// safeNext keeps a post-login redirect on this site: it returns s when s
// is a path on this site ("/…") that no browser could read as another
// origin, and "/" otherwise. Refused: anything not starting with one "/";
// a backslash, space or control character anywhere (browsers drop tabs
// and newlines and read "\" as "/", so "/<tab>/host" and "/\host" are
// "//host"); and a value whose percent-decodings (once, twice, … as long
// as they decode) start with "//" or "/\" or hold a control character.
func safeNext(s string) string {
	if !nextPathOK(s) || strings.ContainsAny(s, "\\ ") {
		return "/"
	}
	d := s
	for i := range 4 {
		if !strings.Contains(d, "%") {
			return s
		}
		u, err := url.PathUnescape(d)
		if err != nil {
			if i == 0 {
				return "/" // no page of ours has a malformed escape
			}
			return s // a literal "%" (an encoded "%25"): d is its last form
		}
		if d = u; !nextPathOK(d) {
			return "/"
		}
	}
	return "/" // still encoded after four rounds: no page has such a path
}

// nextPathOK reports whether p starts with exactly one "/" (not "//" or
// "/\") and holds no control character.
func nextPathOK(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return false
	}
	return !strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.opts.Auth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", view{Title: "Log in", Data: loginView{Next: safeNext(r.URL.Query().Get("next")), CSRF: c.opts.Auth.LoginCSRF(w, r)}})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.opts.Auth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := safeNext(r.PostFormValue("next"))
	if !auth.CheckLoginCSRF(r) {
		c.render(w, r, http.StatusForbidden, "login", view{Title: "Log in", Data: loginView{Next: next, CSRF: c.opts.Auth.LoginCSRF(w, r),
			Error: "The login form expired or was posted from another site. Enter the token again."}})
		return
	}
	if _, err := c.opts.Auth.Login(w, r, r.PostFormValue("token")); err != nil {
		code, msg := http.StatusUnauthorized, "That token is not valid (mistyped, or revoked). Tokens start with hch_; create one with: haechi tokens create --role analyst"
		var te *auth.ThrottleError
		switch {
		case errors.As(err, &te):
			secs := int((te.RetryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			code, msg = http.StatusTooManyRequests, fmt.Sprintf("Too many refused logins from your address. Try again in %d seconds.", secs)
		case errors.Is(err, auth.ErrLoginRole):
			code, msg = http.StatusForbidden, "This is an ingest token: it may only post events. Log in with an analyst or admin token."
		case !errors.Is(err, auth.ErrBadToken):
			code, msg = http.StatusInternalServerError, "Logging in failed: "+err.Error()
		}
		c.render(w, r, code, "login", view{Title: "Log in", Data: loginView{Next: next, CSRF: c.opts.Auth.LoginCSRF(w, r), Error: msg}})
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther) // #nosec G710 -- next passed safeNext: a path on this origin
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if c.opts.Auth != nil {
		c.opts.Auth.Logout(w, r)
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// ---- template functions ----

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"day": func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"iso": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"ago":       ago,
	"left":      left,
	"alertURL":  alertURL,
	"entityURL": entityURL,
	"sev":       func(s event.Severity) string { return s.String() },
	"num":       fmtNum,
	"score":     func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"figure":    func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) },
	"rate": func(f float64) string {
		if f < 0 {
			return "…"
		}
		return fmt.Sprintf("%.0f/s", f)
	},
	"secs": func(f float64) string {
		if f < 1 {
			return fmt.Sprintf("%.0f ms", f*1000)
		}
		return fmt.Sprintf("%.1f s", f)
	},
	"ttd": func(p *float64) string {
		if p == nil {
			return "—"
		}
		return humanSeconds(*p)
	},
	"pct": func(a, b int) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
	},
	"detected": func(sc Scorecard) int {
		n := 0
		for _, s := range sc.Scenarios {
			if s.Detected {
				n++
			}
		}
		return n
	},
	"query": func(v url.Values) string { return v.Encode() },
	"sel": func(a, b string) template.HTMLAttr {
		if a == b {
			return "selected"
		}
		return ""
	},
	"ledgerHint": func(k event.EntityKind) string { d, _ := ledger.OfEntity(k); return string(d) },
	"deref": func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	},
}

// ago renders how long before now t was ("3 min ago"), or "never".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + roundDur(-d)
	case d < time.Minute:
		return "just now"
	}
	return roundDur(d) + " ago"
}

// left renders a remaining duration ("5 h 12 min left", "overdue by 2 h").
func left(d time.Duration) string {
	if d < 0 {
		return "overdue by " + roundDur(-d)
	}
	return roundDur(d) + " left"
}

// humanSeconds renders a time to detect: "instant", "42 s", "3 min 5 s",
// "2 h 10 min", "3 d 4 h".
func humanSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return "instant"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d d %d h", int(d.Hours()/24), int(d.Hours())%24)
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
