package gateway_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/gateway"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/mint"
)

func jwt(hdr, payload string) string {
	e := base64.RawURLEncoding.EncodeToString
	return e([]byte(hdr)) + "." + e([]byte(payload)) + ".c2ln"
}

func TestBearerJWT(t *testing.T) {
	for _, c := range []struct {
		in   string
		ok   bool
		want gateway.Token
	}{
		{"Bearer " + jwt(`{"kid":"k1"}`, `{"jti":"a","iat":1780311600}`), true, gateway.Token{ID: "a", KeyID: "k1", IssuedAt: time.Unix(1780311600, 0).UTC()}},
		{jwt(`{}`, `{"jti":"a","iat":1780311600.5}`), true, gateway.Token{ID: "a", IssuedAt: time.Unix(1780311600, 0).UTC()}},
		{"bearer " + jwt(`{"kid":"k1"}`, `{"jti":"a","iat":"yesterday"}`), true, gateway.Token{ID: "a", KeyID: "k1"}},
		{jwt(`{"kid":"k1"}`, `{"sub":"a"}`), false, gateway.Token{}},
		// sub as written: no case folding, no trimming; a number as its text.
		{jwt(`{"kid":"k1"}`, `{"jti":"a","sub":"Auth0|5F1a "}`), true, gateway.Token{ID: "a", KeyID: "k1", User: "Auth0|5F1a "}},
		{jwt(`{}`, `{"jti":"a","sub":1042}`), true, gateway.Token{ID: "a", User: "1042"}},
		{jwt(`{}`, `{"jti":"a","sub":{"id":"x"}}`), true, gateway.Token{ID: "a"}},
		{jwt(`{}`, `{"jti":"a","sub":null}`), true, gateway.Token{ID: "a"}},
		{jwt(`not json`, `{"jti":"a"}`), false, gateway.Token{}},
		{"a.b", false, gateway.Token{}},
		{"Bearer ", false, gateway.Token{}},
	} {
		got, ok := gateway.BearerJWT(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("%q: %+v %v, want %+v %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func FuzzBearerJWT(f *testing.F) {
	f.Add("Bearer " + jwt(`{"kid":"k1"}`, `{"jti":"a","iat":1780311600}`))
	f.Add("x.y.z")
	f.Add("Bearer ..")
	f.Add("Bearer " + jwt(`{"kid":"k1"}`, `{"jti":"a","sub":"c:1","iat":1780311600}`))
	f.Add(jwt(`{}`, `{"jti":"a","sub":-1e3}`))
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := gateway.BearerJWT(s)
		if ok && c.ID == "" {
			t.Fatalf("ok without a jti: %+v", c)
		}
	})
}

var t0 = time.Now().UTC().Truncate(time.Second)

// haechi serves the real API over a registry holding tok-a (key k1).
func haechi(t testing.TB, wrap func(http.Handler) http.Handler) *httptest.Server {
	reg := mint.New(mint.Options{MaxLifetime: 12 * time.Hour})
	reg.Observe(&event.Event{Time: t0.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	reg.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: t0.Add(-time.Hour)})
	reg.Add(mint.Mint{TokenID: "tok-bound", KeyID: "k1", At: t0.Add(-time.Hour), UserID: "c:1042"})
	for i := range 1 << 16 {
		reg.Add(mint.Mint{TokenID: fmt.Sprintf("tok-%d", i), KeyID: "k1", At: t0.Add(-time.Hour)})
	}
	var h http.Handler = api.New(api.Options{Verify: api.VerifyOptions{Registry: reg, Rate: 1e9, Burst: 1 << 20}})
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestMiddleware(t *testing.T) {
	up := func(reached *bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { *reached = true })
	}
	minted := "Bearer " + jwt(`{"kid":"k1"}`, fmt.Sprintf(`{"jti":"tok-a","iat":%d}`, t0.Add(-time.Hour).Unix()))
	forged := "Bearer " + jwt(`{"kid":"k1"}`, fmt.Sprintf(`{"jti":"tok-forged","iat":%d}`, t0.Unix()))
	ok := haechi(t, nil)
	slow := haechi(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond); h.ServeHTTP(w, r) })
	})
	limited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }))
	defer limited.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	for _, c := range []struct {
		name    string
		url     string
		mode    gateway.Mode
		auth    string
		code    int
		reached bool
		verdict string
	}{
		{"minted", ok.URL, gateway.FailClosed, minted, 200, true, ""},
		{"forged", ok.URL, gateway.FailOpen, forged, 403, false, "never_minted"},
		{"no token: the gateway's own auth decides", ok.URL, gateway.FailClosed, "", 200, true, ""},
		{"opaque bearer token: the gateway's own auth decides", ok.URL, gateway.FailClosed, "Bearer 3f9a0c1e77d2", 200, true, ""},
		// A forger holding the key leaves jti out (or makes it a number):
		// the upstream's signature check accepts the JWT, so passing it
		// on would skip the check altogether.
		{"JWT without a jti", ok.URL, gateway.FailOpen, "Bearer " + jwt(`{"kid":"k1"}`, `{"sub":"c:1042"}`), 401, false, "unreadable_token"},
		{"JWT with a numeric jti", ok.URL, gateway.FailOpen, "Bearer " + jwt(`{"kid":"k1"}`, `{"jti":42}`), 401, false, "unreadable_token"},
		{"down, closed", down.URL, gateway.FailClosed, forged, 503, false, ""},
		{"down, open", down.URL, gateway.FailOpen, forged, 200, true, ""},
		{"slow, closed", slow.URL, gateway.FailClosed, minted, 503, false, ""},
		{"slow, open", slow.URL, gateway.FailOpen, forged, 200, true, ""},
		{"rate limited, closed", limited.URL, gateway.FailClosed, minted, 503, false, ""},
	} {
		// By default the client gets the status alone: the verdict goes
		// to OnRefuse (the operator); ExposeVerdict adds it for debugging.
		// Streams -1: one GET per check; 0: the default, over a stream.
		for _, x := range []struct {
			expose  bool
			streams int
		}{{false, -1}, {true, -1}, {false, 0}, {true, 0}} {
			expose := x.expose
			t.Run(fmt.Sprintf("%s/expose=%v/streams=%d", c.name, expose, x.streams), func(t *testing.T) {
				var refused, failed int
				var told string
				chk, err := gateway.New(gateway.Options{URL: c.url, Streams: x.streams, Mode: c.mode, Timeout: 100 * time.Millisecond, ExposeVerdict: expose,
					OnRefuse: func(_ *http.Request, _ gateway.Token, a gateway.Answer) { refused++; told = a.Verdict },
					OnError: func(_ *http.Request, err error, _ bool) {
						if !errors.Is(err, gateway.ErrUnavailable) {
							t.Errorf("error %v does not wrap ErrUnavailable", err)
						}
						failed++
					}})
				if err != nil {
					t.Fatal(err)
				}
				defer chk.Close()
				var reached bool
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
				if c.auth != "" {
					req.Header.Set("Authorization", c.auth)
				}
				chk.Middleware(up(&reached)).ServeHTTP(rec, req)
				if rec.Code != c.code || reached != c.reached || told != c.verdict {
					t.Errorf("%d reached=%v OnRefuse told %q, want %d %v %q", rec.Code, reached, told, c.code, c.reached, c.verdict)
				}
				if (c.code == 403 || c.code == 401) != (refused == 1) {
					t.Errorf("OnRefuse called %d times", refused)
				}
				wantHeader := ""
				if expose {
					wantHeader = c.verdict
				}
				if got := rec.Header().Get("X-Haechi-Verdict"); got != wantHeader {
					t.Errorf("client got X-Haechi-Verdict %q, want %q", got, wantHeader)
				}
				if got := rec.Header().Values("X-Haechi-Reason"); (expose && (c.code == 403 || c.code == 401)) != (len(got) > 0) {
					t.Errorf("expose=%v: client got X-Haechi-Reason %q", expose, got)
				}
				if c.code == 403 || c.code == 401 {
					if body := rec.Body.String(); strings.Contains(body, c.verdict) {
						t.Errorf("client's body %q names the verdict", body)
					}
				}
			})
		}
	}
}

// The middleware presents the JWT's sub as the user, alone or batched: a
// genuine token id presented for another user is refused, for its own
// user it passes.
func TestMiddlewareUser(t *testing.T) {
	srv := haechi(t, nil)
	bearer := func(sub string) string {
		return "Bearer " + jwt(`{"kid":"k1"}`, fmt.Sprintf(`{"jti":"tok-bound","iat":%d,"sub":%q}`, t0.Add(-time.Hour).Unix(), sub))
	}
	for _, batch := range []int{0, 8} {
		var told []string
		chk, err := gateway.New(gateway.Options{URL: srv.URL, Timeout: time.Second, MaxBatch: batch,
			OnRefuse: func(_ *http.Request, tk gateway.Token, a gateway.Answer) { told = append(told, a.Verdict+":"+tk.User) }})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			auth string
			code int
		}{
			{bearer("c:1042"), 200}, // its own user (twin)
			{bearer("c:7"), 403},
			{"Bearer " + jwt(`{"kid":"k1"}`, `{"jti":"tok-bound"}`), 200}, // no sub: unbound
		} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
			req.Header.Set("Authorization", c.auth)
			chk.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(rec, req)
			if rec.Code != c.code {
				t.Errorf("batch %d, %s: %d, want %d", batch, c.auth, rec.Code, c.code)
			}
		}
		chk.Close()
		if want := "user_mismatch:c:7"; strings.Join(told, " ") != want {
			t.Errorf("batch %d: refusals %v, want %s", batch, told, want)
		}
	}
}

// BenchmarkCheckLoopback is the verify path over HTTP on loopback: a
// gateway.Checker asking a real API server (registry of 65k tokens), from
// parallel goroutines (-cpu sets how many). Reports p50/p99 per check and
// checks/s.
func BenchmarkCheckLoopback(b *testing.B) {
	srv := haechi(b, nil)
	chk, err := gateway.New(gateway.Options{URL: srv.URL, Timeout: time.Second, Streams: -1})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
	var mu sync.Mutex
	var all []time.Duration
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		i := 0
		for pb.Next() {
			id := fmt.Sprintf("tok-%d", i&0xffff)
			if i%2 == 1 {
				id = "forged-x"
			}
			s := time.Now()
			if _, err := chk.Check(req.Context(), req, gateway.Token{ID: id, KeyID: "k1"}); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(s))
			i++
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatency(b, all, elapsed)
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "checks/s")
}

// The check is the compact form: a bodiless GET of the auth_request
// endpoint with the token and the client in headers; the answer is read
// from the status and the verdict and reason headers, anything else is
// haechi not answering.
func TestCheckCompactForm(t *testing.T) {
	var got http.Header
	var method, path string
	for _, c := range []struct {
		name    string
		status  int
		verdict string
		reasons []string
		want    gateway.Answer
		err     bool
	}{
		{"allowed", 204, "known", nil, gateway.Answer{Verdict: "known", Allow: true}, false},
		{"refused, with reasons", 403, "hijacked", []string{"minted for a client in KR, presented from NL", "minted for Safari on iOS, presented by HTTP library"},
			gateway.Answer{Verdict: "hijacked", Reasons: []string{"minted for a client in KR, presented from NL", "minted for Safari on iOS, presented by HTTP library"}}, false},
		{"403 without a verdict (a proxy's)", 403, "", nil, gateway.Answer{}, true},
		{"401: the API token is refused", 401, "", nil, gateway.Answer{}, true},
		{"200: not the check", 200, "known", nil, gateway.Answer{}, true},
		{"429", 429, "", nil, gateway.Answer{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, method, path = r.Header.Clone(), r.Method, r.URL.Path
				if c.verdict != "" {
					w.Header().Set("X-Haechi-Verdict", c.verdict)
				}
				w.Header()["X-Haechi-Reason"] = c.reasons
				w.WriteHeader(c.status)
			}))
			defer srv.Close()
			chk, err := gateway.New(gateway.Options{URL: srv.URL + "/", APIToken: "hch_verify", Streams: -1})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
			r.RemoteAddr = "198.51.100.9:4321"
			r.Header.Set("User-Agent", "python-requests/2.32")
			a, err := chk.Check(t.Context(), r, gateway.Token{ID: "tok-a", KeyID: "k1", IssuedAt: time.Unix(1780311600, 0)})
			if (err != nil) != c.err || (err != nil && !errors.Is(err, gateway.ErrUnavailable)) {
				t.Fatalf("err %v, want error %v (wrapping ErrUnavailable)", err, c.err)
			}
			if !slices.Equal(a.Reasons, c.want.Reasons) || a.Verdict != c.want.Verdict || a.Allow != c.want.Allow {
				t.Errorf("answer %+v, want %+v", a, c.want)
			}
			want := map[string]string{"X-Token-Id": "tok-a", "X-Token-Key-Id": "k1", "X-Token-Issued-At": "1780311600",
				"X-Real-Ip": "198.51.100.9", "X-Original-User-Agent": "python-requests/2.32", "Authorization": "Bearer hch_verify"}
			for k, v := range want {
				if got.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, got.Get(k), v)
				}
			}
			if method != http.MethodGet || path != "/v1/verify/auth-request" {
				t.Errorf("%s %s, want GET /v1/verify/auth-request", method, path)
			}
		})
	}
}
