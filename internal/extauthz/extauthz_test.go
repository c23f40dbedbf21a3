package extauthz_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/extauthz"
	"github.com/haechi-sec/haechi/internal/mint"
)

func jwt(hdr, payload string) string {
	e := base64.RawURLEncoding.EncodeToString
	return e([]byte(hdr)) + "." + e([]byte(payload)) + ".c2ln"
}

// serve runs the service on a loopback listener and returns a client made
// with the generated code, as Envoy's ext_authz filter would call it.
func serve(t *testing.T, opts extauthz.Options) authv3.AuthorizationClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	extauthz.New(opts).Register(g)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return authv3.NewAuthorizationClient(cc)
}

func request(headers map[string]string, src string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: src, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50123}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v1/me", Headers: headers}},
	}}
}

func TestCheck(t *testing.T) {
	now := time.Now().UTC()
	reg := mint.New(mint.Options{MaxLifetime: 12 * time.Hour})
	reg.Observe(&event.Event{Time: now.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	reg.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: now.Add(-time.Hour), Country: "KR",
		UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"})
	var refused []string
	opts := extauthz.Options{Registry: reg, OnRefuse: func(q mint.Query, a mint.Answer) {
		refused = append(refused, q.TokenID+":"+string(a.Verdict)+"@"+q.Source)
	}, Locate: func(ip netip.Addr) string {
		if ip.String() == "198.51.100.9" {
			return "NL"
		}
		return "KR"
	}}
	client := serve(t, opts)
	// ExposeVerdict (debugging) adds the verdict to what the client gets.
	opts.OnRefuse = nil
	opts.ExposeVerdict = true
	exposing := serve(t, opts)
	bearer := func(jti, kid string, iat time.Time) string {
		return "Bearer " + jwt(fmt.Sprintf(`{"alg":"RS256","kid":%q}`, kid), fmt.Sprintf(`{"jti":%q,"iat":%d}`, jti, iat.Unix()))
	}
	for _, c := range []struct {
		name    string
		headers map[string]string
		src     string
		code    codes.Code
		verdict string
	}{
		{"minted", map[string]string{"authorization": bearer("tok-a", "k1", now.Add(-time.Hour))}, "203.0.113.7", codes.OK, ""},
		{"forged", map[string]string{"authorization": bearer("tok-forged", "k1", now)}, "203.0.113.7", codes.PermissionDenied, "never_minted"},
		{"unknown key", map[string]string{"x-token-id": "tok-a", "x-token-key-id": "k9"}, "203.0.113.7", codes.PermissionDenied, "unknown_key"},
		{"hijacked", map[string]string{"authorization": bearer("tok-a", "k1", now.Add(-time.Hour)), "user-agent": "python-requests/2.32"}, "198.51.100.9", codes.PermissionDenied, "hijacked"},
		{"same client abroad (twin)", map[string]string{"authorization": bearer("tok-a", "k1", now.Add(-time.Hour)),
			"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"}, "198.51.100.9", codes.OK, ""},
		{"no token", map[string]string{}, "203.0.113.7", codes.Unauthenticated, "no_token"},
		// Envoy hands ext_authz the client's own headers: a forger's
		// x-token-id naming a live token beside the forged JWT the
		// upstream will accept must not stand in for it.
		{"client's x-token-id beside a forged jwt", map[string]string{"x-token-id": "tok-a", "x-token-key-id": "k1",
			"authorization": bearer("tok-forged-2", "k1", now)}, "203.0.113.8", codes.PermissionDenied, "never_minted"},
		// ... and beside a forged JWT without a jti: unreadable, refused.
		{"client's x-token-id beside a jwt without jti", map[string]string{"x-token-id": "tok-a", "x-token-key-id": "k1",
			"authorization": "Bearer eyJraWQiOiJrMSJ9.eyJzdWIiOiJ2aWN0aW0ifQ.c2ln"}, "203.0.113.8", codes.Unauthenticated, "unreadable_token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := client.Check(context.Background(), request(c.headers, c.src))
			if err != nil {
				t.Fatal(err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != c.code {
				t.Fatalf("status %s, want %s", got, c.code)
			}
			d := resp.GetDeniedResponse()
			if d == nil && resp.GetOkResponse() == nil {
				t.Fatal("neither an ok nor a denied response")
			}
			// What Envoy sends the client: the status alone.
			if d != nil {
				if len(d.GetHeaders()) != 0 || strings.Contains(d.GetBody(), c.verdict) {
					t.Errorf("client-bound denied response carries %v, body %q", d.GetHeaders(), d.GetBody())
				}
			}
			// What Envoy keeps (its logs, access log): the verdict.
			var msg, meta string
			if d != nil {
				msg = resp.GetStatus().GetMessage()
				meta = resp.GetDynamicMetadata().GetFields()[extauthz.MetadataVerdict].GetStringValue()
			}
			if msg != c.verdict || meta != c.verdict {
				t.Errorf("status message %q, metadata %q, want %q", msg, meta, c.verdict)
			}
			// Opted in, the client gets it too.
			resp, err = exposing.Check(context.Background(), request(c.headers, c.src))
			if err != nil {
				t.Fatal(err)
			}
			var verdict string
			for _, h := range resp.GetDeniedResponse().GetHeaders() {
				if h.GetHeader().GetKey() == extauthz.HeaderVerdict {
					verdict = h.GetHeader().GetValue()
				}
			}
			if verdict != c.verdict {
				t.Errorf("ExposeVerdict: verdict header %q, want %q", verdict, c.verdict)
			}
		})
	}
	if want := "tok-forged:never_minted@203.0.113.7 tok-a:unknown_key@203.0.113.7 tok-a:hijacked@198.51.100.9 tok-forged-2:never_minted@203.0.113.8"; strings.Join(refused, " ") != want {
		t.Errorf("refusals reported %v, want %s", refused, want)
	}
}

// Beyond the rate limit the service fails (RESOURCE_EXHAUSTED), so Envoy's
// failure_mode_allow decides.
func TestCheckRateLimited(t *testing.T) {
	client := serve(t, extauthz.Options{Registry: mint.New(mint.Options{}), Rate: 0.001, Burst: 1})
	req := request(map[string]string{"x-token-id": "x"}, "203.0.113.7")
	if _, err := client.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Check(context.Background(), req); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second check: %v, want RESOURCE_EXHAUSTED", err)
	}
}

// BenchmarkCheckGRPC is the ext_authz path over gRPC on loopback, with
// the generated client, from parallel goroutines (-cpu sets how many),
// over a registry of 65k tokens, half the checks for forged ones. Reports
// p50/p99 per check and checks/s.
func BenchmarkCheckGRPC(b *testing.B) {
	now := time.Now().UTC()
	reg := mint.New(mint.Options{MaxLifetime: 12 * time.Hour})
	reg.Observe(&event.Event{Time: now.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	for i := range 1 << 16 {
		reg.Add(mint.Mint{TokenID: fmt.Sprintf("tok-%d", i), KeyID: "k1", At: now.Add(-time.Hour)})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer()
	extauthz.New(extauthz.Options{Registry: reg, Rate: 1e9, Burst: 1 << 20}).Register(g)
	go g.Serve(l)
	defer g.Stop()
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	client := authv3.NewAuthorizationClient(cc)
	reqs := make([]*authv3.CheckRequest, 1024)
	for i := range reqs {
		id := fmt.Sprintf("tok-%d", i*61)
		if i%2 == 1 {
			id = fmt.Sprintf("forged-%d", i)
		}
		reqs[i] = request(map[string]string{"x-token-id": id, "x-token-key-id": "k1", "user-agent": "Mozilla/5.0"}, "203.0.113.7")
	}
	var mu sync.Mutex
	var all []time.Duration
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		i := 0
		for pb.Next() {
			s := time.Now()
			if _, err := client.Check(context.Background(), reqs[i&1023]); err != nil {
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
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "checks/s")
}

// The user the token is presented for is the JWT's sub (or x-token-user
// for an opaque token); a genuine token id presented for another user is
// refused, for its own user it passes.
func TestCheckUser(t *testing.T) {
	now := time.Now().UTC()
	reg := mint.New(mint.Options{MaxLifetime: 12 * time.Hour})
	reg.Add(mint.Mint{TokenID: "tok-own", KeyID: "k1", At: now.Add(-time.Minute), UserID: "c:1042"})
	var refused []string
	client := serve(t, extauthz.Options{Registry: reg, OnRefuse: func(q mint.Query, a mint.Answer) {
		refused = append(refused, string(a.Verdict)+":"+q.User)
	}})
	bearer := func(sub string) string {
		return "Bearer " + jwt(`{"kid":"k1"}`, fmt.Sprintf(`{"jti":"tok-own","sub":%q}`, sub))
	}
	for _, c := range []struct {
		name    string
		headers map[string]string
		code    codes.Code
	}{
		{"own sub (twin)", map[string]string{"authorization": bearer("c:1042")}, codes.OK},
		{"victim's sub", map[string]string{"authorization": bearer("c:7")}, codes.PermissionDenied},
		{"client's x-token-user beside the jwt", map[string]string{"authorization": bearer("c:8"), "x-token-user": "c:1042"}, codes.PermissionDenied},
		{"opaque, own user (twin)", map[string]string{"x-token-id": "tok-own", "x-token-user": "c:1042"}, codes.OK},
		{"opaque, another user", map[string]string{"x-token-id": "tok-own", "x-token-user": "c:9"}, codes.PermissionDenied},
	} {
		resp, err := client.Check(context.Background(), request(c.headers, "203.0.113.7"))
		if err != nil {
			t.Fatal(err)
		}
		if got := codes.Code(resp.GetStatus().GetCode()); got != c.code {
			t.Errorf("%s: status %s (%s), want %s", c.name, got, resp.GetStatus().GetMessage(), c.code)
		}
	}
	if want := "user_mismatch:c:7 user_mismatch:c:8 user_mismatch:c:9"; strings.Join(refused, " ") != want {
		t.Errorf("refusals reported %v, want %s", refused, want)
	}
}
