// Package token detects access tokens that are not genuine: used on the
// gateway but never minted by the token service, signed by a retired key
// after its retirement or by a key outside the inventory, claiming
// impossible times, used past
// expiry, or replayed from several places. It is the detector for the
// ghost-key attack, in which someone who kept a signing key forges tokens
// impersonating customers.
//
// # Keying and state
//
// Mints (auth.token / token.issued) and uses (gateway.access) that carry
// token.id key on the token (event.EntityKey{Kind: token}), so a token's
// mint and all its uses meet on one shard. Key inventory events
// (keys.inventory with key.id) are broadcast: every shard keeps its own small
// key table (id → listed or not, status, first time seen, retired_at, the
// retirement's evidence), with key ids interned to a uint16.
//
// Each shard keeps:
//   - the mint index: for every minted token until it expires, the 64-bit
//     FNV-1a hash of its id → 16 bytes (expiry, key index and whether it
//     was minted after that key's retirement, first use location and time,
//     the kinds already fired). Token ids are not kept.
//     A token's remembered expiry is token.expires_at, else issue time plus
//     MaxLifetime, and never more than MaxLifetime after it was issued or
//     minted, so MaxLifetime bounds memory: at most 64 bytes per live token
//     including map overhead (measured by TestMintIndexMemory and
//     BenchmarkMintIndex). Expired tokens are swept at most once per ten
//     minutes of event time, once the watermark passes expiry + ClockSkew.
//     A 64-bit hash can collide: with n live tokens on a shard the chance
//     that any two collide is about n²/2⁶⁵ (3·10⁻⁶ at ten million), and a
//     collision can only make an unminted token look minted, i.e. cost a
//     missed finding, never a false one.
//   - pending uses: a use of a token not (yet) minted, remembered with the
//     token id, key id, principal, source and evidence of its first use,
//     until the issuer's stream passes its mint deadline or the watermark
//     passes first use + Lateness (see "Never minted" below). A mint
//     arriving meanwhile cancels it; otherwise token_never_minted fires.
//     Their number is bounded by the rate of distinct unminted tokens ×
//     Lateness, and those whose every presentation was refused by
//     MaxRefused (see "Refused presentations").
//   - flagged tokens: the hashes of tokens already reported never minted,
//     for MaxLifetime of event time after their first use, so later uses of
//     the same forged token do not fire again, and with each the verdict's
//     time, rule, finding ID and entity, so a mint arriving late can
//     withdraw it (below): 32 bytes per judged token, 40 with the hash,
//     under 96 with map overhead; their number is bounded by the distinct
//     unminted tokens served within MaxLifetime, plus the newest
//     MaxRefused reported on refused presentations only.
//
// # Findings (each at most once per token)
//
//   - token_never_minted (95, immediate): used, never minted (see "Never
//     minted" below for when that is certain). About the signing key when
//     the use names one (that is what to revoke in a ghost-key attack), else
//     the token. Not judged
//     for tokens that may have been minted before haechi saw its first
//     event (engine.Context.Earliest): a use claiming an issue time before
//     it, or with no claim, used within MaxLifetime of it — otherwise every
//     live session would be "forged" the moment haechi starts.
//   - token_key_retired (95, immediate): used after its signing key's
//     retired_at, and not vouched for by the key — a retired key vouches for
//     the tokens it issued before its retirement until they expire, so a
//     key rotation leaves old sessions valid. Fired when the token was
//     issued after the retirement + ClockSkew (its mint's issued_at, else
//     the mint's time; or the use's token.issued_at), or is used after its
//     expiry + ClockSkew (the mint's remembered expiry; unminted, the
//     claimed expires_at, at most MaxLifetime after the claimed issue time,
//     or, claiming none, after the retirement). A use that arrives before
//     its mint fires when the mint shows issuance after the retirement
//     (evidence: the use, the mint, the retirement). About the key. The key
//     is the use's token.key_id, else the mint's. An unminted token
//     claiming issuance before the retirement is left to
//     token_never_minted.
//   - token_unknown_key (90, immediate): signed by a key the inventory does
//     not list, only once this shard has seen some keys.inventory event (no
//     inventory, no opinion). About the key. Judged on uses only: a mint by
//     an unlisted key is the token service's own doing and becomes a finding
//     when the token is used.
//   - token_issued_in_future (70): token.issued_at later than the event
//     time + ClockSkew, on a mint or a use. About the token.
//   - token_lifetime_exceeds_policy (60): expires_at − issued_at beyond
//     MaxLifetime on a mint (issued_at defaulting to the mint's time) or on a
//     use claiming both. About the token.
//   - token_multi_location (80): one token used from two countries or two
//     AS numbers (source.geo.country_iso_code, source.as.number), judged on
//     the fields both uses carry; uses without them count for nothing. About
//     the token. Only the first location and its time are remembered, so the
//     evidence is the second use.
//     A request the inline check refused as user_mismatch
//     (tokenuse.ActionUserMismatch: its id was minted for another user
//     than the one presented, e.g. the jti of the forger's own login with
//     a victim's sub) is a token never minted too, though its id is in the
//     mint index: it fires at once (at the latest when the mint arrives,
//     should the refusal come first), once per token id, about the key,
//     tagged TagRefusedOnly. The mint index keeps no users (its 64-byte
//     budget): the detector takes the check's verdict, which compared the
//     users byte for byte.
//   - token_used_after_expiry (70): a minted token used after its
//     remembered expiry + ClockSkew while the index still remembers it.
//     About the token. Once swept, a use of it looks never minted and fires
//     token_never_minted: MaxLifetime bounds how long an expired token is
//     told apart from a forged one.
//
// # Never minted
//
// A genuine token is minted before it is used and at the time it claims
// to be issued, so its mint appears on the issuer's stream (auth.token) at
// the latest around the earlier of its issued_at and its first use — its
// mint deadline is that moment plus MintSkew, which absorbs the issuer's
// logging delay, clocks and the issuer stream's own disorder. The detector
// watches the issuer's stream (engine.StreamWatcher): the newest
// auth.token event time the engine has routed, over all shards and, in
// cluster mode, over the whole input (every mint routed before that point
// has been processed, so a mint not seen by then was never made).
//
//   - Issuer rule: once the issuer's stream is past the mint deadline with
//     no mint, the token is never minted. The finding's time is the
//     deadline (the first use, if later): from then on a genuine mint could
//     no longer come. Figure "mint_skew_seconds".
//   - Lateness rule: when the issuer's stream is behind or silent, the
//     verdict falls back to the watermark passing first use + Lateness,
//     the finding's time. Figure "lateness_seconds".
//
// The explanation says which rule decided: whichever passed its mark
// first, in the order of the input (the engine and cluster mode's
// re-keying stage make sure no shard sees a watermark move and a lagging
// issuer stream's move at once, however events are batched). Since the
// deadline is at most the first use + MintSkew, the issuer rule decides
// first whenever the issuer's stream keeps up and MintSkew is below the
// lateness. A forged token claiming an old issued_at is
// judged as soon as the engine hands its use over. A mint on the issuer's
// stream more than MintSkew behind a later mint there can be judged never
// minted — MintSkew must cover the issuer stream's disorder.
//
// Key checks fire at once on the use (the inventory is broadcast; an
// inventory event that arrives after the use it would have condemned is not
// applied retroactively). Never-minted is judged in Advance.
//
// # Late mints withdraw the verdict
//
// A mint that arrives after its token was reported never minted, but is
// dated no later than the finding (had it arrived in order there would have
// been no finding), withdraws it: token_never_minted_withdrawn (score 0,
// not immediate), with event.Finding.Withdraws naming the finding's ID,
// the same entity and time, the mint as evidence, and how late the mint
// was at least (figure "mint_lateness_seconds": the verdict's time minus
// the mint's; it arrived after the verdict, so the deciding stream had
// passed at least that much beyond it). The alert stage removes the
// finding from its alert (docs/alerts.md). A mint dated after the verdict
// is not late data — the token was used before it was minted, by more than
// MintSkew — and withdraws nothing. Such a mint does not clear a use
// still pending either: it is itself on the issuer's stream, past the
// use's deadline, so the use is judged by the issuer rule first, however
// the events are batched (a mint dated no later than the verdict that
// arrives before it clears the use, and nothing is reported). Withdrawal
// is possible for MaxLifetime after the token's first use (then the
// flagged entry is swept).
//
// # Refused presentations
//
// A request the inline check refused is a final verdict at the gateway:
// it exposed nothing. Anyone can present junk token ids naming a live
// key, so the state refused presentations may create is bounded per
// shard by Options.MaxRefused (4,096 by default), not by the attacker's
// rate:
//   - a refused presentation of a token the shard knows nothing of gets a
//     pending use only while fewer than MaxRefused refused-only uses are
//     pending (beyond half of that, only while fewer than a sixteenth of
//     them name its key id, so a spray naming one key leaves room for the
//     others), or when it is the first pending one naming a key the
//     inventory lists (random key ids cannot crowd out a real key's
//     forger). Otherwise it is not judged at all — no finding, no state:
//     the store and the audit log still hold it, and the spray is
//     reported by the presentations that were tracked;
//   - of the tokens reported never minted on refused presentations only,
//     the shard remembers the newest MaxRefused (a FIFO); an older one
//     presented again is judged afresh.
//
// A token reported on refused presentations only (TagRefusedOnly) that is
// later served (fail-open, a gateway without the check) is reported again
// at that use, token_never_minted without the tag: the forgery got
// through. A late mint withdraws that finding.
//
// # What it cannot see
//
// Uses the gateway rejected (event.outcome failure) are not access and are
// ignored — except requests haechi's inline check refused
// (tokenuse.Refused: action verify.<verdict>), which are judged as uses, so
// a forged token refused at its first request is still reported and its
// key revoked (the explanation says it was refused) — as are failed
// issuances: a client retrying with an expired token
// and getting a 401 is routine. Tokens without token.id are invisible. A key
// un-retired by a later inventory event stays retired. A retirement learned
// after mints it post-dates (retired_at back-dated behind mints already
// processed) does not mark them minted after it: their uses, within
// expiry, pass — the mint index keeps one bit, not the issue time (the
// 64-byte budget). A mint arriving after its token's never-minted verdict
// withdraws the verdict but does not raise token_key_retired for the uses
// before it. A forged token whose
// id collides with a live minted one (see above) passes. Evidence of mint
// events is not kept, so findings on uses cite the use (and the key's
// retirement) only.
package token

import (
	"container/heap"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/tokenuse"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// Name is the detector's stable name.
const Name = "token_provenance"

// Finding kinds.
const (
	KindNeverMinted     = "token_never_minted"
	KindKeyRetired      = "token_key_retired"
	KindUnknownKey      = "token_unknown_key"
	KindIssuedInFuture  = "token_issued_in_future"
	KindLifetime        = "token_lifetime_exceeds_policy"
	KindMultiLocation   = "token_multi_location"
	KindUsedAfterExpiry = "token_used_after_expiry"
	// KindNeverMintedWithdrawn is the withdrawal (event.Finding.Withdraws)
	// of a token_never_minted finding whose mint arrived late.
	KindNeverMintedWithdrawn = "token_never_minted_withdrawn"
)

// TagRefusedOnly marks a token_never_minted, token_key_retired or
// token_unknown_key finding whose evidence is only requests the inline
// check refused (tokenuse.Refused). The inline check reads a JWT's kid,
// jti and iat before anything checks its signature, so anyone can present
// a token naming a live key: such a finding shows that someone claimed the
// key, not that its private half is in their hands. The response holds a
// key revocation on such evidence alone for a person's decision (the
// refused tokens already exposed nothing).
const TagRefusedOnly = "haechi.token.refused_only"

// Scores of the finding kinds.
const (
	ScoreNeverMinted    = 95
	ScoreKeyRetired     = 95
	ScoreUnknownKey     = 90
	ScoreIssuedInFuture = 70
	ScoreLifetime       = 60
	ScoreMultiLocation  = 80
	// ScoreMultiNetwork is token_multi_location when only the network
	// changed within one country: a phone moving from home Wi-Fi to mobile
	// data does that, so it is a weak signal on its own.
	ScoreMultiNetwork    = 40
	ScoreUsedAfterExpiry = 70
)

// Defaults of Options.
const (
	DefaultMaxLifetime = 24 * time.Hour
	DefaultLateness    = 5 * time.Minute
	DefaultMintSkew    = 30 * time.Second
	DefaultMaxRefused  = 4096
)

// sweepEvery is how much event time passes between sweeps of expired state.
const sweepEvery = 10 * time.Minute

// Options configure the detector.
type Options struct {
	// MaxLifetime is the longest token lifetime policy allows, and how long
	// a minted token is remembered at most. 0 means DefaultMaxLifetime.
	MaxLifetime time.Duration
	// ClockSkew tolerated between issuer, gateway and the events' clocks.
	ClockSkew time.Duration
	// Lateness is the engine's allowed lateness: how long after a token's
	// first use a mint may still arrive. 0 means DefaultLateness.
	Lateness time.Duration
	// MintSkew is how far past a token's mint deadline (the earlier of its
	// issued_at and first use) the issuer's stream must be, with no mint,
	// before the token is never minted (the issuer rule). 0 means
	// DefaultMintSkew; at or above Lateness the issuer rule never decides
	// before the lateness rule.
	MintSkew time.Duration
	// MaxRefused bounds, per shard, the tokens whose every presentation
	// the inline check refused that the detector keeps state for: at most
	// MaxRefused awaiting their mint and MaxRefused already reported (see
	// "Refused presentations"). 0 means DefaultMaxRefused.
	MaxRefused int
}

// Detector is the token-provenance detector. It holds only immutable
// configuration; per-shard state lives in the value NewShard returns.
type Detector struct{ opts Options }

var (
	_ engine.Detector      = (*Detector)(nil)
	_ engine.Broadcaster   = (*Detector)(nil)
	_ engine.StreamWatcher = (*Detector)(nil)
)

// New returns the detector.
func New(opts Options) *Detector {
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = DefaultMaxLifetime
	}
	if opts.Lateness <= 0 {
		opts.Lateness = DefaultLateness
	}
	if opts.ClockSkew < 0 {
		opts.ClockSkew = 0
	}
	if opts.MintSkew <= 0 {
		opts.MintSkew = DefaultMintSkew
	}
	if opts.MaxRefused <= 0 {
		opts.MaxRefused = DefaultMaxRefused
	}
	return &Detector{opts: opts}
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: successful mints and accepted gateway
// uses that carry token.id key on the token (tokenuse.Key), and so do
// requests the inline check refused (tokenuse.Refused). It does not
// allocate.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if k, ok := tokenuse.Key(ev); ok {
		return k, true
	}
	if tokenuse.Refused(ev) {
		return event.EntityKey{Kind: event.EntityToken, ID: ev.Token.ID}, true
	}
	return event.EntityKey{}, false
}

// Broadcast implements engine.Broadcaster: key inventory events go to every
// shard.
func (d *Detector) Broadcast(ev *event.Event) bool {
	return ev.Dataset == event.DatasetKeys && ev.Key.ID != ""
}

// Streams implements engine.StreamWatcher: the issuer's stream.
func (d *Detector) Streams() []string { return []string{event.DatasetToken} }

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard { return newShard(d.opts) }

func newShard(opts Options) *shard {
	return &shard{
		opts:      opts,
		mints:     newMintIndex(),
		pending:   map[uint64]*pendingUse{},
		flagged:   map[uint64]flagEntry{},
		keyIdx:    map[string]uint16{},
		keys:      []keyInfo{{}}, // index 0: no key
		queue:     useHeap{by: byDue},
		deadlines: useHeap{by: byDeadline},
		refusedBy: map[string]int{},
	}
}

// keyInfo is what a shard knows of one signing key.
type keyInfo struct {
	id         string
	listed     bool // named by a keys.inventory event
	status     string
	created    time.Time // first inventory event time seen
	retiredAt  time.Time
	retiredRef string
}

// pendingUse is a use of a token not (yet) minted.
type pendingUse struct {
	h         uint64
	issuedAt  time.Time // as the use claims it
	tokenID   string
	keyID     string
	principal string
	ip        netip.Addr
	first     time.Time
	last      time.Time
	due       time.Time // first + Lateness
	deadline  time.Time // min(issuedAt, first) + MintSkew: the issuer rule's
	count     int
	ref       string
	loc       loc
	fired     uint8
	// refused: every use so far was refused at the gateway by the inline
	// check (tokenuse.Refused), so none was served.
	refused bool
	pos     [2]int // in shard.queue (byDue) and shard.deadlines (byDeadline)

	// mismatch: the first use refused as user_mismatch, kept to report it
	// when the mint arrives (userMismatch).
	mismatch *refusedUse
}

// flagEntry remembers a token already reported never minted, and enough of
// the finding to withdraw it should the mint still arrive: 32 bytes.
type flagEntry struct {
	at    int64           // the finding's Time, unix nanoseconds
	id    event.FindingID // the finding's ID; 0: cannot be withdrawn
	until uint32          // toSec: forget after
	first uint32          // toSec of the token's first use
	key   uint16          // the finding's entity: this key (table index), 0 the token
	fired uint8
	rule  uint8 // ruleIssuer or ruleLateness
	// refused: the finding rests only on presentations the inline check
	// refused (TagRefusedOnly); the entry is then one of shard.refusedFlags.
	refused bool
}

// Rules of a never-minted verdict (flagEntry.rule).
const (
	ruleIssuer uint8 = iota + 1
	ruleLateness
)

type shard struct {
	opts      Options
	unjudged  int // uses not judged: their token may predate what haechi saw
	mints     mintIndex
	pending   map[uint64]*pendingUse
	queue     useHeap // by due (the lateness rule)
	deadlines useHeap // by deadline (the issuer rule)
	flagged   map[uint64]flagEntry
	flagPeak  int
	keyIdx    map[string]uint16
	keys      []keyInfo
	inventory bool // some keys.inventory event was seen
	lastSweep time.Time

	// Refused presentations (see "Refused presentations"): the pending
	// uses whose every presentation was refused, in all and by the key id
	// they name, and the hashes of the tokens reported never minted on
	// refused presentations only, oldest first (the finding's time tells
	// a remembered entry from a later one of the same token).
	refusedPending int
	refusedBy      map[string]int
	refusedFlags   []flagRef
	// mismatched: tokens already reported for a user_mismatch refusal →
	// toSec of when to forget them (first report + MaxLifetime); nil
	// until the first.
	mismatched map[uint64]uint32
}

// flagRef names a flagged entry: its token's hash and its finding's time.
type flagRef struct {
	h  uint64
	at int64
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	switch ev.Dataset {
	case event.DatasetKeys:
		s.inventoryEvent(c, ev)
	case event.DatasetToken:
		s.mint(c, key, ev)
	case event.DatasetGateway:
		s.use(c, key, ev)
	}
}

// Advance implements engine.Advancer: pending uses whose mint did not come
// in time fire — first those the issuer's stream has passed, then those
// the watermark has — and expired state is swept.
func (s *shard) Advance(c *engine.Context, wm time.Time) {
	issuer := c.StreamTime(event.DatasetToken)
	for p := s.deadlines.first(); p != nil && p.deadline.Before(issuer); p = s.deadlines.first() {
		s.judge(c, p, true)
	}
	for p := s.queue.first(); p != nil && p.due.Before(wm); p = s.queue.first() {
		s.judge(c, p, false)
	}
	if wm.Equal(engine.EndOfTime) || wm.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = wm
	s.mints.sweep(toSec(wm.Add(-s.opts.ClockSkew)))
	now := toSec(wm)
	for h, f := range s.flagged {
		if f.until < now {
			delete(s.flagged, h)
		}
	}
	s.flagged = shrink(s.flagged, &s.flagPeak)
	for h, until := range s.mismatched {
		if until < now {
			delete(s.mismatched, h)
		}
	}
}

// judge drops the pending use p and reports it never minted, by the issuer
// rule or the lateness rule, unless it may predate what haechi watched.
func (s *shard) judge(c *engine.Context, p *pendingUse, byIssuer bool) {
	s.drop(p)
	if s.mintedBeforeWatching(c, p) {
		s.unjudged++
		return
	}
	f := s.neverMinted(p, byIssuer)
	c.Emit(f)
	fl := flagEntry{at: f.Time.UnixNano(), id: f.ID(), until: toSec(p.first.Add(s.opts.MaxLifetime)),
		first: toSec(p.first), fired: p.fired, rule: ruleLateness}
	if byIssuer {
		fl.rule = ruleIssuer
	}
	if f.Entity.Kind == event.EntitySigningKey {
		// The key table is full (32,767 keys): the finding names a key
		// the entry cannot, so it cannot be withdrawn.
		if fl.key = s.intern(p.keyID); fl.key == 0 {
			fl.id = 0
		}
	}
	s.flag(p.h, fl, p.refused)
}

// flag remembers that the token hashed h was reported never minted (fl);
// refused: on presentations the inline check refused only. Those entries
// are the newest MaxRefused of their kind: a spray of random refused
// tokens cannot make the shard remember each for MaxLifetime.
func (s *shard) flag(h uint64, fl flagEntry, refused bool) {
	fl.refused = refused
	s.flagged[h] = fl
	if refused {
		if len(s.refusedFlags) >= s.opts.MaxRefused {
			old := s.refusedFlags[0]
			s.refusedFlags = s.refusedFlags[1:]
			if f, ok := s.flagged[old.h]; ok && f.refused && f.at == old.at {
				delete(s.flagged, old.h)
			}
		}
		// Re-sliced from the front: append moves the live part to a
		// new array when the old one's tail is used up, so the array
		// holds about twice MaxRefused entries at most.
		s.refusedFlags = append(s.refusedFlags, flagRef{h: h, at: fl.at})
	}
	if len(s.flagged) > s.flagPeak {
		s.flagPeak = len(s.flagged)
	}
}

// drop forgets the pending use p.
func (s *shard) drop(p *pendingUse) {
	heap.Remove(&s.queue, p.pos[byDue])
	heap.Remove(&s.deadlines, p.pos[byDeadline])
	delete(s.pending, p.h)
	if p.refused {
		s.unrefuse(p)
	}
}

// unrefuse stops counting the pending use p as refused only (it is dropped,
// or a presentation of it was served).
func (s *shard) unrefuse(p *pendingUse) {
	s.refusedPending--
	if n := s.refusedBy[p.keyID] - 1; n > 0 {
		s.refusedBy[p.keyID] = n
	} else {
		delete(s.refusedBy, p.keyID)
	}
}

// admitRefused reports whether a refused presentation of a token the shard
// knows nothing of, naming key kid, gets a pending use: while fewer than
// MaxRefused refused-only uses are pending — beyond half of that, only
// while fewer than a sixteenth of them name kid (a spray naming one key
// cannot crowd out the others) — and always for the first naming a key
// the inventory lists (random key ids cannot crowd out a real key's
// forger). Otherwise it is not judged: it was refused, so it exposed
// nothing, and the store and the audit log still hold it.
func (s *shard) admitRefused(kid string) bool {
	n, limit := s.refusedBy[kid], s.opts.MaxRefused
	if s.refusedPending < limit && (s.refusedPending < limit/2 || n < max(limit/16, 1)) {
		return true
	}
	if n != 0 {
		return false
	}
	k := s.lookup(kid, 0)
	return k != nil && k.listed
}

func (s *shard) inventoryEvent(c *engine.Context, ev *event.Event) {
	s.inventory = true
	i := s.intern(ev.Key.ID)
	if i == 0 {
		return
	}
	k := &s.keys[i]
	k.listed = true
	if k.created.IsZero() || ev.Time.Before(k.created) {
		k.created = ev.Time
	}
	if ev.Key.Status != "" {
		k.status = ev.Key.Status
	}
	at := ev.Key.RetiredAt
	if at.IsZero() && (ev.Action == event.ActionKeyRetired || strings.EqualFold(ev.Key.Status, "retired")) {
		at = ev.Time
	}
	if !at.IsZero() && (k.retiredAt.IsZero() || at.Before(k.retiredAt)) {
		k.retiredAt = at
		k.retiredRef = c.Ref(ev)
	}
}

// intern returns the key table index of id, adding it; 0 for "" or when
// the table is full.
func (s *shard) intern(id string) uint16 {
	if id == "" {
		return 0
	}
	if i, ok := s.keyIdx[id]; ok {
		return i
	}
	if len(s.keys) > keyMask {
		return 0
	}
	id = strings.Clone(id)
	i := uint16(len(s.keys))
	s.keys = append(s.keys, keyInfo{id: id})
	s.keyIdx[id] = i
	return i
}

// lookup returns the key table entry for id (hint: a likely index), or nil.
func (s *shard) lookup(id string, hint uint16) *keyInfo {
	if id == "" {
		return nil
	}
	if hint != 0 && s.keys[hint].id == id {
		return &s.keys[hint]
	}
	if i, ok := s.keyIdx[id]; ok {
		return &s.keys[i]
	}
	return nil
}

func (s *shard) mint(c *engine.Context, key event.EntityKey, ev *event.Event) {
	h := hashID(key.ID)
	issued := ev.Token.IssuedAt
	if issued.IsZero() {
		issued = ev.Time
	}
	exp := ev.Token.ExpiresAt
	if exp.IsZero() {
		exp = issued.Add(s.opts.MaxLifetime)
	}
	base := issued
	if ev.Time.Before(base) {
		base = ev.Time
	}
	if limit := base.Add(s.opts.MaxLifetime); exp.After(limit) {
		exp = limit
	}

	e, minted := s.mints.get(h)
	fired := e.fired()
	l := e.loc()
	p := s.pending[h]
	if p != nil && p.mismatch != nil {
		// Refused as user_mismatch before its mint reached the detector.
		s.userMismatch(c, key, *p.mismatch, h, s.intern(ev.Token.KeyID))
		p.mismatch = nil
	}
	if p != nil {
		if ev.Time.After(p.deadline) && ev.Time.After(p.first) {
			// Minted after the issuer rule's verdict time: the token was
			// used before it was minted, by more than MintSkew. This mint
			// is on the issuer's stream, which has therefore passed the
			// deadline: judge the use as Advance would have had the batch
			// ended before this event (the mint then withdraws nothing),
			// so the verdict does not depend on whether the mint and the
			// events that carried the stream past the deadline share a
			// batch.
			s.judge(c, p, true)
		} else {
			fired |= p.fired
			if l.empty() {
				l = p.loc
			}
			s.drop(p)
		}
	}
	if f, ok := s.flagged[h]; ok {
		fired |= f.fired
		delete(s.flagged, h)
		if f.id != 0 && ev.Time.UnixNano() <= f.at {
			c.Emit(s.withdrawal(c, key, ev, f))
		}
	}

	if fired&fFuture == 0 && !ev.Token.IssuedAt.IsZero() && ev.Token.IssuedAt.After(ev.Time.Add(s.opts.ClockSkew)) {
		fired |= fFuture
		c.Emit(s.finding(KindIssuedInFuture, "Token issued in the future", ScoreIssuedInFuture, false, key, ev.Time,
			fmt.Sprintf("Token %s%s was minted for %s at %s claiming issued_at %s, %s in the future (clock skew tolerance %s): its claims did not come from a clock-synchronised issuer.",
				key.ID, signedBy(ev.Token.KeyID), orUnnamed(ev.User.ID), stamp(ev.Time), stamp(ev.Token.IssuedAt),
				human(ev.Token.IssuedAt.Sub(ev.Time)), human(s.opts.ClockSkew)),
			c.Ref(ev)))
	}
	if fired&fLifetime == 0 && !ev.Token.ExpiresAt.IsZero() && ev.Token.ExpiresAt.Sub(issued) > s.opts.MaxLifetime {
		fired |= fLifetime
		c.Emit(s.finding(KindLifetime, "Token lifetime exceeds policy", ScoreLifetime, false, key, ev.Time,
			fmt.Sprintf("Token %s%s was minted for %s at %s with a lifetime of %s (issued %s, expires %s), beyond the %s policy maximum.",
				key.ID, signedBy(ev.Token.KeyID), orUnnamed(ev.User.ID), stamp(ev.Time), human(ev.Token.ExpiresAt.Sub(issued)),
				stamp(issued), stamp(ev.Token.ExpiresAt), policy(s.opts.MaxLifetime)),
			c.Ref(ev)))
	}

	ne := mintEntry{exp: toSec(exp), key: s.intern(ev.Token.KeyID)}
	if ne.key != 0 {
		// Minted after its key's retirement: remembered, so that its uses
		// are not taken for those of a token issued before it.
		k := &s.keys[ne.key]
		// The issuer's issued_at, not the mint event's time, which may
		// trail it by the issuer's logging delay.
		if !k.retiredAt.IsZero() && issued.After(k.retiredAt.Add(s.opts.ClockSkew)) {
			ne.key |= keyAfterRetired
			if p != nil && fired&fRetired == 0 && (p.keyID == "" || p.keyID == k.id) && p.first.After(k.retiredAt) {
				// Used before this mint arrived: the use could not tell.
				fired |= fRetired
				c.Emit(s.retiredFinding(key.ID, k, p.principal, p.ip, later(p.first, ev.Time), p.first,
					fmt.Sprintf("its mint (event %s) says it was issued at %s, after the retirement", c.Ref(ev), stamp(issued)),
					p.ref, c.Ref(ev), k.retiredRef))
			}
		}
	}
	if minted {
		// Minted again under the same id: remember the later expiry.
		ne.exp = max(ne.exp, e.exp)
		switch ne.keyIndex() {
		case 0:
			ne.key = e.key
		case e.keyIndex():
			ne.key |= e.key & keyAfterRetired
		}
	}
	ne.setLoc(l)
	ne.setFired(fired)
	s.mints.put(h, ne)
}

func (s *shard) use(c *engine.Context, key event.EntityKey, ev *event.Event) {
	h := hashID(key.ID)
	mismatch := ev.Action == tokenuse.ActionUserMismatch && tokenuse.Refused(ev)
	if e, ok := s.mints.get(h); ok {
		if mismatch {
			s.userMismatch(c, key, refusal(c, ev), h, e.keyIndex())
		}
		s.useMinted(c, key, ev, h, e)
		return
	}
	refused := tokenuse.Refused(ev)
	if p := s.pending[h]; p != nil {
		if mismatch && p.mismatch == nil {
			u := refusal(c, ev)
			p.mismatch = &u
		}
		p.count++
		p.last = ev.Time
		if p.refused && !refused {
			p.refused = false
			s.unrefuse(p)
		}
		p.fired = s.checkUse(c, key, ev, s.lookup(ev.Token.KeyID, 0), p.fired, nil)
		p.loc, p.fired = s.checkLocation(c, key, ev, p.loc, p.fired)
		return
	}
	if f, ok := s.flagged[h]; ok {
		fired := s.checkUse(c, key, ev, s.lookup(ev.Token.KeyID, 0), f.fired, nil)
		if f.refused && !refused {
			// Reported on refused presentations only, and now served
			// (fail-open, a gateway without the check): the forgery got
			// through, which the tagged finding did not say.
			fl := s.servedAfterRefusal(c, key, ev, f)
			fl.fired = fired
			s.flag(h, fl, false)
			return
		}
		if fired != f.fired {
			f.fired = fired
			s.flagged[h] = f
		}
		return
	}
	if refused && !s.admitRefused(ev.Token.KeyID) {
		return
	}
	p := &pendingUse{
		h:         h,
		tokenID:   strings.Clone(key.ID),
		keyID:     strings.Clone(ev.Token.KeyID),
		principal: strings.Clone(ev.User.ID),
		ip:        ev.Source.IP,
		issuedAt:  ev.Token.IssuedAt,
		first:     ev.Time,
		last:      ev.Time,
		due:       ev.Time.Add(s.opts.Lateness),
		deadline:  mintDeadline(ev.Time, ev.Token.IssuedAt).Add(s.opts.MintSkew),
		count:     1,
		ref:       c.Ref(ev),
		refused:   refused,
	}
	if refused {
		s.refusedPending++
		s.refusedBy[p.keyID]++
	}
	if mismatch {
		u := refusal(c, ev)
		p.mismatch = &u
	}
	p.fired = s.checkUse(c, key, ev, s.lookup(ev.Token.KeyID, 0), 0, nil)
	p.loc, p.fired = s.checkLocation(c, key, ev, p.loc, p.fired)
	s.pending[h] = p
	heap.Push(&s.queue, p)
	heap.Push(&s.deadlines, p)
}

// refusedUse is what a finding needs of a refused request.
type refusedUse struct {
	keyID, user, ref string
	ip               netip.Addr
	at               time.Time
}

func refusal(c *engine.Context, ev *event.Event) refusedUse {
	return refusedUse{keyID: strings.Clone(ev.Token.KeyID), user: strings.Clone(ev.User.ID), ref: c.Ref(ev), ip: ev.Source.IP, at: ev.Time}
}

// userMismatch reports u, a request the inline check refused because the
// token's id (minted, key index mk) was minted for another user, as a
// token never minted — once per token id.
func (s *shard) userMismatch(c *engine.Context, key event.EntityKey, u refusedUse, h uint64, mk uint16) {
	if _, done := s.mismatched[h]; done {
		return
	}
	if s.mismatched == nil {
		s.mismatched = map[uint64]uint32{}
	}
	s.mismatched[h] = toSec(u.at.Add(s.opts.MaxLifetime))
	kid := u.keyID
	if kid == "" && mk != 0 {
		kid = s.keys[mk&keyMask].id
	}
	entity := key
	if kid != "" {
		entity = event.EntityKey{Kind: event.EntitySigningKey, ID: kid}
	}
	c.Emit(refusedOnly(true, withSource(u.ip, s.finding(KindNeverMinted, "Token presented for another user than it was minted for", ScoreNeverMinted, true, entity, u.at,
		fmt.Sprintf("Token %s%s was presented, and refused at the gateway by the inline check, %s at %s for a user it was not minted for: its id is genuine, but no token of this id was ever minted for this user. Whoever made it reused a genuine token id with another user's identity — with the signing key, a forgery the signature check accepts.",
			key.ID, signedBy(kid), byFrom(u.user, u.ip), stamp(u.at)),
		u.ref))))
}

// mintDeadline is when a genuine token first used at first, claiming
// issuedAt (zero: no claim), was minted at the latest: not after its first
// use, nor after the issue time it claims.
func mintDeadline(first, issuedAt time.Time) time.Time {
	if !issuedAt.IsZero() && issuedAt.Before(first) {
		return issuedAt
	}
	return first
}

func (s *shard) useMinted(c *engine.Context, key event.EntityKey, ev *event.Event, h uint64, e mintEntry) {
	fired0, loc0 := e.fired(), e.loc()
	var k *keyInfo
	if ev.Token.KeyID != "" {
		k = s.lookup(ev.Token.KeyID, e.keyIndex())
	} else if e.keyIndex() != 0 {
		k = &s.keys[e.keyIndex()]
	}
	fired := s.checkUse(c, key, ev, k, fired0, &e)
	if fired&fExpired == 0 && toSec(ev.Time) > e.exp+uint32(s.opts.ClockSkew/time.Second) {
		fired |= fExpired
		kid := ev.Token.KeyID
		if kid == "" {
			kid = s.keys[e.keyIndex()].id
		}
		c.Emit(s.finding(KindUsedAfterExpiry, "Token used after expiry", ScoreUsedAfterExpiry, false, key, ev.Time,
			fmt.Sprintf("Token %s%s expired at %s but was used %s at %s, %s later: an expired token must be refused, so it was replayed past its life or the gateway does not check expiry.",
				key.ID, signedBy(kid), stamp(e.expires()), byFrom(ev.User.ID, ev.Source.IP), stamp(ev.Time), human(ev.Time.Sub(e.expires()))),
			c.Ref(ev)))
	}
	l, fired := s.checkLocation(c, key, ev, loc0, fired)
	if fired != fired0 || l != loc0 {
		e.setFired(fired)
		e.setLoc(l)
		s.mints.put(h, e)
	}
}

// checkUse applies the checks that need only the use, its key and its mint:
// retired key, unknown key, issue time in the future, claimed lifetime. k is
// the token's key (nil when the use names none the shard knows), m its mint
// (nil when not minted, or not yet).
func (s *shard) checkUse(c *engine.Context, key event.EntityKey, ev *event.Event, k *keyInfo, fired uint8, m *mintEntry) uint8 {
	kid := ev.Token.KeyID
	if k != nil {
		kid = k.id
	}
	switch {
	case kid != "" && s.inventory && (k == nil || !k.listed):
		if fired&fUnknown == 0 {
			fired |= fUnknown
			c.Emit(refusedOnly(tokenuse.Refused(ev), withSource(ev.Source.IP, s.finding(KindUnknownKey, "Token signed by a key outside the inventory", ScoreUnknownKey, true,
				event.EntityKey{Kind: event.EntitySigningKey, ID: kid}, ev.Time,
				fmt.Sprintf("Token %s is signed by key %s, which the key inventory does not list, and was used %s at %s: a signing key nobody manages cannot vouch for a customer session.",
					key.ID, kid, byFrom(ev.User.ID, ev.Source.IP), stamp(ev.Time)),
				c.Ref(ev)))))
		}
	case k != nil && fired&fRetired == 0:
		if why := s.retiredUse(k, ev, m); why != "" {
			fired |= fRetired
			c.Emit(refusedOnly(tokenuse.Refused(ev), s.retiredFinding(key.ID, k, ev.User.ID, ev.Source.IP, ev.Time, ev.Time, why, c.Ref(ev), k.retiredRef)))
		}
	}
	iat, exp := ev.Token.IssuedAt, ev.Token.ExpiresAt
	if fired&fFuture == 0 && !iat.IsZero() && iat.After(ev.Time.Add(s.opts.ClockSkew)) {
		fired |= fFuture
		c.Emit(s.finding(KindIssuedInFuture, "Token issued in the future", ScoreIssuedInFuture, false, key, ev.Time,
			fmt.Sprintf("Token %s%s claims it was issued at %s, %s after it was used %s at %s (clock skew tolerance %s): its claims did not come from a clock-synchronised issuer.",
				key.ID, signedBy(kid), stamp(iat), human(iat.Sub(ev.Time)), byFrom(ev.User.ID, ev.Source.IP), stamp(ev.Time), human(s.opts.ClockSkew)),
			c.Ref(ev)))
	}
	if fired&fLifetime == 0 && !iat.IsZero() && !exp.IsZero() && exp.Sub(iat) > s.opts.MaxLifetime {
		fired |= fLifetime
		c.Emit(s.finding(KindLifetime, "Token lifetime exceeds policy", ScoreLifetime, false, key, ev.Time,
			fmt.Sprintf("Token %s%s used %s at %s claims a lifetime of %s (issued %s, expires %s), beyond the %s policy maximum.",
				key.ID, signedBy(kid), byFrom(ev.User.ID, ev.Source.IP), stamp(ev.Time), human(exp.Sub(iat)), stamp(iat), stamp(exp), policy(s.opts.MaxLifetime)),
			c.Ref(ev)))
	}
	return fired
}

// retiredUse says why the use ev of a token signed by k is not vouched for
// by k, or "" when it is. A retired key vouches for the tokens it issued
// before its retirement until they expire, so a use after the retirement
// is judged by the token's issue time and expiry:
//   - issued after the retirement (beyond ClockSkew): its mint m says so
//     (the mint's token.issued_at, else its time; known only when the
//     retirement was known at the mint), or the use claims so
//     (token.issued_at);
//   - used after its expiry (+ ClockSkew): the mint's remembered expiry;
//     without a mint, the claimed token.expires_at, never later than
//     MaxLifetime after the claimed issue time — or, without that claim,
//     after the retirement, since no token issued before it lives longer.
//
// A token not minted and claiming an issue time before the retirement is
// the never-minted check's business.
func (s *shard) retiredUse(k *keyInfo, ev *event.Event, m *mintEntry) string {
	if k.retiredAt.IsZero() || !ev.Time.After(k.retiredAt) {
		return ""
	}
	iat := ev.Token.IssuedAt
	switch {
	case m != nil && m.afterRetirement() && m.keyIndex() != 0 && s.keys[m.keyIndex()].id == k.id:
		return "it was minted after the retirement"
	case iat.After(k.retiredAt.Add(s.opts.ClockSkew)):
		return "it claims it was issued at " + stamp(iat) + ", after the retirement"
	}
	var exp time.Time
	unclaimed := false
	if m != nil {
		exp = m.expires()
	} else {
		base := iat
		if base.IsZero() {
			base, unclaimed = k.retiredAt, true
		}
		exp = base.Add(s.opts.MaxLifetime)
		if claim := ev.Token.ExpiresAt; !claim.IsZero() && claim.Before(exp) {
			exp, unclaimed = claim, false
		}
	}
	switch {
	case !ev.Time.After(exp.Add(s.opts.ClockSkew)):
		return ""
	case unclaimed:
		return "it claims no issue time, while any token the key issued before its retirement expired by " +
			stamp(exp) + " (the " + policy(s.opts.MaxLifetime) + " policy maximum lifetime)"
	}
	return "it expired at " + stamp(exp)
}

// retiredFinding is token_key_retired about key k: token tokenID was used by
// principal from ip at used, after k's retirement, and why (retiredUse) k
// does not vouch for it; at is the finding's time.
func (s *shard) retiredFinding(tokenID string, k *keyInfo, principal string, ip netip.Addr, at, used time.Time, why string, evidence ...string) event.Finding {
	return withSource(ip, s.finding(KindKeyRetired, "Token signed by a retired key", ScoreKeyRetired, true,
		event.EntityKey{Kind: event.EntitySigningKey, ID: k.id}, at,
		fmt.Sprintf("Token %s, signed by key %s, was used %s at %s, %s after the key was retired at %s, and %s: a retired key vouches only for the tokens it issued before its retirement, until they expire.",
			tokenID, k.id, byFrom(principal, ip), stamp(used), human(used.Sub(k.retiredAt)), stamp(k.retiredAt), why),
		evidence...))
}

// checkLocation folds the use's location into l and fires
// token_multi_location when it differs from the first one.
func (s *shard) checkLocation(c *engine.Context, key event.EntityKey, ev *event.Event, l loc, fired uint8) (loc, uint8) {
	cc := packCountry(ev.Source.Country)
	l2, moved := l.observe(cc, ev.Source.ASN, toSec(ev.Time))
	if !moved || fired&fMulti != 0 {
		return l2, fired
	}
	fired |= fMulti
	first := fromSec(l.at)
	score := float64(ScoreMultiNetwork)
	if l.cc != 0 && cc != 0 && l.cc != cc {
		score = ScoreMultiLocation
	}
	c.Emit(withSource(ev.Source.IP, s.finding(KindMultiLocation, "Token used from several locations", score, false, key, ev.Time,
		fmt.Sprintf("Token %s was used from %s at %s and again %s (%s) at %s, %s later: one token in two places suggests it was stolen and replayed.",
			key.ID, place(l.cc, l.asn), stamp(first), byFrom(ev.User.ID, ev.Source.IP), place(cc, ev.Source.ASN), stamp(ev.Time), human(ev.Time.Sub(first))),
		c.Ref(ev))))
	return l2, fired
}

// mintedBeforeWatching reports whether the token may have been minted
// before haechi saw any event — then its mint cannot be known and the use
// is not judged. That is the case when it claims an issue time before the
// earliest event seen, or, without a claim, when it was used within
// MaxLifetime of that earliest event (a token minted just before start
// can live that long). After MaxLifetime of watching, every genuine token
// in use was minted while haechi watched.
func (s *shard) mintedBeforeWatching(c *engine.Context, p *pendingUse) bool {
	start := c.Earliest()
	if start.IsZero() {
		return false
	}
	if !p.issuedAt.IsZero() {
		return p.issuedAt.Before(start)
	}
	return p.first.Before(start.Add(s.opts.MaxLifetime))
}

func (s *shard) neverMinted(p *pendingUse, byIssuer bool) event.Finding {
	entity := event.EntityKey{Kind: event.EntityToken, ID: p.tokenID}
	if p.keyID != "" {
		entity = event.EntityKey{Kind: event.EntitySigningKey, ID: p.keyID}
	}
	uses := ""
	if p.count > 1 {
		uses = fmt.Sprintf(" (%d uses up to %s)", p.count, stamp(p.last))
	}
	used := "used"
	if p.refused {
		used = "presented, and refused at the gateway by the inline check,"
	}
	// The finding's time is the moment it became certain — when a genuine
	// mint could no longer come — not the use itself: time to detect must
	// count the wait.
	if byIssuer {
		at := p.deadline
		if at.Before(p.first) {
			at = p.first
		}
		f := withSource(p.ip, s.finding(KindNeverMinted, "Token used but never minted", ScoreNeverMinted, true, entity, at,
			fmt.Sprintf("Token %s%s was %s %s at %s%s, but the token issuer's stream passed %s (%s after %s) with no mint of it: it is forged or minted outside the issuer.",
				p.tokenID, signedBy(p.keyID), used, byFrom(p.principal, p.ip), stamp(p.first), uses,
				stamp(p.deadline), human(s.opts.MintSkew), deadlineBasis(p)),
			p.ref))
		f.Figures = []event.Figure{{Name: "mint_skew_seconds", Value: s.opts.MintSkew.Seconds()}}
		return refusedOnly(p.refused, f)
	}
	f := withSource(p.ip, s.finding(KindNeverMinted, "Token used but never minted", ScoreNeverMinted, true, entity, p.first.Add(s.opts.Lateness),
		fmt.Sprintf("Token %s%s was %s %s at %s%s but no mint of it arrived within the %s allowed lateness (the token issuer's stream was behind or silent): it is forged or minted outside the issuer.",
			p.tokenID, signedBy(p.keyID), used, byFrom(p.principal, p.ip), stamp(p.first), uses, human(s.opts.Lateness)),
		p.ref))
	f.Figures = []event.Figure{{Name: "lateness_seconds", Value: s.opts.Lateness.Seconds()}}
	return refusedOnly(p.refused, f)
}

// withdrawal withdraws the never-minted finding f remembers: the token's
// mint ev arrived after the verdict although it was made before the
// verdict's time, so had it arrived in order there would have been no
// finding. How late it was is measured from the mint's time to the
// verdict's (it arrived after the verdict, so at least that much behind the
// stream that decided) — a figure every mode agrees on, unlike the wall
// clock or the watermark at arrival.
func (s *shard) withdrawal(c *engine.Context, key event.EntityKey, ev *event.Event, f flagEntry) event.Finding {
	entity := key
	kid := ""
	if f.key != 0 {
		kid = s.keys[f.key].id
		entity = event.EntityKey{Kind: event.EntitySigningKey, ID: kid}
	}
	at := time.Unix(0, f.at).UTC()
	rule := "the lateness rule: no mint within the allowed lateness"
	if f.rule == ruleIssuer {
		rule = "the issuer rule: the token issuer's stream had passed its mint deadline"
	}
	late := at.Sub(ev.Time)
	w := s.finding(KindNeverMintedWithdrawn, "Never-minted verdict withdrawn", 0, false, entity, at,
		fmt.Sprintf("Token %s%s, first used at %s, was reported never minted at %s (%s), but its mint (event %s, for %s at %s) arrived after that verdict, at least %s late: the token is genuine and the finding is withdrawn.",
			key.ID, signedBy(kid), stamp(fromSec(f.first)), stamp(at), rule, c.Ref(ev), orUnnamed(ev.User.ID), stamp(ev.Time), human(late)),
		c.Ref(ev))
	w.Withdraws = f.id
	w.Figures = []event.Figure{{Name: "mint_lateness_seconds", Value: late.Seconds()}}
	return w
}

// servedAfterRefusal reports again, untagged, a token already reported
// never minted on refused presentations only (f), now that a presentation
// of it, ev, was served: token_never_minted at ev's time, about the same
// entity. It returns the flagged entry to keep, naming this finding (the
// one a late mint withdraws).
func (s *shard) servedAfterRefusal(c *engine.Context, key event.EntityKey, ev *event.Event, f flagEntry) flagEntry {
	entity, kid := key, ""
	switch {
	case f.key != 0:
		kid = s.keys[f.key].id
		entity = event.EntityKey{Kind: event.EntitySigningKey, ID: kid}
	case f.id == 0 && ev.Token.KeyID != "":
		// About a key the full key table could not name (judge): this
		// finding cannot be withdrawn either.
		kid = ev.Token.KeyID
		entity = event.EntityKey{Kind: event.EntitySigningKey, ID: kid}
	}
	fd := withSource(ev.Source.IP, s.finding(KindNeverMinted, "Token used but never minted", ScoreNeverMinted, true, entity, ev.Time,
		fmt.Sprintf("Token %s%s, refused by the inline check and reported never minted at %s, was served %s at %s: the forgery got through a gateway that did not refuse it.",
			key.ID, signedBy(kid), stamp(time.Unix(0, f.at).UTC()), byFrom(ev.User.ID, ev.Source.IP), stamp(ev.Time)),
		c.Ref(ev)))
	c.Emit(fd)
	if f.key != 0 || f.id != 0 {
		f.id = fd.ID()
	}
	f.at = fd.Time.UnixNano()
	return f
}

// deadlineBasis names what p's mint deadline counts from.
func deadlineBasis(p *pendingUse) string {
	if !p.issuedAt.IsZero() && p.issuedAt.Before(p.first) {
		return "the issue time it claims"
	}
	return "its first use"
}

func (s *shard) finding(kind, title string, score float64, immediate bool, entity event.EntityKey, t time.Time, expl string, evidence ...string) event.Finding {
	return event.Finding{
		Detector:    Name,
		Kind:        kind,
		Title:       title,
		Entity:      entity,
		Time:        t,
		Score:       score,
		Severity:    event.SeverityForScore(score),
		Explanation: expl,
		Evidence:    evidence,
		Immediate:   immediate,
	}
}

// refusedOnly tags f TagRefusedOnly when refused (its evidence is only
// requests the inline check refused).
func refusedOnly(refused bool, f event.Finding) event.Finding {
	if refused {
		f.Tags = append(f.Tags, TagRefusedOnly)
	}
	return f
}

// withSource names the source address of the use in f.Related (when the
// finding is not already about it), so a playbook can block it along with
// revoking the key.
func withSource(ip netip.Addr, f event.Finding) event.Finding {
	if ip.IsValid() && f.Entity.Kind != event.EntitySource {
		f.Related = []event.EntityKey{{Kind: event.EntitySource, ID: ip.String()}}
	}
	return f
}

func signedBy(kid string) string {
	if kid == "" {
		return ""
	}
	return " (signed by key " + kid + ")"
}

func orUnnamed(principal string) string {
	if principal == "" {
		return "an unnamed principal"
	}
	return principal
}

// byFrom renders "by m:1 from 1.2.3.4".
func byFrom(principal string, ip netip.Addr) string {
	s := "by " + orUnnamed(principal)
	if ip.IsValid() {
		s += " from " + ip.String()
	}
	return s
}

// place renders a location: "KR, AS4766".
func place(cc uint16, asn uint32) string {
	var parts []string
	if c := unpackCountry(cc); c != "" {
		parts = append(parts, c)
	}
	if asn != 0 {
		parts = append(parts, fmt.Sprintf("AS%d", asn))
	}
	return strings.Join(parts, ", ")
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// human renders a positive duration coarsely, dropping zero parts: "3d 4h",
// "2h", "5m 30s", "40s".
func human(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	units := []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units[:3] {
		if d >= u.d {
			big, small := d/u.d, (d%u.d)/units[i+1].d
			if small == 0 {
				return fmt.Sprintf("%d%s", big, u.name)
			}
			return fmt.Sprintf("%d%s %d%s", big, u.name, small, units[i+1].name)
		}
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// policy renders a configured duration the way it is usually written:
// "24h", "90m", "1h30m".
func policy(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// useHeap is a min-heap of pending uses by one of their two times (the
// lateness rule's due time, or the issuer rule's deadline), ties broken by
// token id so findings come in a deterministic order. Each use records its
// position in both heaps (pendingUse.pos), for heap.Remove.
type useHeap struct {
	uses []*pendingUse
	by   int // byDue or byDeadline
}

const (
	byDue = iota
	byDeadline
)

func (u *pendingUse) at(by int) time.Time {
	if by == byDeadline {
		return u.deadline
	}
	return u.due
}

func (q *useHeap) Len() int { return len(q.uses) }
func (q *useHeap) Less(i, j int) bool {
	a, b := q.uses[i], q.uses[j]
	if ta, tb := a.at(q.by), b.at(q.by); !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.tokenID < b.tokenID
}
func (q *useHeap) Swap(i, j int) {
	q.uses[i], q.uses[j] = q.uses[j], q.uses[i]
	q.uses[i].pos[q.by], q.uses[j].pos[q.by] = i, j
}
func (q *useHeap) Push(x any) {
	p := x.(*pendingUse)
	p.pos[q.by] = len(q.uses)
	q.uses = append(q.uses, p)
}
func (q *useHeap) Pop() any {
	n := len(q.uses) - 1
	p := q.uses[n]
	q.uses[n] = nil
	q.uses = q.uses[:n]
	return p
}

// first is the heap's earliest use, or nil.
func (q *useHeap) first() *pendingUse {
	if len(q.uses) == 0 {
		return nil
	}
	return q.uses[0]
}
