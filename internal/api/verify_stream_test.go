package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/gateway"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/mint"
)

// openStream asks srvURL for a check stream with token ("" none) and
// returns the connection and its reader when it was upgraded, else the
// status.
func openStream(t *testing.T, srvURL, token string, hdr ...string) (net.Conn, *bufio.Reader, int) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	req := "GET " + gateway.StreamPath + " HTTP/1.1\r\nHost: haechi\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	if hdr == nil {
		hdr = []string{"Connection: Upgrade", "Upgrade: " + gateway.StreamProtocol}
	}
	req += strings.Join(hdr, "\r\n") + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		conn.Close()
		return nil, nil, resp.StatusCode
	}
	t.Cleanup(func() { conn.Close() })
	return conn, br, resp.StatusCode
}

// readLines reads n answer lines (or fewer when the stream ends).
func readLines(t *testing.T, conn net.Conn, br *bufio.Reader, n int) (string, error) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for range n {
		l, err := br.ReadString('\n')
		b.WriteString(l)
		if err != nil {
			return b.String(), err
		}
	}
	return b.String(), nil
}

// The stream answers each check line as the batch form answers it — the
// same lines, the same refusals reported — and, per check, "!" and why
// for a malformed line or one beyond the rate limit (which each check
// counts against, as each check of a batch does).
func TestVerifyStream(t *testing.T) {
	var mu sync.Mutex
	var refused []string
	f := newVerifyFixture(t, api.VerifyOptions{Rate: 0.001, Burst: 6, OnRefuse: func(q mint.Query, a mint.Answer) {
		mu.Lock()
		refused = append(refused, q.TokenID+":"+string(a.Verdict)+"@"+q.Source)
		mu.Unlock()
	}}, nil)
	f.reg.Observe(&event.Event{Time: vnow.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	f.reg.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: vnow.Add(-time.Hour)})
	f.reg.Add(mint.Mint{TokenID: "tok-r", KeyID: "k1", At: vnow.Add(-time.Hour)})
	f.reg.Revoke("tok-r", vnow.Add(-time.Minute))
	conn, br, code := openStream(t, f.srv.URL, "")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", code)
	}
	for _, c := range []struct {
		name, lines, want string
	}{
		{"answers in order; a bad address is no context", "tok-a\tk1\t\t203.0.113.7\tcurl/8\ntok-f\tk1\t1780315200\t203.0.113.8\nx\tk9\t\tnot-an-ip\n",
			"+known\n-never_minted\tno live mint of this token id is registered\n-unknown_key\tkey \"k9\" is not in the key inventory\n"},
		{"revoked", "tok-r\tk1\n", "-revoked\t"},
		{"a malformed line is answered alone", "tok-a\tk1\tyesterday\ntok-a\tk1\n", "!check: issued_at is neither Unix seconds nor RFC 3339\n+known\n"},
		{"beyond the rate limit (6 spent)", "tok-a\n", "!verify rate limit exceeded\n"},
	} {
		if _, err := io.WriteString(conn, c.lines); err != nil {
			t.Fatal(err)
		}
		got, err := readLines(t, conn, br, strings.Count(c.lines, "\n"))
		if err != nil || !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q %v, want %q", c.name, got, err, c.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "tok-f:never_minted@203.0.113.8 x:unknown_key@ tok-r:revoked@"; strings.Join(refused, " ") != want {
		t.Errorf("refusals reported %q, want %q", strings.Join(refused, " "), want)
	}
}

// The stream is the same judgement as the batch form: every line of a
// batch gets the same answer either way.
func TestVerifyStreamEqualsBatch(t *testing.T) {
	f := newVerifyFixture(t, api.VerifyOptions{}, nil)
	f.reg.Observe(&event.Event{Time: vnow.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	f.reg.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: vnow.Add(-time.Hour), Country: "KR"})
	body := "tok-a\tk1\ntok-b\tk1\t1780315200\ntok-a\tk2\ntok-a\tk1\t\t203.0.113.9\tcurl/8\nz\n"
	resp, err := http.Post(f.srv.URL+"/v1/verify/batch", "text/tab-separated-values", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	conn, br, _ := openStream(t, f.srv.URL, "")
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	if got, err := readLines(t, conn, br, 5); err != nil || got != string(want) {
		t.Errorf("stream %q %v, batch %q", got, err, want)
	}
}

func TestVerifyStreamUpgrade(t *testing.T) {
	f := newVerifyFixture(t, api.VerifyOptions{}, nil)
	for _, c := range []struct {
		name string
		hdr  []string
		code int
	}{
		{"no upgrade", []string{"Accept: */*"}, http.StatusUpgradeRequired},
		{"another protocol", []string{"Connection: Upgrade", "Upgrade: websocket"}, http.StatusUpgradeRequired},
		{"connection lists it", []string{"Connection: keep-alive, Upgrade", "Upgrade: " + gateway.StreamProtocol}, http.StatusSwitchingProtocols},
	} {
		if _, _, code := openStream(t, f.srv.URL, "", c.hdr...); code != c.code {
			t.Errorf("%s: %d, want %d", c.name, code, c.code)
		}
	}
}

// A line longer than MaxBatchLine is answered "!" and ends the stream:
// memory per stream is bounded.
func TestVerifyStreamLongLine(t *testing.T) {
	f := newVerifyFixture(t, api.VerifyOptions{}, nil)
	conn, br, _ := openStream(t, f.srv.URL, "")
	go func() { _, _ = io.WriteString(conn, "tok-a\n"+strings.Repeat("x", 3*gateway.MaxBatchLine)+"\ntok-a\n") }()
	// The refusal of the long line is sent, but the client may not see
	// it: closing a connection with unread input resets it.
	got, err := readLines(t, conn, br, 3)
	if err == nil || !strings.HasPrefix(got, "+uncovered\n") || strings.Count(got, "\n") > 2 || strings.Count(got, "\n") == 2 && !strings.Contains(got, "\n!a check line is longer than 16384 bytes") {
		t.Errorf("%q %v, want an answer, maybe a refusal of the long line, then the end", got, err)
	}
}

// The stream needs the verify role, and lives no longer than its token:
// revoked by another process (the store alone), it is closed within the
// re-check interval (1 s, the authenticator's cache).
func TestVerifyStreamRole(t *testing.T) {
	ctx := context.Background()
	st, tokens, ids := roleTokens(t)
	authn := auth.New(auth.Options{Store: st, CacheTTL: time.Second})
	f := newVerifyFixture(t, api.VerifyOptions{}, authn)
	for _, c := range []struct {
		role auth.Role
		code int
	}{
		{auth.RoleVerify, 101}, {auth.RoleAdmin, 101}, {auth.RoleIngest, 403}, {auth.RoleAnalyst, 403}, {"", 401},
	} {
		if _, _, code := openStream(t, f.srv.URL, tokens[c.role]); code != c.code {
			t.Errorf("%s: %d, want %d", c.role, code, c.code)
		}
	}
	conn, br, _ := openStream(t, f.srv.URL, tokens[auth.RoleVerify])
	if _, err := io.WriteString(conn, "tok-a\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := readLines(t, conn, br, 1); err != nil || !strings.HasPrefix(got, "+") {
		t.Fatalf("before revocation: %q %v", got, err)
	}
	// Still open after two re-checks.
	time.Sleep(2100 * time.Millisecond)
	if _, err := io.WriteString(conn, "tok-a\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := readLines(t, conn, br, 1); err != nil || !strings.HasPrefix(got, "+") {
		t.Fatalf("before revocation, 2 s later: %q %v", got, err)
	}
	if err := st.RevokeToken(ctx, ids[auth.RoleVerify], "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Fatalf("after revocation: %v, want the stream closed", err)
	}
	if d := time.Since(revoked); d > 2*time.Second { // 1 s re-check, slack for a loaded machine
		t.Errorf("closed %v after the revocation, want within the 1 s re-check (and scheduling slack)", d)
	}
	if _, _, code := openStream(t, f.srv.URL, tokens[auth.RoleVerify]); code != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", code)
	}
}

// CloseStreams (serve's shutdown) ends each stream after answering every
// check line it has read, and refuses new streams.
func TestVerifyStreamClose(t *testing.T) {
	reg := mint.New(mint.Options{MaxLifetime: 12 * time.Hour})
	s := api.New(api.Options{Alerts: &fakeStore{}, Now: func() time.Time { return vnow }, Verify: api.VerifyOptions{Registry: reg}})
	srv := newServer(t, s)
	conn, br, _ := openStream(t, srv, "")
	const n = 1000
	if _, err := io.WriteString(conn, strings.Repeat("tok-a\tk1\n", n)); err != nil {
		t.Fatal(err)
	}
	// Wait for the first answer: the lines are being read.
	if _, err := readLines(t, conn, br, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.CloseStreams(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := readLines(t, conn, br, n)
	if !errors.Is(err, io.EOF) {
		t.Errorf("after CloseStreams: %v, want the stream closed", err)
	}
	// Every line read was answered, whole: answers are never cut.
	if !strings.HasSuffix(got, "\n") && got != "" {
		t.Errorf("a partial answer at the end: %q", got[max(0, len(got)-40):])
	}
	if _, _, code := openStream(t, srv, ""); code != http.StatusServiceUnavailable {
		t.Errorf("a stream after CloseStreams: %d, want 503", code)
	}
}

// newServer serves h on loopback with serve's timeouts; it returns the
// base URL.
func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// One token holds at most MaxStreamsPerToken streams open (429 beyond,
// and again once one of them closed); another token's are its own. Before,
// a token could open streams without bound, each with its buffers and
// two goroutines.
func TestVerifyStreamPerToken(t *testing.T) {
	st, tokens, _ := roleTokens(t)
	f := newVerifyFixture(t, api.VerifyOptions{MaxStreamsPerToken: 3}, auth.New(auth.Options{Store: st, CacheTTL: time.Second}))
	var conns []net.Conn
	for i := range 3 {
		conn, _, code := openStream(t, f.srv.URL, tokens[auth.RoleVerify])
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("stream %d: %d", i+1, code)
		}
		conns = append(conns, conn)
	}
	if _, _, code := openStream(t, f.srv.URL, tokens[auth.RoleVerify]); code != http.StatusTooManyRequests {
		t.Errorf("a 4th stream of the token: %d, want 429", code)
	}
	if _, _, code := openStream(t, f.srv.URL, tokens[auth.RoleAdmin]); code != http.StatusSwitchingProtocols {
		t.Errorf("another token's stream: %d, want 101", code)
	}
	conns[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, _, code := openStream(t, f.srv.URL, tokens[auth.RoleVerify])
		if code == http.StatusSwitchingProtocols {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one closed: %d, want 101", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Over streams as over the batch form, each calling token spends its own
// verify.rate bucket: one gateway running hot (or a leaked verify token)
// cannot starve another's checks, which a fail-open gateway would pass.
func TestVerifyStreamRatePerCaller(t *testing.T) {
	st, tokens, _ := roleTokens(t)
	f := newVerifyFixture(t, api.VerifyOptions{Rate: 0.001, Burst: 2}, auth.New(auth.Options{Store: st, CacheTTL: time.Second}))
	f.reg.Observe(&event.Event{Time: vnow.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	f.reg.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: vnow.Add(-time.Hour)})
	hot, hotR, code := openStream(t, f.srv.URL, tokens[auth.RoleVerify])
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", code)
	}
	if _, err := io.WriteString(hot, "tok-a\tk1\ntok-a\tk1\ntok-a\tk1\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := readLines(t, hot, hotR, 3); err != nil || got != "+known\n+known\n!verify rate limit exceeded\n" {
		t.Fatalf("the hot caller: %q %v", got, err)
	}
	other, otherR, code := openStream(t, f.srv.URL, tokens[auth.RoleAdmin])
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", code)
	}
	if _, err := io.WriteString(other, "tok-a\tk1\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := readLines(t, other, otherR, 1); err != nil || got != "+known\n" {
		t.Errorf("another caller, after the hot one spent its bucket: %q %v", got, err)
	}
}
