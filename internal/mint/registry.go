// Package mint is the mint registry: every token the issuers minted and
// that has not expired, the signing keys' inventory, and the inline
// verdict a gateway asks for before it lets a request through
// (docs/verify.md).
//
// # Contract
//
//   - One owner: the registry is a value built by app and filled from two
//     doors only: Observe, called by the pipeline for every event it admits,
//     in admission order (auth.token / token.issued mints and keys.inventory
//     events — the same events, keyed the same way by tokenuse, that the
//     token_provenance detector indexes), and Add, called by the API once a
//     POST /v1/tokens/minted batch is durable, so a gateway may ask about a
//     token as soon as its issuer has been acknowledged, before the pipeline
//     has processed the spooled mint. Both are idempotent: the same mint
//     seen through both doors is one entry.
//   - Verify reads memory only, never the store or the network; it is safe
//     for concurrent use with Observe, Add, Sweep and Snapshot, which take
//     one of 64 striped locks (Verify a read lock).
//   - Binding to the user: a mint that names its user (Mint.UserID: the
//     JWT's sub) keeps a 32-bit hash of it in its slot, and a check that
//     presents a user (Query.User) answers UserMismatch when it is
//     another — so a genuine token id cannot be reused with another sub.
//     Users are compared byte for byte (no case folding or trimming).
//   - Memory: a live token costs one 24-byte slot of an open-addressing
//     table (linear probing, no tombstones) that is kept between 2/5 and 4/5
//     full, i.e. 30–60 bytes per live token (TestMemoryPerToken,
//     BenchmarkAdd). Token ids are not stored, only their 64-bit FNV-1a
//     hash (tokenuse.Hash): a collision (about n²/2⁶⁵ over n live tokens)
//     can make a forged token look minted, never a minted one forged.
//   - A token's remembered expiry is token.expires_at, else issue time plus
//     MaxLifetime, and never more than MaxLifetime after it was issued or
//     minted (as the detector), so MaxLifetime bounds memory. Sweep evicts
//     tokens past expiry + ClockSkew; Verify treats them as evicted whether
//     or not Sweep has run.
//   - Snapshot and Restore carry the whole registry across a restart; app
//     stores the snapshot with the detectors' checkpoint at the same mark,
//     so the spool replays exactly the mints after it.
package mint

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/binding"
	"github.com/haechi-sec/haechi/internal/detect/tokenuse"
	"github.com/haechi-sec/haechi/internal/event"
)

// Options configure New.
type Options struct {
	// MaxLifetime bounds a remembered expiry (0 → 24h); use the token
	// detector's max_lifetime.
	MaxLifetime time.Duration
	// ClockSkew is the tolerance between the issuers', gateways' and
	// haechi's clocks (0 → 2m).
	ClockSkew time.Duration
	// Grace configures the allowance for very new unknown tokens (zero:
	// none).
	Grace Grace
	// RequireUser refuses (UserMissing) a check that presents no user for
	// a token whose mint named one. false: such a check is judged
	// without the user, as before binding existed.
	RequireUser bool
}

// Mint is one minted token, as an issuer registers it.
type Mint struct {
	TokenID   string
	KeyID     string
	IssuedAt  time.Time // zero → At
	ExpiresAt time.Time // zero → issued + MaxLifetime
	At        time.Time // when the mint happened (the event's time)
	// UserID is the user the token was minted for (the JWT's sub): the
	// registry binds the token id to it (a 32-bit hash), so a check
	// presenting another user is refused. "" leaves the token unbound.
	UserID string
	// IP and ASN are carried to the mint's event (Event) only.
	IP netip.Addr
	// The mint's context, for token binding (all optional): the client
	// the token was minted for.
	Country   string // ISO 3166-1 alpha-2
	ASN       uint32
	UserAgent string
}

// userHash is FNV-1a 64 over a user id folded to 32 bits (0 for "", never
// 0 otherwise). A forger reusing a genuine token id of their own with a
// victim's user passes only if the two users' hashes collide: 1 in 2³² for
// a given pair, and the forger cannot search for a collision without
// minting genuine tokens for ever new accounts of their own.
func userHash(id string) uint32 {
	if id == "" {
		return 0
	}
	h := tokenuse.Hash(id)
	if u := uint32(h>>32) ^ uint32(h); u != 0 {
		return u
	}
	return 1
}

// Event is m as the contract's mint event (auth.token, token.issued,
// success), dated IssuedAt (else At).
func (m Mint) Event() event.Event {
	at := m.IssuedAt
	if at.IsZero() {
		at = m.At
	}
	return event.Event{Time: at, Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Outcome: event.OutcomeSuccess,
		User:      event.User{ID: m.UserID},
		Token:     event.Token{ID: m.TokenID, KeyID: m.KeyID, IssuedAt: at, ExpiresAt: m.ExpiresAt},
		Source:    event.Source{IP: m.IP, Country: m.Country, ASN: m.ASN},
		UserAgent: m.UserAgent}
}

const nStripes = 64

// Registry is the mint registry. Its zero value is not usable; use New.
type Registry struct {
	opts    Options
	stripes [nStripes]stripe
	live    atomic.Int64

	graced graceState

	kmu   sync.RWMutex
	keys  []keyInfo // index 0 unused: "no key"
	kidx  map[string]uint16
	inv   bool      // some keys.inventory event was seen
	since time.Time // coverage: the earliest mint known to have been registered
}

type stripe struct {
	mu sync.RWMutex
	t  table
	_  [24]byte // keep stripes on separate cache lines
}

type keyInfo struct {
	id        string
	listed    bool
	retiredAt time.Time
	revokedAt time.Time // zero: not revoked (RevokeKey)
}

// New returns an empty registry.
func New(opts Options) *Registry {
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = 24 * time.Hour
	}
	if opts.ClockSkew <= 0 {
		opts.ClockSkew = 2 * time.Minute
	}
	opts.Grace.defaults()
	r := &Registry{opts: opts, keys: make([]keyInfo, 1), kidx: map[string]uint16{}}
	r.graced.buckets, r.graced.tokens = map[string]*bucket{}, map[uint64]int{}
	return r
}

// Len is the number of tokens held (live, and expired ones not yet swept).
func (r *Registry) Len() int { return int(r.live.Load()) }

// Observe folds one admitted event into the registry: a successful
// auth.token / token.issued mint carrying token.id (tokenuse.Key), or a
// keys.inventory event naming key.id. Anything else is ignored.
func (r *Registry) Observe(ev *event.Event) {
	switch ev.Dataset {
	case event.DatasetKeys:
		r.inventory(ev)
	case event.DatasetToken:
		if _, ok := tokenuse.Key(ev); ok {
			r.Add(Mint{TokenID: ev.Token.ID, KeyID: ev.Token.KeyID, IssuedAt: ev.Token.IssuedAt, ExpiresAt: ev.Token.ExpiresAt,
				At: ev.Time, UserID: ev.User.ID, Country: ev.Source.Country, ASN: ev.Source.ASN, UserAgent: ev.UserAgent})
		}
	}
}

// ObserveBatch is Observe over a batch.
func (r *Registry) ObserveBatch(evs []event.Event) {
	for i := range evs {
		if d := evs[i].Dataset; d == event.DatasetKeys || d == event.DatasetToken {
			r.Observe(&evs[i])
		}
	}
}

func (r *Registry) inventory(ev *event.Event) {
	if ev.Key.ID == "" {
		return
	}
	r.kmu.Lock()
	defer r.kmu.Unlock()
	r.inv = true
	i := r.internLocked(ev.Key.ID)
	if i == 0 {
		return
	}
	k := &r.keys[i]
	k.listed = true
	at := ev.Key.RetiredAt
	if at.IsZero() && (ev.Action == event.ActionKeyRetired || strings.EqualFold(ev.Key.Status, "retired")) {
		at = ev.Time
	}
	if !at.IsZero() && (k.retiredAt.IsZero() || at.Before(k.retiredAt)) {
		k.retiredAt = at
	}
}

// maxKeys bounds the key table (slot.key is 15 bits).
const maxKeys = 1<<15 - 1

func (r *Registry) internLocked(id string) uint16 {
	if id == "" {
		return 0
	}
	if i, ok := r.kidx[id]; ok {
		return i
	}
	if len(r.keys) > maxKeys {
		return 0
	}
	id = strings.Clone(id)
	i := uint16(len(r.keys))
	r.keys = append(r.keys, keyInfo{id: id})
	r.kidx[id] = i
	return i
}

// Add registers one mint. A token minted again under the same id keeps
// the later expiry and takes the later mint's user; a revoked token stays
// revoked.
func (r *Registry) Add(m Mint) {
	if m.TokenID == "" {
		return
	}
	issued := m.IssuedAt
	if issued.IsZero() {
		issued = m.At
	}
	if issued.IsZero() {
		return // no time at all: nothing bounds its memory
	}
	at := m.At
	if at.IsZero() {
		at = issued
	}
	exp := m.ExpiresAt
	if exp.IsZero() {
		exp = issued.Add(r.opts.MaxLifetime)
	}
	base := issued
	if at.Before(base) {
		base = at
	}
	if limit := base.Add(r.opts.MaxLifetime); exp.After(limit) {
		exp = limit
	}

	r.kmu.Lock()
	ki := r.internLocked(m.KeyID)
	var flags uint16
	if ki != 0 {
		if k := r.keys[ki]; !k.retiredAt.IsZero() && issued.After(k.retiredAt.Add(r.opts.ClockSkew)) {
			flags |= flagAfterRetired
		}
	}
	if r.since.IsZero() || at.Before(r.since) {
		r.since = at
	}
	r.kmu.Unlock()

	f := binding.ParseFamily(m.UserAgent)
	s := slot{h: nonzero(tokenuse.Hash(m.TokenID)), exp: toSec(exp), user: userHash(m.UserID), key: ki, cc: binding.PackCountry(m.Country),
		ua: uint16(f.Client)<<8 | uint16(f.OS), flags: flags}
	st := &r.stripes[stripeOf(s.h)]
	st.mu.Lock()
	if st.t.upsert(s) {
		r.live.Add(1)
	}
	st.mu.Unlock()
}

// Revoke marks a token revoked: Verify answers revoked for it until
// MaxLifetime after now, whether or not it was minted.
func (r *Registry) Revoke(tokenID string, now time.Time) {
	if tokenID == "" {
		return
	}
	s := slot{h: nonzero(tokenuse.Hash(tokenID)), exp: toSec(now.Add(r.opts.MaxLifetime)), flags: flagRevoked}
	st := &r.stripes[stripeOf(s.h)]
	st.mu.Lock()
	if st.t.upsert(s) {
		r.live.Add(1)
	}
	st.mu.Unlock()
}

// RevokeKey marks a signing key revoked at now: Verify answers revoked
// for every token presented as signed by it, and for every token minted
// by it, minted or not, from then on (a revoked key vouches for nothing).
// The revocation is part of the snapshot.
func (r *Registry) RevokeKey(keyID string, now time.Time) {
	if keyID == "" {
		return
	}
	r.kmu.Lock()
	defer r.kmu.Unlock()
	i := r.internLocked(keyID)
	if i == 0 {
		return
	}
	if k := &r.keys[i]; k.revokedAt.IsZero() || now.Before(k.revokedAt) {
		k.revokedAt = now
	}
}

// Sweep evicts every token whose expiry + ClockSkew is before now and
// returns how many it evicted. It locks one stripe at a time.
func (r *Registry) Sweep(now time.Time) int {
	cut := toSec(now.Add(-r.opts.ClockSkew))
	n := 0
	for i := range r.stripes {
		st := &r.stripes[i]
		st.mu.Lock()
		n += st.t.sweep(cut)
		st.mu.Unlock()
	}
	r.live.Add(int64(-n))
	return n
}

// Since is the time of the earliest mint registered: tokens claiming an
// issue time before it (less ClockSkew) may have been minted before the
// registry existed (zero: nothing registered yet).
func (r *Registry) Since() time.Time {
	r.kmu.RLock()
	defer r.kmu.RUnlock()
	return r.since
}

func nonzero(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

// stripeOf picks a stripe from the hash's top bits after mixing.
func stripeOf(h uint64) int { return int((h * golden) >> 58) }
