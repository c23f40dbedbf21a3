package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
)

// TestWatch: a watched credential is reported when it ends — at once when
// it ends in this process (logout, RevokeToken), by the periodic re-check
// when another process revokes it or the session expires — and never while
// it is valid.
func TestWatch(t *testing.T) {
	const never = time.Hour // re-check interval that a test cannot reach
	for _, c := range []struct {
		name     string
		interval time.Duration
		session  bool
		end      func(f *fixture, sess *http.Cookie) // nil: stays valid
		want     error
	}{
		{"valid token", 10 * time.Millisecond, false, nil, nil},
		{"valid session", 10 * time.Millisecond, true, nil, nil},
		{"token revoked in this process", never, false, func(f *fixture, _ *http.Cookie) {
			if err := f.a.RevokeToken(context.Background(), f.analystID, "test"); err != nil {
				panic(err)
			}
		}, auth.ErrBadToken},
		{"token revoked by another process", 20 * time.Millisecond, false, func(f *fixture, _ *http.Cookie) {
			if err := f.st.RevokeToken(context.Background(), f.analystID, "cli", f.clk.now()); err != nil {
				panic(err)
			}
		}, auth.ErrBadToken},
		{"session's token revoked in this process", never, true, func(f *fixture, _ *http.Cookie) {
			if err := f.a.RevokeToken(context.Background(), f.analystID, "test"); err != nil {
				panic(err)
			}
		}, auth.ErrSession},
		{"session's token revoked by another process", 20 * time.Millisecond, true, func(f *fixture, _ *http.Cookie) {
			if err := f.st.RevokeToken(context.Background(), f.analystID, "cli", f.clk.now()); err != nil {
				panic(err)
			}
		}, auth.ErrSession},
		{"session logged out", never, true, func(f *fixture, sess *http.Cookie) {
			r := httptest.NewRequest("POST", "/logout", nil)
			r.AddCookie(sess)
			f.a.Logout(httptest.NewRecorder(), r)
		}, auth.ErrSession},
		{"session expired", 20 * time.Millisecond, true, func(f *fixture, _ *http.Cookie) { f.clk.add(time.Hour) }, auth.ErrSession},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(o *auth.Options) { o.RecheckInterval = c.interval })
			var sess *http.Cookie
			if c.session {
				sess = f.login(t, f.analyst)
				if w := f.do("GET", "/alerts", "", []*http.Cookie{sess}, nil, nil); w.Code != 200 {
					t.Fatalf("GET with the session: %d", w.Code)
				}
			} else if w := f.do("GET", "/alerts", f.analyst, nil, nil, nil); w.Code != 200 {
				t.Fatalf("GET with the token: %d", w.Code)
			}
			caller := f.lastCaller
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ended := f.a.Watch(ctx, caller)
			select {
			case err := <-ended:
				t.Fatalf("reported while valid: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
			if c.end == nil {
				return
			}
			start := time.Now()
			c.end(f, sess)
			select {
			case err := <-ended:
				if !errors.Is(err, c.want) {
					t.Fatalf("reported %v, want %v", err, c.want)
				}
				t.Logf("reported after %s: %v", time.Since(start), err)
			case <-time.After(10 * time.Second):
				t.Fatal("not reported 10 s after the credential ended")
			}
		})
	}
}

// TestWatchEndsWithContext: Watch reports nothing once its context ends,
// and a Caller that did not come from authentication cannot be watched.
func TestWatchEndsWithContext(t *testing.T) {
	f := newFixture(t, func(o *auth.Options) { o.RecheckInterval = 10 * time.Millisecond })
	if w := f.do("GET", "/alerts", f.analyst, nil, nil, nil); w.Code != 200 {
		t.Fatal(w.Code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := f.a.Watch(ctx, f.lastCaller)
	cancel()
	if err := f.st.RevokeToken(context.Background(), f.analystID, "cli", f.clk.now()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		t.Fatalf("reported after its context ended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := f.a.Recheck(context.Background(), auth.Caller{TokenID: "tok-x", Role: auth.RoleAdmin}); !errors.Is(err, auth.ErrNoCredentials) {
		t.Errorf("Recheck of a made-up caller: %v, want ErrNoCredentials", err)
	}
}
