// Package auth is access control for haechi's API and console: API tokens
// with roles, console sessions kept in a cookie, and CSRF protection.
//
// Contract:
//
//   - A token is "hch_" followed by the unpadded base64url encoding of 32
//     random bytes. It is shown once, when it is created, and stored only
//     as its SHA-256 (HashToken). Revoked tokens and the sessions they
//     opened stop working at once — except that with Options.CacheTTL a
//     bearer token revoked by another process works for up to CacheTTL.
//   - A verify token the store vouched for less than Options.StaleGrace
//     ago is still accepted while the store cannot be asked (a lookup
//     fails with anything but not-found), so that a gateway's inline
//     check, whose verdicts never need the store, outlives a short store
//     outage. No other role gets this grace, nor does a token the store
//     never vouched for here, nor one its last lookup found revoked or
//     gone.
//   - A request authenticates with "Authorization: Bearer <token>" or with
//     the session cookie the console's login sets (HttpOnly,
//     SameSite=Strict, Secure when served over TLS, lifetime SessionTTL).
//     A bearer header that is present but wrong is refused even when a
//     valid cookie is also present.
//   - Roles: ingest may only post events; mint may only register minted
//     tokens (POST /v1/tokens/minted), so an issuer's credential can
//     neither feed other events nor read, and a log shipper's cannot
//     whitelist token ids through that door (ingest may still, deprecated,
//     while the API allows it: NeedMintOrIngest); verify may only ask the
//     inline token check (docs/verify.md), so a
//     gateway's credential can neither feed nor read; analyst reads, gives feedback
//     and approves actions that are not protected; admin may do
//     everything. A route declares what it needs (Need); Guard answers
//     401 (with WWW-Authenticate) without valid credentials and 403 when
//     the role does not suffice.
//   - CSRF: a state-changing request (any method but GET, HEAD, OPTIONS)
//     authenticated by the session cookie must carry the session's CSRF
//     token in the X-CSRF-Token header or the "csrf" form field, and an
//     Origin header, when present, must name the request's own host;
//     otherwise 403. Requests with a bearer token are not exposed to CSRF
//     (browsers never attach the header on their own) and are not checked.
//     The login form uses a double-submit cookie instead (LoginCSRF).
//   - Login opens sessions for analyst and admin tokens only. Refused
//     logins are limited per client address and audited folded: the
//     first of a window at once, the rest as one entry when it ends.
//   - A long-lived response (the console's live stream) holds the
//     credential it was opened with and Watches it: it learns within
//     RecheckInterval (and at a session's expiry) that the credential
//     ended, at once when it ended in this process (Logout, RevokeToken).
//   - LoopbackOnly guards a server without access control against other
//     web sites in the user's browser (Host and Origin checks).
//   - Authenticator is safe for concurrent use and holds no request state.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haechi-sec/haechi/internal/store"
)

// Role is what a token may do.
type Role string

// The roles, from least to most privileged.
const (
	RoleIngest  Role = "ingest"
	RoleMint    Role = "mint"
	RoleVerify  Role = "verify"
	RoleAnalyst Role = "analyst"
	RoleAdmin   Role = "admin"
)

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleIngest, RoleMint, RoleVerify, RoleAnalyst, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want ingest, mint, verify, analyst or admin)", s)
}

// Need is what a route requires of its caller.
type Need uint8

const (
	// NeedAdmin: admin tokens only. It is the zero value so that a route
	// registered without thinking is as closed as it gets.
	NeedAdmin Need = iota
	// NeedPublic: no credentials (health, the login page, static assets).
	NeedPublic
	// NeedAny: any valid token (metrics, logging out).
	NeedAny
	// NeedIngest: posting events (ingest and admin tokens).
	NeedIngest
	// NeedAnalyst: reading, feedback, approvals (analyst and admin tokens).
	NeedAnalyst
	// NeedVerify: the inline token check (verify and admin tokens).
	NeedVerify
	// NeedMint: registering minted tokens (mint and admin tokens).
	NeedMint
	// NeedMintOrIngest: registering minted tokens while ingest tokens
	// may still do it, deprecated (mint, admin and ingest tokens).
	NeedMintOrIngest
)

func (n Need) String() string {
	switch n {
	case NeedPublic:
		return "public"
	case NeedAny:
		return "any token"
	case NeedIngest:
		return "ingest"
	case NeedAnalyst:
		return "analyst"
	case NeedVerify:
		return "verify"
	case NeedMint:
		return "mint"
	case NeedMintOrIngest:
		return "mint (or ingest, deprecated)"
	}
	return "admin"
}

// Allows reports whether role r may use a route that needs n.
func (r Role) Allows(n Need) bool {
	switch n {
	case NeedPublic:
		return true
	case NeedAny:
		return r == RoleIngest || r == RoleMint || r == RoleVerify || r == RoleAnalyst || r == RoleAdmin
	case NeedMint:
		return r == RoleMint || r == RoleAdmin
	case NeedMintOrIngest:
		return r == RoleMint || r == RoleAdmin || r == RoleIngest
	case NeedVerify:
		return r == RoleVerify || r == RoleAdmin
	case NeedIngest:
		return r == RoleIngest || r == RoleAdmin
	case NeedAnalyst:
		return r == RoleAnalyst || r == RoleAdmin
	}
	return r == RoleAdmin
}

// TokenPrefix starts every token, so that a leaked one is recognisable
// (secret scanners, logs).
const TokenPrefix = "hch_"

// tokenBytes is the token's entropy.
const tokenBytes = 32

// tokenLen is the length of a well-formed token.
var tokenLen = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(tokenBytes)

// NewToken returns a fresh random token.
func NewToken() (string, error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// WellFormed reports whether tok has the shape of a token (prefix, length,
// base64url alphabet). It says nothing of whether the token exists.
func WellFormed(tok string) bool {
	if len(tok) != tokenLen || !strings.HasPrefix(tok, TokenPrefix) {
		return false
	}
	return rawURLBase64(tok[len(TokenPrefix):])
}

// rawURLBase64 reports whether s is unpadded URL-safe base64 and nothing
// else. (The decoder alone is not enough: it skips '\r' and '\n'.)
func rawURLBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// HashToken returns the hex SHA-256 of a token or session cookie, the
// form in which they are stored. A plain, unsalted, fast hash is adequate
// here — unlike for passwords — because the hashed values are 32 random
// bytes: with 256 bits of entropy there is nothing to guess or to look up
// in a precomputed table, so a slow or salted hash would add nothing but
// latency to every request.
func HashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// ParseBearer extracts the token from an Authorization header value
// ("Bearer <token>", scheme case-insensitive, surrounding spaces ignored).
// ok is false for any other scheme, an empty token or one with spaces.
func ParseBearer(h string) (tok string, ok bool) {
	h = strings.TrimSpace(h)
	scheme, rest, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if rest == "" || strings.ContainsAny(rest, " \t\r\n") {
		return "", false
	}
	return rest, true
}

// Caller is who made a request.
type Caller struct {
	TokenID string `json:"token_id"`
	Name    string `json:"name"`
	Role    Role   `json:"role"`
	// Session is set when the request came with the console's cookie.
	Session bool      `json:"session,omitempty"`
	csrf    string    // the session's CSRF token
	hash    string    // HashToken of the bearer token or session cookie (Recheck)
	expires time.Time // the session's end (zero for a bearer token)
}

// String names the caller for the audit log: "name (tok-…)".
func (c Caller) String() string {
	if c.TokenID == "" {
		return "anonymous"
	}
	if c.Name == "" {
		return c.TokenID
	}
	return c.Name + " (" + c.TokenID + ")"
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller Guard put in ctx; ok is false when the
// route is public or auth is off.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// CSRFToken returns the CSRF token of the session the request in ctx came
// with ("" when it came with a bearer token or none).
func CSRFToken(ctx context.Context) string {
	c, _ := CallerFrom(ctx)
	return c.csrf
}

// Store is what the Authenticator keeps its tokens and sessions in.
type Store interface {
	CreateToken(ctx context.Context, t store.APIToken, hash string) error
	CreateFirstToken(ctx context.Context, t store.APIToken, hash string) (bool, error)
	TokenByHash(ctx context.Context, hash string) (store.APIToken, error)
	TouchToken(ctx context.Context, id string, now time.Time) error
	CountActiveTokens(ctx context.Context) (int, error)
	CreateSession(ctx context.Context, s store.Session) error
	SessionByHash(ctx context.Context, hash string) (store.Session, store.APIToken, error)
	DeleteSession(ctx context.Context, hash string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)
	AppendAudit(ctx context.Context, t time.Time, kind, actionID string, detail any) error
}

// Options configure New.
type Options struct {
	Store Store
	// SessionTTL is a console session's lifetime (0 → 12h).
	SessionTTL time.Duration
	// Secure marks cookies Secure (serving over TLS). Cookies are also
	// Secure on any request that arrived over TLS.
	Secure bool
	Now    func() time.Time // nil → time.Now
	Logger *slog.Logger
	// RecheckInterval is how often Watch re-checks a credential against
	// the store (0 → 30s): the longest a revocation made by another
	// process (haechi tokens revoke) goes unnoticed by an open stream.
	RecheckInterval time.Duration
	// FailureWindow and MaxFailures limit refused logins per client
	// address (IPv4 address or IPv6 /64): after MaxFailures refusals in
	// a window, Login answers ErrThrottled until the window ends, and the
	// window's refusals after the first are audited as one entry when it
	// ends (0 → 1m and 10).
	FailureWindow time.Duration
	MaxFailures   int
	// MaxFailureAddrs bounds how many client addresses are tracked at
	// once (0 → 4096); when full, the oldest window is closed early.
	MaxFailureAddrs int
	// CacheTTL is how long a bearer token found valid in the store is
	// believed without asking it again (0: every request asks the store).
	// A token revoked in this process (RevokeToken) stops working at once
	// whatever the TTL; one revoked by another process (haechi tokens
	// revoke) within CacheTTL. At most maxCached tokens are remembered.
	CacheTTL time.Duration
	// StaleGrace is how long after the store last found a verify token
	// valid the token is still accepted while the store cannot be asked
	// (0 → DefaultStaleGrace; negative: never). It applies to tokens of
	// role verify only, and only when the lookup fails with an error other
	// than store.ErrNotFound: a token the store says is gone or revoked is
	// refused at once, and forgotten, whatever the grace. The first
	// acceptance of an outage is logged (Warn), and so is its end, at the
	// next lookup the store answers (Info); not each request. Risk: a
	// verify token revoked by another process during the outage (or
	// within CacheTTL before it) is still accepted for up to StaleGrace
	// after the store last vouched for it.
	StaleGrace time.Duration
}

// DefaultStaleGrace is Options.StaleGrace's default, the same 30 s for
// which an open check stream outlives a store that does not answer
// (api.DefaultStreamOutage): a gateway's redial and its one-check
// requests are then accepted as long as its open streams are kept.
const DefaultStaleGrace = 30 * time.Second

// maxCached bounds the bearer tokens Options.CacheTTL and
// Options.StaleGrace remember; beyond it the cache starts over.
const maxCached = 4096

// cachedCaller is a bearer token's caller, believed until until; vouched
// is when the store last found it valid (Options.StaleGrace).
type cachedCaller struct {
	c       Caller
	until   time.Time
	vouched time.Time
}

// Cookie names.
const (
	SessionCookie = "haechi_session"
	LoginCookie   = "haechi_login"
)

// Authenticator checks tokens and sessions.
type Authenticator struct {
	opts Options

	mu      sync.Mutex
	touched map[string]time.Time // token id → last recorded use
	// ended is closed (and replaced) whenever a credential ends in this
	// process (logout, RevokeToken): open streams re-check at once.
	ended chan struct{}

	failMu   sync.Mutex
	failures map[string]*failWindow // client address → its current window

	// cache holds bearer tokens found valid (Options.CacheTTL), by the
	// SHA-256 of the token.
	cacheMu sync.RWMutex
	cache   map[[sha256.Size]byte]cachedCaller
	// forgets counts forget calls (under cacheMu): a lookup that began
	// before one must not remember what it found.
	forgets uint64

	// stale is set while tokens are accepted on the store's earlier word
	// (Options.StaleGrace), from the first such acceptance to the next
	// lookup the store answers; staleUsed counts those acceptances.
	stale     atomic.Bool
	staleUsed atomic.Int64
}

// New builds an Authenticator.
func New(opts Options) *Authenticator {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RecheckInterval <= 0 {
		opts.RecheckInterval = 30 * time.Second
	}
	if opts.FailureWindow <= 0 {
		opts.FailureWindow = time.Minute
	}
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = 10
	}
	if opts.MaxFailureAddrs <= 0 {
		opts.MaxFailureAddrs = 4096
	}
	if opts.StaleGrace == 0 {
		opts.StaleGrace = DefaultStaleGrace
	}
	return &Authenticator{opts: opts, touched: map[string]time.Time{}, ended: make(chan struct{}),
		failures: map[string]*failWindow{}, cache: map[[sha256.Size]byte]cachedCaller{}}
}

// CreateToken makes, stores and returns a new token of role with a
// human-readable name. The returned token is the only copy.
func CreateToken(ctx context.Context, st Store, role Role, name string, now time.Time) (string, store.APIToken, error) {
	tok, t, err := newTokenRecord(role, name, now)
	if err != nil {
		return "", store.APIToken{}, err
	}
	if err := st.CreateToken(ctx, t, HashToken(tok)); err != nil {
		return "", store.APIToken{}, err
	}
	return tok, t, nil
}

func newTokenRecord(role Role, name string, now time.Time) (string, store.APIToken, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return "", store.APIToken{}, err
	}
	tok, err := NewToken()
	if err != nil {
		return "", store.APIToken{}, err
	}
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", store.APIToken{}, err
	}
	return tok, store.APIToken{ID: "tok-" + hex.EncodeToString(id[:]), Name: name, Role: string(role), Created: now.UTC()}, nil
}

// EnsureAdmin creates an admin token when no token is active and returns
// it ("" when tokens exist): serve's first start. The check and the
// creation are one transaction, so workers starting together on a fresh
// shared database create one admin token.
func EnsureAdmin(ctx context.Context, st Store, now time.Time) (string, store.APIToken, error) {
	if n, err := st.CountActiveTokens(ctx); err != nil || n > 0 {
		return "", store.APIToken{}, err
	}
	tok, t, err := newTokenRecord(RoleAdmin, "admin (created on first start)", now)
	if err != nil {
		return "", store.APIToken{}, err
	}
	created, err := st.CreateFirstToken(ctx, t, HashToken(tok))
	if err != nil || !created {
		return "", store.APIToken{}, err
	}
	return tok, t, nil
}

// Errors of Authenticate.
var (
	ErrNoCredentials = errors.New("no credentials: send Authorization: Bearer <token> or log in to the console")
	ErrBadToken      = errors.New("invalid or revoked token")
	ErrSession       = errors.New("session expired or logged out; log in again")
)

// Authenticate identifies the caller of r.
func (a *Authenticator) Authenticate(r *http.Request) (Caller, error) {
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := ParseBearer(h)
		if !ok || !WellFormed(tok) {
			return Caller{}, ErrBadToken
		}
		key := sha256.Sum256([]byte(tok))
		if a.opts.CacheTTL > 0 {
			if c, ok := a.cached(key); ok {
				return c, nil
			}
		}
		hash := hex.EncodeToString(key[:]) // HashToken(tok)
		gen := a.generation()
		t, err := a.opts.Store.TokenByHash(ctx, hash)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !t.Revoked.IsZero()) {
			a.drop(key)
			return Caller{}, ErrBadToken
		}
		if err != nil {
			if c, ok := a.staleOK(ctx, key, err); ok {
				return c, nil
			}
			return Caller{}, err
		}
		a.storeAnswers()
		a.touch(ctx, t.ID)
		c := Caller{TokenID: t.ID, Name: t.Name, Role: Role(t.Role), hash: hash}
		if a.opts.CacheTTL > 0 || a.graced(c) {
			a.remember(key, c, gen)
		}
		return c, nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return Caller{}, ErrNoCredentials
	}
	if !WellFormedSession(c.Value) {
		return Caller{}, ErrSession
	}
	hash := HashToken(c.Value)
	se, t, err := a.opts.Store.SessionByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return Caller{}, ErrSession
	}
	if err != nil {
		return Caller{}, err
	}
	if !a.opts.Now().Before(se.Expires) || !t.Revoked.IsZero() {
		_ = a.opts.Store.DeleteSession(context.WithoutCancel(ctx), hash)
		return Caller{}, ErrSession
	}
	a.touch(ctx, t.ID)
	return Caller{TokenID: t.ID, Name: t.Name, Role: Role(t.Role), Session: true, csrf: se.CSRF, hash: hash, expires: se.Expires}, nil
}

// cached returns the caller of a bearer token found valid less than
// CacheTTL ago, or accepted on the store's earlier word less than
// CacheTTL ago within its grace (staleOK); its use is recorded by the
// store lookups between.
func (a *Authenticator) cached(key [sha256.Size]byte) (Caller, bool) {
	a.cacheMu.RLock()
	e, ok := a.cache[key]
	a.cacheMu.RUnlock()
	if !ok || !a.opts.Now().Before(e.until) {
		return Caller{}, false
	}
	return e.c, true
}

// generation returns the count of forget calls so far (remember).
func (a *Authenticator) generation() uint64 {
	a.cacheMu.RLock()
	defer a.cacheMu.RUnlock()
	return a.forgets
}

// remember caches a bearer token's caller for CacheTTL, the store having
// just found it valid in a lookup begun at generation gen — unless a
// credential ended here since (forget): the lookup may have been answered
// before a revocation, and would otherwise be believed for CacheTTL, and
// its grace for StaleGrace.
func (a *Authenticator) remember(key [sha256.Size]byte, c Caller, gen uint64) {
	now := a.opts.Now()
	a.cacheMu.Lock()
	if a.forgets != gen {
		a.cacheMu.Unlock()
		return
	}
	if _, ok := a.cache[key]; !ok && len(a.cache) >= maxCached {
		clear(a.cache)
	}
	a.cache[key] = cachedCaller{c: c, until: now.Add(max(a.opts.CacheTTL, 0)), vouched: now}
	a.cacheMu.Unlock()
}

// drop forgets a bearer token the store says is gone or revoked, so that
// no later outage brings it back (Options.StaleGrace).
func (a *Authenticator) drop(key [sha256.Size]byte) {
	a.cacheMu.RLock()
	_, ok := a.cache[key]
	a.cacheMu.RUnlock()
	if !ok {
		return
	}
	a.cacheMu.Lock()
	delete(a.cache, key)
	a.cacheMu.Unlock()
}

// graced reports whether c may be accepted on the store's earlier word
// (Options.StaleGrace): verify tokens only.
func (a *Authenticator) graced(c Caller) bool {
	return a.opts.StaleGrace > 0 && c.Role == RoleVerify
}

// staleOK returns the caller of a bearer token whose lookup failed with
// err (not a refusal: the store could not be asked) when the store found
// it valid less than StaleGrace ago and its role has the grace, and then
// believes it for another CacheTTL (never past the grace), so that a store
// that fails slowly (SQLite's 5 s busy timeout, a database connection
// timing out) delays one request a token per CacheTTL, not each. The
// request's own end (ctx done) is no outage.
func (a *Authenticator) staleOK(ctx context.Context, key [sha256.Size]byte, err error) (Caller, bool) {
	if ctx.Err() != nil {
		return Caller{}, false
	}
	now := a.opts.Now()
	a.cacheMu.Lock()
	e, ok := a.cache[key]
	ok = ok && a.graced(e.c) && now.Sub(e.vouched) < a.opts.StaleGrace
	if ok {
		// Believed again for CacheTTL, within the grace: the requests
		// in between do not each wait for a store that does not answer.
		e.until = now.Add(max(a.opts.CacheTTL, 0))
		if end := e.vouched.Add(a.opts.StaleGrace); end.Before(e.until) {
			e.until = end
		}
		a.cache[key] = e
	}
	a.cacheMu.Unlock()
	if !ok {
		return Caller{}, false
	}
	a.staleUsed.Add(1)
	if a.stale.CompareAndSwap(false, true) {
		a.opts.Logger.Warn("auth: the store cannot be asked; accepting verify tokens it found valid within the grace",
			"grace", a.opts.StaleGrace, "token", e.c.TokenID, "err", err)
	}
	return e.c, true
}

// storeAnswers ends an outage during which tokens were accepted on the
// store's earlier word (logged once).
func (a *Authenticator) storeAnswers() {
	if a.stale.Load() && a.stale.CompareAndSwap(true, false) {
		a.opts.Logger.Info("auth: the store answers again; tokens are checked against it",
			"accepted_on_earlier_word", a.staleUsed.Swap(0))
	}
}

// forget empties the bearer token cache (a credential ended here).
func (a *Authenticator) forget() {
	a.cacheMu.Lock()
	a.forgets++
	clear(a.cache)
	a.cacheMu.Unlock()
}

// touch records a token's use at most once a minute.
func (a *Authenticator) touch(ctx context.Context, id string) {
	now := a.opts.Now()
	a.mu.Lock()
	last := a.touched[id]
	fresh := now.Sub(last) < time.Minute
	if !fresh {
		a.touched[id] = now
	}
	a.mu.Unlock()
	if fresh {
		return
	}
	if err := a.opts.Store.TouchToken(context.WithoutCancel(ctx), id, now); err != nil {
		a.opts.Logger.Warn("auth: record token use", "token", id, "err", err)
	}
}

// DenyFunc writes a refusal: code is 401 or 403, msg says why and what to
// do.
type DenyFunc func(w http.ResponseWriter, r *http.Request, code int, msg string)

// DenyJSON writes {"error": msg}.
func DenyJSON(w http.ResponseWriter, _ *http.Request, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// maxFormBytes bounds a form body read for its CSRF field.
const maxFormBytes = 1 << 20

// safeMethod reports methods that must not change state.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// Guard wraps h so that only callers whose role allows need reach it, with
// the caller in the request's context. deny (nil → DenyJSON) writes
// refusals.
func (a *Authenticator) Guard(need Need, h http.Handler, deny DenyFunc) http.Handler {
	if deny == nil {
		deny = DenyJSON
	}
	if need == NeedPublic {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := a.Authenticate(r)
		if err != nil {
			if !errors.Is(err, ErrNoCredentials) && !errors.Is(err, ErrBadToken) && !errors.Is(err, ErrSession) {
				a.opts.Logger.Error("auth", "err", err)
				deny(w, r, http.StatusServiceUnavailable, "cannot check credentials now: "+err.Error())
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="haechi"`)
			deny(w, r, http.StatusUnauthorized, err.Error())
			return
		}
		if !c.Role.Allows(need) {
			deny(w, r, http.StatusForbidden, fmt.Sprintf("forbidden: this needs a token with role %s; %s has role %s", need, c, c.Role))
			return
		}
		if c.Session && !safeMethod(r.Method) {
			if msg := checkCSRF(r, c.csrf); msg != "" {
				deny(w, r, http.StatusForbidden, msg)
				return
			}
		}
		h.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), c)))
	})
}

// checkCSRF returns why a cookie-authenticated unsafe request is refused,
// or "".
func checkCSRF(r *http.Request, want string) string {
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
		return fmt.Sprintf("forbidden: request from another origin (%s); use the console's own forms", o)
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
		got = r.PostFormValue("csrf")
	}
	if want == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return "forbidden: missing or wrong CSRF token; reload the page and submit the form again"
	}
	return ""
}

// sameOrigin reports whether an Origin header names host.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, host)
}

// sessionBytes is a session cookie's entropy.
const sessionBytes = 32

// WellFormedSession reports whether v has the shape of a session cookie.
func WellFormedSession(v string) bool {
	if len(v) != base64.RawURLEncoding.EncodedLen(sessionBytes) {
		return false
	}
	return rawURLBase64(v)
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (a *Authenticator) secure(r *http.Request) bool { return a.opts.Secure || r.TLS != nil }

// ErrLoginRole refuses a console login with a token whose role may not use
// the console (ingest, verify). Login returns it as a *LoginRoleError,
// which names the role.
var ErrLoginRole = errors.New("this token's role may not use the console: log in with an analyst or admin token")

// LoginRoleError is Login's refusal of a token whose role may not use the
// console; errors.Is(err, ErrLoginRole) holds.
type LoginRoleError struct{ Role Role }

func (e *LoginRoleError) Error() string {
	return "role " + string(e.Role) + ": " + ErrLoginRole.Error()
}

// Is makes errors.Is(e, ErrLoginRole) true.
func (e *LoginRoleError) Is(target error) bool { return target == ErrLoginRole }

// Login checks tok and, when it is valid and its role may use the console
// (analyst or admin), opens a session and sets its cookie on w. A refused
// login sets no cookie and opens no session. Every login is audited;
// refused ones are limited per client address (see Options.FailureWindow):
// beyond the limit Login returns a *ThrottleError (errors.Is ErrThrottled)
// without looking at tok.
func (a *Authenticator) Login(w http.ResponseWriter, r *http.Request, tok string) (Caller, error) {
	ctx := r.Context()
	now := a.opts.Now().UTC()
	client := clientKey(r.RemoteAddr)
	if err := a.throttled(client, now); err != nil {
		return Caller{}, err
	}
	tok = strings.TrimSpace(tok)
	var t store.APIToken
	err := ErrBadToken
	if WellFormed(tok) {
		t, err = a.opts.Store.TokenByHash(ctx, HashToken(tok))
		if errors.Is(err, store.ErrNotFound) || (err == nil && !t.Revoked.IsZero()) {
			err = ErrBadToken
		}
	}
	if err == nil && !Role(t.Role).Allows(NeedAnalyst) {
		err = &LoginRoleError{Role: Role(t.Role)}
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrBadToken):
			a.loginFailed(ctx, client, now, map[string]any{"remote": r.RemoteAddr, "reason": "invalid or revoked token"})
		case errors.Is(err, ErrLoginRole):
			a.loginFailed(ctx, client, now, map[string]any{"remote": r.RemoteAddr, "reason": "role " + t.Role + " may not use the console",
				"token_id": t.ID, "name": t.Name})
		}
		return Caller{}, err
	}
	sid, err := randomString(sessionBytes)
	if err != nil {
		return Caller{}, err
	}
	csrf, err := randomString(32)
	if err != nil {
		return Caller{}, err
	}
	exp := now.Add(a.opts.SessionTTL)
	hash := HashToken(sid)
	if err := a.opts.Store.CreateSession(ctx, store.Session{Hash: hash, TokenID: t.ID, CSRF: csrf, Created: now, Expires: exp}); err != nil {
		return Caller{}, err
	}
	if _, err := a.opts.Store.DeleteExpiredSessions(ctx, now); err != nil {
		a.opts.Logger.Warn("auth: delete expired sessions", "err", err)
	}
	c := Caller{TokenID: t.ID, Name: t.Name, Role: Role(t.Role), Session: true, csrf: csrf, hash: hash, expires: exp}
	_ = a.opts.Store.AppendAudit(ctx, now, "login", "", map[string]string{"token_id": t.ID, "name": t.Name, "remote": r.RemoteAddr})
	// #nosec G124 -- HttpOnly and SameSite=Strict always; Secure whenever the console is reached over TLS (directly or, with Options.Secure, behind a proxy): a plain-HTTP loopback browser would not send a Secure cookie back
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: sid, Path: "/", Expires: exp, MaxAge: int(a.opts.SessionTTL / time.Second),
		HttpOnly: true, Secure: a.secure(r), SameSite: http.SameSiteStrictMode})
	return c, nil
}

// Logout ends the request's session and clears its cookie; the session's
// open streams (Watch) learn it at once.
func (a *Authenticator) Logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		_ = a.opts.Store.DeleteSession(r.Context(), HashToken(c.Value))
		a.credentialsEnded(false)
	}
	if c, ok := CallerFrom(r.Context()); ok {
		_ = a.opts.Store.AppendAudit(r.Context(), a.opts.Now(), "logout", "", map[string]string{"token_id": c.TokenID, "name": c.Name})
	}
	// #nosec G124 -- HttpOnly and SameSite=Strict always; Secure whenever the console is reached over TLS (directly or, with Options.Secure, behind a proxy): a plain-HTTP loopback browser would not send a Secure cookie back
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: a.secure(r), SameSite: http.SameSiteStrictMode})
}

// LoginCSRF returns the value the login form must echo, setting the
// double-submit cookie that holds it when the request has none.
func (a *Authenticator) LoginCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(LoginCookie); err == nil && WellFormedSession(c.Value) {
		return c.Value
	}
	v, err := randomString(sessionBytes)
	if err != nil {
		return ""
	}
	// Path "/": every page that answers 401 with the login form reuses
	// the same value (a favicon request must not replace it under a form
	// that is already shown).
	// #nosec G124 -- HttpOnly and SameSite=Strict always; Secure whenever the console is reached over TLS (directly or, with Options.Secure, behind a proxy): a plain-HTTP loopback browser would not send a Secure cookie back
	http.SetCookie(w, &http.Cookie{Name: LoginCookie, Value: v, Path: "/", MaxAge: 3600,
		HttpOnly: true, Secure: a.secure(r), SameSite: http.SameSiteStrictMode})
	return v
}

// CheckLoginCSRF reports whether a login POST echoes its cookie's value
// in the "csrf" form field and, when it sends an Origin, comes from this
// host.
func CheckLoginCSRF(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
		return false
	}
	c, err := r.Cookie(LoginCookie)
	if err != nil || !WellFormedSession(c.Value) {
		return false
	}
	got := r.PostFormValue("csrf")
	return subtle.ConstantTimeCompare([]byte(got), []byte(c.Value)) == 1
}
