package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/gateway"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/mint"
)

// MintRegistry is what the API needs of the mint registry
// (internal/mint): registering acknowledged mints and judging tokens from
// memory. Verify must not block on I/O.
type MintRegistry interface {
	Add(m mint.Mint)
	Verify(q mint.Query) mint.Answer
}

// VerifyOptions configure the mint registry's routes (Options.Verify).
type VerifyOptions struct {
	Registry MintRegistry
	// Rate and Burst limit the check routes per caller — each API token
	// has a bucket of its own, at most 4,096 kept (0 → 100,000 per
	// second, burst 10,000); a request beyond them is answered 429 at
	// once — the gateway's own mode (open or closed) decides what that
	// means.
	Rate  float64
	Burst int
	// Locate resolves an address to an ISO country code ("" unknown),
	// for binding when the caller gives a source address but no country
	// (nil → only the caller's country is used).
	Locate func(netip.Addr) string
	// MaxMints bounds one POST /v1/tokens/minted batch (0 → 10,000).
	MaxMints int
	// IngestMayMint lets ingest tokens register mints (deprecated: the
	// answer carries a Warning header and the first registration of each
	// ingest token is logged). false: only mint and admin tokens may
	// (403 naming the mint role). serve applies the same setting to the
	// auth.token events ingest tokens post (app's PipelineOptions.MintsFrom).
	IngestMayMint bool
	// OnRefuse, if set, is told of every refused check (not of requests
	// without a token); it must not block.
	OnRefuse func(q mint.Query, a mint.Answer)
	// StreamRecheck is how often an open check stream re-checks the
	// token it was opened with (0 → 1s, the authenticator's cache): a
	// stream whose token was revoked is closed by the next re-check.
	StreamRecheck time.Duration
	// StreamOutage is how long an open check stream is kept while its
	// token cannot be re-checked — the store does not answer — counted
	// from the last re-check the store answered (0 →
	// DefaultStreamOutage; negative: closed at the first re-check that
	// fails). The verdicts never need the store, and closing every
	// stream would leave a fail-open gateway passing every token, forged
	// ones included, while the store is down. A token the store says is
	// revoked or gone still closes its stream at the next re-check.
	StreamOutage time.Duration
	// MaxStreamsPerToken bounds the check streams one token (one caller
	// without access control) may hold open at once; beyond it the
	// upgrade is answered 429 (0 → DefaultMaxStreamsPerToken). Per
	// token, so that one token's streams cannot use up another's.
	MaxStreamsPerToken int
}

// registerVerify mounts the mint registry's routes when configured.
func (s *Server) registerVerify() {
	v := &s.opts.Verify
	if v.Registry == nil {
		return
	}
	if v.Rate <= 0 {
		v.Rate = 100_000
	}
	if v.Burst <= 0 {
		v.Burst = 10_000
	}
	if v.MaxMints <= 0 {
		v.MaxMints = 10_000
	}
	s.verifyLimit = newCallerLimits(v.Rate, v.Burst)
	mintNeed := auth.NeedMint
	if v.IngestMayMint {
		mintNeed = auth.NeedMintOrIngest
	}
	s.handleFunc("POST /v1/tokens/minted", mintNeed, s.handleMinted)
	s.handleFunc("POST /v1/verify", auth.NeedVerify, s.handleVerify)
	s.handleFunc("GET /v1/verify/auth-request", auth.NeedVerify, s.handleAuthRequest)
	s.handleFunc("POST /v1/verify/batch", auth.NeedVerify, s.handleVerifyBatch)
	s.handleFunc("GET "+gateway.StreamPath, auth.NeedVerify, s.handleVerifyStream)
}

// MintRequest is one token in a POST /v1/tokens/minted batch.
type MintRequest struct {
	TokenID   string    `json:"token_id"`
	KeyID     string    `json:"key_id,omitempty"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	UserID    string    `json:"user_id,omitempty"`
	// The client the token was minted for, for binding (optional).
	SourceIP  string `json:"source_ip,omitempty"`
	Country   string `json:"country,omitempty"`
	ASN       uint32 `json:"asn,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// MintBatch is the body of POST /v1/tokens/minted.
type MintBatch struct {
	Mints []MintRequest `json:"mints"`
}

// MintResult is the answer to POST /v1/tokens/minted.
type MintResult struct {
	Registered int `json:"registered"`
}

// mintLine is a mint as an event of the contract (docs/events.md), so
// that it travels the ingest path: spool, pipeline, detectors, ledger.
type mintLine struct {
	Timestamp time.Time `json:"@timestamp"`
	Event     struct {
		Dataset string `json:"dataset"`
		Action  string `json:"action"`
		Outcome string `json:"outcome"`
	} `json:"event"`
	User  *idField `json:"user,omitempty"`
	Token struct {
		ID        string     `json:"id"`
		KeyID     string     `json:"key_id,omitempty"`
		IssuedAt  time.Time  `json:"issued_at"`
		ExpiresAt *time.Time `json:"expires_at,omitempty"`
	} `json:"token"`
	Source *struct {
		IP  string `json:"ip,omitempty"`
		Geo *struct {
			Country string `json:"country_iso_code"`
		} `json:"geo,omitempty"`
		AS *struct {
			Number uint32 `json:"number"`
		} `json:"as,omitempty"`
	} `json:"source,omitempty"`
	UserAgent *struct {
		Original string `json:"original"`
	} `json:"user_agent,omitempty"`
}

type idField struct {
	ID string `json:"id"`
}

// handleMinted registers a batch of mints: validated as a whole, written
// durably through the same path as POST /v1/events (Options.Spool, or
// Options.Ingest without a spool) as auth.token / token.issued events, and
// only then added to the registry and acknowledged. Idempotency-Key works
// as for events.
func (s *Server) handleMinted(w http.ResponseWriter, r *http.Request) {
	v := s.opts.Verify
	if c, ok := auth.CallerFrom(r.Context()); ok && c.Role == auth.RoleIngest {
		s.deprecatedMinter(w, c)
	}
	body, err := io.ReadAll(&limitReader{r: r.Body, left: s.opts.MaxBodyBytes})
	if err != nil {
		if errors.Is(err, errTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", s.opts.MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	var b MintBatch
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if len(b.Mints) == 0 || len(b.Mints) > v.MaxMints {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("a batch holds 1 to %d mints, got %d", v.MaxMints, len(b.Mints)))
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > MaxIdempotencyKey || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) || strings.HasPrefix(key, TailKeyPrefix) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Idempotency-Key must be at most %d printable ASCII characters without spaces, not starting with %q", MaxIdempotencyKey, TailKeyPrefix))
		return
	}
	now := s.opts.Now()
	var latest time.Time
	if s.opts.MaxFuture > 0 {
		latest = now.Add(s.opts.MaxFuture)
	}
	var nd bytes.Buffer
	enc := json.NewEncoder(&nd)
	mints := make([]mint.Mint, len(b.Mints))
	for i, m := range b.Mints {
		ln, mt, err := mintEvent(m, now, latest)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("mints[%d]: %v; nothing from this request was accepted", i, err))
			return
		}
		if err := enc.Encode(ln); err != nil {
			writeError(w, http.StatusInternalServerError, "encode: "+err.Error())
			return
		}
		mints[i] = mt
	}
	if s.opts.Spool != nil {
		var scope string
		if c, ok := auth.CallerFrom(r.Context()); ok {
			scope = c.TokenID
		}
		_, err = s.opts.Spool(r.Context(), Stored{Scope: scope, Key: key, Body: nd.Bytes(), NotAfter: latest})
	} else if s.opts.Ingest != nil {
		evs := make([]event.Event, len(mints))
		for i, m := range mints {
			evs[i] = m.Event()
		}
		err = s.opts.Ingest(evs)
	}
	if err != nil {
		w.Header().Set("Retry-After", strconv.Itoa(int((s.opts.RetryAfter+time.Second-1)/time.Second)))
		switch {
		case errors.Is(err, ErrUnavailable), errors.Is(err, ErrStopping):
			writeError(w, http.StatusServiceUnavailable, "mints cannot be stored durably ("+err.Error()+"); none was registered, retry later")
		case errors.Is(err, ErrBusy):
			writeError(w, http.StatusTooManyRequests, "haechi is behind; none was registered, retry later")
		case errors.Is(err, ErrKeyReused):
			writeError(w, http.StatusUnprocessableEntity, err.Error()+"; none was registered")
		default:
			s.opts.Logger.Error("register mints", "err", err)
			writeError(w, http.StatusInternalServerError, "register mints: "+err.Error())
		}
		return
	}
	for _, m := range mints {
		v.Registry.Add(m)
	}
	writeJSON(w, http.StatusOK, MintResult{Registered: len(mints)})
}

// ingestMintWarning is the Warning header of a mint registration by an
// ingest token (RFC 9111's 299: a persistent warning).
const ingestMintWarning = `299 haechi "registering mints with an ingest token is deprecated and will be refused in the next release: use a token with role mint (haechi tokens create --role mint)"`

// maxWarnedMinters bounds the ingest tokens remembered as warned.
const maxWarnedMinters = 1024

// deprecatedMinter warns that the ingest token c registers mints: a
// Warning header on every answer, and a log line the first time each
// token does it (while fewer than maxWarnedMinters were logged).
func (s *Server) deprecatedMinter(w http.ResponseWriter, c auth.Caller) {
	w.Header().Set("Warning", ingestMintWarning)
	s.mintWarnMu.Lock()
	if s.mintWarned == nil {
		s.mintWarned = map[string]struct{}{}
	}
	_, seen := s.mintWarned[c.TokenID]
	if !seen && len(s.mintWarned) < maxWarnedMinters {
		s.mintWarned[c.TokenID] = struct{}{}
	} else {
		seen = true
	}
	s.mintWarnMu.Unlock()
	if !seen {
		s.opts.Logger.Warn("an ingest token registers mints (POST /v1/tokens/minted): deprecated, create a token with role mint for the issuer; verify.ingest_may_mint: false refuses it",
			"token", c.String())
	}
}

// mintEvent validates one mint and renders it as a contract event line
// and as the registry's Mint. The event's time is issued_at (zero → now).
func mintEvent(m MintRequest, now, latest time.Time) (mintLine, mint.Mint, error) {
	var ln mintLine
	if m.TokenID == "" {
		return ln, mint.Mint{}, errors.New("token_id is required")
	}
	at := m.IssuedAt
	if at.IsZero() {
		at = now
	}
	if !latest.IsZero() && at.After(latest) {
		return ln, mint.Mint{}, fmt.Errorf("issued_at %s is ahead of the server's clock by more than ingest.max_future", at.Format(time.RFC3339))
	}
	if !m.ExpiresAt.IsZero() && !m.ExpiresAt.After(at) {
		return ln, mint.Mint{}, errors.New("expires_at is not after issued_at")
	}
	if m.Country != "" && (len(m.Country) != 2 || strings.ToUpper(m.Country) != m.Country) {
		return ln, mint.Mint{}, fmt.Errorf("country %q is not an upper-case ISO 3166-1 alpha-2 code", m.Country)
	}
	var ip netip.Addr
	if m.SourceIP != "" {
		var err error
		if ip, err = netip.ParseAddr(m.SourceIP); err != nil {
			return ln, mint.Mint{}, fmt.Errorf("source_ip: %w", err)
		}
	}
	ln.Timestamp = at.UTC()
	ln.Event.Dataset, ln.Event.Action, ln.Event.Outcome = event.DatasetToken, event.ActionTokenIssued, "success"
	if m.UserID != "" {
		ln.User = &idField{ID: m.UserID}
	}
	ln.Token.ID, ln.Token.KeyID, ln.Token.IssuedAt = m.TokenID, m.KeyID, at.UTC()
	if !m.ExpiresAt.IsZero() {
		e := m.ExpiresAt.UTC()
		ln.Token.ExpiresAt = &e
	}
	if ip.IsValid() || m.Country != "" || m.ASN != 0 {
		ln.Source = &struct {
			IP  string `json:"ip,omitempty"`
			Geo *struct {
				Country string `json:"country_iso_code"`
			} `json:"geo,omitempty"`
			AS *struct {
				Number uint32 `json:"number"`
			} `json:"as,omitempty"`
		}{}
		if ip.IsValid() {
			ln.Source.IP = ip.String()
		}
		if m.Country != "" {
			ln.Source.Geo = &struct {
				Country string `json:"country_iso_code"`
			}{m.Country}
		}
		if m.ASN != 0 {
			ln.Source.AS = &struct {
				Number uint32 `json:"number"`
			}{m.ASN}
		}
	}
	if m.UserAgent != "" {
		ln.UserAgent = &struct {
			Original string `json:"original"`
		}{m.UserAgent}
	}
	return ln, mint.Mint{TokenID: m.TokenID, KeyID: m.KeyID, IssuedAt: at, ExpiresAt: m.ExpiresAt, At: at,
		UserID: m.UserID, IP: ip, Country: m.Country, ASN: m.ASN, UserAgent: m.UserAgent}, nil
}

// VerifyRequest is the body of POST /v1/verify.
type VerifyRequest struct {
	TokenID  string    `json:"token_id"`
	KeyID    string    `json:"key_id,omitempty"`
	IssuedAt time.Time `json:"issued_at,omitzero"`
	// UserID is the user the token is presented for (the JWT's sub),
	// compared byte for byte with the mint's user_id (optional).
	UserID string `json:"user_id,omitempty"`
	// Context (optional): the client presenting the token.
	SourceIP  string `json:"source_ip,omitempty"`
	Country   string `json:"country,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// maxVerifyBody bounds a POST /v1/verify body.
const maxVerifyBody = 16 << 10

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	if !s.verifyLimit.allow(r, 1) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "verify rate limit exceeded")
		return
	}
	var q VerifyRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxVerifyBody))
	if err := dec.Decode(&q); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if q.TokenID == "" {
		writeError(w, http.StatusBadRequest, "token_id is required")
		return
	}
	mq, err := s.query(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a := s.opts.Verify.Registry.Verify(mq)
	if !a.Allow && s.opts.Verify.OnRefuse != nil {
		s.opts.Verify.OnRefuse(mq, a)
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) query(q VerifyRequest) (mint.Query, error) { return s.queryAt(q, s.opts.Now()) }

// queryAt is query at a given time (a batch's checks share one).
func (s *Server) queryAt(q VerifyRequest, now time.Time) (mint.Query, error) {
	mq := mint.Query{TokenID: q.TokenID, KeyID: q.KeyID, IssuedAt: q.IssuedAt, User: q.UserID, Source: q.SourceIP, Country: q.Country, UserAgent: q.UserAgent, Now: now}
	if q.SourceIP != "" {
		ip, err := netip.ParseAddr(q.SourceIP)
		if err != nil {
			return mq, fmt.Errorf("source_ip: %w", err)
		}
		if mq.Country == "" && s.opts.Verify.Locate != nil {
			mq.Country = s.opts.Verify.Locate(ip)
		}
	}
	return mq, nil
}

// Headers of the auth_request endpoint (docs/verify.md).
const (
	// HeaderOriginalAuthorization carries the client's own Authorization
	// header (nginx: proxy_set_header X-Original-Authorization
	// $http_authorization), since the subrequest's Authorization carries
	// the gateway's verify token.
	HeaderOriginalAuthorization = "X-Original-Authorization"
	HeaderTokenID               = "X-Token-Id"
	HeaderTokenKeyID            = "X-Token-Key-Id"    // #nosec G101 -- a header name, not a credential
	HeaderTokenIssuedAt         = "X-Token-Issued-At" // #nosec G101 -- a header name, not a credential (value: RFC 3339 or Unix seconds)
	HeaderOriginalUserAgent     = "X-Original-User-Agent"
	HeaderRealIP                = "X-Real-IP"
	HeaderVerdict               = "X-Haechi-Verdict"
	// HeaderReason, on a refusal, says why (one value per reason, as
	// POST /v1/verify's reasons).
	HeaderReason = "X-Haechi-Reason"
	// HeaderTokenUser is the user an opaque token is presented for (the
	// JWT's sub is read from the JWT itself).
	HeaderTokenUser = "X-Token-User" // #nosec G101 -- a header name, not a credential
)

// handleAuthRequest is the NGINX auth_request endpoint: the token from
// the JWT in X-Original-Authorization (its header's kid and payload's jti
// and iat, read without checking the signature — the gateway checks
// that) with its sub as the user, or, when there is none that can be
// read, from X-Token-Id / X-Token-Key-Id / X-Token-Issued-At /
// X-Token-User; the
// client from X-Real-IP and X-Original-User-Agent. 204 allows, 403
// refuses (X-Haechi-Verdict says which verdict, X-Haechi-Reason why), 401
// when no token can be read, 429 beyond the rate limit. It is the compact
// form of the check (no body either way), which gateway.Checker uses too.
func (s *Server) handleAuthRequest(w http.ResponseWriter, r *http.Request) {
	if !s.verifyLimit.allow(r, 1) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	q := VerifyRequest{SourceIP: r.Header.Get(HeaderRealIP), UserAgent: r.Header.Get(HeaderOriginalUserAgent)}
	// The JWT the client presented, when it can be read, is what the
	// upstream will accept, so it is what is judged: nginx's subrequest
	// carries the client's own headers, and a forger's X-Token-Id naming
	// a live token must not stand in for it. The X-Token-* headers are
	// for tokens haechi cannot read (the gateway decoded them).
	// A JWT that cannot be read (no jti) is refused, never replaced by
	// the headers: the upstream would accept it on its signature alone.
	orig := r.Header.Get(HeaderOriginalAuthorization)
	if c, ok := gateway.BearerJWT(orig); ok {
		q.TokenID, q.KeyID, q.IssuedAt, q.UserID = c.ID, c.KeyID, c.IssuedAt, c.User
	} else if gateway.LooksLikeJWS(orig) {
		w.Header().Set(HeaderVerdict, gateway.Unreadable)
		w.WriteHeader(http.StatusUnauthorized)
		return
	} else {
		q.TokenID, q.KeyID, q.UserID = r.Header.Get(HeaderTokenID), r.Header.Get(HeaderTokenKeyID), r.Header.Get(HeaderTokenUser)
		if v := r.Header.Get(HeaderTokenIssuedAt); v != "" {
			q.IssuedAt, _ = gateway.ParseClaimTime(v)
		}
	}
	if q.TokenID == "" {
		w.Header().Set(HeaderVerdict, "no_token")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	mq, err := s.query(q)
	if err != nil {
		q.SourceIP = "" // a bad X-Real-IP is no context
		mq, _ = s.query(q)
	}
	a := s.opts.Verify.Registry.Verify(mq)
	w.Header().Set(HeaderVerdict, string(a.Verdict))
	if a.Allow {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if s.opts.Verify.OnRefuse != nil {
		s.opts.Verify.OnRefuse(mq, a)
	}
	w.Header()[HeaderReason] = a.Reasons
	w.WriteHeader(http.StatusForbidden)
}

// MaxVerifyBatch bounds the checks of one POST /v1/verify/batch.
const MaxVerifyBatch = 1024

// handleVerifyBatch is POST /v1/verify/batch: up to MaxVerifyBatch checks
// in the batch form (package gateway: one tab-separated line per check),
// answered 200 with one line per check, in order (a refusal's with its
// reasons). The whole batch counts
// against the rate limit (429 when it does not fit) and is refused (400)
// when any line is malformed; a client address that is not one is no
// context, as for auth_request.
func (s *Server) handleVerifyBatch(w http.ResponseWriter, r *http.Request) {
	in, out := s.batchBuf(), s.batchBuf()
	defer func() {
		if in.Cap() <= 1<<20 {
			in.Reset()
			s.batchBufs.Put(in)
		}
		if out.Cap() <= 1<<20 {
			out.Reset()
			s.batchBufs.Put(out)
		}
	}()
	limit := int64(MaxVerifyBatch) * (gateway.MaxBatchLine + 1)
	if _, err := in.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	if int64(in.Len()) > limit {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a batch holds at most %d checks of at most %d bytes", MaxVerifyBatch, gateway.MaxBatchLine))
		return
	}
	body := in.Bytes()
	n := bytes.Count(body, []byte{'\n'})
	if len(body) > 0 && body[len(body)-1] != '\n' {
		n++
	}
	if n == 0 || n > MaxVerifyBatch {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("a batch holds 1 to %d checks, got %d", MaxVerifyBatch, n))
		return
	}
	now := s.opts.Now()
	if !s.verifyLimit.allow(r, n) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "verify rate limit exceeded")
		return
	}
	qs := make([]mint.Query, 0, n)
	for i, rest := 0, body; len(rest) > 0; i++ {
		line := rest
		if j := bytes.IndexByte(rest, '\n'); j >= 0 {
			line, rest = rest[:j], rest[j+1:]
		} else {
			rest = nil
		}
		c, err := gateway.ParseCheck(line)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("check %d: %v; nothing was checked", i+1, err))
			return
		}
		qs = append(qs, s.checkQuery(c, now))
	}
	for _, mq := range qs {
		out.Write(s.appendVerdict(out.AvailableBuffer(), mq))
	}
	w.Header().Set("Content-Type", "text/tab-separated-values")
	_, _ = w.Write(out.Bytes())
}

// checkQuery is the registry's query for one check of the batch or stream
// form at now: a client address that is not one is no context, as for
// auth_request.
func (s *Server) checkQuery(c gateway.Check, now time.Time) mint.Query {
	q := VerifyRequest{TokenID: c.Token.ID, KeyID: c.Token.KeyID, IssuedAt: c.Token.IssuedAt, UserID: c.Token.User, SourceIP: c.ClientIP, UserAgent: c.UserAgent}
	mq, err := s.queryAt(q, now)
	if err != nil {
		q.SourceIP = "" // not an address: no context
		mq, _ = s.queryAt(q, now)
	}
	return mq
}

// appendVerdict judges mq, reports a refusal to OnRefuse, and appends the
// answer line of the batch and stream forms (a refusal's with its
// reasons, as auth_request).
func (s *Server) appendVerdict(b []byte, mq mint.Query) []byte {
	a := s.opts.Verify.Registry.Verify(mq)
	if !a.Allow && s.opts.Verify.OnRefuse != nil {
		s.opts.Verify.OnRefuse(mq, a)
	}
	ga := gateway.Answer{Verdict: string(a.Verdict), Allow: a.Allow}
	if !a.Allow {
		ga.Reasons = a.Reasons
	}
	return gateway.AppendAnswer(b, ga)
}

// batchBuf returns a recycled buffer of the batch route (empty).
func (s *Server) batchBuf() *bytes.Buffer {
	if b, ok := s.batchBufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}
