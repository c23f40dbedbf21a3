package app_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
)

// TestServeAccessControl: the first start creates an admin token and
// prints it once; without it the API and console answer 401, with it 200;
// a restart creates none; --insecure-no-auth is refused off loopback.
func TestServeAccessControl(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	start := func() (string, string, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var out bytes.Buffer
		ready := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- app.Serve(ctx, app.ServeOptions{Config: cfg, Announce: &out, Ready: func(u string) { ready <- u }})
		}()
		select {
		case base := <-ready:
			return base, out.String(), func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			}
		case err := <-done:
			t.Fatalf("serve: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not start")
		}
		return "", "", nil
	}
	base, printed, stop := start()
	tok := regexp.MustCompile(`hch_[A-Za-z0-9_-]{43}`).FindString(printed)
	if tok == "" {
		t.Fatalf("the first start printed no admin token:\n%s", printed)
	}
	get := func(path, token string) int {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", 200},
		{"/v1/alerts", "", 401},
		{"/metrics", "", 401},
		{"/", "", 401},
		{"/v1/alerts", tok, 200},
		{"/metrics", tok, 200},
		{"/", tok, 200},
		{"/alerts", tok, 200},
		{"/scorecard", tok, 200},
	} {
		if got := get(c.path, c.token); got != c.want {
			t.Errorf("GET %s (token %v): %d, want %d", c.path, c.token != "", got, c.want)
		}
	}
	stop()
	_, printed, stop = start()
	stop()
	if strings.Contains(printed, "hch_") {
		t.Errorf("a restart printed another token:\n%s", printed)
	}

	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skipf("cannot listen on 0.0.0.0: %v", err)
	}
	err = app.Serve(context.Background(), app.ServeOptions{Config: cfg, Listener: ln, InsecureNoAuth: true})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("--insecure-no-auth on 0.0.0.0: err = %v, want a refusal naming loopback", err)
	}
}

// TestServeInsecureNoAuthLoopbackOnly: without access control, serve
// still refuses what another web site in the user's browser could send: a
// request whose Host is not a loopback name (DNS rebinding) with 421, a
// cross-site post with 403. Its own pages and scripts without Origin pass.
func TestServeInsecureNoAuthLoopbackOnly(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, app.ServeOptions{Config: cfg, Ready: func(u string) { ready <- u }, InsecureNoAuth: true})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	u, _ := url.Parse(base)
	_, port, _ := net.SplitHostPort(u.Host)
	for _, c := range []struct {
		name, method, path, host string
		hdr                      map[string]string
		want                     int
	}{
		{"console", "GET", "/alerts", "", nil, 200},
		{"console by name", "GET", "/alerts", "localhost:" + port, nil, 200},
		{"rebinding", "GET", "/v1/alerts", "rebind.attacker.example:" + port, nil, http.StatusMisdirectedRequest},
		{"rebinding scope read", "GET", "/v1/scope?key=k-1", "rebind.attacker.example:" + port, nil, http.StatusMisdirectedRequest},
		{"rebinding post", "POST", "/v1/events", "rebind.attacker.example:" + port, nil, http.StatusMisdirectedRequest},
		{"cross-site post", "POST", "/v1/actions/act-x/approve", "", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"cross-site form", "POST", "/actions/act-x/approve", "", map[string]string{"Origin": "null", "Content-Type": "application/x-www-form-urlencoded"}, http.StatusForbidden},
		{"cross-site fetch", "POST", "/v1/events", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same-origin post", "POST", "/v1/actions/act-x/approve", "", map[string]string{"Origin": base}, http.StatusNotFound},
		{"script post", "POST", "/v1/events", "", nil, http.StatusOK},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(""))
		if c.host != "" {
			req.Host = c.host
		}
		for k, v := range c.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %s %s (Host %q, %v): %d, want %d (%s)", c.name, c.method, c.path, c.host, c.hdr, resp.StatusCode, c.want, body)
		}
	}
}

// TestServeTLS: --tls-cert/--tls-key serve HTTPS, and the console's
// session cookie is then Secure.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, app.ServeOptions{Config: cfg, Announce: &out, TLSCert: certFile, TLSKey: keyFile, Ready: func(u string) { ready <- u }})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base URL %s, want https", base)
	}
	pool := x509.NewCertPool()
	certPEM, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(certPEM)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("login page over TLS: %s\n%s", resp.Status, page)
	}
	tok := regexp.MustCompile(`hch_[A-Za-z0-9_-]{43}`).FindString(out.String())
	resp, err = client.PostForm(base+"/login", url.Values{"token": {tok}, "csrf": {string(m[1])}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "haechi_session" {
			sess = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || sess == nil || !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login over TLS: %s, cookie %+v; want 303 and a Secure, HttpOnly, SameSite=Strict session cookie", resp.Status, sess)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "haechi test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
