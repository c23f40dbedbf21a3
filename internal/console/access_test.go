package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
)

// stream reads an SSE response in the background.
type stream struct {
	chunks chan string
	got    strings.Builder
	eof    bool
}

func openStream(t *testing.T, url string, bearer string, cookies ...*http.Cookie) *stream {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("GET /live: %d", resp.StatusCode)
	}
	s := &stream{chunks: make(chan string, 64)}
	go func() {
		defer close(s.chunks)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				s.chunks <- string(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

// until reads until the stream holds want (true) or ends or d passes
// (false).
func (s *stream) until(want string, d time.Duration) bool {
	deadline := time.After(d)
	for !strings.Contains(s.got.String(), want) {
		select {
		case c, ok := <-s.chunks:
			if !ok {
				s.eof = true
				return false
			}
			s.got.WriteString(c)
		case <-deadline:
			return false
		}
	}
	return true
}

// closes reports whether the stream ends within d with nothing more.
func (s *stream) closes(d time.Duration) bool {
	select {
	case c, ok := <-s.chunks:
		s.got.WriteString(c)
		return !ok
	case <-time.After(d):
		return false
	}
}

// TestLiveEndsWithCredential: a /live stream ends, with an "end" event
// saying why, when the token it was opened with is revoked — at once when
// that happens in this process, within the re-check interval when another
// process (haechi tokens revoke) does it — or its session is logged out.
// While the credential is valid the stream goes on.
func TestLiveEndsWithCredential(t *testing.T) {
	for _, c := range []struct {
		name     string
		interval time.Duration
		session  bool
		end      func(t *testing.T, e *env, id string, sess *http.Cookie, csrf string)
		reason   string
	}{
		{"token revoked by another process", 100 * time.Millisecond, false, func(t *testing.T, e *env, id string, _ *http.Cookie, _ string) {
			if err := e.st.RevokeToken(context.Background(), id, "cli", now); err != nil {
				t.Fatal(err)
			}
		}, "was revoked"},
		{"token revoked in this process", time.Hour, false, func(t *testing.T, e *env, id string, _ *http.Cookie, _ string) {
			if err := e.authn.RevokeToken(context.Background(), id, "test"); err != nil {
				t.Fatal(err)
			}
		}, "was revoked"},
		{"session's token revoked by another process", 100 * time.Millisecond, true, func(t *testing.T, e *env, id string, _ *http.Cookie, _ string) {
			if err := e.st.RevokeToken(context.Background(), id, "cli", now); err != nil {
				t.Fatal(err)
			}
		}, "logged out or its token revoked"},
		{"session logged out", time.Hour, true, func(t *testing.T, e *env, _ string, sess *http.Cookie, csrf string) {
			if w := e.do(t, "POST", "/logout", "", url.Values{"csrf": {csrf}}, sess); w.Code != http.StatusSeeOther {
				t.Fatalf("logout: %d %s", w.Code, w.Body)
			}
		}, "logged out"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, true, func(o *auth.Options) { o.RecheckInterval = c.interval })
			ts := httptest.NewServer(e.srv)
			t.Cleanup(ts.Close) // after the stream's body is closed (cleanups run last first)
			tok, err := e.st.TokenByHash(context.Background(), auth.HashToken(e.analyst))
			if err != nil {
				t.Fatal(err)
			}
			var s *stream
			var sess *http.Cookie
			var csrf string
			if c.session {
				sess, csrf = e.login(t, e.analyst)
				s = openStream(t, ts.URL+"/live", "", sess)
			} else {
				s = openStream(t, ts.URL+"/live", e.analyst)
			}
			if !s.until("event: stats", 5*time.Second) {
				t.Fatalf("no stats:\n%s", s.got.String())
			}
			if s.until("event: end", min(3*c.interval/2, 300*time.Millisecond)) || s.eof {
				t.Fatalf("the stream ended while its credential was valid:\n%s", s.got.String())
			}
			start := time.Now()
			c.end(t, e, tok.ID, sess, csrf)
			if !s.until("event: end", 5*time.Second) {
				t.Fatalf("the stream goes on 5 s after its credential ended:\n%s", s.got.String())
			}
			t.Logf("ended after %s", time.Since(start))
			m := regexp.MustCompile(`event: end\ndata: (.*)\n\n`).FindStringSubmatch(s.got.String())
			var end struct {
				Reason string `json:"reason"`
				Login  bool   `json:"login"`
			}
			if m == nil || json.Unmarshal([]byte(m[1]), &end) != nil || !end.Login || !strings.Contains(end.Reason, c.reason) {
				t.Errorf("end event %q, want login: true and a reason with %q", m, c.reason)
			}
			if !s.closes(5 * time.Second) {
				t.Errorf("the stream did not close after its end event:\n%s", s.got.String())
			}
		})
	}
}

// postLogin posts the login form with tok from the client at remote.
func (e *env) postLogin(t *testing.T, tok, remote string) *httptest.ResponseRecorder {
	t.Helper()
	w := e.do(t, "GET", "/login", "", nil)
	pre := w.Result().Cookies()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(w.Body.String())
	if len(pre) == 0 || m == nil {
		t.Fatalf("login page without CSRF cookie or field:\n%s", w.Body)
	}
	r := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"token": {tok}, "csrf": {m[1]}, "next": {"/alerts"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = remote
	for _, c := range pre {
		r.AddCookie(c)
	}
	w = httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w
}

// TestLoginRoleMessage: a token whose role may not use the console is
// told what its role is for — a verify token (a gateway's) is not told it
// is an ingest token.
func TestLoginRoleMessage(t *testing.T) {
	e := newEnv(t, true)
	verify, _, err := auth.CreateToken(t.Context(), e.st, auth.RoleVerify, "edge gateway", now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, tok, want, not string
	}{
		{"ingest", e.ingest, "This is an ingest token", "verify"},
		{"verify", verify, "This is a verify token", "ingest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := e.postLogin(t, tt.tok, "192.0.2.60:1")
			body := w.Body.String()
			if w.Code != http.StatusForbidden || !strings.Contains(body, tt.want) || strings.Contains(body, tt.not) {
				t.Errorf("%d, want 403 saying %q and not %q:\n%s", w.Code, tt.want, tt.not, body)
			}
			for _, c := range w.Result().Cookies() {
				if c.Name == auth.SessionCookie {
					t.Errorf("a refused login set the session cookie %+v", c)
				}
			}
		})
	}
}

// TestLoginRefusals: an ingest token's login is refused without a session
// cookie; refused logins from one address are answered 429 with
// Retry-After beyond the limit and audited as a few entries, not one each.
func TestLoginRefusals(t *testing.T) {
	e := newEnv(t, true, func(o *auth.Options) { o.FailureWindow = time.Hour; o.MaxFailures = 5 })
	w := e.postLogin(t, e.ingest, "192.0.2.50:1")
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "ingest token") {
		t.Errorf("ingest login: %d, want 403 saying why", w.Code)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == auth.SessionCookie {
			t.Errorf("a refused ingest login set the session cookie %+v", c)
		}
	}
	codes := map[int]int{}
	for i := range 100 {
		w := e.postLogin(t, "hch_"+strings.Repeat("A", 43), "203.0.113.9:"+strconv.Itoa(2000+i))
		codes[w.Code]++
		if w.Code == http.StatusTooManyRequests {
			if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
				t.Fatalf("429 with Retry-After %q", w.Header().Get("Retry-After"))
			}
			if !strings.Contains(w.Body.String(), "Too many refused logins") {
				t.Fatalf("429 page does not say why:\n%s", w.Body)
			}
		}
	}
	if codes[http.StatusUnauthorized] != 5 || codes[http.StatusTooManyRequests] != 95 {
		t.Errorf("answers %v, want 5×401 then 95×429", codes)
	}
	// A valid login from elsewhere still works.
	if w := e.postLogin(t, e.analyst, "198.51.100.2:1"); w.Code != http.StatusSeeOther {
		t.Errorf("login from another address: %d", w.Code)
	}
	e.authn.Close() // writes the open windows' summaries
	recs, err := e.st.AuditLog(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	for _, r := range recs {
		if r.Kind == "login_refused" {
			refused = append(refused, string(r.Detail))
		}
	}
	// The ingest login, the first bad one, the summary of the other 99.
	if len(refused) != 3 || !strings.Contains(refused[2], `"count":99`) || !strings.Contains(refused[2], `"throttled":95`) {
		t.Errorf("login_refused entries:\n%s\nwant 3, the last counting 99 (95 throttled)", strings.Join(refused, "\n"))
	}
}
