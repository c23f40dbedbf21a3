// Package binding detects a live access token used where it was never
// bound: session or token hijack (MITRE ATT&CK T1550.001 "Use Alternate
// Authentication Material: Application Access Token", T1539 "Steal Web
// Session Cookie"). A token is minted for one client; that client reaches
// the service from one country, one kind of network and one user-agent
// family, and from one network at a time. A copy of the token replayed by
// someone else shows up from somewhere else.
//
// # Binding
//
// Mints (auth.token / token.issued) and accepted gateway uses that carry
// token.id key on the token, as token_provenance does, so a token's mint
// and every use meet on one shard. Each token's binding is the context of
// its mint and, for what the mint does not carry, of its first uses:
//
//   - country (source.geo.country_iso_code) of the first event that has one;
//   - network: AS number and AS organisation of the first event that has
//     either; its class — a hosting network when the organisation matches
//     principal_geo.hosting_markers (the same list and the same
//     case-insensitive substring rule principal_geo uses), else a
//     residential, mobile or office network; unknown without an
//     organisation;
//   - user-agent family (ParseFamily): kind of client and OS, no versions.
//
// A token minted without network context (a token service that logs no
// client address, or a mint haechi never saw) is bound at its first use
// that carries one: the binding then belongs to whoever used it first, and
// a token stolen before its first use is invisible here (token_provenance
// and principal_geo still see its uses).
//
// Two networks are the same when their AS numbers are equal, or their
// organisation names are (case-insensitively): a carrier announcing its
// IPv4 and IPv6 space from two AS numbers under one name is one network.
// Addresses are not part of the binding: a phone behind carrier-grade NAT
// changes address within one AS all day, and that is never a finding.
//
// # Findings (each at most once per token; immediate; about the token)
//
// Judged on uses while the token is live: a use after the token's expiry
// (+ ClockSkew) is token_provenance's token_used_after_expiry, not this
// detector's, and is ignored. Every finding names the use's source address
// in Related, so the response can revoke the token and block the source.
//
//   - token_binding_country (90): used from another country than its
//     binding's.
//   - token_binding_hosting (90): used from a hosting network when it was
//     bound to a network of known non-hosting class (residential, mobile,
//     office), and not the binding's own network.
//   - token_binding_concurrent (90): used from two networks at once. One
//     client sends its requests from one network at a time; moving
//     between networks (Wi-Fi to mobile data) is a handover that takes
//     seconds and that operating systems damp, so a single client changes
//     network a few times an hour at most, and a change reordered by log
//     shipping is still one change. A switch is a use whose latest earlier
//     use in event time, within SwitchWindow, was on a different network.
//     SwitchCount switches (default 4: A→B→A→B→A) in a run each within
//     SwitchWindow (default 60 s) of the run's first switch is more than
//     one client can do: the token is in use from two places, or walked
//     through a rotating proxy.
//   - token_binding_client (90): used by a program when it was bound to a
//     person's client. The binding's family is a browser, an in-app
//     WebView or a native app naming its platform (Family.Interactive),
//     and the use's user agent is an HTTP library or a headless browser
//     that is not the native HTTP stack of the binding's platform
//     (Automated: okhttp on Android, CFNetwork on Apple platforms,
//     WinHTTP on Windows, which an app's background requests may carry).
//     Client software does not change during one token's life: an app
//     update keeps its family, and a new device signs in and gets a token
//     of its own. A bearer token that a script presents was taken out of
//     the client it was issued to — by an infostealer, a phishing proxy,
//     or the user (a customer scripting their own account is reported
//     too). It needs neither a new country nor a new network, so it sees
//     a thief behind a domestic residential proxy. A self-declared
//     crawler is not counted (link previewers fetch shared links, tokens
//     in them included), and an attacker who copies the victim's user
//     agent is not seen by this rule.
//
// # State and memory
//
// Per shard, the 64-bit FNV-1a hash of the token id → a 52-byte entry
// (expiry, binding, the two most recent networks with their last use, the
// current switch run, the kinds fired); token ids are not kept. Under 128
// bytes per live token including map overhead (TestMemoryPerToken). An
// entry is kept until the token's expiry: token.expires_at of the mint
// (else of the first use that claims one), else issue time plus
// MaxLifetime, and never more than MaxLifetime after the token was first
// seen, so MaxLifetime bounds memory; expired entries are swept once per
// ten minutes of event time, once the watermark is past expiry +
// ClockSkew. A hash collision merges two tokens' bindings: with n live
// tokens on a shard its chance is about n²/2⁶⁵.
//
// The state is not checkpointed (like token_provenance's mint index, it
// lives at most MaxLifetime): after a restart serve rebuilds it by
// replaying its spool.
//
// # What it cannot see
//
// A thief in the victim's own country, on a residential network, with the
// victim's own user agent, using the token only while the victim is not; a token shared between two of
// the user's own devices (two networks at once); a customer who mints a
// token at home and carries it abroad within its lifetime (a country
// finding: signing in again after a revocation is the cost); a privacy
// relay or VPN whose egress is a hosting network switched on after
// sign-in (a hosting finding).
package binding

import (
	"fmt"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/tokenuse"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// Name is the detector's stable name.
const Name = "token_binding"

// Finding kinds.
const (
	KindCountry    = "token_binding_country"
	KindHosting    = "token_binding_hosting"
	KindConcurrent = "token_binding_concurrent"
	KindClient     = "token_binding_client"
)

// Score of every finding kind: definitive enough to alert on its own.
const Score = 90

// Defaults of Options.
const (
	DefaultMaxLifetime  = 24 * time.Hour
	DefaultSwitchWindow = time.Minute
	DefaultSwitchCount  = 4
)

// sweepEvery is how much event time passes between sweeps of expired
// entries.
const sweepEvery = 10 * time.Minute

// hostingCacheSize bounds the per-shard cache of hosting verdicts by
// organisation name.
const hostingCacheSize = 4096

// Tags of every finding.
var tags = []string{"attack.t1550.001", "attack.t1539"}

// Options configure the detector.
type Options struct {
	// HostingMarkers mark hosting networks by AS organisation name
	// (case-insensitive substrings; principal_geo.hosting_markers). Empty:
	// no hosting findings.
	HostingMarkers []string
	// MaxLifetime is the longest token lifetime policy allows
	// (token_provenance.max_lifetime) and how long a token is remembered
	// at most. 0 means DefaultMaxLifetime.
	MaxLifetime time.Duration
	// ClockSkew tolerated between issuer, gateway and events' clocks when
	// judging whether a token is still live. Negative means 0.
	ClockSkew time.Duration
	// SwitchWindow and SwitchCount define "two networks at once": that
	// many switches of network, each within SwitchWindow of the run's
	// first. 0 means the defaults; SwitchCount is at least 2.
	SwitchWindow time.Duration
	SwitchCount  int
}

// Detector is the token-binding detector; it holds only immutable
// configuration.
type Detector struct {
	opts    Options
	hosting []string
}

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector {
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = DefaultMaxLifetime
	}
	if opts.ClockSkew < 0 {
		opts.ClockSkew = 0
	}
	if opts.SwitchWindow <= 0 {
		opts.SwitchWindow = DefaultSwitchWindow
	}
	if opts.SwitchCount <= 0 {
		opts.SwitchCount = DefaultSwitchCount
	}
	opts.SwitchCount = min(max(opts.SwitchCount, 2), 255)
	d := &Detector{opts: opts}
	for _, m := range opts.HostingMarkers {
		if m = strings.ToLower(strings.TrimSpace(m)); m != "" {
			d.hosting = append(d.hosting, m)
		}
	}
	return d
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: successful mints and accepted gateway
// uses that carry token.id key on the token (tokenuse.Key). It does not
// allocate.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) { return tokenuse.Key(ev) }

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{d: d, tokens: map[uint64]entry{}, hostingVerdict: map[string]bool{}}
}

// network is an AS number and a hash of its organisation's name; zero
// fields are unknown.
type network struct {
	asn uint32
	org uint32
}

func (n network) known() bool { return n.asn != 0 || n.org != 0 }

// same reports whether a and b are known to be one network: equal AS
// numbers or equal organisation names.
func (a network) same(b network) bool {
	return (a.asn != 0 && a.asn == b.asn) || (a.org != 0 && a.org == b.org)
}

// differs reports whether a and b are known to be different networks:
// each side names something the other can be compared on, and nothing
// they share is equal.
func (a network) differs(b network) bool {
	if a.same(b) {
		return false
	}
	return (a.asn != 0 && b.asn != 0) || (a.org != 0 && b.org != 0)
}

// slot is a network a token was used from recently and its latest use.
type slot struct {
	net  network
	last uint32 // toSec; 0 empty
}

// Bits of entry.flags.
const (
	fClassKnown uint8 = 1 << iota // the binding network's class is known
	fHosting                      // the binding network is a hosting network
	fFromMint                     // the binding network came from the mint
	fCountry                      // token_binding_country fired
	fHostingUse                   // token_binding_hosting fired
	fConcurrent                   // token_binding_concurrent fired
	fClient                       // token_binding_client fired
)

// entry is what a shard keeps of one live token: 52 bytes.
type entry struct {
	exp   uint32  // toSec of expiry
	bAt   uint32  // toSec of the event that bound the network
	bind  network // the binding's network
	a, b  slot    // the two most recent networks
	runAt uint32  // toSec of the current switch run's first switch; 0 none
	bCC   uint16  // PackCountry of the binding's country
	bUA   uint16  // Family.code of the binding's user agent
	flags uint8
	run   uint8 // switches in the current run
}

type shard struct {
	d              *Detector
	tokens         map[uint64]entry
	peak           int
	hostingVerdict map[string]bool
	swept          time.Time
}

var _ engine.Advancer = (*shard)(nil)

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	h := hashID(key.ID)
	e, ok := s.tokens[h]
	now := toSec(ev.Time)
	mint := ev.Dataset == event.DatasetToken
	if !ok {
		e = entry{exp: s.expiry(ev)}
	} else if mint {
		// A mint arriving after uses (or a second mint of the id): its
		// expiry counts, the binding already made stays.
		e.exp = max(e.exp, s.expiry(ev))
	}
	if !mint && now > e.exp+uint32(s.d.opts.ClockSkew/time.Second) {
		// Not live: a token used after its expiry is token_provenance's
		// business (token_used_after_expiry), and such a use neither
		// judges nor moves the binding.
		return
	}
	net := s.networkOf(ev)
	cc := PackCountry(ev.Source.Country)

	// Judge the use against the binding made so far.
	if !mint && ok {
		s.judge(c, key, ev, &e, net, cc)
		s.judgeClient(c, key, ev, &e, cc)
	}

	// Fill the binding from what it lacks.
	if e.bCC == 0 && cc != 0 {
		e.bCC = cc
	}
	if e.bUA == 0 {
		e.bUA = ParseFamily(ev.UserAgent).code()
	}
	switch {
	case !e.bind.known() && net.known():
		e.bind, e.bAt = net, now
		if mint {
			e.flags |= fFromMint
		}
		s.classify(&e, ev)
	case e.bind.same(net):
		if e.bind.asn == 0 {
			e.bind.asn = net.asn
		}
		if e.bind.org == 0 {
			e.bind.org = net.org
		}
		if e.flags&fClassKnown == 0 {
			s.classify(&e, ev)
		}
	}

	// Networks at once.
	if net.known() {
		if s.observe(&e, net, now) && !mint && e.flags&fConcurrent == 0 {
			e.flags |= fConcurrent
			s.concurrent(c, key, ev, &e, net)
		}
	}
	s.tokens[h] = e
	if len(s.tokens) > s.peak {
		s.peak = len(s.tokens)
	}
}

// expiry is when a token first seen on ev stops being live: the expiry it
// claims, else its issue time (or ev's time) plus MaxLifetime, and never
// later than MaxLifetime after the earlier of its issue time and ev.
func (s *shard) expiry(ev *event.Event) uint32 {
	base := ev.Time
	if iat := ev.Token.IssuedAt; !iat.IsZero() && iat.Before(base) {
		base = iat
	}
	limit := base.Add(s.d.opts.MaxLifetime)
	exp := ev.Token.ExpiresAt
	if exp.IsZero() || exp.After(limit) {
		exp = limit
	}
	return toSec(exp)
}

// networkOf returns ev's network.
func (s *shard) networkOf(ev *event.Event) network {
	return network{asn: ev.Source.ASN, org: orgHash(ev.Source.ASOrg)}
}

// classify sets the binding's class from ev's organisation, when it has
// one.
func (s *shard) classify(e *entry, ev *event.Event) {
	if ev.Source.ASOrg == "" {
		return
	}
	e.flags |= fClassKnown
	if s.isHosting(ev.Source.ASOrg) {
		e.flags |= fHosting
	}
}

// judge fires the country and hosting findings for a use of a bound token.
func (s *shard) judge(c *engine.Context, key event.EntityKey, ev *event.Event, e *entry, net network, cc uint16) {
	if e.flags&fCountry == 0 && cc != 0 && e.bCC != 0 && cc != e.bCC {
		e.flags |= fCountry
		c.Emit(s.finding(c, KindCountry, "Token used outside the country it was bound to", key, ev, e,
			fmt.Sprintf("Token %s was bound to %s and used %s at %s from %s: a live token replayed from another country than the one it was issued and used in.",
				key.ID, s.bindingText(e), byFrom(ev), stamp(ev.Time), s.useText(ev, cc))))
	}
	if e.flags&fHostingUse == 0 && e.flags&(fClassKnown|fHosting) == fClassKnown &&
		ev.Source.ASOrg != "" && s.isHosting(ev.Source.ASOrg) && net.differs(e.bind) {
		e.flags |= fHostingUse
		c.Emit(s.finding(c, KindHosting, "Token bound to a consumer network used from a hosting network", key, ev, e,
			fmt.Sprintf("Token %s was bound to %s, a residential, mobile or office network, and used %s at %s from %s, a hosting network: the client it was issued to does not move into a data centre.",
				key.ID, s.bindingText(e), byFrom(ev), stamp(ev.Time), s.useText(ev, cc))))
	}
}

// judgeClient fires token_binding_client for a use of a token bound to a
// person's client by a program.
func (s *shard) judgeClient(c *engine.Context, key event.EntityKey, ev *event.Event, e *entry, cc uint16) {
	if e.flags&fClient != 0 || e.bUA == 0 {
		return
	}
	bound := familyOf(e.bUA)
	if !bound.Interactive() || !Automated(ev.UserAgent, bound.OS) {
		return
	}
	e.flags |= fClient
	c.Emit(s.finding(c, KindClient, "Token bound to a person's client used by a program", key, ev, e,
		fmt.Sprintf("Token %s was bound to %s, a person's client, and used %s at %s from %s, a program's client: a bearer token does not change client software during its life, so it was taken out of the client it was issued to.",
			key.ID, s.bindingText(e), byFrom(ev), stamp(ev.Time), s.useText(ev, cc))))
}

// observe folds a use (or the mint) on net at now into the token's recent
// networks and reports whether the switch run reached SwitchCount.
func (s *shard) observe(e *entry, net network, now uint32) bool {
	win := uint32(s.d.opts.SwitchWindow / time.Second)
	var mine, other *slot
	switch {
	case e.a.last != 0 && e.a.net.same(net):
		mine, other = &e.a, &e.b
	case e.b.last != 0 && e.b.net.same(net):
		mine, other = &e.b, &e.a
	}
	var latestOther uint32
	if mine != nil {
		latestOther = other.last
	} else {
		latestOther = max(e.a.last, e.b.last)
	}
	// A switch: the latest earlier use, in event time, was on another
	// network, within the window — and later than this network's own
	// latest use (else the use is reordered inside its own stretch).
	switched := latestOther != 0 && latestOther < now && now-latestOther <= win &&
		(mine == nil || latestOther > mine.last)
	if mine == nil {
		// A new network takes the slot of the one used least recently.
		mine = &e.a
		if e.a.last != 0 && (e.b.last == 0 || e.b.last < e.a.last) {
			mine = &e.b
		}
		*mine = slot{net: net, last: now}
	} else {
		mine.last = max(mine.last, now)
		if mine.net.asn == 0 {
			mine.net.asn = net.asn
		}
		if mine.net.org == 0 {
			mine.net.org = net.org
		}
	}
	if !switched {
		return false
	}
	if e.runAt == 0 || now-e.runAt > win {
		e.runAt, e.run = now, 0
	}
	if e.run < 255 {
		e.run++
	}
	return int(e.run) >= s.d.opts.SwitchCount
}

// concurrent emits token_binding_concurrent.
func (s *shard) concurrent(c *engine.Context, key event.EntityKey, ev *event.Event, e *entry, net network) {
	other := e.a
	if e.a.net.same(net) {
		other = e.b
	}
	f := s.finding(c, KindConcurrent, "Token used from two networks at once", key, ev, e,
		fmt.Sprintf("Token %s (bound to %s) switched networks %d times within %s, the last %s at %s from %s after a use from AS%d at %s: one client uses one network at a time, so the token is in use in two places, or walked through a rotating proxy.",
			key.ID, s.bindingText(e), e.run, human(time.Duration(ev.Time.Unix()-fromSec(e.runAt).Unix())*time.Second),
			byFrom(ev), stamp(ev.Time), s.useText(ev, PackCountry(ev.Source.Country)), other.net.asn, stamp(fromSec(other.last))))
	f.Figures = append(f.Figures,
		event.Figure{Name: "switches", Value: float64(e.run)},
		event.Figure{Name: "switch_window_seconds", Value: s.d.opts.SwitchWindow.Seconds()})
	c.Emit(f)
}

func (s *shard) finding(c *engine.Context, kind, title string, key event.EntityKey, ev *event.Event, e *entry, expl string) event.Finding {
	f := event.Finding{
		Detector:    Name,
		Kind:        kind,
		Title:       title,
		Entity:      key,
		Time:        ev.Time,
		Score:       Score,
		Severity:    event.SeverityForScore(Score),
		Explanation: expl,
		Evidence:    []string{c.Ref(ev)},
		Tags:        tags,
		Immediate:   true,
	}
	if ev.Source.IP.IsValid() {
		f.Related = []event.EntityKey{{Kind: event.EntitySource, ID: ev.Source.IP.String()}}
	}
	changed := 0.0
	if u := ParseFamily(ev.UserAgent); e.bUA != 0 && !u.IsZero() && u.code() != e.bUA {
		changed = 1
	}
	f.Figures = []event.Figure{{Name: "user_agent_family_changed", Value: changed}}
	return f
}

// bindingText renders the binding: "KR, AS4766 at 2025-06-24T08:59:58Z
// (from its mint), Safari on iOS".
func (s *shard) bindingText(e *entry) string {
	var parts []string
	if cc := UnpackCountry(e.bCC); cc != "" {
		parts = append(parts, cc)
	}
	if e.bind.asn != 0 {
		parts = append(parts, fmt.Sprintf("AS%d", e.bind.asn))
	} else if e.bind.known() {
		parts = append(parts, "a network without AS number")
	}
	where := strings.Join(parts, ", ")
	if where == "" {
		where = "no network"
	}
	if e.bAt != 0 {
		src := "its first located use"
		if e.flags&fFromMint != 0 {
			src = "its mint"
		}
		where += fmt.Sprintf(" (from %s at %s)", src, stamp(fromSec(e.bAt)))
	}
	if e.bUA != 0 {
		where += " with " + familyOf(e.bUA).String()
	}
	return where
}

// useText renders the use's place and client: "US, AS20473 (The Constant
// Company) with HTTP library".
func (s *shard) useText(ev *event.Event, cc uint16) string {
	var parts []string
	if c := UnpackCountry(cc); c != "" {
		parts = append(parts, c)
	}
	if ev.Source.ASN != 0 {
		parts = append(parts, fmt.Sprintf("AS%d", ev.Source.ASN))
	}
	out := strings.Join(parts, ", ")
	if org := ev.Source.ASOrg; org != "" {
		out += " (" + quote(org) + ")"
	}
	if f := ParseFamily(ev.UserAgent); !f.IsZero() {
		out += " with " + f.String()
	}
	return strings.TrimSpace(out)
}

// isHosting reports whether the organisation name matches a hosting
// marker (cached per shard).
func (s *shard) isHosting(org string) bool {
	if v, ok := s.hostingVerdict[org]; ok {
		return v
	}
	if len(s.hostingVerdict) >= hostingCacheSize {
		clear(s.hostingVerdict)
	}
	lower := strings.ToLower(org)
	v := false
	for _, m := range s.d.hosting {
		if strings.Contains(lower, m) {
			v = true
			break
		}
	}
	s.hostingVerdict[strings.Clone(org)] = v
	return v
}

// Advance implements engine.Advancer: once per ten minutes of event time
// it forgets tokens whose expiry + ClockSkew the watermark has passed.
func (s *shard) Advance(_ *engine.Context, wm time.Time) {
	if wm.Equal(engine.EndOfTime) || wm.Sub(s.swept) < sweepEvery {
		return
	}
	s.swept = wm
	now := toSec(wm.Add(-s.d.opts.ClockSkew))
	for h, e := range s.tokens {
		if e.exp < now {
			delete(s.tokens, h)
		}
	}
	// Go maps never give memory back: rebuild after a burst.
	if s.peak >= 1<<14 && len(s.tokens)*4 <= s.peak {
		m := make(map[uint64]entry, len(s.tokens))
		for k, v := range s.tokens {
			m[k] = v
		}
		s.tokens, s.peak = m, len(m)
	}
}

func byFrom(ev *event.Event) string {
	who := ev.User.ID
	if who == "" {
		who = "an unnamed principal"
	}
	out := "by " + who
	if ev.Source.IP.IsValid() {
		out += " from " + ev.Source.IP.String()
	}
	return out
}

func quote(s string) string {
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}
