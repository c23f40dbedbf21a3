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
//     scope, incidents and an incident, the reports, the overview's
//     incidents and clocks) appends an audit entry naming the caller.
//   - Close ends the live streams, so the HTTP server can shut down.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	ListAlertFacets(ctx context.Context) (store.AlertFacets, error)
	GetAlert(ctx context.Context, id string) (event.Alert, error)
	ListActions(ctx context.Context, q store.ActionQuery) ([]store.Action, error)
	GetAction(ctx context.Context, id string) (store.Action, error)
	DecideAction(ctx context.Context, id string, approve bool, by, note string, now time.Time) (store.Action, error)
	AddFeedback(ctx context.Context, f store.Feedback) (store.Feedback, error)
	ListFeedback(ctx context.Context, alertID string) ([]store.Feedback, error)
	ListFindings(ctx context.Context, q store.FindingQuery) ([]store.ScoredFinding, string, error)
	AppendAudit(ctx context.Context, t time.Time, kind, actionID string, detail any) error
	ListIncidents(ctx context.Context, q store.IncidentQuery) ([]store.Incident, error)
	GetIncident(ctx context.Context, id string) (store.Incident, error)
	IncidentOfAlert(ctx context.Context, alertID string) (string, error)
	SetIncidentVerdict(ctx context.Context, v store.IncidentVerdict) (store.Incident, error)
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
	// Simulated, when set, says the data is simulated and how (the demo:
	// "14 simulated days played in 2m0s"): its event times do not follow
	// the wall clock, so the regulators' clocks are measured against the
	// simulated time — the pipeline's event-time watermark — and marked
	// simulated, never against now.
	Simulated string
	// Drills reads the continuous drills' latest verdicts for the
	// overview (nil: this process runs no drills, and the overview says
	// so).
	Drills func(ctx context.Context) ([]DrillStatus, error)
	// DrillFindings returns, per detector, how many of the findings the
	// detectors counted since start were about drill entities (nil:
	// none): detection health leaves them out, as the hub leaves out drill
	// alerts (Hub.SetDrill).
	DrillFindings func() map[string]float64

	Now    func() time.Time
	Logger *slog.Logger
}

// DrillStatus is one continuous drill as the overview shows it
// (docs/drills.md): its latest stored run and when it last passed.
type DrillStatus struct {
	Name string
	Kind string
	// Within is the drill's expected longest time to alert.
	Within time.Duration
	// Last is the latest stored run (nil: it has not run yet).
	Last *store.DrillRun
	// LastPassed is when the latest passed run among the stored ones
	// started (zero: none passed).
	LastPassed time.Time
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
var pageNames = []string{"overview", "incidents", "incident", "alerts", "alert", "entity", "scope", "scorecard", "login", "error"}

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
	page("GET /incidents", auth.NeedAnalyst, c.incidents)
	page("GET /incidents/{id}", auth.NeedAnalyst, c.incidentPage)
	page("GET /incidents/{id}/report", auth.NeedAnalyst, c.incidentReport)
	page("POST /incidents/{id}/verdict", auth.NeedAnalyst, c.incidentVerdict)
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
	"approved":         "Action approved: it is being delivered now.",
	"rejected":         "Action rejected.",
	"approved_group":   "Identical actions approved, each written to the audit log: they are being delivered now.",
	"rejected_group":   "Identical actions rejected, each written to the audit log.",
	"feedback":         "Verdict recorded (and written to the audit log).",
	"incident_verdict": "Incident state and verdict recorded (and written to the audit log).",
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
