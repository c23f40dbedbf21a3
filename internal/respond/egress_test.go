package respond

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

func TestNonPublic(t *testing.T) {
	for _, tc := range []struct {
		addr, want string
	}{
		{"8.8.8.8", ""},
		{"203.0.113.9", ""},
		{"2001:4860:4860::8888", ""},
		{"127.0.0.1", "loopback"},
		{"127.9.9.9", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"192.168.1.1", "private"},
		{"fd00::1", "private"},
		{"169.254.169.254", "link-local"}, // cloud metadata
		{"fe80::1", "link-local"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"100.64.0.1", "shared (carrier-grade NAT)"},
		{"255.255.255.255", "reserved"},
		{"240.0.0.1", "reserved"},
		// NAT64 and 6to4 carry the IPv4 address a gateway translates to.
		{"64:ff9b::808:808", ""},                             // 8.8.8.8
		{"64:ff9b::a00:5", "private (through NAT64)"},        // 10.0.0.5
		{"64:ff9b::7f00:1", "loopback (through NAT64)"},      // 127.0.0.1
		{"64:ff9b::a9fe:a9fe", "link-local (through NAT64)"}, // cloud metadata
		{"64:ff9b::c0a8:101", "private (through NAT64)"},     // 192.168.1.1
		{"64:ff9b:1::a00:5", "NAT64 local-use"},
		{"2002:a00:5::1", "private (through 6to4)"},   // 10.0.0.5
		{"2002:808:808::1", ""},                       // 8.8.8.8
		{"2002:7f00:1::1", "loopback (through 6to4)"}, // 127.0.0.1
	} {
		if got := nonPublic(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("nonPublic(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestValidateLiteralNonPublicReceiver(t *testing.T) {
	for _, tc := range []struct {
		url          string
		allowPrivate bool
		wantErr      bool
	}{
		{"https://hooks.example/x", false, false},
		{"https://203.0.113.9/x", false, false},
		{"http://127.0.0.1:8080/x", false, true},
		{"http://localhost:8080/x", false, true},
		{"http://LocalHost./x", false, true},
		{"http://[::1]/x", false, true},
		{"http://169.254.169.254/latest/meta-data", false, true},
		{"http://10.0.0.5/x", false, true},
		{"http://10.0.0.5/x", true, false},
		{"http://127.0.0.1:8080/x", true, false},
	} {
		c := DefaultConfig()
		c.Secret = testSecret
		c.Receivers = map[string]Receiver{"notify": {URL: tc.url, AllowPrivate: tc.allowPrivate}}
		err := c.Validate()
		if (err != nil) != tc.wantErr {
			t.Errorf("%s allow_private=%v: Validate = %v, want error %v", tc.url, tc.allowPrivate, err, tc.wantErr)
		} else if err != nil && !strings.Contains(err.Error(), "receivers.notify.url") {
			t.Errorf("%s: error %q does not name the key", tc.url, err)
		}
	}
}

// testAction is a notify action for the receiver named notify.
var testAction = Action{ID: "act-1", Kind: KindNotify, Receiver: KindNotify, Target: "u:1",
	Payload: []byte(`{"mode":"enforce","alert":{"severity":"high"}}`)}

// postTo delivers one notify action to url through a dispatcher with
// receiver r (URL set to url) and returns what post returned.
func postTo(t *testing.T, url string, r Receiver) (int, error) {
	t.Helper()
	cfg := testConfig(url)
	r.URL = url
	cfg.Receivers = map[string]Receiver{KindNotify: r}
	d, err := NewDispatcher(nil, cfg, DispatcherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.post(t.Context(), testAction, r)
}

// sink is a server that records whether any request reached it.
func sink(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func redirector(t *testing.T, code int, to func(r *http.Request) string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, to(r), code)
	}))
	t.Cleanup(s.Close)
	return s
}

// A receiver that redirects elsewhere must not get the secret headers and
// the signed body sent on to another origin — another port or another
// host name for the same machine included.
func TestWebhookRedirectToAnotherOriginRefused(t *testing.T) {
	other, hits := sink(t)
	otherURL, _ := url.Parse(other.URL)
	for _, tc := range []struct {
		name string
		to   func(self *url.URL) string
	}{
		{"another port", func(*url.URL) string { return other.URL + "/steal" }},
		{"another host name", func(self *url.URL) string { return "http://localhost:" + self.Port() + "/steal" }},
		{"another scheme", func(self *url.URL) string { return "https://" + self.Host + "/steal" }},
	} {
		for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
			var self *url.URL
			var stolen atomic.Int64
			rd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if r.URL.Path == "/steal" {
					stolen.Add(1)
					return
				}
				http.Redirect(w, r, tc.to(self), code)
			}))
			self, _ = url.Parse(rd.URL)
			status, err := postTo(t, rd.URL+"/hook", Receiver{AllowPrivate: true})
			rd.Close()
			var re *RedirectError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), "another origin") {
				t.Errorf("%s %d: post = %d, %v; want a refused redirect", tc.name, code, status, err)
			}
			if re != nil && (strings.Contains(re.To, "steal") || re.From != "http://"+self.Host) {
				t.Errorf("%s %d: error names %q → %q (origins only)", tc.name, code, re.From, re.To)
			}
			if status != code {
				t.Errorf("%s %d: status %d recorded", tc.name, code, status)
			}
			if n := stolen.Load(); n != 0 {
				t.Errorf("%s %d: the redirect target got %d requests", tc.name, code, n)
			}
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the other origin %s got %d requests", otherURL.Host, n)
	}
}

func TestWebhookSameOriginRedirect(t *testing.T) {
	var final atomic.Int64
	var signedOK atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/final", func(w http.ResponseWriter, r *http.Request) {
		final.Add(1)
		body, _ := io.ReadAll(r.Body)
		signedOK.Store(VerifySignature(testSecret, r.Header.Get(HeaderTimestamp), string(body),
			r.Header.Get(HeaderSignature), time.Now(), time.Minute) == nil && r.Method == http.MethodPost)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/307", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/302", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/final", http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusPermanentRedirect)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// 307 keeps the method and the signed body: followed.
	if status, err := postTo(t, srv.URL+"/307", Receiver{AllowPrivate: true}); err != nil || status != http.StatusNoContent {
		t.Fatalf("same-origin 307: %d, %v", status, err)
	}
	if final.Load() != 1 || !signedOK.Load() {
		t.Fatalf("the redirected POST arrived %d times, signed and POST: %v", final.Load(), signedOK.Load())
	}
	// 302 would turn the POST into a GET without the body, and a 2xx to
	// that GET would mark an action delivered that its receiver never got.
	if _, err := postTo(t, srv.URL+"/302", Receiver{AllowPrivate: true}); err == nil || !strings.Contains(err.Error(), "drop the signed body") {
		t.Errorf("same-origin 302: err = %v, want refused", err)
	}
	if n := final.Load(); n != 1 {
		t.Errorf("the 302's target got a request")
	}
	if _, err := postTo(t, srv.URL+"/loop", Receiver{AllowPrivate: true}); err == nil || !strings.Contains(err.Error(), "more than 3 redirects") {
		t.Errorf("redirect loop: err = %v", err)
	}
}

// Without allow_private a receiver's name that resolves to an internal
// address is refused when connecting — Validate cannot see it, so a DNS
// answer (or a rebinding) cannot aim a webhook inward.
func TestWebhookPrivateDestinationRefused(t *testing.T) {
	srv, hits := sink(t)
	u, _ := url.Parse(srv.URL)
	// Validate refuses a literal address or "localhost" up front; a name
	// that resolves inward is only caught by the dialer, which checks the
	// resolved address ("localhost" stands for such a name here).
	dial := guardedDialContext()
	for _, host := range []string{"localhost", "127.0.0.1"} {
		addr := net.JoinHostPort(host, u.Port())
		c, err := dial(t.Context(), "tcp", addr)
		var de *DestinationError
		if !errors.As(err, &de) || de.Range != "loopback" {
			t.Errorf("dial %s: %v, want a refused loopback destination", addr, err)
		}
		if c != nil {
			_ = c.Close()
		}
	}
	// The proxy the environment names for the delivery is the operator's
	// choice: not checked. Any other address is.
	c, err := dial(context.WithValue(t.Context(), dialProxyKey{}, u.Host), "tcp", u.Host)
	if err != nil {
		t.Fatalf("dial to the proxy: %v", err)
	}
	_ = c.Close()
	if _, err := dial(context.WithValue(t.Context(), dialProxyKey{}, "proxy.example:3128"), "tcp", u.Host); err == nil {
		t.Error("dial to another address than the proxy: not refused")
	}

	// Through a dispatcher: a delivery to localhost without allow_private
	// (Validate is bypassed the way a hostile DNS answer would bypass it)
	// fails with the reason and the key that allows it, and sends nothing.
	cfg := testConfig(srv.URL)
	r := Receiver{URL: "http://localhost:" + u.Port() + "/hook"}
	cfg.Receivers = map[string]Receiver{KindNotify: {URL: srv.URL, AllowPrivate: true}}
	d, err := NewDispatcher(nil, cfg, DispatcherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.post(t.Context(), testAction, r)
	if err == nil || !strings.Contains(err.Error(), "loopback address") || !strings.Contains(err.Error(), "receivers.notify.allow_private") {
		t.Errorf("post to localhost: %v", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback receiver got %d requests", n)
	}
	// With allow_private it is delivered.
	r.AllowPrivate = true
	if _, err := d.post(t.Context(), testAction, r); err != nil || hits.Load() != 1 {
		t.Errorf("post with allow_private: %v, %d requests", err, hits.Load())
	}
}

// A refused redirect is recorded in the outbox as a failed attempt with the
// reason, retried with backoff (the receiver's URL may be corrected), and
// dead after max_age — never delivered, never sent to the other origin.
func TestRefusedRedirectRecorded(t *testing.T) {
	other, hits := sink(t)
	rd := redirector(t, http.StatusTemporaryRedirect, func(*http.Request) string { return other.URL + "/x" })
	st := openStore(t, t.TempDir())
	h := start(t, st, testConfig(rd.URL), time.Minute)
	h.send(t, mkAlert("a1", event.EntityPrincipal, "u:1", "terminated_identity", event.SeverityCritical, t0))
	waitFor(t, "failed attempts", 5*time.Second, func() bool {
		n := 0
		for _, a := range byState(t, st, StateFailed) {
			if a.Attempts >= 2 {
				n++
			}
		}
		return n == 2
	})
	for _, a := range byState(t, st, StateFailed) {
		if !strings.Contains(a.LastError, "webhook redirect from") || !strings.Contains(a.LastError, "another origin") {
			t.Errorf("%s: last_error %q", a.ID, a.LastError)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the other origin got %d requests", n)
	}
}

// A delivery error never carries the receiver's path, query or password:
// they may be its credential (a Slack webhook's path is), and the error is
// stored in the outbox, listed by the API and logged. The origin stays, so
// the operator still sees where it went. For webhooks and sinks alike.
func TestDeliveryErrorHidesURLSecrets(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	base := down.URL
	down.Close() // nothing listens there any more: every request fails
	u, _ := url.Parse(base)
	secrets := []string{"T0SECRET", "B0SECRET", "QSECRET", "PWSECRET"}
	hidden := "http://ops:PWSECRET@" + u.Host + "/services/T0SECRET/B0SECRET?token=QSECRET"
	check := func(what, msg string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(msg, s) {
				t.Errorf("%s: error %q shows %s", what, msg, s)
			}
		}
		if !strings.Contains(msg, u.Host) {
			t.Errorf("%s: error %q does not name the receiver's origin %s", what, msg, u.Host)
		}
	}

	_, err := postTo(t, hidden, Receiver{AllowPrivate: true})
	if err == nil {
		t.Fatal("post to a closed port succeeded")
	}
	check("webhook", err.Error())

	st := openStore(t, t.TempDir())
	// A sink's URL takes neither a query nor a password (Validate refuses
	// them), but may have a path: a proxy's, which can be a secret too.
	h := start(t, st, sinkConfig("http://"+u.Host+"/T0SECRET/B0SECRET"), time.Minute)
	h.send(t, sinkAlert("a1", event.EntitySource, "198.51.100.1", event.SeverityCritical, t0))
	waitFor(t, "a failed export", 5*time.Second, func() bool { return len(byState(t, st, StateFailed)) > 0 })
	for _, a := range byState(t, st, StateFailed) {
		check("sink", a.LastError)
	}
}
