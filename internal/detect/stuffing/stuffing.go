// Package stuffing detects a credential-stuffing campaign spread so thin
// over a botnet that no single address stands out: each bot tries a
// handful of accounts, under any per-source floor, but together they fail
// on many accounts whose owners never come to log in.
//
// The signal is population-level and rests on two things true of any
// company's logins:
//
//   - A person who mistypes a password wants in: they retry, reset the
//     password, and succeed within minutes. A failed login whose account
//     has no successful login within Recovery (default 15 min) is
//     unrecovered. Carrier NAT, an office egress, a password-policy change
//     or an app release that logs everyone out produce many failures, but
//     recovered ones; a stuffing list's accounts stay failed (the few
//     successes are the attacker's own, and they count as recoveries,
//     which only makes the detector slower).
//   - A cohort of sources — a network: the AS when the event carries one,
//     else the /24 or /64 — has its own level of unrecovered failures
//     (people giving up), which grows with its own traffic. A campaign adds
//     unrecovered failures on top of the cohort's ordinary traffic.
//
// Every auth.login event with a principal and a source address keys on
// one entity (Population), so the join of a failure with its account's
// later success sees logins from every network: the owner usually
// succeeds from elsewhere. Per tumbling window (default 1 h), per cohort,
// the distinct accounts with unrecovered failures are counted (each at the
// end of its recovery horizon) and a cohort is flagged, once per window,
// when that count reaches
//
//	max(Floor, Factor × cohort's past peak × max(1, cohort's successes this window / their past peak))
//
// (peaks per window, decaying by 1% a window) from at least MinSources
// distinct source addresses. The last factor lets a cohort whose ordinary
// traffic surges (a popular app release) have proportionally more users
// giving up.
//
// Company-wide outages: when the company's successful logins during a
// failure's recovery horizon fall below a quarter of what the previous
// window's rate predicts, logins are broken for everyone (an outage, an
// identity-provider failure): failures until one horizon after such a
// collapse are not evidence (people come back slowly after an outage) and
// are counted as suppressed, never towards a cohort. With fewer than 80
// successful logins an hour a collapse cannot be told from chance and is
// not judged.
//
// Cold start: a cohort present when watching began is judged only after
// Warmup (default 24 h), once its own peak is known; a cohort first seen
// later is new and judged at the floor at once.
//
// The finding (kind login_failure_campaign, score 90: a surge over the
// cohort's own baseline, of failures their accounts' owners never
// recovered, from several sources — more than one line of evidence) is
// about the cohort as an entity of kind "network" (the same kind
// source_fanout's network_fanout uses, which block_source accepts), with
// up to MaxSources of the sources it saw as related entities (shared ones
// left out: botLike), so a playbook can block them and incidents can join
// them. A network whose AS organisation matches Options.HostingMarkers is
// tagged TagHosting (a playbook may block a data centre outright).
//
// While the campaign is under way (flagged in this window or the last, or
// its last window still counted at least half its threshold), a token
// minted (auth.token) to a source of the network that is bot-like and
// failed on two other accounts raises a follow-up finding about the network
// naming the source and the token as related, at the mint's time, so a
// playbook revokes what the campaign's working passwords got.
//
// Memory: per cohort about 900 bytes (a 1,024-bit set of account hashes
// and a 512-bit set of source hashes for the window, 16 source addresses,
// 3 evidence references, two decaying peaks); per failure pending its
// recovery horizon about 150 bytes with the map, at most MaxPending of them (beyond, failures
// are dropped uncounted); per source address with logins this window or
// the last about 100 bytes, at most 65,536 per window (beyond, an address
// not counted is treated as shared); cohorts idle for 7 days are
// forgotten. State is not checkpointed.
package stuffing

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/baseline"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/netname"
)

// Name is the detector's stable name.
const Name = "login_campaign"

// Kind is the finding kind.
const Kind = "login_failure_campaign"

// Score of a finding: see the package comment.
const Score = 90

// EntityNetwork is the entity kind of a finding: an AS, or a prefix.
const EntityNetwork event.EntityKind = "network"

// Population is the one entity every login is keyed on.
var Population = event.EntityKey{Kind: "logins", ID: "all"}

// Options configure the detector. Zero values take the defaults.
type Options struct {
	// Window is the counting window (default 1h).
	Window time.Duration
	// Recovery is how long after a failed login its account's successful
	// login still recovers it (default 15m).
	Recovery time.Duration
	// Floor is the fewest distinct accounts with unrecovered failures per
	// cohort and window that can be flagged (default 20).
	Floor int
	// Factor multiplies the cohort's baseline (default 4).
	Factor float64
	// MinSources is the fewest distinct source addresses the unrecovered
	// failures come from (default 3).
	MinSources int
	// Warmup is the history a cohort present at start-up needs before it
	// is judged (default 24h).
	Warmup time.Duration
	// MaxPending caps the failures awaiting their recovery horizon
	// (default 1<<20).
	MaxPending int
	// HostingMarkers mark hosting networks by AS organisation name
	// (case-insensitive substrings, config.DefaultHostingMarkers): a
	// finding about such a network is tagged TagHosting.
	HostingMarkers []string
}

func (o *Options) defaults() {
	if o.Window <= 0 {
		o.Window = time.Hour
	}
	if o.Recovery <= 0 {
		o.Recovery = 15 * time.Minute
	}
	if o.Floor <= 0 {
		o.Floor = 20
	}
	if o.Factor <= 0 {
		o.Factor = 4
	}
	if o.MinSources <= 0 {
		o.MinSources = 3
	}
	if o.Warmup <= 0 {
		o.Warmup = 24 * time.Hour
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 1 << 20
	}
}

const (
	decay      = 0.99 // per window, of a cohort's peaks
	collapse   = 0.25 // successes below this share of the expected: an outage
	minExpect  = 20.0 // fewer expected successes in a horizon: too few to judge an outage
	idleForget = 7 * 24 * time.Hour
	maxRefs    = 3
	// MaxSources is the most sources a finding names as related.
	MaxSources = 16
	// minOtherAccts is the fewest other accounts a source must have failed
	// on before a token minted to it is named: one is a household (one
	// person gave up, another logged in), two are a list being tried.
	minOtherAccts = 2
	// maxSrcAddrs caps the source addresses whose logins are counted per
	// window.
	maxSrcAddrs = 1 << 16
)

// TagHosting tags a finding about a hosting network (Options.HostingMarkers):
// a data centre, where no customer lives, so blocking it stops the
// campaign without locking out a carrier's customers.
const TagHosting = "haechi.network.hosting"

// Detector is the login-campaign detector.
type Detector struct {
	opts    Options
	names   netname.Cache
	hosting []string
}

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector {
	opts.defaults()
	d := &Detector{opts: opts}
	for _, m := range opts.HostingMarkers {
		if m = strings.ToLower(strings.TrimSpace(m)); m != "" {
			d.hosting = append(d.hosting, m)
		}
	}
	return d
}

func (d *Detector) isHosting(org string) bool {
	org = strings.ToLower(org)
	for _, m := range d.hosting {
		if strings.Contains(org, m) {
			return true
		}
	}
	return false
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: every login with a principal and a
// source address keys on Population, and so does every token minted to a
// source address (a campaign source's token is named, see the package
// comment).
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if ev.Dataset == event.DatasetToken && ev.Token.ID != "" && ev.Source.IP.IsValid() && ev.Outcome != event.OutcomeFailure {
		return Population, true
	}
	if ev.Dataset != event.DatasetLogin || ev.User.ID == "" || !ev.Source.IP.IsValid() {
		return event.EntityKey{}, false
	}
	switch ev.Outcome {
	case event.OutcomeSuccess, event.OutcomeFailure:
		return Population, true
	}
	return event.EntityKey{}, false
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{d: d, cohorts: map[string]*cohort{}, pending: map[uint64]*failure{}}
}

type failure struct {
	at        time.Time
	acct      uint64
	c         *cohort
	src       netip.Addr
	ref       string
	succAt    float64 // the company's successes before the failure
	recovered bool
}

type cohort struct {
	name  string
	org   string
	first time.Time
	last  time.Time

	start    time.Time // current window
	accts    [16]uint64
	count    int // distinct accounts unrecovered, this window
	srcBits  [8]uint64
	nsrc     int
	srcs     []netip.Addr
	refs     []string
	succ     float64 // successful logins this window
	fired    bool
	suppress int // unrecovered failures left out this window (outage)
	peak     baseline.Peak
	succPeak baseline.Peak

	// The campaign: when it was last under way (flagged, or a window
	// closed with at least half the count that flagged it), and that
	// count's threshold.
	firedAt time.Time
	bar     float64
	hosting bool
}

// srcStat counts one source address's logins in a window: successes, and
// failures that were not a retry of a failure already waiting, with the
// first few accounts they were on.
type srcStat struct {
	succ, fails uint32
	accts       [4]uint64
	naccts      uint8
}

// active reports whether the cohort's campaign is under way at t: it fired
// in the current or the previous window.
func (co *cohort) active(t time.Time, window time.Duration) bool {
	return !co.firedAt.IsZero() && t.Sub(co.firedAt) <= 2*window
}

type shard struct {
	d       *Detector
	cohorts map[string]*cohort
	pending map[uint64]*failure // account → its failure awaiting recovery
	queue   []*failure          // in arrival order
	now     time.Time

	// The company's successful logins: a running total, and per window
	// (the previous complete one predicts the rate).
	succTotal float64
	winStart  time.Time
	winSucc   float64
	prevSucc  float64
	dropped   int
	// Logins per source address, this window and the last (at most
	// maxSrcAddrs each; beyond, Full and the rest unknown).
	srcNow, srcPrev         map[netip.Addr]*srcStat
	srcNowFull, srcPrevFull bool
	outage                  time.Time // end of the last horizon in which successes collapsed
	lastSweep               time.Time
}

// fnv1a is the 64-bit FNV-1a hash: deterministic, so replays agree.
func fnv1a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, _ event.EntityKey, ev *event.Event) {
	if ev.Time.After(s.now) {
		s.now = ev.Time
		s.mature(c)
	}
	ws := ev.Time.Truncate(s.d.opts.Window)
	if ws.After(s.winStart) {
		if !s.winStart.IsZero() {
			s.prevSucc = s.winSucc
			s.srcPrev, s.srcPrevFull = s.srcNow, s.srcNowFull
			if ws.Sub(s.winStart) > s.d.opts.Window {
				s.prevSucc = 0 // an empty window came between
				s.srcPrev, s.srcPrevFull = nil, false
			}
			s.srcNow, s.srcNowFull = nil, false
		}
		s.winStart, s.winSucc = ws, 0
	}
	name := s.d.names.Network(ev.Source)
	if ev.Dataset == event.DatasetToken {
		s.minted(c, s.cohorts[name], ev)
		return
	}
	co := s.cohorts[name]
	if co == nil {
		co = &cohort{name: name, first: ev.Time}
		s.cohorts[name] = co
	}
	if ev.Source.ASOrg != "" && co.org != ev.Source.ASOrg {
		co.org = ev.Source.ASOrg
		co.hosting = s.d.isHosting(co.org)
	}
	if ev.Time.After(co.last) {
		co.last = ev.Time
	}
	co.roll(ws, s.d.opts.Window)
	h := fnv1a([]byte(ev.User.ID))
	if ev.Outcome == event.OutcomeSuccess {
		s.succTotal++
		s.winSucc++
		if ws.Equal(co.start) {
			co.succ++
		}
		if st := s.stat(ev.Source.IP); st != nil {
			st.succ++
		}
		if f := s.pending[h]; f != nil && !ev.Time.Before(f.at) {
			f.recovered = true
			delete(s.pending, h)
		}
		return
	}
	if _, waiting := s.pending[h]; waiting {
		return // a retry of a failure already waiting
	}
	if st := s.stat(ev.Source.IP); st != nil {
		st.fails++
		if int(st.naccts) < len(st.accts) && !slices.Contains(st.accts[:st.naccts], h) {
			st.accts[st.naccts] = h
			st.naccts++
		}
	}
	if len(s.pending) >= s.d.opts.MaxPending {
		s.dropped++
		return
	}
	f := &failure{at: ev.Time, acct: h, c: co, src: ev.Source.IP, ref: c.Ref(ev), succAt: s.succTotal}
	s.pending[h] = f
	s.queue = append(s.queue, f)
}

// Advance implements engine.Advancer: failures whose recovery horizon the
// watermark has passed are judged, and idle cohorts forgotten.
func (s *shard) Advance(c *engine.Context, wm time.Time) {
	if wm.After(s.now) && wm.Before(engine.EndOfTime) {
		s.now = wm
	}
	s.mature(c)
	if !wm.Before(engine.EndOfTime) || wm.Sub(s.lastSweep) < time.Hour {
		return
	}
	s.lastSweep = wm
	for k, co := range s.cohorts {
		if wm.Sub(co.last) > idleForget {
			delete(s.cohorts, k)
		}
	}
}

// mature judges every failure whose recovery horizon has passed by now.
func (s *shard) mature(c *engine.Context) {
	i := 0
	for ; i < len(s.queue); i++ {
		f := s.queue[i]
		if f.at.Add(s.d.opts.Recovery).After(s.now) {
			break
		}
		if f.recovered {
			continue
		}
		if s.pending[f.acct] == f {
			delete(s.pending, f.acct)
		}
		s.judge(c, f)
	}
	if i > 0 {
		clear(s.queue[:i])
		s.queue = s.queue[i:]
		if cap(s.queue) > 1024 && len(s.queue) < cap(s.queue)/4 {
			s.queue = append([]*failure(nil), s.queue...)
		}
	}
}

// judge counts an unrecovered failure towards its cohort and flags the
// cohort when the count reaches its threshold.
func (s *shard) judge(c *engine.Context, f *failure) {
	co := f.c
	// Counted in the window of the moment it became unrecovered.
	if ws := f.at.Add(s.d.opts.Recovery).Truncate(s.d.opts.Window); ws.After(co.start) {
		co.roll(ws, s.d.opts.Window)
	}
	// Were logins working for everyone during the horizon? A collapse
	// mutes the signal until one horizon after it: people come back
	// slowly after an outage, so its last failures are not recovered in
	// time either.
	expect := s.prevSucc * float64(s.d.opts.Recovery) / float64(s.d.opts.Window)
	if got := s.succTotal - f.succAt; expect >= minExpect && got < collapse*expect {
		if end := f.at.Add(s.d.opts.Recovery); end.After(s.outage) {
			s.outage = end
		}
	}
	if !s.outage.IsZero() && !f.at.After(s.outage.Add(s.d.opts.Recovery)) {
		co.suppress++
		return
	}
	if !setBit(co.accts[:], f.acct) {
		return
	}
	co.count++
	a16 := f.src.As16()
	if setBit(co.srcBits[:], fnv1a(a16[:])) {
		co.nsrc++
		if len(co.srcs) < MaxSources {
			co.srcs = append(co.srcs, f.src)
		}
	}
	if len(co.refs) < maxRefs {
		co.refs = append(co.refs, f.ref)
	}
	if co.fired || co.count < s.d.opts.Floor || co.nsrc < s.d.opts.MinSources {
		return
	}
	known := co.start.Sub(co.first) >= s.d.opts.Warmup
	fresh := !c.Earliest().IsZero() && co.first.Sub(c.Earliest()) >= s.d.opts.Warmup
	if !known && !fresh {
		return
	}
	surge := 1.0
	if co.succPeak.Max > 0 {
		surge = math.Max(1, co.succ/co.succPeak.Max)
	}
	threshold := math.Max(float64(s.d.opts.Floor), s.d.opts.Factor*co.peak.Max*surge)
	if float64(co.count) < threshold {
		return
	}
	co.fired = true
	co.firedAt, co.bar = f.at.Add(s.d.opts.Recovery), threshold
	s.emit(c, co, f, threshold, surge, fresh && !known)
}

func (s *shard) emit(c *engine.Context, co *cohort, f *failure, threshold, surge float64, fresh bool) {
	netName := co.name
	if co.org != "" {
		netName += " (" + co.org + ")"
	}
	base := fmt.Sprintf("its own past peak is %.0f per window", co.peak.Max)
	if surge > 1 {
		base += fmt.Sprintf(" and its successful logins are %.1f× their usual peak", surge)
	}
	if fresh {
		base = fmt.Sprintf("it was first seen %s, so it has no history", co.first.UTC().Format(time.RFC3339))
	}
	related := make([]event.EntityKey, 0, len(co.srcs))
	addrs := make([]string, 0, len(co.srcs))
	for _, a := range co.srcs {
		addrs = append(addrs, a.String())
		if !s.botLike(a) {
			continue // people log in from it: a shared address, not a bot
		}
		related = append(related, event.EntityKey{Kind: event.EntitySource, ID: a.String()})
	}
	more := ""
	if co.nsrc > len(co.srcs) {
		more = fmt.Sprintf(" and %d more", co.nsrc-len(co.srcs))
	}
	var tags []string
	if co.hosting {
		tags = []string{TagHosting}
	}
	evidence := append([]string(nil), co.refs...)
	if evidence[len(evidence)-1] != f.ref {
		evidence = append(evidence, f.ref)
	}
	c.Emit(event.Finding{
		Kind:   Kind,
		Title:  "Failed logins across many accounts from a network, never recovered by their owners",
		Entity: event.EntityKey{Kind: EntityNetwork, ID: co.name},
		Time:   f.at.Add(s.d.opts.Recovery),
		Score:  Score,
		Explanation: fmt.Sprintf("Between %s and %s, %d distinct accounts failed to log in from %s (%d addresses: %s%s) and none of their owners logged in within %s; %s, so the threshold was %.0f. Failures their owners do not recover, spread over many addresses, are a credential-stuffing campaign.",
			co.start.UTC().Format(time.RFC3339), f.at.UTC().Format(time.RFC3339), co.count, netName, co.nsrc,
			strings.Join(addrs, ", "), more, s.d.opts.Recovery, base, threshold),
		Evidence: evidence,
		Related:  related,
		Tags:     tags,
	})
}

// stat returns ip's counts in the current window, nil when the window's
// map is full.
func (s *shard) stat(ip netip.Addr) *srcStat {
	if st := s.srcNow[ip]; st != nil {
		return st
	}
	if len(s.srcNow) >= maxSrcAddrs {
		s.srcNowFull = true
		return nil
	}
	if s.srcNow == nil {
		s.srcNow = map[netip.Addr]*srcStat{}
	}
	st := &srcStat{}
	s.srcNow[ip] = st
	return st
}

// logins returns ip's counts over the current and the previous window,
// the accounts its failures were on, and whether they are known (ip was
// counted, or neither window's map overflowed).
func (s *shard) logins(ip netip.Addr) (succ, fails int, accts []uint64, known bool) {
	for _, st := range []*srcStat{s.srcNow[ip], s.srcPrev[ip]} {
		if st != nil {
			succ, fails = succ+int(st.succ), fails+int(st.fails)
			accts = append(accts, st.accts[:st.naccts]...)
			known = true
		}
	}
	return succ, fails, accts, known || !(s.srcNowFull || s.srcPrevFull)
}

// botLike reports whether src looks like a bot rather than a shared
// address: in this window and the last, logins from it failed (first
// attempts, not retries) at least as often as they succeeded. People
// behind a carrier's NAT or an office mostly succeed, and each of their
// mistypes is followed by a success.
func (s *shard) botLike(src netip.Addr) bool {
	succ, fails, _, known := s.logins(src)
	return known && fails > 0 && fails >= succ
}

// minted names a token minted to a campaign source while its campaign is
// under way: a follow-up finding about the cohort, relating the source and
// the token, so a playbook revokes what the campaign's successful logins
// got. The bar for a campaign source is lower than any per-source floor,
// because the network is already flagged: an address of the network that
// is bot-like (botLike) and failed on at least minOtherAccts accounts
// other than the one the token is for (a customer who mistyped their own
// password, or a household where one person gave up, is not a list being
// tried).
func (s *shard) minted(c *engine.Context, co *cohort, ev *event.Event) {
	if co == nil || !co.active(ev.Time, s.d.opts.Window) {
		return
	}
	if !s.botLike(ev.Source.IP) {
		return
	}
	succ, fails, accts, _ := s.logins(ev.Source.IP)
	acct := fnv1a([]byte(ev.User.ID))
	others := 0
	for i, a := range accts {
		if a != acct && !slices.Contains(accts[:i], a) {
			others++
		}
	}
	if others < minOtherAccts {
		return // a person failing on their own account, or one other's: not a list
	}
	var tags []string
	if co.hosting {
		tags = []string{TagHosting}
	}
	src := ev.Source.IP.String()
	c.Emit(event.Finding{
		Kind:   Kind,
		Title:  "Token minted to a source of an active credential-stuffing campaign",
		Entity: event.EntityKey{Kind: EntityNetwork, ID: co.name},
		Time:   ev.Time,
		Score:  Score,
		Explanation: fmt.Sprintf("At %s token %s was minted for %s to %s, a source of the credential-stuffing campaign flagged on %s at %s (%d failed logins from it, on %d other accounts, and %d successful, in this window and the last): the campaign's successful logins are taken-over accounts, and their tokens its access.",
			ev.Time.UTC().Format(time.RFC3339), ev.Token.ID, ev.User.ID, src, co.name, co.firedAt.UTC().Format(time.RFC3339), fails, others, succ),
		Evidence: []string{c.Ref(ev)},
		Related:  []event.EntityKey{{Kind: event.EntitySource, ID: src}, {Kind: event.EntityToken, ID: ev.Token.ID}},
		Tags:     tags,
	})
}

// roll starts the cohort's window at start when it is later than the
// current one, folding the closed window's counts into its peaks.
func (co *cohort) roll(start time.Time, window time.Duration) {
	if !start.After(co.start) {
		return
	}
	if !co.start.IsZero() {
		if co.active(co.start.Add(window), window) && float64(co.count) >= co.bar/2 {
			co.firedAt = co.start.Add(window) // the campaign goes on
		}
		co.peak.Observe(co.start, window, float64(co.count), decay)
		co.succPeak.Observe(co.start, window, co.succ, decay)
	}
	co.start = start
	co.accts, co.srcBits = [16]uint64{}, [8]uint64{}
	co.count, co.nsrc, co.succ, co.suppress = 0, 0, 0, 0
	co.srcs, co.refs, co.fired = co.srcs[:0], co.refs[:0], false
}

// setBit sets the bit h selects in set and reports whether it was clear.
func setBit(set []uint64, h uint64) bool {
	n := uint64(len(set)) * 64
	i := (h >> 7) % n // not the low bits, which another set may use
	w, b := i/64, uint64(1)<<(i%64)
	if set[w]&b != 0 {
		return false
	}
	set[w] |= b
	return true
}
