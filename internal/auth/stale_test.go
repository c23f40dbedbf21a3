package auth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/store"
)

// downStore is a store whose token look-ups fail while down is set, as a
// database that does not answer (not a token that is gone).
type downStore struct {
	*store.Store
	down   atomic.Bool
	failed atomic.Int64 // look-ups that failed
}

func (s *downStore) TokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	if s.down.Load() {
		s.failed.Add(1)
		return store.APIToken{}, fmt.Errorf("token: %w", errors.New("database is locked"))
	}
	return s.Store.TokenByHash(ctx, hash)
}

// While the store cannot be asked, a verify token the store found valid
// less than StaleGrace ago is still accepted (the inline check's verdicts
// never need the store; without the grace a fail-open gateway passed every
// token, forged ones included, once CacheTTL ran out); a token never found
// valid here, one the store last said was revoked, one of another role, or
// one last vouched for StaleGrace ago or more is not. Each case has a step
// accepted during the outage, so each fails without the grace.
func TestStaleGrace(t *testing.T) {
	const grace = 30 * time.Second
	type step struct {
		name    string
		advance time.Duration
		down    bool
		do      func(t *testing.T, e *staleEnv)
		tok     string // by name: verify, verify2, admin, analyst, ingest, mint
		want    int    // 200, 401, or 503 (the store cannot be asked)
	}
	up, down := false, true
	cases := []struct {
		name  string
		ttl   time.Duration
		grace time.Duration
		steps []step
	}{
		{"accepted within the grace after a lookup the store answered", time.Second, grace, []step{
			{"seen valid", 0, up, nil, "verify", 200},
			{"outage, 2 s after", 2 * time.Second, down, nil, "verify", 200},
			{"outage, 29 s after", 27 * time.Second, down, nil, "verify", 200},
		}},
		{"refused once the grace has passed", time.Second, grace, []step{
			{"seen valid", 0, up, nil, "verify", 200},
			{"outage, 29 s after", 29 * time.Second, down, nil, "verify", 200},
			{"outage, 30 s after", time.Second, down, nil, "verify", 503},
			{"outage, later still", time.Minute, down, nil, "verify", 503},
			{"the store answers: accepted", 0, up, nil, "verify", 200},
		}},
		{"the grace counts from the last lookup the store answered", time.Second, grace, []step{
			{"seen valid", 0, up, nil, "verify", 200},
			{"looked up again at 20 s", 20 * time.Second, up, nil, "verify", 200},
			{"outage, 25 s after that", 25 * time.Second, down, nil, "verify", 200},
			{"outage, 30 s after that", 5 * time.Second, down, nil, "verify", 503},
		}},
		{"a token never found valid here is refused", time.Second, grace, []step{
			{"seen valid", 0, up, nil, "verify", 200},
			{"outage: the seen token", 2 * time.Second, down, nil, "verify", 200},
			{"outage: a valid token never seen", 0, down, nil, "verify2", 503},
		}},
		{"revoked, seen by a lookup before the outage: refused", time.Second, grace, []step{
			{"seen valid", 0, up, nil, "verify", 200},
			{"the other seen valid", 0, up, nil, "verify2", 200},
			{"revoked by another process", 0, up, func(t *testing.T, e *staleEnv) { e.revokeInStore(t, "verify2") }, "verify2", 200}, // within CacheTTL
			{"after the TTL: the store says revoked", 2 * time.Second, up, nil, "verify2", 401},
			{"outage: the revoked token", time.Second, down, nil, "verify2", 503},
			{"outage: the other", 0, down, nil, "verify", 200},
		}},
		{"revoked in this process, then an outage: refused", time.Second, grace, []step{
			{"seen valid", 0, up, nil, "verify", 200},
			{"the other seen valid", 0, up, nil, "verify2", 200},
			{"revoked here", 0, up, func(t *testing.T, e *staleEnv) {
				if err := e.a.RevokeToken(context.Background(), e.ids["verify2"], "admin"); err != nil {
					t.Fatal(err)
				}
			}, "verify2", 401},
			{"the first looked up again", 2 * time.Second, up, nil, "verify", 200},
			{"outage: the revoked token", time.Second, down, nil, "verify2", 503},
			{"outage: the other", 0, down, nil, "verify", 200},
		}},
		{"other roles have no grace", time.Second, grace, []step{
			{"verify seen valid", 0, up, nil, "verify", 200},
			{"admin seen valid", 0, up, nil, "admin", 200},
			{"analyst seen valid", 0, up, nil, "analyst", 200},
			{"ingest seen valid", 0, up, nil, "ingest", 200},
			{"mint seen valid", 0, up, nil, "mint", 200},
			{"outage: admin", 2 * time.Second, down, nil, "admin", 503},
			{"outage: analyst", 0, down, nil, "analyst", 503},
			{"outage: ingest", 0, down, nil, "ingest", 503},
			{"outage: mint", 0, down, nil, "mint", 503},
			{"outage: verify", 0, down, nil, "verify", 200},
		}},
		{"without CacheTTL too", 0, grace, []step{
			{"seen valid", 0, up, nil, "verify", 200},
			{"outage", 10 * time.Second, down, nil, "verify", 200},
			{"outage: past the grace", 20 * time.Second, down, nil, "verify", 503},
		}},
		{"the default grace is 30 s", time.Second, 0, []step{
			{"seen valid", 0, up, nil, "verify", 200},
			{"outage, 29 s after", 29 * time.Second, down, nil, "verify", 200},
			{"outage, 30 s after", time.Second, down, nil, "verify", 503},
		}},
		{"a negative grace is none", time.Second, -1, []step{
			{"seen valid", 0, up, nil, "verify", 200},
			{"outage", 2 * time.Second, down, nil, "verify", 503},
			{"the store answers", 0, up, nil, "verify", 200},
		}},
		{"a logout during the outage keeps the grace", time.Second, grace, []step{
			{"seen valid", 0, up, nil, "verify", 200},
			{"logout", 2 * time.Second, down, func(t *testing.T, e *staleEnv) {
				r := httptest.NewRequest(http.MethodPost, "/logout", nil)
				r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: "whatever"})
				e.a.Logout(httptest.NewRecorder(), r)
			}, "verify", 200},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newStaleEnv(t, auth.Options{CacheTTL: c.ttl, StaleGrace: c.grace}, nil)
			for _, s := range c.steps {
				e.clk.add(s.advance)
				e.st.down.Store(s.down)
				if s.do != nil {
					s.do(t, e)
				}
				if got := e.code(s.tok); got != s.want {
					t.Errorf("%s: %s got %d, want %d", s.name, s.tok, got, s.want)
				}
			}
		})
	}
}

// The outage is logged when the first token is accepted on the store's
// earlier word and when the store answers again: once per outage, not per
// request. A token so accepted is believed for another CacheTTL: a store
// that fails slowly is asked once a CacheTTL, not at each request.
func TestStaleGraceLoggedOncePerOutage(t *testing.T) {
	var buf syncBuffer
	e := newStaleEnv(t, auth.Options{CacheTTL: time.Second, StaleGrace: time.Minute},
		slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for outage := range 2 {
		if got := e.code("verify"); got != 200 {
			t.Fatalf("outage %d: before: %d", outage, got)
		}
		e.st.down.Store(true)
		for range 50 {
			e.clk.add(500 * time.Millisecond) // past CacheTTL at each other request
			if got := e.code("verify"); got != 200 {
				t.Fatalf("outage %d: %d during the outage", outage, got)
			}
		}
		e.st.down.Store(false)
		e.clk.add(2 * time.Second)
	}
	if got := e.code("verify"); got != 200 {
		t.Fatalf("after: %d", got)
	}
	if n := e.st.failed.Load(); n != 50 {
		t.Errorf("%d failed look-ups for 100 requests over 2 × 25 s with a CacheTTL of 1 s, want 50", n)
	}
	out := buf.String()
	if n := strings.Count(out, "level=WARN"); n != 2 {
		t.Errorf("%d warnings for two outages, want 2:\n%s", n, out)
	}
	if n := strings.Count(out, "the store answers again"); n != 2 || !strings.Contains(out, "accepted_on_earlier_word=25") {
		t.Errorf("the outages' ends logged %d times (want 2, each with its 25 acceptances):\n%s", n, out)
	}
}

type staleEnv struct {
	st   *downStore
	clk  *clock
	a    *auth.Authenticator
	h    http.Handler
	toks map[string]string
	ids  map[string]string
}

func newStaleEnv(t *testing.T, opts auth.Options, log *slog.Logger) *staleEnv {
	t.Helper()
	e := &staleEnv{st: &downStore{Store: newStore(t)}, clk: &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)},
		toks: map[string]string{}, ids: map[string]string{}}
	opts.Store, opts.Now, opts.Logger = e.st, e.clk.now, log
	e.a = auth.New(opts)
	t.Cleanup(e.a.Close)
	for name, role := range map[string]auth.Role{"verify": auth.RoleVerify, "verify2": auth.RoleVerify, "admin": auth.RoleAdmin,
		"analyst": auth.RoleAnalyst, "ingest": auth.RoleIngest, "mint": auth.RoleMint} {
		tok, rec, err := auth.CreateToken(context.Background(), e.st, role, name, e.clk.now())
		if err != nil {
			t.Fatal(err)
		}
		e.toks[name], e.ids[name] = tok, rec.ID
	}
	e.h = e.a.Guard(auth.NeedAny, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := auth.CallerFrom(r.Context()); !ok {
			t.Error("no caller")
		}
	}), nil)
	return e
}

func (e *staleEnv) code(name string) int {
	r := httptest.NewRequest(http.MethodGet, "/v1/verify/auth-request", nil)
	r.Header.Set("Authorization", "Bearer "+e.toks[name])
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w.Code
}

// revokeInStore revokes a token straight in the store, as another process
// (haechi tokens revoke) does.
func (e *staleEnv) revokeInStore(t *testing.T, name string) {
	t.Helper()
	if err := e.st.RevokeToken(context.Background(), e.ids[name], "cli", e.clk.now()); err != nil {
		t.Fatal(err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hookStore runs during, once set, after a token look-up has read the
// store and before it returns: what happens meanwhile in the process.
type hookStore struct {
	*store.Store
	during func()
}

func (s *hookStore) TokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	t, err := s.Store.TokenByHash(ctx, hash)
	if f := s.during; f != nil {
		s.during = nil
		f()
	}
	return t, err
}

// A look-up answered before a revocation made in this process, and
// returning after it, is not remembered: the token would otherwise be
// believed for CacheTTL after its revocation, and be accepted through an
// outage for StaleGrace.
func TestRevokedDuringLookupNotRemembered(t *testing.T) {
	for _, ttl := range []time.Duration{time.Second, 0} {
		st := &hookStore{Store: newStore(t)}
		clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
		down := atomic.Bool{}
		a := auth.New(auth.Options{Store: &switchStore{hookStore: st, down: &down}, Now: clk.now, CacheTTL: ttl})
		tok, rec, err := auth.CreateToken(context.Background(), st, auth.RoleVerify, "edge", clk.now())
		if err != nil {
			t.Fatal(err)
		}
		code := func() int {
			r := httptest.NewRequest(http.MethodGet, "/v1/verify/auth-request", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			a.Guard(auth.NeedVerify, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), nil).ServeHTTP(w, r)
			return w.Code
		}
		st.during = func() {
			if err := a.RevokeToken(context.Background(), rec.ID, "admin"); err != nil {
				t.Error(err)
			}
		}
		if got := code(); got != 200 {
			t.Errorf("ttl %v: the look-up that raced the revocation: %d, want 200 (it was answered before)", ttl, got)
		}
		if ttl > 0 { // without it, the next look-up would see the revocation and forget the token
			if got := code(); got != 401 {
				t.Errorf("ttl %v: after the revocation: %d, want 401", ttl, got)
			}
		}
		down.Store(true)
		clk.add(2 * time.Second)
		if got := code(); got != 503 {
			t.Errorf("ttl %v: revoked, then an outage: %d, want 503 (no grace)", ttl, got)
		}
		a.Close()
	}
}

// switchStore fails token look-ups while down is set.
type switchStore struct {
	*hookStore
	down *atomic.Bool
}

func (s *switchStore) TokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	if s.down.Load() {
		return store.APIToken{}, errors.New("database is locked")
	}
	return s.hookStore.TokenByHash(ctx, hash)
}
