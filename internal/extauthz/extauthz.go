// Package extauthz is the Envoy external authorization service
// (envoy.service.auth.v3.Authorization, gRPC) over the mint registry: an
// Envoy ext_authz filter asks it about every request, and a token that was
// never minted (or revoked, signed by a retired or unknown key, hijacked)
// is refused before it reaches the upstream (docs/verify.md).
//
// Contract:
//
//   - Check reads the token from the request's headers: the JWT in
//     authorization (kid, jti, iat and sub, the user, read without
//     checking the signature — Envoy's jwt_authn filter or the upstream
//     does that), or, when there is none that can be read, x-token-id,
//     x-token-key-id, x-token-issued-at and x-token-user (a client can
//     send those itself: the JWT that is served wins over them).
//     The client is the request's source address and user-agent.
//   - Allowed: status OK. Refused: PERMISSION_DENIED with a 403 denied
//     response. No token: UNAUTHENTICATED, 401.
//   - The denied response Envoy sends the client carries the status alone:
//     the verdict would tell a token thief what to change (hijacked:
//     another user agent), whether a key id is in the inventory
//     (unknown_key against never_minted), or that it has been detected
//     (revoked). The verdict is in the gRPC status message and in the
//     dynamic metadata (namespace envoy.filters.http.ext_authz, key
//     MetadataVerdict), which Envoy keeps for its access log and sends
//     to no one, and goes to Options.OnRefuse. Options.ExposeVerdict adds
//     x-haechi-verdict to the denied response, for debugging only.
//   - Beyond the rate limit Check returns the gRPC error
//     RESOURCE_EXHAUSTED: Envoy treats it as a failure of the service, and
//     its failure_mode_allow decides — the gateway's fail-open or
//     fail-closed mode.
//   - The verdict is judged from memory (mint.Registry.Verify); Check
//     never waits on the store.
package extauthz

import (
	"context"
	"net/netip"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"golang.org/x/time/rate"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/haechi-sec/haechi/gateway"
	"github.com/haechi-sec/haechi/internal/mint"
)

// Verifier is what the service needs of the mint registry.
type Verifier interface {
	Verify(q mint.Query) mint.Answer
}

// Options configure New.
type Options struct {
	Registry Verifier
	// Rate and Burst limit checks (0 → 100,000 per second, burst 10,000).
	Rate  float64
	Burst int
	// Locate resolves an address to an ISO country code (nil → none).
	Locate func(netip.Addr) string
	// Now is the clock (nil → time.Now).
	Now func() time.Time
	// OnRefuse, if set, is told of every refused check (not of requests
	// without a token); it must not block.
	OnRefuse func(q mint.Query, a mint.Answer)
	// ExposeVerdict adds x-haechi-verdict to the denied response Envoy
	// sends the client. For debugging only: it tells a token thief what
	// to change. false: the client sees only the status.
	ExposeVerdict bool
}

// Server implements authv3.AuthorizationServer.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	opts  Options
	limit *rate.Limiter
}

// New returns the service.
func New(opts Options) *Server {
	if opts.Rate <= 0 {
		opts.Rate = 100_000
	}
	if opts.Burst <= 0 {
		opts.Burst = 10_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{opts: opts, limit: rate.NewLimiter(rate.Limit(opts.Rate), opts.Burst)}
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) }

// HeaderVerdict names the verdict on a denied response when
// Options.ExposeVerdict is set.
const HeaderVerdict = "x-haechi-verdict"

// MetadataVerdict is the key of the verdict in a denied response's dynamic
// metadata; an Envoy access log reads it as
// %DYNAMIC_METADATA(envoy.filters.http.ext_authz:haechi_verdict)%.
const MetadataVerdict = "haechi_verdict"

// Check implements authv3.AuthorizationServer.
func (s *Server) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if !s.limit.Allow() {
		return nil, status.Error(codes.ResourceExhausted, "verify rate limit exceeded")
	}
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp().GetHeaders() // Envoy lower-cases header names
	q := mint.Query{UserAgent: h["user-agent"], Now: s.opts.Now()}
	// The JWT the client presented, when it can be read, is what the
	// upstream will accept, so it is what is judged: Envoy passes the
	// client's own headers, and a forger's x-token-id naming a live token
	// must not stand in for it. The x-token-* headers are for tokens
	// haechi cannot read (a filter before it decoded them).
	// A JWT that cannot be read (no jti) is refused, never replaced by
	// the headers: the upstream would accept it on its signature alone.
	if t, ok := gateway.BearerJWT(h["authorization"]); ok {
		q.TokenID, q.KeyID, q.IssuedAt, q.User = t.ID, t.KeyID, t.IssuedAt, t.User
	} else if gateway.LooksLikeJWS(h["authorization"]) {
		return s.denied(codes.Unauthenticated, typev3.StatusCode_Unauthorized, gateway.Unreadable), nil
	} else {
		q.TokenID, q.KeyID, q.User = h["x-token-id"], h["x-token-key-id"], h["x-token-user"]
		if v := h["x-token-issued-at"]; v != "" {
			q.IssuedAt, _ = gateway.ParseClaimTime(v)
		}
	}
	if q.TokenID == "" {
		return s.denied(codes.Unauthenticated, typev3.StatusCode_Unauthorized, "no_token"), nil
	}
	if ip, err := netip.ParseAddr(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress()); err == nil {
		q.Source = ip.String()
		if s.opts.Locate != nil {
			q.Country = s.opts.Locate(ip)
		}
	}
	a := s.opts.Registry.Verify(q)
	if a.Allow {
		return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
	}
	if s.opts.OnRefuse != nil {
		s.opts.OnRefuse(q, a)
	}
	return s.denied(codes.PermissionDenied, typev3.StatusCode_Forbidden, string(a.Verdict)), nil
}

// denied is the refusal: the verdict for Envoy (status message, dynamic
// metadata), the status alone for the client unless ExposeVerdict.
func (s *Server) denied(c codes.Code, http typev3.StatusCode, verdict string) *authv3.CheckResponse {
	d := &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: http}}
	if s.opts.ExposeVerdict {
		d.Headers = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: HeaderVerdict, Value: verdict}}}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(c), Message: verdict},
		DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			MetadataVerdict: structpb.NewStringValue(verdict)}},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: d},
	}
}
