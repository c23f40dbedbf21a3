package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
)

// refusals returns the login_refused audit entries' details.
func (f *fixture) refusals(t *testing.T) []map[string]any {
	t.Helper()
	recs, err := f.st.AuditLog(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, r := range recs {
		if r.Kind != "login_refused" {
			continue
		}
		var d map[string]any
		if err := json.Unmarshal(r.Detail, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// tryLogin calls Login from remote and fails the test if it set a cookie.
func (f *fixture) tryLogin(t *testing.T, remote, tok string) error {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/login", nil)
	r.RemoteAddr = remote
	_, err := f.a.Login(w, r, tok)
	if err != nil && len(w.Result().Cookies()) > 0 {
		t.Fatalf("a refused login (%v) set cookies %v", err, w.Result().Cookies())
	}
	return err
}

// TestLoginFailuresLimitedAndFolded: 500 refused logins from one address
// within a window are 10 refusals and 490 throttled attempts (never looked
// at), audited as two entries — the first refusal at once, the rest as one
// summary when the window ends — not 500.
func TestLoginFailuresLimitedAndFolded(t *testing.T) {
	const window = 2 * time.Second
	f := newFixture(t, func(o *auth.Options) { o.FailureWindow = window; o.MaxFailures = 10 })
	var bad, throttled int
	start := time.Now()
	for i := range 500 {
		err := f.tryLogin(t, "203.0.113.7:"+strconv.Itoa(1024+i), "hch_wrong")
		var te *auth.ThrottleError
		switch {
		case errors.As(err, &te):
			throttled++
			if !errors.Is(err, auth.ErrThrottled) || te.RetryAfter <= 0 || te.RetryAfter > window+time.Second {
				t.Fatalf("attempt %d: %v (retry after %s)", i, err, te.RetryAfter)
			}
		case errors.Is(err, auth.ErrBadToken):
			bad++
		default:
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if time.Since(start) > window/2 {
		t.Skipf("500 attempts took %s, longer than the window: too slow a machine to test one window", time.Since(start))
	}
	if bad != 10 || throttled != 490 {
		t.Errorf("%d refused and %d throttled, want 10 and 490", bad, throttled)
	}
	// A valid token from the throttled address is not even looked at.
	if err := f.tryLogin(t, "203.0.113.7:9", f.analyst); !errors.Is(err, auth.ErrThrottled) {
		t.Errorf("a valid token from the throttled address: %v, want throttled", err)
	}
	// Another address has its own budget.
	if err := f.tryLogin(t, "198.51.100.1:9", f.analyst); err != nil {
		t.Errorf("a login from another address: %v", err)
	}
	if got := f.refusals(t); len(got) != 1 || got[0]["remote"] != "203.0.113.7:1024" {
		t.Fatalf("during the window: %d login_refused entries %v, want only the first refusal", len(got), got)
	}
	deadline := time.Now().Add(10 * time.Second)
	var got []map[string]any
	for got = f.refusals(t); len(got) < 2 && time.Now().Before(deadline); got = f.refusals(t) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(got) != 2 {
		t.Fatalf("after the window: %d login_refused entries %v, want 2", len(got), got)
	}
	if s := got[1]; s["summary"] != true || s["client"] != "203.0.113.7" || s["count"] != float64(500) || s["throttled"] != float64(491) {
		t.Errorf("summary %v, want client 203.0.113.7, count 500 and throttled 491 (the first is its own entry; the valid token was throttled too)", s)
	}
	// The window ended: the address may try again.
	if err := f.tryLogin(t, "203.0.113.7:9", f.analyst); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

// TestLoginFailuresBounded: an IPv6 /64 is one client; when more addresses
// fail than are tracked, the oldest window is closed early and its summary
// written at once; Close writes the summaries of open windows.
func TestLoginFailuresBounded(t *testing.T) {
	f := newFixture(t, func(o *auth.Options) { o.FailureWindow = time.Hour; o.MaxFailures = 3; o.MaxFailureAddrs = 2 })
	for i := range 4 { // one /64, four addresses: the fourth is throttled
		err := f.tryLogin(t, "[2001:db8:1:2::"+strconv.Itoa(i+1)+"]:443", "hch_wrong")
		if want := i == 3; errors.Is(err, auth.ErrThrottled) != want {
			t.Errorf("attempt %d from the /64: %v", i, err)
		}
	}
	f.clk.add(time.Second)
	_ = f.tryLogin(t, "192.0.2.10:1", "hch_wrong")
	if got := f.refusals(t); len(got) != 2 {
		t.Fatalf("%d entries %v, want the first refusal of each client", len(got), got)
	}
	_ = f.tryLogin(t, "192.0.2.11:1", "hch_wrong") // a third client: the /64's window is closed
	got := f.refusals(t)
	if len(got) != 4 || got[2]["client"] != "2001:db8:1:2::/64" || got[2]["count"] != float64(3) || got[2]["throttled"] != float64(1) {
		t.Fatalf("entries %v, want the /64's summary (count 3, throttled 1) before the third client's refusal", got)
	}
	_ = f.tryLogin(t, "192.0.2.11:2", "hch_wrong")
	f.a.Close()
	got = f.refusals(t)
	if len(got) != 5 || got[4]["client"] != "192.0.2.11" || got[4]["count"] != float64(1) {
		t.Fatalf("after Close: entries %v, want the open window's summary", got)
	}
}

// TestLoginRefusesIngest: an ingest token cannot open a console session:
// the login is refused, audited, and sets no cookie.
func TestLoginRefusesIngest(t *testing.T) {
	f := newFixture(t)
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/login", nil)
	_, err := f.a.Login(w, r, f.ingest)
	if !errors.Is(err, auth.ErrLoginRole) {
		t.Fatalf("ingest login: %v, want ErrLoginRole", err)
	}
	if c := w.Result().Cookies(); len(c) != 0 {
		t.Fatalf("a refused ingest login set cookies %v", c)
	}
	if got := f.refusals(t); len(got) != 1 || got[0]["name"] != "shipper" {
		t.Errorf("audit %v, want one login_refused naming the ingest token", got)
	}
	for _, tok := range []string{f.analyst, f.admin} {
		if err := f.tryLogin(t, "192.0.2.1:1", tok); err != nil {
			t.Errorf("login: %v", err)
		}
	}
}
