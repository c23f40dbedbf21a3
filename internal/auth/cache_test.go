package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/store"
)

// countingStore counts bearer token lookups.
type countingStore struct {
	*store.Store
	lookups atomic.Int64
}

func (s *countingStore) TokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	s.lookups.Add(1)
	return s.Store.TokenByHash(ctx, hash)
}

// With CacheTTL, a valid bearer token is looked up once per TTL; a token
// revoked in this process stops at once, one revoked by another process
// (straight in the store) when the TTL ends; refusals are never cached.
func TestCacheTTL(t *testing.T) {
	st := &countingStore{Store: newStore(t)}
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	a := auth.New(auth.Options{Store: st, Now: clk.now, CacheTTL: time.Second})
	defer a.Close()
	verify, vt, err := auth.CreateToken(ctx, st, auth.RoleVerify, "edge", clk.now())
	if err != nil {
		t.Fatal(err)
	}
	other, ot, err := auth.CreateToken(ctx, st, auth.RoleVerify, "edge 2", clk.now())
	if err != nil {
		t.Fatal(err)
	}
	h := a.Guard(auth.NeedVerify, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := auth.CallerFrom(r.Context()); !ok || c.Role != auth.RoleVerify {
			t.Errorf("caller %+v %v", c, ok)
		}
	}), nil)
	code := func(tok string) int {
		r := httptest.NewRequest(http.MethodGet, "/v1/verify/auth-request", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	steps := []struct {
		name    string
		do      func()
		tok     string
		want    int
		lookups int64 // store lookups so far
	}{
		{"first use asks the store", nil, verify, 200, 1},
		{"within the TTL: from the cache", nil, verify, 200, 1},
		{"a bad token is refused, and asks every time", nil, "hch_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 401, 2},
		{"again", nil, "hch_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 401, 3},
		{"revoked by another process: still believed within the TTL", func() {
			if err := st.RevokeToken(ctx, vt.ID, "cli", clk.now()); err != nil {
				t.Fatal(err)
			}
		}, verify, 200, 3},
		{"after the TTL: asked, refused", func() { clk.add(time.Second) }, verify, 401, 4},
		{"another token, cached", nil, other, 200, 5},
		{"cached", nil, other, 200, 5},
		{"revoked in this process: refused at once", func() {
			if err := a.RevokeToken(ctx, ot.ID, "admin"); err != nil {
				t.Fatal(err)
			}
		}, other, 401, 6},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		if got := code(s.tok); got != s.want {
			t.Errorf("%s: %d, want %d", s.name, got, s.want)
		}
		if got := st.lookups.Load(); got != s.lookups {
			t.Errorf("%s: %d store lookups, want %d", s.name, got, s.lookups)
		}
	}
}

// Without CacheTTL every request asks the store.
func TestNoCache(t *testing.T) {
	st := &countingStore{Store: newStore(t)}
	a := auth.New(auth.Options{Store: st})
	defer a.Close()
	tok, _, err := auth.CreateToken(context.Background(), st, auth.RoleVerify, "edge", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		if _, err := a.Authenticate(r); err != nil && !errors.Is(err, auth.ErrBadToken) {
			t.Fatal(err)
		}
	}
	if n := st.lookups.Load(); n != 3 {
		t.Errorf("%d lookups, want 3", n)
	}
}
