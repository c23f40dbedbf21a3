package api_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/mint"
)

// nginxBinary finds Debian's nginx (.ci/run installs nginx-light, which
// has the auth_request module).
func nginxBinary(t *testing.T) string {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if b, err := exec.LookPath(p); err == nil {
			return b
		}
	}
	t.Skip("nginx is not installed (apt-get install nginx-light); .ci/run installs it")
	return ""
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestNginxAuthRequest runs Debian's nginx on loopback with auth_request
// pointing at haechi's endpoint, in front of a stub upstream: a forged
// token gets 403 and never reaches the upstream, a minted one 200.
func TestNginxAuthRequest(t *testing.T) {
	bin := nginxBinary(t)
	reg := mint.New(mint.Options{MaxLifetime: 12 * time.Hour})
	now := time.Now().UTC()
	reg.Observe(&event.Event{Time: now.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	reg.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: now.Add(-time.Hour), UserID: "c:1042"})
	haechi := httptest.NewServer(api.New(api.Options{Verify: api.VerifyOptions{Registry: reg}}))
	defer haechi.Close()
	var reached []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = append(reached, r.Header.Get("Authorization"))
		fmt.Fprint(w, "customer data")
	}))
	defer upstream.Close()

	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`
daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen 127.0.0.1:%[2]d;
        location / {
            auth_request /_haechi;
            proxy_pass %[3]s;
        }
        location = /_haechi {
            internal;
            proxy_pass %[4]s/v1/verify/auth-request;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Authorization $http_authorization;
            proxy_set_header X-Original-User-Agent $http_user_agent;
            proxy_set_header X-Real-IP $remote_addr;
        }
    }
}
`, dir, port, upstream.URL, haechi.URL)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", cf)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s\n%s", stderr.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	method := http.MethodGet
	var extra map[string]string
	var last http.Header // the last answer's headers, as the client sees them
	get := func(auth string) int {
		req, _ := http.NewRequest(method, base+"/v1/me", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		for k, v := range extra {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp.Header
		return resp.StatusCode
	}
	minted := "Bearer " + jwt(`{"alg":"RS256","kid":"k1"}`, fmt.Sprintf(`{"jti":"tok-a","iat":%d,"sub":"c:1042"}`, now.Add(-time.Hour).Unix()))
	// The genuine jti with a victim's sub: what a forger holding the key
	// makes of their own login.
	victim := "Bearer " + jwt(`{"alg":"RS256","kid":"k1"}`, fmt.Sprintf(`{"jti":"tok-a","iat":%d,"sub":"c:7"}`, now.Add(-time.Hour).Unix()))
	forged := "Bearer " + jwt(`{"alg":"RS256","kid":"k1"}`, fmt.Sprintf(`{"jti":"tok-forged","iat":%d}`, now.Unix()))
	// auth_request copies none of the subrequest's headers to the client
	// (docs/verify.md relies on it): a token thief gets the status alone.
	noVerdict := func(what string) {
		if v, r := last.Values(api.HeaderVerdict), last.Values("X-Haechi-Reason"); len(v)+len(r) > 0 {
			t.Errorf("%s: the client got verdict %q, reasons %q", what, v, r)
		}
	}
	if code := get(forged); code != http.StatusForbidden {
		t.Errorf("forged token: %d, want 403", code)
	}
	noVerdict("forged token")
	if code := get(minted); code != http.StatusOK {
		t.Errorf("minted token: %d, want 200", code)
	}
	if code := get(victim); code != http.StatusForbidden {
		t.Errorf("genuine jti, victim's sub: %d, want 403", code)
	}
	noVerdict("victim's sub")
	if code := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	noVerdict("no token")
	// nginx hands the client's own headers to the auth subrequest: a
	// forger's X-Token-Id naming a live token beside the forged JWT must
	// not stand in for it.
	extra = map[string]string{api.HeaderTokenID: "tok-a", api.HeaderTokenKeyID: "k1"}
	if code := get(forged); code != http.StatusForbidden {
		t.Errorf("forged token with the client's X-Token-Id of a minted one: %d, want 403", code)
	}
	extra = nil
	// A client's POST is checked too (the auth subrequest reaches the GET
	// route).
	method = http.MethodPost
	if code := get(forged); code != http.StatusForbidden {
		t.Errorf("forged token, POST: %d, want 403", code)
	}
	if len(reached) != 1 || reached[0] != minted {
		t.Errorf("the upstream saw %d requests (%v), want only the minted token's", len(reached), reached)
	}
}
