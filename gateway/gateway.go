// Package gateway is net/http middleware for Go API gateways: before a
// request reaches the upstream, it asks haechi's inline token check
// (POST /v1/verify, docs/verify.md) whether the request's token was
// minted, and refuses it (403) when haechi says it was not, was revoked,
// was signed by a retired or unknown key, or is presented by another
// client than it was minted for.
//
// It imports only the standard library, so a gateway takes on no
// dependency of haechi's.
//
// Contract:
//
//   - The middleware judges only requests that carry a token (Options.Token
//     finds it; by default the JWT in the Authorization header). A request
//     without one is passed on: the gateway's own authentication refuses
//     it. With the default reader, an Authorization header that holds a
//     JWT (three dot-separated parts) whose jti cannot be read — absent,
//     not a string, a segment that is not base64url JSON — is refused
//     (401, X-Haechi-Verdict unreadable_token, reported to OnRefuse): the
//     upstream checks only the signature, so a forger holding the key
//     would otherwise skip the check by leaving jti out. An opaque
//     (non-JWT) bearer token is passed on as before.
//   - The check takes at most Options.Timeout. When haechi cannot answer —
//     unreachable, timed out, 5xx, 429 (rate limit) or an unreadable answer
//     — Options.Mode decides: FailOpen passes the request on (a forged
//     token gets through while haechi is down; detection still catches it
//     afterwards from the gateway's access log), FailClosed answers 503 (no
//     forged token gets through, but an outage of haechi is an outage of
//     the API). The zero Mode is FailClosed.
//   - A refusal is answered 403 with the verdict in X-Haechi-Verdict and
//     reported to Options.OnRefuse, if set; the upstream never sees it.
//   - Safe for concurrent use; it keeps no per-request state.
package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Mode is what the middleware does when haechi cannot answer.
type Mode uint8

const (
	// FailClosed refuses the request (503).
	FailClosed Mode = iota
	// FailOpen passes it on.
	FailOpen
)

// Token is what the check needs of a request's token.
type Token struct {
	ID       string    // jti
	KeyID    string    // kid
	IssuedAt time.Time // iat; zero when absent
}

// Answer is haechi's verdict (the JSON body of POST /v1/verify).
type Answer struct {
	Verdict string   `json:"verdict"`
	Allow   bool     `json:"allow"`
	Reasons []string `json:"reasons"`
}

// Options configure New.
type Options struct {
	// URL is haechi's base URL, e.g. "https://haechi.internal:8470".
	URL string
	// APIToken is a haechi API token with the verify role.
	APIToken string
	// Timeout bounds one check (0 → 50ms).
	Timeout time.Duration
	Mode    Mode
	// Client sends the checks (nil → a client with keep-alive connections).
	Client *http.Client
	// Token finds the request's token (nil → BearerJWT); ok false: none.
	Token func(*http.Request) (Token, bool)
	// ClientIP is the presenting client's address for binding (nil → the
	// host of RemoteAddr; behind a proxy, read your trusted header).
	ClientIP func(*http.Request) string
	// OnRefuse, if set, is told of every refused request.
	OnRefuse func(r *http.Request, t Token, a Answer)
	// OnError, if set, is told of every check haechi could not answer,
	// with what Mode decided.
	OnError func(r *http.Request, err error, passed bool)
}

// Checker asks haechi about tokens.
type Checker struct {
	opts Options
	url  string
	// jwtHeader: Options.Token is the default reader, so an unreadable
	// JWT in Authorization is refused (see the package contract).
	jwtHeader bool
}

// Unreadable is the verdict of a JWT whose jti cannot be read.
const Unreadable = "unreadable_token"

// New returns a Checker; an empty URL is an error.
func New(opts Options) (*Checker, error) {
	if opts.URL == "" {
		return nil, errors.New("gateway: URL is required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 50 * time.Millisecond
	}
	if opts.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256
		opts.Client = &http.Client{Transport: tr}
	}
	jwtHeader := opts.Token == nil
	if jwtHeader {
		opts.Token = func(r *http.Request) (Token, bool) { return BearerJWT(r.Header.Get("Authorization")) }
	}
	if opts.ClientIP == nil {
		opts.ClientIP = func(r *http.Request) string {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return ""
			}
			return host
		}
	}
	return &Checker{opts: opts, url: strings.TrimRight(opts.URL, "/") + "/v1/verify", jwtHeader: jwtHeader}, nil
}

// ErrUnavailable wraps every failure to get an answer from haechi.
var ErrUnavailable = errors.New("haechi did not answer")

type verifyRequest struct {
	TokenID   string    `json:"token_id"`
	KeyID     string    `json:"key_id,omitempty"`
	IssuedAt  time.Time `json:"issued_at,omitzero"`
	SourceIP  string    `json:"source_ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
}

// Check asks haechi about t presented by r's client. Errors wrap
// ErrUnavailable.
func (c *Checker) Check(ctx context.Context, r *http.Request, t Token) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	body, err := json.Marshal(verifyRequest{TokenID: t.ID, KeyID: t.KeyID, IssuedAt: t.IssuedAt,
		SourceIP: c.opts.ClientIP(r), UserAgent: r.UserAgent()})
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.opts.APIToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.APIToken)
	}
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Answer{}, fmt.Errorf("%w: %s: %s", ErrUnavailable, resp.Status, bytes.TrimSpace(b))
	}
	var a Answer
	if err := json.Unmarshal(b, &a); err != nil || a.Verdict == "" {
		return Answer{}, fmt.Errorf("%w: unreadable answer %q", ErrUnavailable, b)
	}
	return a, nil
}

// Middleware wraps next with the check (see the package contract).
func (c *Checker) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, ok := c.opts.Token(r)
		if !ok {
			if c.jwtHeader && looksLikeJWS(r.Header.Get("Authorization")) {
				a := Answer{Verdict: Unreadable, Reasons: []string{"a JWT without a readable jti cannot be checked"}}
				if c.opts.OnRefuse != nil {
					c.opts.OnRefuse(r, t, a)
				}
				w.Header().Set("X-Haechi-Verdict", a.Verdict)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		a, err := c.Check(r.Context(), r, t)
		if err != nil {
			pass := c.opts.Mode == FailOpen
			if c.opts.OnError != nil {
				c.opts.OnError(r, err, pass)
			}
			if pass {
				next.ServeHTTP(w, r)
				return
			}
			http.Error(w, "token check unavailable", http.StatusServiceUnavailable)
			return
		}
		if !a.Allow {
			if c.opts.OnRefuse != nil {
				c.opts.OnRefuse(r, t, a)
			}
			w.Header().Set("X-Haechi-Verdict", a.Verdict)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// maxJWT bounds the token read from a header.
const maxJWT = 16 << 10

// BearerJWT reads "Bearer <JWS compact>" (or the bare token) and decodes
// its header's kid and payload's jti and iat without verifying the
// signature (the gateway does that). ok is false for anything that is not
// a three-part base64url JSON token with a jti. It never panics.
func BearerJWT(h string) (Token, bool) {
	h = strings.TrimSpace(h)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		h = strings.TrimSpace(h[7:])
	}
	if h == "" || len(h) > maxJWT {
		return Token{}, false
	}
	parts := strings.Split(h, ".")
	if len(parts) != 3 {
		return Token{}, false
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	var pl struct {
		Jti string          `json:"jti"`
		Iat json.RawMessage `json:"iat"`
	}
	if !decodeSegment(parts[0], &hdr) || !decodeSegment(parts[1], &pl) || pl.Jti == "" {
		return Token{}, false
	}
	t := Token{ID: pl.Jti, KeyID: hdr.Kid}
	var iat float64
	if len(pl.Iat) > 0 && json.Unmarshal(pl.Iat, &iat) == nil && iat > 0 && iat < 1<<40 {
		t.IssuedAt = time.Unix(int64(iat), 0).UTC()
	}
	return t, true
}

// looksLikeJWS reports whether the Authorization value h holds a JWS
// compact serialisation: three non-empty dot-separated parts.
func looksLikeJWS(h string) bool {
	h = strings.TrimSpace(h)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		h = strings.TrimSpace(h[7:])
	}
	parts := strings.Split(h, ".")
	return len(parts) == 3 && parts[0] != "" && parts[1] != ""
}

func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}
