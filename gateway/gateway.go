// Package gateway is net/http middleware for Go API gateways: before a
// request reaches the upstream, it asks haechi's inline token check
// (docs/verify.md; by default over persistent check streams,
// GET /v1/verify/stream) whether the request's token was
// minted, and refuses it (403) when haechi says it was not, was revoked,
// was signed by a retired or unknown key, or is presented for another
// user (the JWT's sub) or by another client than it was minted for.
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
//     (401, verdict unreadable_token, reported to OnRefuse): the
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
//   - A refusal is answered 403 and reported, with its verdict and
//     reasons, to Options.OnRefuse, if set; the upstream never sees it.
//     The client gets the status alone: the verdict would tell a token
//     thief what to change (hijacked: another user agent), whether a key
//     id is in the inventory (unknown_key against never_minted), or that
//     it has been detected (revoked). Options.ExposeVerdict adds it, for
//     debugging only.
//   - By default the checks travel over Options.Streams (2) persistent
//     connections upgraded to the check stream (stream.go): each check is
//     one line written as soon as it comes (lines that come together share
//     a write), answered in order on the same connection; no HTTP
//     exchange per check or per batch. When a stream fails (haechi
//     restarts, the network drops, its token is revoked), the checks in
//     flight on it fail at once — Options.Mode decides — and it is dialled
//     again with backoff (50 ms doubling to 5 s); while every stream is
//     down, checks fail at once instead of waiting out the timeout. When
//     haechi answers the upgrade 404 (an older haechi), the Checker falls
//     back to the forms below, and asks for the stream again every
//     Options.StreamReprobe (2 minutes, jittered), so that a haechi
//     upgraded meanwhile is used without a restart. At most Options.StreamInFlight
//     checks are in flight on a stream, as many again queued for it.
//   - Without streams (Options.Streams negative, or the fallback), each
//     check is one bodiless GET of /v1/verify/auth-request (the compact
//     form nginx's auth_request uses) on a kept-alive connection, the
//     token and the client in headers, the verdict in the status and
//     headers. With Options.MaxBatch, the checks waiting at the same
//     moment share one POST /v1/verify/batch (the batch form, batch.go)
//     instead. Every form takes at most Options.Timeout a check.
//   - A check whose ids hold a control character, or whose line would be
//     longer than MaxBatchLine (a token id or User-Agent the client chose
//     long), goes by the GET form whatever the options (Batchable): it
//     cannot be written as a line.
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
	"strconv"
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
	// User is the user the token is presented for: the JWT's sub (its
	// exact text; a numeric sub as written), or, for an opaque token, the
	// user the gateway resolved it to. haechi refuses a token minted for
	// another user (user_mismatch). "": none presented.
	User string
}

// Answer is haechi's verdict (as POST /v1/verify's JSON body says it; the
// middleware reads it from the auth_request endpoint's status and
// X-Haechi-Verdict / X-Haechi-Reason headers).
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
	// Client sends the checks (nil → a client keeping up to 256
	// connections to haechi alive).
	Client *http.Client
	// Token finds the request's token (nil → BearerJWT, the user being
	// the JWT's sub; for an opaque token, set Token.User to the user the
	// gateway resolved it to); ok false: none.
	Token func(*http.Request) (Token, bool)
	// ClientIP is the presenting client's address for binding (nil → the
	// host of RemoteAddr; behind a proxy, read your trusted header).
	ClientIP func(*http.Request) string
	// OnRefuse, if set, is told of every refused request: it is where
	// the gateway's operator sees the verdict.
	OnRefuse func(r *http.Request, t Token, a Answer)
	// ExposeVerdict adds the verdict (X-Haechi-Verdict) and reasons
	// (X-Haechi-Reason) to the refusal the client gets. For debugging
	// only: they tell a token thief what to change. false: the client
	// sees only the status.
	ExposeVerdict bool
	// OnError, if set, is told of every check haechi could not answer,
	// with what Mode decided.
	OnError func(r *http.Request, err error, passed bool)
	// MaxBatch, when above 1, sends checks in batches
	// (POST /v1/verify/batch) of up to MaxBatch: Senders goroutines each
	// take the check waiting first and every other one waiting at that
	// moment, and send them in one request. No delay is added — a check
	// that finds a sender free goes alone at once — but under load many
	// checks share one HTTP exchange, which costs both sides far less CPU
	// per check. Close stops the senders. 0 or 1: one GET per check.
	MaxBatch int
	// Senders is how many batches may be in flight at once (0 → 4).
	Senders int
	// Streams is how many persistent check streams
	// (GET /v1/verify/stream, stream.go) the Checker keeps open and
	// spreads its checks over (0 → 2; negative: none). Over a stream,
	// checks are written as they come and answered in order, with no
	// HTTP exchange per check or per batch: the cheapest form for both
	// sides (docs/verify.md). When haechi answers the upgrade 404 (it is
	// older than the stream), the Checker falls back to the batch form
	// when MaxBatch is above 1, else to one GET per check, and asks for
	// the stream again every StreamReprobe.
	Streams int
	// StreamReprobe is how long a stream that haechi answered 404 waits
	// before asking again (0 → DefaultStreamReprobe), jittered between
	// half and one and a half times it so that gateways do not ask in
	// step: a haechi upgraded behind the gateway is used without a
	// restart. Checks go by the other forms meanwhile.
	StreamReprobe time.Duration
	// StreamInFlight bounds the checks written on one stream and not yet
	// answered, and those queued for it (0 → 1024 each).
	StreamInFlight int
}

// Checker asks haechi about tokens.
type Checker struct {
	opts   Options
	url    string
	bearer []string  // the Authorization header's value (nil: none)
	batch  *batcher  // nil: no batching
	stream *streamer // nil: no stream
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
	c := &Checker{opts: opts, url: strings.TrimRight(opts.URL, "/") + "/v1/verify/auth-request", jwtHeader: jwtHeader}
	if opts.APIToken != "" {
		c.bearer = []string{"Bearer " + opts.APIToken}
	}
	if opts.MaxBatch > 1 {
		if opts.Senders <= 0 {
			opts.Senders = 4
		}
		c.batch = &batcher{url: strings.TrimRight(opts.URL, "/") + "/v1/verify/batch", bearer: c.bearer, client: opts.Client,
			max: opts.MaxBatch, wait: opts.Timeout, queue: make(chan *pendingCheck, opts.MaxBatch*opts.Senders), stop: make(chan struct{})}
		for range opts.Senders {
			c.batch.wg.Add(1)
			go c.batch.run()
		}
	}
	if opts.Streams == 0 {
		opts.Streams = 2
	}
	if opts.Streams > 0 {
		if opts.StreamInFlight <= 0 {
			opts.StreamInFlight = 1024
		}
		if opts.StreamReprobe <= 0 {
			opts.StreamReprobe = DefaultStreamReprobe
		}
		st, err := newStreamer(opts)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.stream = st
	}
	return c, nil
}

// Close closes a Checker's streams (checks in flight on them fail) and
// stops its batch senders (checks still waiting fail by their timeout).
// The Checker must not be used after Close.
func (c *Checker) Close() {
	if c.stream != nil {
		c.stream.close()
	}
	if c.batch != nil {
		close(c.batch.stop)
		c.batch.wg.Wait()
	}
}

// ErrUnavailable wraps every failure to get an answer from haechi.
var ErrUnavailable = errors.New("haechi did not answer")

// The compact form's headers (haechi's auth_request endpoint,
// docs/verify.md), in canonical form so they are set without
// canonicalising.
const (
	headerTokenID       = "X-Token-Id"
	headerTokenKeyID    = "X-Token-Key-Id"    // #nosec G101 -- a header name, not a credential
	headerTokenIssuedAt = "X-Token-Issued-At" // #nosec G101 -- a header name, not a credential
	headerTokenUser     = "X-Token-User"      // #nosec G101 -- a header name, not a credential
	headerRealIP        = "X-Real-Ip"
	headerUserAgent     = "X-Original-User-Agent"
	headerVerdict       = "X-Haechi-Verdict"
	headerReason        = "X-Haechi-Reason"
)

// Check asks haechi about t presented by r's client. Errors wrap
// ErrUnavailable.
func (c *Checker) Check(ctx context.Context, r *http.Request, t Token) (Answer, error) {
	if c.stream != nil && !c.stream.fallback() {
		if ch := (Check{Token: t, ClientIP: c.opts.ClientIP(r), UserAgent: r.UserAgent()}); Batchable(ch) {
			// The stream times its checks out itself (deadlines), with
			// no timer per check.
			a, err := c.stream.check(ctx, ch)
			if !errors.Is(err, errNoStream) {
				return a, err
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	if c.batch != nil {
		if ch := (Check{Token: t, ClientIP: c.opts.ClientIP(r), UserAgent: r.UserAgent()}); Batchable(ch) {
			return c.checkBatched(ctx, ch)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	h := req.Header
	h[headerTokenID] = []string{t.ID}
	if t.KeyID != "" {
		h[headerTokenKeyID] = []string{t.KeyID}
	}
	if !t.IssuedAt.IsZero() {
		h[headerTokenIssuedAt] = []string{claimTime(t.IssuedAt)}
	}
	if t.User != "" {
		h[headerTokenUser] = []string{t.User}
	}
	if ip := c.opts.ClientIP(r); ip != "" {
		h[headerRealIP] = []string{ip}
	}
	if ua := r.UserAgent(); ua != "" {
		h[headerUserAgent] = []string{ua}
	}
	if c.bearer != nil {
		h["Authorization"] = c.bearer
	}
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	verdict := resp.Header.Get(headerVerdict)
	switch {
	case resp.StatusCode == http.StatusNoContent && verdict != "":
		return Answer{Verdict: verdict, Allow: true}, nil
	case resp.StatusCode == http.StatusForbidden && verdict != "":
		return Answer{Verdict: verdict, Reasons: resp.Header.Values(headerReason)}, nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return Answer{}, fmt.Errorf("%w: %s: %s", ErrUnavailable, resp.Status, bytes.TrimSpace(b))
}

// checkBatched queues ch for the batch senders and waits for its answer.
func (c *Checker) checkBatched(ctx context.Context, ch Check) (Answer, error) {
	return await(ctx, c.batch.queue, ch)
}

// await queues ch on queue (a batch sender's or a stream's) and waits
// for its answer, each for at most ctx.
func await(ctx context.Context, queue chan<- *pendingCheck, ch Check) (Answer, error) {
	return awaitUntil(ctx, queue, ch, nil)
}

// awaitUntil is await that also gives up when expired is closed (nil:
// never), failing as a timeout of ctx would.
func awaitUntil(ctx context.Context, queue chan<- *pendingCheck, ch Check, expired <-chan struct{}) (Answer, error) {
	p := &pendingCheck{c: ch, done: make(chan checkResult, 1)}
	select {
	case queue <- p:
	case <-ctx.Done():
		return Answer{}, fmt.Errorf("%w: queued beyond the timeout: %v", ErrUnavailable, ctx.Err())
	case <-expired:
		return Answer{}, fmt.Errorf("%w: queued beyond the timeout: %v", ErrUnavailable, context.DeadlineExceeded)
	}
	select {
	case res := <-p.done:
		return res.a, res.err
	case <-ctx.Done():
		return Answer{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	case <-expired:
		return Answer{}, fmt.Errorf("%w: %v", ErrUnavailable, context.DeadlineExceeded)
	}
}

// claimTime renders an issue time as the X-Token-Issued-At header does:
// Unix seconds, or RFC 3339 when it has a fraction of a second or lies
// outside the seconds ParseClaimTime reads.
func claimTime(t time.Time) string {
	if u := t.Unix(); t.Nanosecond() == 0 && u > 0 && u < 1<<40 {
		return strconv.FormatInt(t.Unix(), 10)
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Middleware wraps next with the check (see the package contract).
func (c *Checker) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, ok := c.opts.Token(r)
		if !ok {
			if c.jwtHeader && LooksLikeJWS(r.Header.Get("Authorization")) {
				a := Answer{Verdict: Unreadable, Reasons: []string{"a JWT without a readable jti cannot be checked"}}
				c.refuse(w, r, t, a, http.StatusUnauthorized)
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
			c.refuse(w, r, t, a, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuse reports a refusal to OnRefuse and answers the client code, with
// the verdict and reasons only when ExposeVerdict asks for them.
func (c *Checker) refuse(w http.ResponseWriter, r *http.Request, t Token, a Answer, code int) {
	if c.opts.OnRefuse != nil {
		c.opts.OnRefuse(r, t, a)
	}
	if c.opts.ExposeVerdict {
		w.Header()[headerVerdict] = []string{a.Verdict}
		if len(a.Reasons) > 0 {
			w.Header()[headerReason] = a.Reasons
		}
	}
	http.Error(w, strings.ToLower(http.StatusText(code)), code)
}

// maxJWT bounds the token read from a header.
const maxJWT = 16 << 10

// BearerJWT reads "Bearer <JWS compact>" (or the bare token) and decodes
// its header's kid and payload's jti, iat and sub without verifying the
// signature (the gateway does that). ok is false for anything that is not
// a three-part base64url JSON token with a jti. A string sub is the
// Token's User as written (no case folding or trimming), a numeric one
// its JSON text; any other sub is none. It never panics.
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
		Sub json.RawMessage `json:"sub"`
	}
	if !decodeSegment(parts[0], &hdr) || !decodeSegment(parts[1], &pl) || pl.Jti == "" {
		return Token{}, false
	}
	t := Token{ID: pl.Jti, KeyID: hdr.Kid}
	var iat float64
	if len(pl.Iat) > 0 && json.Unmarshal(pl.Iat, &iat) == nil && iat > 0 && iat < 1<<40 {
		t.IssuedAt = time.Unix(int64(iat), 0).UTC()
	}
	t.User = subject(pl.Sub)
	return t, true
}

// subject reads a sub claim: a string as written, a number as its JSON
// text, anything else as none.
func subject(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String()
		}
	}
	return ""
}

// LooksLikeJWS reports whether the Authorization value h holds a JWS
// compact serialisation: three non-empty dot-separated parts.
func LooksLikeJWS(h string) bool {
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
