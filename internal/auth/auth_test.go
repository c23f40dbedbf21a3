package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" for creating test schemas

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newStore opens a fresh store: SQLite, or — when HAECHI_TEST_POSTGRES
// names a server, as in CI — a schema of its own on PostgreSQL, so tokens
// and sessions are checked on both backends.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	target := t.TempDir()
	if dsn := os.Getenv("HAECHI_TEST_POSTGRES"); dsn != "" {
		target = pgSchema(t, dsn)
	}
	st, err := store.Open(context.Background(), target, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// pgSchema creates a schema for t on the server dsn names and returns
// dsn with search_path set to it; the schema is dropped when t ends.
func pgSchema(t *testing.T, dsn string) string {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "haechi_auth_" + hex.EncodeToString(b[:])
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("HAECHI_TEST_POSTGRES is set but PostgreSQL is unusable: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		db.Close()
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestTokenShapeAndHash(t *testing.T) {
	a, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := auth.NewToken()
	if a == b {
		t.Fatal("two tokens are equal")
	}
	if !strings.HasPrefix(a, auth.TokenPrefix) || !auth.WellFormed(a) {
		t.Fatalf("token %q is not well formed", a)
	}
	sum := sha256.Sum256([]byte(a))
	if got, want := auth.HashToken(a), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("HashToken = %s, want the hex SHA-256 %s", got, want)
	}
	if auth.HashToken(a) == auth.HashToken(b) {
		t.Fatal("two tokens hash alike")
	}
	for _, bad := range []string{"", "hch_", a[:len(a)-1], a + "A", "xyz_" + a[4:], a[:10] + "!" + a[11:]} {
		if auth.WellFormed(bad) {
			t.Errorf("WellFormed(%q) = true", bad)
		}
	}
}

func TestStoredHashedOnly(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	tok, rec, err := auth.CreateToken(ctx, st, auth.RoleAnalyst, "alice", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.TokenByHash(ctx, auth.HashToken(tok))
	if err != nil || got.ID != rec.ID || got.Role != "analyst" || got.Name != "alice" {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := st.TokenByHash(ctx, tok); err == nil {
		t.Fatal("the token itself was found as a hash: it is stored in the clear")
	}
	// The audit log names the token, never its secret or hash.
	recs, err := st.AuditLog(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if strings.Contains(string(r.Detail), tok) || strings.Contains(string(r.Detail), auth.HashToken(tok)) {
			t.Fatalf("audit entry %s holds the token or its hash: %s", r.Kind, r.Detail)
		}
	}
	if _, _, err := auth.CreateToken(ctx, st, "root", "x", time.Now()); err == nil {
		t.Fatal("an unknown role was accepted")
	}
}

func TestParseBearer(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"  BEARER   abc  ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer a b", "", false},
		{"abc", "", false},
		{"", "", false},
	} {
		got, ok := auth.ParseBearer(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseBearer(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestRoles(t *testing.T) {
	for _, c := range []struct {
		role auth.Role
		need auth.Need
		ok   bool
	}{
		{auth.RoleIngest, auth.NeedIngest, true},
		{auth.RoleIngest, auth.NeedAnalyst, false},
		{auth.RoleIngest, auth.NeedAdmin, false},
		{auth.RoleIngest, auth.NeedAny, true},
		{auth.RoleAnalyst, auth.NeedIngest, false},
		{auth.RoleAnalyst, auth.NeedAnalyst, true},
		{auth.RoleAnalyst, auth.NeedAdmin, false},
		{auth.RoleAdmin, auth.NeedIngest, true},
		{auth.RoleAdmin, auth.NeedAnalyst, true},
		{auth.RoleAdmin, auth.NeedAdmin, true},
		{auth.RoleAdmin, auth.NeedVerify, true},
		{auth.RoleVerify, auth.NeedVerify, true},
		{auth.RoleVerify, auth.NeedAny, true},
		{auth.RoleVerify, auth.NeedIngest, false},
		{auth.RoleVerify, auth.NeedAnalyst, false},
		{auth.RoleVerify, auth.NeedAdmin, false},
		{auth.RoleIngest, auth.NeedVerify, false},
		{auth.RoleAnalyst, auth.NeedVerify, false},
		{auth.RoleMint, auth.NeedMint, true},
		{auth.RoleMint, auth.NeedMintOrIngest, true},
		{auth.RoleMint, auth.NeedAny, true},
		{auth.RoleMint, auth.NeedIngest, false},
		{auth.RoleMint, auth.NeedVerify, false},
		{auth.RoleMint, auth.NeedAnalyst, false},
		{auth.RoleIngest, auth.NeedMint, false},
		{auth.RoleIngest, auth.NeedMintOrIngest, true},
		{auth.RoleVerify, auth.NeedMint, false},
		{auth.RoleAnalyst, auth.NeedMintOrIngest, false},
		{auth.RoleAdmin, auth.NeedMint, true},
		{"", auth.NeedAny, false},
		{"root", auth.NeedAdmin, false},
	} {
		if got := c.role.Allows(c.need); got != c.ok {
			t.Errorf("%q.Allows(%s) = %v, want %v", c.role, c.need, got, c.ok)
		}
	}
}

// fixture: a store with one token of each role and a guarded handler.
type fixture struct {
	st                     *store.Store
	a                      *auth.Authenticator
	clk                    *clock
	ingest, analyst, admin string
	revoked                string
	analystID              string
	reached                int
	lastCaller             auth.Caller
	mux                    *http.ServeMux
}

func newFixture(t *testing.T, opts ...func(*auth.Options)) *fixture {
	t.Helper()
	f := &fixture{st: newStore(t), clk: &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}}
	ctx := context.Background()
	mk := func(r auth.Role, name string) (string, string) {
		tok, rec, err := auth.CreateToken(ctx, f.st, r, name, f.clk.now())
		if err != nil {
			t.Fatal(err)
		}
		return tok, rec.ID
	}
	f.ingest, _ = mk(auth.RoleIngest, "shipper")
	f.analyst, f.analystID = mk(auth.RoleAnalyst, "alice")
	f.admin, _ = mk(auth.RoleAdmin, "root")
	var revID string
	f.revoked, revID = mk(auth.RoleAdmin, "old")
	if err := f.st.RevokeToken(ctx, revID, "test", f.clk.now()); err != nil {
		t.Fatal(err)
	}
	o := auth.Options{Store: f.st, SessionTTL: time.Hour, Now: f.clk.now}
	for _, fn := range opts {
		fn(&o)
	}
	f.a = auth.New(o)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.reached++
		f.lastCaller, _ = auth.CallerFrom(r.Context())
		w.WriteHeader(http.StatusOK)
	})
	f.mux = http.NewServeMux()
	f.mux.Handle("GET /alerts", f.a.Guard(auth.NeedAnalyst, ok, nil))
	f.mux.Handle("POST /events", f.a.Guard(auth.NeedIngest, ok, nil))
	f.mux.Handle("POST /approve", f.a.Guard(auth.NeedAnalyst, ok, nil))
	f.mux.Handle("POST /config", f.a.Guard(auth.NeedAdmin, ok, nil))
	f.mux.Handle("GET /healthz", f.a.Guard(auth.NeedPublic, ok, nil))
	f.mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if !auth.CheckLoginCSRF(r) {
			http.Error(w, "csrf", http.StatusForbidden)
			return
		}
		if _, err := f.a.Login(w, r, r.PostFormValue("token")); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	f.mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(f.a.LoginCSRF(w, r))) })
	return f
}

func (f *fixture) do(method, path, bearer string, cookies []*http.Cookie, body url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	var r *http.Request
	if body != nil {
		r = httptest.NewRequest(method, path, strings.NewReader(body.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w
}

func TestGuardTokens(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/alerts", "", 401},
		{"POST", "/events", "", 401},
		{"POST", "/config", "", 401},
		{"GET", "/healthz", "", 200},
		{"GET", "/alerts", "hch_notatoken", 401},
		{"GET", "/alerts", f.revoked, 401},
		{"GET", "/alerts", f.ingest, 403}, // an ingest token cannot read alerts
		{"POST", "/events", f.ingest, 200},
		{"POST", "/approve", f.ingest, 403},
		{"GET", "/alerts", f.analyst, 200},
		{"POST", "/events", f.analyst, 403},
		{"POST", "/approve", f.analyst, 200}, // bearer requests need no CSRF token
		{"POST", "/config", f.analyst, 403},
		{"GET", "/alerts", f.admin, 200},
		{"POST", "/events", f.admin, 200},
		{"POST", "/config", f.admin, 200},
	} {
		w := f.do(c.method, c.path, c.token, nil, nil, nil)
		if w.Code != c.want {
			t.Errorf("%s %s with %q: %d, want %d (%s)", c.method, c.path, c.token, w.Code, c.want, w.Body)
		}
		if w.Code == 401 && !strings.Contains(w.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s: 401 without WWW-Authenticate", c.method, c.path)
		}
	}
	w := f.do("GET", "/alerts", f.analyst, nil, nil, nil)
	if w.Code != 200 || f.lastCaller.Name != "alice" || f.lastCaller.Role != auth.RoleAnalyst {
		t.Fatalf("caller = %+v", f.lastCaller)
	}
}

// login runs the login form and returns the session cookie.
func (f *fixture) login(t *testing.T, token string) *http.Cookie {
	t.Helper()
	w := f.do("GET", "/login", "", nil, nil, nil)
	var pre *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == auth.LoginCookie {
			pre = c
		}
	}
	if pre == nil {
		t.Fatal("no login CSRF cookie")
	}
	w = f.do("POST", "/login", "", []*http.Cookie{pre}, url.Values{"token": {token}, "csrf": {w.Body.String()}}, nil)
	if w.Code != http.StatusNoContent {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == auth.SessionCookie {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/", c)
			}
			return c
		}
	}
	t.Fatal("no session cookie")
	return nil
}

func TestLoginCSRF(t *testing.T) {
	f := newFixture(t)
	// No pre-login cookie, or a field that does not match it: refused.
	w := f.do("POST", "/login", "", nil, url.Values{"token": {f.analyst}, "csrf": {"x"}}, nil)
	if w.Code != http.StatusForbidden {
		t.Errorf("login without the CSRF cookie: %d", w.Code)
	}
	g := f.do("GET", "/login", "", nil, nil, nil)
	pre := g.Result().Cookies()
	// Path "/": a 401 page elsewhere (a favicon) reuses the value instead of
	// replacing it under a form already shown.
	if len(pre) != 1 || pre[0].Path != "/" || !pre[0].HttpOnly || pre[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login CSRF cookie %+v", pre)
	}
	if again := f.a.LoginCSRF(httptest.NewRecorder(), withCookies(httptest.NewRequest("GET", "/favicon.ico", nil), pre)); again != g.Body.String() {
		t.Errorf("a second 401 page replaced the login CSRF value")
	}
	w = f.do("POST", "/login", "", pre, url.Values{"token": {f.analyst}, "csrf": {"wrong"}}, nil)
	if w.Code != http.StatusForbidden {
		t.Errorf("login with a wrong CSRF field: %d", w.Code)
	}
	w = f.do("POST", "/login", "", pre, url.Values{"token": {f.analyst}, "csrf": {g.Body.String()}}, map[string]string{"Origin": "https://evil.example"})
	if w.Code != http.StatusForbidden {
		t.Errorf("login from another origin: %d", w.Code)
	}
	w = f.do("POST", "/login", "", pre, url.Values{"token": {f.revoked}, "csrf": {g.Body.String()}}, nil)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("login with a revoked token: %d", w.Code)
	}
}

func TestSessionCSRF(t *testing.T) {
	f := newFixture(t)
	sess := f.login(t, f.analyst)
	jar := []*http.Cookie{sess}
	if w := f.do("GET", "/alerts", "", jar, nil, nil); w.Code != 200 || !f.lastCaller.Session {
		t.Fatalf("GET with the session: %d (caller %+v)", w.Code, f.lastCaller)
	}
	// The CSRF token of the session, as the console's forms carry it.
	var csrf string
	probe := f.a.Guard(auth.NeedAnalyst, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { csrf = auth.CSRFToken(r.Context()) }), nil)
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(sess)
	probe.ServeHTTP(httptest.NewRecorder(), r)
	if csrf == "" {
		t.Fatal("no CSRF token in the session's context")
	}
	// A wrong bearer header is refused even beside a valid session.
	if w := f.do("GET", "/alerts", "hch_bad", jar, nil, nil); w.Code != 401 {
		t.Errorf("bad bearer with a good session: %d, want 401", w.Code)
	}
	before := f.reached
	for _, c := range []struct {
		name string
		body url.Values
		hdr  map[string]string
		want int
	}{
		{"no token", url.Values{"note": {"x"}}, nil, 403},
		{"wrong token", url.Values{"csrf": {"nope"}}, nil, 403},
		{"empty token", url.Values{"csrf": {""}}, nil, 403},
		{"form field", url.Values{"csrf": {csrf}}, nil, 200},
		{"header", url.Values{}, map[string]string{"X-CSRF-Token": csrf}, 200},
		{"other origin", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}, 403},
		{"same origin", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "http://example.com"}, 200},
	} {
		if w := f.do("POST", "/approve", "", jar, c.body, c.hdr); w.Code != c.want {
			t.Errorf("%s: POST with the session: %d, want %d (%s)", c.name, w.Code, c.want, w.Body)
		}
	}
	if got := f.reached - before; got != 3 {
		t.Errorf("the handler ran %d times, want 3 (only the posts with the right token)", got)
	}
}

func TestSessionExpiryAndRevocation(t *testing.T) {
	f := newFixture(t)
	sess := f.login(t, f.analyst)
	jar := []*http.Cookie{sess}
	f.clk.add(59 * time.Minute)
	if w := f.do("GET", "/alerts", "", jar, nil, nil); w.Code != 200 {
		t.Fatalf("within the TTL: %d", w.Code)
	}
	f.clk.add(2 * time.Minute)
	if w := f.do("GET", "/alerts", "", jar, nil, nil); w.Code != 401 {
		t.Fatalf("after the TTL: %d, want 401", w.Code)
	}
	// The expired session was deleted.
	if _, _, err := f.st.SessionByHash(context.Background(), auth.HashToken(sess.Value)); err == nil {
		t.Error("the expired session is still stored")
	}
	// Revoking the token ends its sessions at once.
	sess = f.login(t, f.analyst)
	if err := f.st.RevokeToken(context.Background(), f.analystID, "test", f.clk.now()); err != nil {
		t.Fatal(err)
	}
	if w := f.do("GET", "/alerts", "", []*http.Cookie{sess}, nil, nil); w.Code != 401 {
		t.Fatalf("after revocation: %d, want 401", w.Code)
	}
	// A forged cookie is refused.
	if w := f.do("GET", "/alerts", "", []*http.Cookie{{Name: auth.SessionCookie, Value: "garbage"}}, nil, nil); w.Code != 401 {
		t.Fatalf("forged cookie: %d", w.Code)
	}
}

func TestEnsureAdmin(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	tok, rec, err := auth.EnsureAdmin(ctx, st, time.Now())
	if err != nil || tok == "" || rec.Role != "admin" {
		t.Fatalf("first start: %q %+v %v", tok, rec, err)
	}
	again, _, err := auth.EnsureAdmin(ctx, st, time.Now())
	if err != nil || again != "" {
		t.Fatalf("second start created another token: %q %v", again, err)
	}
}

// FuzzCredentials: header and cookie parsing never panics and accepts only
// what it promises.
func FuzzCredentials(f *testing.F) {
	tok, _ := auth.NewToken()
	for _, s := range []string{"Bearer " + tok, "bearer x", "Basic Zm9v", "", " ", "Bearer  a b", tok, "hch_" + strings.Repeat("A", 43)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, ok := auth.ParseBearer(s); ok {
			if got == "" || strings.ContainsAny(got, " \t\r\n") {
				t.Fatalf("ParseBearer(%q) = %q", s, got)
			}
		}
		if auth.WellFormed(s) && (!strings.HasPrefix(s, auth.TokenPrefix) || len(s) != len(tok)) {
			t.Fatalf("WellFormed(%q)", s)
		}
		if auth.WellFormedSession(s) && strings.ContainsAny(s, "+/= \n") {
			t.Fatalf("WellFormedSession(%q)", s)
		}
		_ = auth.HashToken(s)
	})
}

func withCookies(r *http.Request, cs []*http.Cookie) *http.Request {
	for _, c := range cs {
		r.AddCookie(c)
	}
	return r
}

// Workers starting together on one fresh database (separate processes:
// separate stores) create exactly one admin token between them.
func TestEnsureAdminOnceAcrossWorkers(t *testing.T) {
	target := t.TempDir()
	if dsn := os.Getenv("HAECHI_TEST_POSTGRES"); dsn != "" {
		target = pgSchema(t, dsn)
	}
	first, err := store.Open(context.Background(), target, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	const workers = 4
	stores := []*store.Store{first}
	for range workers - 1 {
		st, err := store.Open(context.Background(), target, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores = append(stores, st)
	}
	var wg sync.WaitGroup
	toks := make([]string, workers)
	errs := make([]error, workers)
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], _, errs[i] = auth.EnsureAdmin(context.Background(), st, time.Now())
		}()
	}
	wg.Wait()
	created := 0
	for i := range toks {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		if toks[i] != "" {
			created++
		}
	}
	if n, _ := first.CountActiveTokens(context.Background()); created != 1 || n != 1 {
		t.Fatalf("%d workers created a token, %d active; want exactly one", created, n)
	}
}
