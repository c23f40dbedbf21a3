package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/haechi-sec/haechi/internal/auth"
)

// TestLoopbackOnly: without access control, only requests addressed to a
// loopback name with the served port are answered (DNS rebinding sends the
// attacker's name), and state-changing ones only from the same origin.
func TestLoopbackOnly(t *testing.T) {
	reached := 0
	h := auth.LoopbackOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }), "8470", false)
	for _, c := range []struct {
		name, method, host string
		hdr                map[string]string
		want               int
	}{
		{"127.0.0.1", "GET", "127.0.0.1:8470", nil, 200},
		{"localhost", "GET", "localhost:8470", nil, 200},
		{"LOCALHOST", "GET", "LOCALHOST:8470", nil, 200},
		{"::1", "GET", "[::1]:8470", nil, 200},
		{"127.1.2.3", "GET", "127.1.2.3:8470", nil, 200},
		{"rebinding name", "GET", "attacker.example:8470", nil, 421},
		{"rebinding name, no port", "GET", "attacker.example", nil, 421},
		{"localhost subdomain", "GET", "localhost.attacker.example:8470", nil, 421},
		{"other port", "GET", "127.0.0.1:9999", nil, 421},
		{"no port (80)", "GET", "127.0.0.1", nil, 421},
		{"routable address", "GET", "192.0.2.1:8470", nil, 421},
		{"unspecified address", "GET", "0.0.0.0:8470", nil, 421},
		{"zone", "GET", "[::1%25lo]:8470", nil, 421},
		{"empty host", "GET", "", nil, 421},
		{"rebinding post", "POST", "attacker.example:8470", map[string]string{"Origin": "http://attacker.example:8470"}, 421},
		{"script post without Origin", "POST", "127.0.0.1:8470", nil, 200},
		{"same-origin post", "POST", "127.0.0.1:8470", map[string]string{"Origin": "http://127.0.0.1:8470"}, 200},
		{"same-origin post, Sec-Fetch-Site", "POST", "localhost:8470", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{"typed in the address bar", "POST", "localhost:8470", map[string]string{"Sec-Fetch-Site": "none"}, 200},
		{"cross-site post", "POST", "127.0.0.1:8470", map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site post, same host other scheme", "POST", "127.0.0.1:8470", map[string]string{"Origin": "https://127.0.0.1:8470"}, 403},
		{"cross-site post, other loopback name", "POST", "127.0.0.1:8470", map[string]string{"Origin": "http://localhost:8470"}, 403},
		{"cross-site post, other port", "POST", "127.0.0.1:8470", map[string]string{"Origin": "http://127.0.0.1:3000"}, 403},
		{"opaque origin", "POST", "127.0.0.1:8470", map[string]string{"Origin": "null"}, 403},
		{"cross-site, Sec-Fetch-Site only", "POST", "127.0.0.1:8470", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site, Sec-Fetch-Site only", "POST", "127.0.0.1:8470", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"cross-site delete", "DELETE", "127.0.0.1:8470", map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site GET (reads nothing: no CORS)", "GET", "127.0.0.1:8470", map[string]string{"Origin": "https://evil.example"}, 200},
	} {
		before := reached
		r := httptest.NewRequest(c.method, "/actions/act-1/approve", nil)
		r.Host = c.host
		for k, v := range c.hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s: %s Host %q %v: %d, want %d (%s)", c.name, c.method, c.host, c.hdr, w.Code, c.want, w.Body)
		}
		if ran := reached > before; ran != (c.want == 200) {
			t.Errorf("%s: handler ran = %v with answer %d", c.name, ran, w.Code)
		}
	}
	// Under TLS the origin is https and a Host without port means 443.
	h = auth.LoopbackOnly(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), "443", true)
	for _, c := range []struct {
		host, origin string
		want         int
	}{{"localhost", "https://localhost", 200}, {"localhost:443", "https://localhost:443", 200}, {"localhost", "http://localhost", 403}} {
		r := httptest.NewRequest("POST", "/", nil)
		r.Host = c.host
		r.Header.Set("Origin", c.origin)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("TLS: Host %q Origin %q: %d, want %d", c.host, c.origin, w.Code, c.want)
		}
	}
}
