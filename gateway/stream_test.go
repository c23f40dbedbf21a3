package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/gateway"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/store"
)

const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"

// verdictRegistry can answer every verdict: k1 active, k2 retired ten
// minutes ago; tok-a minted on k1 an hour ago for a client in KR with
// Chrome, tok-late on k2 after its retirement, tok-rev revoked.
func verdictRegistry() *mint.Registry {
	now := time.Now()
	r := mint.New(mint.Options{MaxLifetime: 12 * time.Hour, ClockSkew: time.Minute})
	r.Observe(&event.Event{Time: now.Add(-48 * time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1", Status: "active"}})
	r.Observe(&event.Event{Time: now.Add(-48 * time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k2", Status: "active"}})
	r.Observe(&event.Event{Time: now.Add(-10 * time.Minute), Dataset: event.DatasetKeys, Action: event.ActionKeyRetired, Key: event.Key{ID: "k2", Status: "retired"}})
	r.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", IssuedAt: now.Add(-time.Hour), At: now.Add(-time.Hour), Country: "KR", UserAgent: chrome})
	r.Add(mint.Mint{TokenID: "tok-late", KeyID: "k2", IssuedAt: now.Add(-5 * time.Minute), At: now.Add(-5 * time.Minute)})
	r.Add(mint.Mint{TokenID: "tok-rev", KeyID: "k1", IssuedAt: now.Add(-time.Hour), At: now.Add(-time.Hour)})
	r.Revoke("tok-rev", now.Add(-time.Minute))
	return r
}

// locate: documentation addresses by country.
func locate(a netip.Addr) string {
	switch a.String() {
	case "198.51.100.9":
		return "KR"
	case "203.0.113.7":
		return "NL"
	}
	return ""
}

// Every verdict reaches the gateway over the stream exactly as over the
// batch form and the one-check GET, with its reasons.
func TestStreamVerdicts(t *testing.T) {
	var refusals atomic.Int64
	srv := httptest.NewServer(api.New(api.Options{Verify: api.VerifyOptions{Registry: verdictRegistry(), Locate: locate,
		OnRefuse: func(mint.Query, mint.Answer) { refusals.Add(1) }}}))
	defer srv.Close()
	forms := map[string]gateway.Options{
		"stream": {},
		"batch":  {Streams: -1, MaxBatch: 8},
		"get":    {Streams: -1},
	}
	checkers := map[string]*gateway.Checker{}
	for name, o := range forms {
		o.URL, o.Timeout = srv.URL, 5*time.Second
		c, err := gateway.New(o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		checkers[name] = c
	}
	now := time.Now().Truncate(time.Second)
	for _, c := range []struct {
		name   string
		tok    gateway.Token
		ip, ua string
		want   string
		allow  bool
	}{
		{"known", gateway.Token{ID: "tok-a", KeyID: "k1", IssuedAt: now.Add(-time.Hour)}, "198.51.100.9", chrome, "known", true},
		{"never minted", gateway.Token{ID: "tok-forged", KeyID: "k1", IssuedAt: now}, "198.51.100.9", chrome, "never_minted", false},
		{"unknown key", gateway.Token{ID: "tok-a", KeyID: "k9"}, "", "", "unknown_key", false},
		{"retired key", gateway.Token{ID: "tok-late", KeyID: "k2"}, "", "", "retired_key", false},
		{"revoked", gateway.Token{ID: "tok-rev", KeyID: "k1"}, "", "", "revoked", false},
		{"hijacked", gateway.Token{ID: "tok-a", KeyID: "k1"}, "203.0.113.7", "curl/8.5", "hijacked", false},
		{"a bad address is no context", gateway.Token{ID: "tok-a", KeyID: "k1"}, "not-an-ip", "curl/8.5", "known", true},
	} {
		var first gateway.Answer
		for _, form := range []string{"get", "batch", "stream"} {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.ip + ":443"
			r.Header.Set("User-Agent", c.ua)
			a, err := checkers[form].Check(context.Background(), r, c.tok)
			if err != nil {
				t.Fatalf("%s over %s: %v", c.name, form, err)
			}
			if a.Verdict != c.want || a.Allow != c.allow || a.Allow == (len(a.Reasons) > 0) {
				t.Errorf("%s over %s: %+v, want %s allow=%v (reasons for refusals only)", c.name, form, a, c.want, c.allow)
			}
			if form == "get" {
				first = a
			} else if !reflect.DeepEqual(a, first) {
				t.Errorf("%s: over %s %+v, over get %+v", c.name, form, a, first)
			}
		}
	}
	if n := refusals.Load(); n != 3*5 {
		t.Errorf("%d refusals reported, want 15 (5 refused checks over 3 forms)", n)
	}
}

// killable serves the API on a fixed address and can crash (every
// connection, upgraded or not, dropped at once) and restart there.
type killable struct {
	t     *testing.T
	addr  string
	h     http.Handler
	mu    sync.Mutex
	l     net.Listener
	conns []net.Conn
}

func (k *killable) start() {
	k.t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the port may linger a moment after the kill
		if l, err = net.Listen("tcp", k.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		k.t.Fatal(err)
	}
	k.mu.Lock()
	k.l, k.addr = l, l.Addr().String()
	k.mu.Unlock()
	srv := &http.Server{Handler: k.h, ConnState: func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			k.mu.Lock()
			k.conns = append(k.conns, c)
			k.mu.Unlock()
		}
	}}
	go srv.Serve(l)
}

func (k *killable) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.l.Close()
	for _, c := range k.conns {
		c.Close()
	}
	k.conns = nil
}

// blocking answers tok-block only when released.
type blocking struct {
	*mint.Registry
	gate chan struct{}
}

func (b blocking) Verify(q mint.Query) mint.Answer {
	if q.TokenID == "tok-block" {
		<-b.gate
	}
	return b.Registry.Verify(q)
}

// When haechi dies, the checks in flight on a stream fail at once (not by
// their timeout) and the mode decides; checks while it is down fail
// fast; when it is back, the Checker redials and checks are answered.
func TestStreamServerKilled(t *testing.T) {
	reg := blocking{verdictRegistry(), make(chan struct{})}
	defer close(reg.gate)
	k := &killable{t: t, addr: "127.0.0.1:0", h: api.New(api.Options{Verify: api.VerifyOptions{Registry: reg}})}
	k.start()
	defer k.kill()
	for _, mode := range []gateway.Mode{gateway.FailClosed, gateway.FailOpen} {
		var passed atomic.Int64
		chk, err := gateway.New(gateway.Options{URL: "http://" + k.addr, Timeout: 10 * time.Second, Mode: mode,
			Token: func(r *http.Request) (gateway.Token, bool) {
				return gateway.Token{ID: r.URL.Query().Get("t"), KeyID: "k1", IssuedAt: time.Now()}, true
			},
			OnError: func(_ *http.Request, err error, pass bool) { passed.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		h := chk.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		serve := func(tok string) int {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?t="+tok, nil))
			return rec.Code
		}
		waitFor(t, func() bool { return serve("tok-a") == 200 })
		if code := serve("tok-forged"); code != 403 {
			t.Fatalf("mode %d: forged: %d, want 403", mode, code)
		}
		// One check in flight (the server holds it), then the crash.
		done := make(chan int, 1)
		start := time.Now()
		go func() { done <- serve("tok-block") }()
		time.Sleep(100 * time.Millisecond)
		k.kill()
		want := map[gateway.Mode]int{gateway.FailClosed: 503, gateway.FailOpen: 200}[mode]
		select {
		case code := <-done:
			if code != want {
				t.Errorf("mode %d: in flight at the crash: %d, want %d", mode, code, want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("mode %d: in flight at the crash: failed after %v, not at once", mode, d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("mode %d: the check in flight at the crash still waits", mode)
		}
		// Down: the dial fails, checks fail fast.
		waitFor(t, func() bool {
			s := time.Now()
			return serve("tok-a") == want && time.Since(s) < 500*time.Millisecond
		})
		// Back: redialled, answered.
		k.start()
		waitFor(t, func() bool { return serve("tok-forged") == 403 })
		if passed.Load() == 0 {
			t.Errorf("mode %d: OnError never told", mode)
		}
		chk.Close()
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}

// A stream refused at the upgrade (wrong token, wrong role) fails checks
// at once with the status, as a refused batch does.
func TestStreamAuthRefused(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ingest, _, err := auth.CreateToken(ctx, st, auth.RoleIngest, "ingest", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	verify, _, err := auth.CreateToken(ctx, st, auth.RoleVerify, "gw", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	authn := auth.New(auth.Options{Store: st, CacheTTL: time.Second})
	srv := httptest.NewServer(api.New(api.Options{Auth: authn, Verify: api.VerifyOptions{Registry: verdictRegistry()}}))
	defer srv.Close()
	for _, c := range []struct {
		name, token, want string
	}{
		{"verify role", verify, ""},
		{"ingest role", ingest, "403"},
		{"no token", "", "401"},
		{"unknown token", "hch_" + strings.Repeat("A", 43), "401"},
	} {
		chk, err := gateway.New(gateway.Options{URL: srv.URL, APIToken: c.token, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		start := time.Now()
		a, err := chk.Check(ctx, r, gateway.Token{ID: "tok-a", KeyID: "k1"})
		chk.Close()
		switch {
		case c.want == "" && (err != nil || a.Verdict != "known"):
			t.Errorf("%s: %+v %v", c.name, a, err)
		case c.want != "" && (!errors.Is(err, gateway.ErrUnavailable) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %+v %v, want ErrUnavailable with %s", c.name, a, err, c.want)
		case time.Since(start) > 2*time.Second:
			t.Errorf("%s: took %v, not at once", c.name, time.Since(start))
		}
	}
}

// An older haechi answers the upgrade 404: the Checker falls back to the
// batch form when MaxBatch is set, else to one GET per check.
func TestStreamFallback(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]int{}
	h := api.New(api.Options{Verify: api.VerifyOptions{Registry: verdictRegistry()}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == gateway.StreamPath {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	for _, c := range []struct {
		maxBatch int
		path     string
	}{{0, "/v1/verify/auth-request"}, {8, "/v1/verify/batch"}} {
		clear(paths)
		chk, err := gateway.New(gateway.Options{URL: srv.URL, Timeout: 5 * time.Second, MaxBatch: c.maxBatch})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			a, err := chk.Check(context.Background(), httptest.NewRequest(http.MethodGet, "/", nil), gateway.Token{ID: "tok-forged", KeyID: "k1", IssuedAt: time.Now()})
			if err != nil || a.Verdict != "never_minted" {
				t.Errorf("MaxBatch %d: %+v %v", c.maxBatch, a, err)
			}
		}
		chk.Close()
		mu.Lock()
		if paths[c.path] != 3 || paths[gateway.StreamPath] < 1 || paths[gateway.StreamPath] > 2 {
			t.Errorf("MaxBatch %d: requests %v, want 3 to %s after at most one upgrade per stream", c.maxBatch, paths, c.path)
		}
		mu.Unlock()
	}
}

// serve's shutdown (CloseStreams): every check in flight is answered or
// fails at once, none waits out its timeout; afterwards checks fail fast
// (new streams are refused).
func TestStreamShutdown(t *testing.T) {
	s := api.New(api.Options{Verify: api.VerifyOptions{Registry: verdictRegistry(), Rate: 1e9, Burst: 1 << 20}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	chk, err := gateway.New(gateway.Options{URL: srv.URL, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer chk.Close()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if _, err := chk.Check(context.Background(), r, gateway.Token{ID: "tok-a"}); err != nil {
		t.Fatal(err)
	}
	var answered, failed atomic.Int64
	var wg sync.WaitGroup
	running, stop := context.WithCancel(context.Background())
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for running.Err() == nil {
				s := time.Now()
				_, err := chk.Check(context.Background(), r, gateway.Token{ID: "tok-a"})
				if d := time.Since(s); d > 2*time.Second {
					t.Errorf("a check took %v", d)
				}
				if err != nil {
					if !errors.Is(err, gateway.ErrUnavailable) {
						t.Errorf("error %v does not wrap ErrUnavailable", err)
					}
					failed.Add(1)
				} else {
					answered.Add(1)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.CloseStreams(ctx); err != nil {
		t.Fatal(err)
	}
	before := answered.Load()
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()
	if before == 0 || failed.Load() == 0 {
		t.Errorf("%d answered, %d failed: want answers before the shutdown and failures after", before, failed.Load())
	}
	if after := answered.Load() - before; after > 8 {
		t.Errorf("%d checks answered after the streams closed", after)
	}
}

// A stream answer line is an answer, "!" and why (haechi did not judge
// that check), or neither (the stream is out of step); it never panics.
func FuzzParseStreamAnswer(f *testing.F) {
	for _, s := range []string{"+known", "-hijacked\tminted for KR", "!verify rate limit exceeded", "!", "", "?x", "+"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		a, err := gateway.ParseStreamAnswer(line)
		switch {
		case len(line) > 0 && line[0] == '!':
			if !errors.Is(err, gateway.ErrUnavailable) {
				t.Fatalf("%q: %v, want ErrUnavailable", line, err)
			}
		case err == nil:
			if a.Verdict == "" || a.Allow != (line[0] == '+') {
				t.Fatalf("%q: %+v", line, a)
			}
			if b, ok := gateway.ParseAnswer(line); !ok || !reflect.DeepEqual(a, b) {
				t.Fatalf("%q: %+v, the batch form reads %+v %v", line, a, b, ok)
			}
		case errors.Is(err, gateway.ErrUnavailable):
			t.Fatalf("%q: an unreadable line reads as haechi not answering one check: %v", line, err)
		}
	})
}

// Over HTTPS the stream is TLS (HTTP/1.1), with the Client's TLS
// configuration: here the test server's own certificate authority.
func TestStreamTLS(t *testing.T) {
	var upgrades atomic.Int64
	h := api.New(api.Options{Verify: api.VerifyOptions{Registry: verdictRegistry()}})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == gateway.StreamPath && r.TLS != nil {
			upgrades.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true // the client must still ask for HTTP/1.1
	srv.StartTLS()
	defer srv.Close()
	chk, err := gateway.New(gateway.Options{URL: srv.URL, Client: srv.Client(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer chk.Close()
	a, err := chk.Check(context.Background(), httptest.NewRequest(http.MethodGet, "/", nil), gateway.Token{ID: "tok-forged", KeyID: "k1", IssuedAt: time.Now()})
	if err != nil || a.Verdict != "never_minted" || upgrades.Load() == 0 {
		t.Errorf("%+v %v after %d TLS upgrades", a, err, upgrades.Load())
	}
}

// A stream holds at most StreamInFlight checks in flight and as many
// queued: beyond them, a check waits for room no longer than its timeout,
// so a server that stops answering costs the gateway bounded memory.
func TestStreamInFlightBound(t *testing.T) {
	reg := blocking{verdictRegistry(), make(chan struct{})}
	srv := httptest.NewServer(api.New(api.Options{Verify: api.VerifyOptions{Registry: reg}}))
	defer srv.Close()
	defer close(reg.gate)
	chk, err := gateway.New(gateway.Options{URL: srv.URL, Timeout: 300 * time.Millisecond, Streams: 1, StreamInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if _, err := chk.Check(context.Background(), r, gateway.Token{ID: "tok-a"}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := chk.Check(context.Background(), r, gateway.Token{ID: "tok-block"})
			errs <- err
		}()
	}
	var full int
	for range 10 {
		err := <-errs
		if !errors.Is(err, gateway.ErrUnavailable) {
			t.Fatalf("a check the server holds: %v, want ErrUnavailable by the timeout", err)
		}
		if strings.Contains(err.Error(), "queued beyond the timeout") {
			full++
		}
	}
	// One in the server, two in flight, two queued (the writer may hold
	// one more): the rest found no room.
	if full < 4 {
		t.Errorf("%d of 10 checks found the stream full, want at least 4", full)
	}
	// Close returns though the stream is full and the server silent.
	closed := make(chan struct{})
	go func() { chk.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a full stream")
	}
}

// A check whose line would be longer than MaxBatchLine (a forged token
// with a long id, or a client sending a long User-Agent: both are the
// caller's to choose) is judged like any other, and does not break the
// stream for the checks that share it: before, its line ended the
// stream (haechi closes a stream on a line too long), so the check and
// every check in flight on it failed and, with FailOpen, passed — an
// attacker's way to make a fail-open gateway pass a forged token.
func TestStreamLongCheckLine(t *testing.T) {
	var refusals atomic.Int64
	srv := httptest.NewServer(api.New(api.Options{Verify: api.VerifyOptions{Registry: verdictRegistry(),
		OnRefuse: func(mint.Query, mint.Answer) { refusals.Add(1) }}}))
	defer srv.Close()
	for _, o := range []gateway.Options{{Streams: 1}, {Streams: -1, MaxBatch: 8}} {
		o.URL, o.Timeout = srv.URL, 5*time.Second
		chk, err := gateway.New(o)
		if err != nil {
			t.Fatal(err)
		}
		long := strings.Repeat("x", 2*gateway.MaxBatchLine+8) // beyond haechi's read buffer too
		for _, c := range []struct {
			name string
			tok  gateway.Token
			ua   string
			want string
		}{
			{"long token id", gateway.Token{ID: "tok-" + long, KeyID: "k1", IssuedAt: time.Now()}, chrome, "never_minted"},
			{"long user agent", gateway.Token{ID: "tok-forged", KeyID: "k1", IssuedAt: time.Now()}, long, "never_minted"},
			{"after them", gateway.Token{ID: "tok-a", KeyID: "k1"}, "", "known"},
		} {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("User-Agent", c.ua)
			a, err := chk.Check(context.Background(), r, c.tok)
			if err != nil || a.Verdict != c.want {
				t.Errorf("streams=%d batch=%d, %s: %+v, %v; want %s", o.Streams, o.MaxBatch, c.name, a, err, c.want)
			}
		}
		chk.Close()
	}
	if n := refusals.Load(); n != 2*2 {
		t.Errorf("%d refusals reported, want 4", n)
	}
}

// authRequestPath is the one-check GET form.
const authRequestPath = "/v1/verify/auth-request"

// A haechi upgraded behind the gateway is used without a restart: a
// Checker answered 404 at the upgrade checks by GET (or batch) meanwhile
// and asks for the stream again every StreamReprobe, jittered. Before,
// one 404 kept it off streams until it was restarted.
func TestStreamReprobe(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]int{}
	var offered atomic.Bool // the "upgraded" haechi offers the stream
	h := api.New(api.Options{Verify: api.VerifyOptions{Registry: verdictRegistry()}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == gateway.StreamPath && !offered.Load() {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	count := func(p string) int {
		mu.Lock()
		defer mu.Unlock()
		return paths[p]
	}
	const reprobe = 200 * time.Millisecond
	chk, err := gateway.New(gateway.Options{URL: srv.URL, Timeout: 5 * time.Second, StreamReprobe: reprobe})
	if err != nil {
		t.Fatal(err)
	}
	defer chk.Close()
	check := func() {
		t.Helper()
		a, err := chk.Check(context.Background(), httptest.NewRequest(http.MethodGet, "/", nil), gateway.Token{ID: "tok-a", KeyID: "k1"})
		if err != nil || a.Verdict != "known" {
			t.Fatalf("%+v %v", a, err)
		}
	}
	// The old haechi: every check by GET, answered.
	start := time.Now()
	for range 5 {
		check()
	}
	if got := count(authRequestPath); got != 5 {
		t.Fatalf("before the upgrade: %d checks by GET, want 5", got)
	}
	time.Sleep(3 * reprobe)
	probed := count(gateway.StreamPath)
	// Two streams, each at most once per reprobe/2 and once at the start.
	if most := 2 * (int(time.Since(start)/(reprobe/2)) + 1); probed > most {
		t.Errorf("%d upgrade requests in %v, want at most %d: re-probes must wait StreamReprobe", probed, time.Since(start), most)
	}
	if probed < 3 {
		t.Errorf("%d upgrade requests in %v with StreamReprobe %v, want re-probes", probed, time.Since(start), reprobe)
	}
	offered.Store(true)
	// Within a re-probe (and scheduling slack) the checks move to the
	// stream: they stop reaching the GET endpoint.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := count(authRequestPath)
		check()
		if count(authRequestPath) == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the checks still go by GET 10 s after haechi offered the stream (upgrade requests: %d)", count(gateway.StreamPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := count(authRequestPath)
	for range 20 {
		check()
	}
	if got := count(authRequestPath) - before; got != 0 {
		t.Errorf("after the upgrade, %d of 20 checks by GET, want all over the stream", got)
	}
}

// A check that finds a connection dialing as the server answers its
// upgrade 404 goes by the other forms at once: it must not sit in the
// connection's queue until its timeout (it did when it was queued just
// after the 404 emptied the queue: TestStreamFallback failed once so in
// a race run). Many checkers, each checked from several goroutines as it
// starts, make the window likely.
func TestStreamFallbackNoCheckWaits(t *testing.T) {
	h := api.New(api.Options{Verify: api.VerifyOptions{Registry: verdictRegistry()}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == gateway.StreamPath {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	const timeout = 20 * time.Second
	for round := range 60 {
		chk, err := gateway.New(gateway.Options{URL: srv.URL, Timeout: timeout, Streams: 2})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				a, err := chk.Check(context.Background(), httptest.NewRequest(http.MethodGet, "/", nil), gateway.Token{ID: "tok-forged", KeyID: "k1", IssuedAt: time.Now()})
				switch {
				case err != nil || a.Verdict != "never_minted":
					errs <- fmt.Errorf("round %d: %+v %v", round, a, err)
				case time.Since(start) > timeout/2:
					errs <- fmt.Errorf("round %d: a check took %v: it waited in a stream that had no server", round, time.Since(start))
				}
			}()
		}
		wg.Wait()
		chk.Close()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}
	}
}
