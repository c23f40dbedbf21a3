package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/console"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident/track"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/report"
	"github.com/haechi-sec/haechi/internal/store"
)

// now is the fixture's wall clock.
var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type env struct {
	st                     *store.Store
	srv                    *api.Server
	cons                   *console.Console
	hub                    *console.Hub
	authn                  *auth.Authenticator
	ingest, analyst, admin string
	dataDir                string
}

// newEnv builds the API with the console mounted, on a store holding two
// alerts (one critical about key k-1, one about principal e:7), a pending
// action, a protected pending action and ledger rows for k-1; the store
// keeps incidents (here one per alert).
func newEnv(t *testing.T, withAuth bool, opts ...func(*auth.Options)) *env {
	t.Helper()
	return newEnvWith(t, withAuth, nil, opts...)
}

// newEnvWith is newEnv with the console's options changed by cons.
func newEnvWith(t *testing.T, withAuth bool, cons func(*console.Options), opts ...func(*auth.Options)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	// The store keeps incidents as alerts are saved, as serve's does.
	st, err := store.Open(ctx, dir, store.Options{Incidents: track.New(track.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{st: st, dataDir: dir, hub: console.NewHub()}
	for _, x := range []struct {
		role auth.Role
		dst  *string
	}{{auth.RoleIngest, &e.ingest}, {auth.RoleAnalyst, &e.analyst}, {auth.RoleAdmin, &e.admin}} {
		if *x.dst, _, err = auth.CreateToken(ctx, st, x.role, string(x.role)+" user", now); err != nil {
			t.Fatal(err)
		}
	}
	alerts := []event.Alert{
		{ID: "al-crit", Time: now.Add(-2 * time.Hour), Entity: event.EntityKey{Kind: event.EntitySigningKey, ID: "k-1"},
			Severity: event.SeverityCritical, Score: 95, Risk: 95, Title: "Token used but never minted", Explanation: "Key k-1 signed a token nobody minted.",
			State: event.AlertOpen, Detector: "token_provenance", FindingCount: 1, LastTime: now.Add(-2 * time.Hour),
			Findings: []event.Finding{{Detector: "token_provenance", Kind: "token_never_minted", Title: "Token used but never minted",
				Entity: event.EntityKey{Kind: event.EntitySigningKey, ID: "k-1"}, Time: now.Add(-2 * time.Hour), Score: 95,
				Severity: event.SeverityCritical, Explanation: "Token t-9 signed by k-1 was never minted <b>.", Evidence: []string{"req-1:3"},
				Contribution: 95, Figures: []event.Figure{{Name: "minted_tokens_known", Value: 1234.5}}}}},
		{ID: "al-low", Time: now.Add(-time.Hour), Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:7"},
			Severity: event.SeverityMedium, Score: 50, Title: "Off-hours lookup", Explanation: "e:7 read records at 03:00.",
			State: event.AlertOpen, Detector: "off_hours", FindingCount: 0},
	}
	if err := st.SaveAlerts(ctx, alerts); err != nil {
		t.Fatal(err)
	}
	if _, err := st.InsertActions(ctx, []store.Action{
		{ID: "act-1", Kind: "revoke_key", Target: "k-1", AlertID: "al-crit", State: store.ActionPendingApproval, Reason: "rate limit: 0 revoke_key actions", CreatedAt: now},
		{ID: "act-2", Kind: "disable_identity", Target: "e:ceo", AlertID: "al-crit", State: store.ActionPendingApproval, Reason: "protected principal e:ceo", Hold: store.HoldProtected, CreatedAt: now},
	}, now); err != nil {
		t.Fatal(err)
	}
	bm := roaring.BitmapOf(1, 2, 3, 4, 5)
	b, _ := bm.ToBytes()
	day := ledger.Day(now.Add(-2 * time.Hour))
	if err := st.MergeLedger(ctx, nil, []store.LedgerRow{
		{Dim: string(ledger.Key), Value: "k-1", Day: day, RType: "customer", Field: "", Bitmap: b, First: now.Add(-3 * time.Hour).UnixNano(), Last: now.Add(-2 * time.Hour).UnixNano()},
		{Dim: string(ledger.Key), Value: "k-1", Day: day, RType: "customer", Field: "email", Bitmap: b, First: now.Add(-3 * time.Hour).UnixNano(), Last: now.Add(-2 * time.Hour).UnixNano()},
	}); err != nil {
		t.Fatal(err)
	}
	var authn *auth.Authenticator
	if withAuth {
		o := auth.Options{Store: st, Now: func() time.Time { return now }}
		for _, fn := range opts {
			fn(&o)
		}
		authn = auth.New(o)
		e.authn = authn
	}
	reg := prometheus.NewRegistry()
	e.srv = api.New(api.Options{Ingest: func([]event.Event) error { return nil }, Alerts: st, Scope: st, Actions: st, Triage: st, Findings: st, Incidents: st,
		Gatherer: reg, Auth: authn, Audit: st.AppendAudit, Now: func() time.Time { return now }})
	co := console.Options{Store: st, Auth: authn, Hub: e.hub, Gatherer: reg, DataDir: dir, Now: func() time.Time { return now }}
	if cons != nil {
		cons(&co)
	}
	e.cons, err = console.New(co)
	if err != nil {
		t.Fatal(err)
	}
	e.cons.Register(e.srv)
	t.Cleanup(e.cons.Close)
	return e
}

// path turns a mux pattern into a request: wildcards get sample values.
func path(pattern string) (method, p string) {
	method, p, ok := strings.Cut(pattern, " ")
	if !ok {
		method, p = "GET", pattern
	}
	p = strings.TrimSuffix(p, "{$}")
	p = regexp.MustCompile(`\{[a-z]+\.\.\.\}`).ReplaceAllString(p, "a/b")
	p = regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(p, "x")
	if strings.HasSuffix(p, "/") && p != "/" {
		p += "console.css"
	}
	return method, p
}

func (e *env) do(t *testing.T, method, p, token string, body url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body != nil {
		r = httptest.NewRequest(method, p, strings.NewReader(body.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, p, nil)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w
}

// TestEveryRouteNeedsAToken enumerates every route of the server (API and
// console): without credentials each answers 401, except the health check
// and what logging in needs.
func TestEveryRouteNeedsAToken(t *testing.T) {
	e := newEnv(t, true)
	public := map[string]bool{"GET /healthz": true, "GET /login": true, "POST /login": true, "GET /static/": true}
	seenPublic := map[string]bool{}
	routes := e.srv.Routes()
	if len(routes) < 25 {
		t.Fatalf("only %d routes registered", len(routes))
	}
	for _, r := range routes {
		if r.Need == auth.NeedPublic {
			if !public[r.Pattern] {
				t.Errorf("route %q is public; only %v may be", r.Pattern, public)
			}
			seenPublic[r.Pattern] = true
			continue
		}
		method, p := path(r.Pattern)
		w := e.do(t, method, p, "", nil)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s (%s) without a token: %d, want 401", method, p, r.Pattern, w.Code)
		}
		if w := e.do(t, method, p, "hch_"+strings.Repeat("A", 43), nil); w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s with an unknown token: %d, want 401", method, p, w.Code)
		}
	}
	if len(seenPublic) != len(public) {
		t.Errorf("public routes %v, want %v", seenPublic, public)
	}
	if w := e.do(t, "GET", "/healthz", "", nil); w.Code != http.StatusOK {
		t.Errorf("/healthz: %d", w.Code)
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t, true)
	for _, c := range []struct {
		method, path, who string
		want              int
	}{
		{"GET", "/v1/alerts", "ingest", 403}, // an ingest token cannot read alerts
		{"GET", "/v1/alerts/al-crit", "ingest", 403},
		{"GET", "/", "ingest", 403},
		{"GET", "/v1/scope?key=k-1", "ingest", 403},
		{"POST", "/v1/events", "ingest", 200},
		{"GET", "/metrics", "ingest", 200},
		{"POST", "/v1/events", "analyst", 403},
		{"GET", "/v1/alerts", "analyst", 200},
		{"GET", "/", "analyst", 200},
		{"POST", "/v1/actions/act-2/approve", "analyst", 403}, // protected: admin only
		{"POST", "/v1/actions/act-1/approve", "analyst", 200},
		{"POST", "/v1/actions/act-2/approve", "admin", 200},
	} {
		tok := map[string]string{"ingest": e.ingest, "analyst": e.analyst, "admin": e.admin}[c.who]
		if w := e.do(t, c.method, c.path, tok, nil); w.Code != c.want {
			t.Errorf("%s %s as %s: %d, want %d (%s)", c.method, c.path, c.who, w.Code, c.want, w.Body)
		}
	}
	// The decision names the caller.
	recs, _ := e.st.AuditLog(context.Background(), 0, 1000)
	found := false
	for _, r := range recs {
		if r.Kind == "approved" && r.ActionID == "act-1" && strings.Contains(string(r.Detail), "analyst user (tok-") {
			found = true
		}
	}
	if !found {
		t.Error("the approval's audit entry does not name the analyst's token")
	}
}

// login logs in through the form and returns the session cookie and the
// page's CSRF token.
func (e *env) login(t *testing.T, token string) (*http.Cookie, string) {
	t.Helper()
	w := e.do(t, "GET", "/login", "", nil)
	pre := w.Result().Cookies()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(w.Body.String())
	if len(pre) == 0 || m == nil {
		t.Fatalf("login page without CSRF cookie or field:\n%s", w.Body)
	}
	w = e.do(t, "POST", "/login", "", url.Values{"token": {token}, "csrf": {m[1]}, "next": {"/alerts"}}, pre...)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/alerts" {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	var sess *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == auth.SessionCookie {
			sess = c
		}
	}
	if sess == nil {
		t.Fatal("no session cookie")
	}
	w = e.do(t, "GET", "/alerts/al-crit", "", nil, sess)
	m = regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(w.Body.String())
	if w.Code != 200 || m == nil {
		t.Fatalf("alert page after login: %d", w.Code)
	}
	return sess, m[1]
}

func TestFormsNeedCSRF(t *testing.T) {
	e := newEnv(t, true)
	sess, csrf := e.login(t, e.analyst)
	for _, p := range []string{"/alerts/al-crit/feedback", "/actions/act-1/approve", "/actions/act-1/reject", "/logout", "/v1/actions/act-1/approve"} {
		if w := e.do(t, "POST", p, "", url.Values{"verdict": {"benign"}, "note": {"x"}}, sess); w.Code != http.StatusForbidden {
			t.Errorf("POST %s with the session but no CSRF token: %d, want 403", p, w.Code)
		}
	}
	if a, _ := e.st.GetAction(context.Background(), "act-1"); a.State != store.ActionPendingApproval {
		t.Fatalf("a CSRF-less post changed the action: %s", a.State)
	}
	w := e.do(t, "POST", "/actions/act-1/approve", "", url.Values{"csrf": {csrf}}, sess)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("approve with the CSRF token: %d %s", w.Code, w.Body)
	}
	if a, _ := e.st.GetAction(context.Background(), "act-1"); a.State != store.ActionPlanned {
		t.Fatalf("approved action is %s", a.State)
	}
	// An analyst cannot approve a protected entity's containment.
	if w := e.do(t, "POST", "/actions/act-2/approve", "", url.Values{"csrf": {csrf}}, sess); w.Code != http.StatusForbidden {
		t.Errorf("analyst approving a protected action: %d, want 403", w.Code)
	}
	// A false positive needs a reason; with one it is recorded.
	if w := e.do(t, "POST", "/alerts/al-crit/feedback", "", url.Values{"csrf": {csrf}, "verdict": {"false_positive"}}, sess); w.Code != http.StatusBadRequest {
		t.Errorf("false positive without a reason: %d", w.Code)
	}
	if w := e.do(t, "POST", "/alerts/al-crit/feedback", "", url.Values{"csrf": {csrf}, "verdict": {"false_positive"}, "note": {"sanctioned test"}}, sess); w.Code != http.StatusSeeOther {
		t.Errorf("false positive with a reason: %d %s", w.Code, w.Body)
	}
	fb, _ := e.st.ListFeedback(context.Background(), "al-crit")
	if len(fb) != 1 || fb[0].Verdict != "false_positive" || !strings.Contains(fb[0].By, "analyst user") {
		t.Errorf("feedback = %+v", fb)
	}
}

// TestPages renders every page and checks what it must say.
func TestPages(t *testing.T) {
	e := newEnv(t, true)
	sess, _ := e.login(t, e.analyst)
	for _, c := range []struct {
		path string
		code int
		want []string
		not  []string
	}{
		{"/", 200, []string{"Overview", `data-sev-count="critical">1<`, "Token used but never minted", "revoke_key", "Korea Network Act", "token_provenance"}, nil},
		{"/alerts", 200, []string{"Off-hours lookup", "Token used but never minted", `id="live-alerts"`}, nil},
		{"/alerts?severity=critical", 200, []string{"Token used but never minted"}, []string{"Off-hours lookup"}},
		{"/alerts?kind=principal", 200, []string{"Off-hours lookup"}, []string{"never minted</a>"}},
		{"/alerts?severity=urgent", 400, []string{"severity: unknown severity"}, nil},
		{"/alerts?window=24h&detector=nobody", 200, []string{"No alerts match"}, nil},
		{"/alerts/al-crit", 200, []string{`id="explanation"`, "Key k-1 signed a token nobody minted.", "never minted &lt;b&gt;.", "req-1:3",
			`action="/actions/act-1/approve"`, "<b>5</b> distinct records", "EU GDPR Art. 33", "incident report",
			`id="risk">95`, "+95 risk", "minted_tokens_known <b>1234.5</b>"}, []string{"<b>.</b>"}},
		{"/alerts/nope", 404, []string{"There is no alert", "What to do"}, nil},
		{"/alerts/al-crit/report", 200, []string{"Incident report"}, nil},
		{"/alerts/al-crit/report?format=md", 200, []string{"# Incident report"}, nil},
		{"/entities/key/k-1", 200, []string{`<svg class="chart"`, "Records touched per day", "5 distinct records", "<rect x="}, nil},
		{"/entities/principal/e:7", 200, []string{"The access ledger has no records", "Off-hours lookup"}, nil},
		{"/entities/token/t-9", 200, []string{"The access ledger has no records touched by this entity", "/scope?from="}, []string{"has no records-per-day chart"}},
		{"/entities/record/r-1", 200, []string{"a record has no records-per-day chart"}, nil},
		{"/entities/planet/x", 404, []string{"not an entity kind"}, nil},
		{"/scope", 200, []string{"Choose a dimension"}, nil},
		{"/scope?dim=key&value=k-1", 200, []string{"<b>5</b> distinct records", "email", "export=csv"}, nil},
		{"/scope?key=k-1", 200, []string{"<b>5</b> distinct records"}, nil},
		{"/scope?dim=key&value=nobody", 200, []string{"no record touched"}, nil},
		{"/scope?dim=key&value=ASIA3EXAMPLEINST1KEY", 200, []string{"no record touched", "Hint: key selects signing keys (token.key_id); ASIA3EXAMPLEINST1KEY looks like an access key id"}, nil},
		{"/scope?dim=token&value=nobody", 200, []string{"no record touched by this token"}, nil},
		{"/scope?dim=planet&value=x", 400, []string{"choose what to scope by"}, nil},
		{"/scorecard", 200, []string{"No scorecard yet"}, nil},
		{"/no/such/page", 404, []string{"There is no page at /no/such/page", "What to do"}, nil},
		{"/v1/nothing", 404, []string{`"error":"no such API route`}, nil},
	} {
		w := e.do(t, "GET", c.path, "", nil, sess)
		body := w.Body.String()
		if w.Code != c.code {
			t.Errorf("GET %s: %d, want %d", c.path, w.Code, c.code)
		}
		for _, s := range c.want {
			if !strings.Contains(body, s) {
				t.Errorf("GET %s lacks %q", c.path, s)
			}
		}
		for _, s := range c.not {
			if strings.Contains(body, s) {
				t.Errorf("GET %s has %q", c.path, s)
			}
		}
	}
	// Ledger reads are audited with the caller.
	recs, _ := e.st.AuditLog(context.Background(), 0, 1000)
	kinds := map[string]bool{}
	for _, r := range recs {
		if strings.Contains(string(r.Detail), "analyst user") {
			kinds[r.Kind] = true
		}
	}
	for _, k := range []string{"console_alert_scope_read", "console_entity_ledger_read", "console_scope_read", "console_report_read", "console_clocks_read"} {
		if !kinds[k] {
			t.Errorf("no %s audit entry naming the analyst (have %v)", k, kinds)
		}
	}
	// The API's export is audited too.
	if w := e.do(t, "GET", "/v1/scope?key=k-1&export=csv", e.analyst, nil); w.Code != 200 || strings.Count(w.Body.String(), "\n") != 6 {
		t.Fatalf("export: %d\n%s", w.Code, w.Body)
	}
	recs, _ = e.st.AuditLog(context.Background(), 0, 1000)
	if last := recs[len(recs)-1]; last.Kind != "scope_export" || !strings.Contains(string(last.Detail), "analyst user") {
		t.Errorf("last audit entry %s %s, want scope_export by the analyst", last.Kind, last.Detail)
	}
}

// The incident report is served with the pages' protective headers (its
// CSP allowing only its own inline style sheet), its Markdown escapes the
// finding's "<b>", and a refused format is not audited as a report read.
func TestReportHeaders(t *testing.T) {
	e := newEnv(t, true)
	sess, _ := e.login(t, e.analyst)
	for _, path := range []string{"/alerts/al-crit/report", "/alerts/al-crit/report?format=md"} {
		w := e.do(t, "GET", path, "", nil, sess)
		if w.Code != 200 {
			t.Fatalf("GET %s: %d", path, w.Code)
		}
		h := w.Header()
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
			"Cache-Control": "no-store", "Content-Security-Policy": report.HTMLContentSecurityPolicy()} {
			if got := h.Get(k); got != want {
				t.Errorf("GET %s: %s %q, want %q", path, k, got, want)
			}
		}
		if strings.HasSuffix(path, "md") && (strings.Contains(w.Body.String(), "<b>") || !strings.Contains(w.Body.String(), `never minted \<b\>.`)) {
			t.Errorf("GET %s: the finding's <b> is not escaped:\n%s", path, w.Body)
		}
	}
	before, _ := e.st.AuditLog(context.Background(), 0, 1000)
	if w := e.do(t, "GET", "/alerts/al-crit/report?format=bogus", "", nil, sess); w.Code != http.StatusBadRequest {
		t.Errorf("format=bogus: %d, want 400", w.Code)
	}
	after, _ := e.st.AuditLog(context.Background(), 0, 1000)
	if len(after) != len(before) {
		t.Errorf("a refused report format was audited: %s %s", after[len(after)-1].Kind, after[len(after)-1].Detail)
	}
}

func TestScorecardPage(t *testing.T) {
	e := newEnv(t, false)
	ttd := 42.0
	sc := map[string]any{"scenarios": []map[string]any{
		{"name": "ghost-key", "detected": true, "time_to_detect_seconds": ttd, "records_exposed_before_containment": 3, "records_touched": 40,
			"alerts": []map[string]any{{"id": "al-crit", "title": "Token used but never minted"}}},
		{"name": "cs-agent-snooping", "detected": false, "time_to_detect_seconds": nil, "records_touched": 11},
		{"name": "token-hijack", "detected": true, "time_to_detect_seconds": 0.0, "records_touched": 36, "records_exposed_before_containment": 14,
			"contained_by": "revoke_token", "contained_at": "2026-11-22T05:50:27Z"},
	}, "events": 23051, "identities": 50, "days": 2.0, "alerts": 3, "response": true}
	saved, err := console.NewSavedScorecard("eval", "seed 7", sc, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := console.SaveScorecard(e.dataDir, saved); err != nil {
		t.Fatal(err)
	}
	w := e.do(t, "GET", "/scorecard", "", nil)
	for _, s := range []string{"ghost-key", "42 s", "cs-agent-snooping", "2 of 3 scenarios detected", "seed 7", `href="/alerts/al-crit"`,
		"<td>revoke_token at 2026-11-22 05:50:27</td>", "over 23,051 events"} {
		if !strings.Contains(w.Body.String(), s) {
			t.Errorf("scorecard page lacks %q", s)
		}
	}
}

// TestInsecureNoAuth: without an authenticator the pages are served, but
// a form posted from another site is refused.
func TestInsecureNoAuth(t *testing.T) {
	e := newEnv(t, false)
	if w := e.do(t, "GET", "/alerts/al-crit", "", nil); w.Code != 200 || !strings.Contains(w.Body.String(), "auth off") {
		t.Fatalf("page without auth: %d", w.Code)
	}
	r := httptest.NewRequest("POST", "/actions/act-1/approve", strings.NewReader(""))
	r.Header.Set("Origin", "https://evil.example")
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("cross-site post without auth: %d, want 403", w.Code)
	}
}

func TestHub(t *testing.T) {
	h := console.NewHub()
	ch, cancel := h.Subscribe()
	a := event.Alert{ID: "al-1", Severity: event.SeverityHigh, Title: "x", Entity: event.EntityKey{Kind: "source", ID: "1.2.3.4"},
		Findings: []event.Finding{{Detector: "d", Time: now}}}
	h.Alert(alert.Raised, a)
	got := <-ch
	if got.ID != "al-1" || got.Change != "raised" || got.Severity != "high" || got.URL != "/alerts/al-1" {
		t.Fatalf("got %+v", got)
	}
	if h.LastFindings()["d"] != now {
		t.Errorf("last findings %v", h.LastFindings())
	}
	// A subscriber that does not read never blocks the pipeline.
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			h.Alert(alert.Updated, a)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Alert blocked on a slow subscriber")
	}
	cancel()
	cancel()
	if h.Subscribers() != 0 {
		t.Fatal("subscriber not removed")
	}
}

// TestLive reads the SSE stream: stats at once, then an alert as it is
// raised.
func TestLive(t *testing.T) {
	e := newEnv(t, false)
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	buf := make([]byte, 4096)
	read := func(want string) {
		t.Helper()
		var got strings.Builder
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(got.String(), want) && time.Now().Before(deadline) {
			n, err := resp.Body.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if !strings.Contains(got.String(), want) {
			t.Fatalf("stream lacks %q:\n%s", want, got.String())
		}
	}
	read("event: stats")
	for e.hub.Subscribers() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	e.hub.Alert(alert.Raised, event.Alert{ID: "al-new", Severity: event.SeverityCritical, Title: "Fresh", Entity: event.EntityKey{Kind: "key", ID: "k"}})
	read(`"id":"al-new"`)
	e.cons.Close() // shutdown ends the stream
}
