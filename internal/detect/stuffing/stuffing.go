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
// playbook revokes what the campaign's working passwords got. A token
// whose login was the campaign's by a lower bar (campaignLogin: the
// account's first visit to the network on a kind of device it never used,
// and a known account, a network where first visits are rare, or an
// address that failed on another account where no one else logged in) is
// named the same way, relating the token only: a session is cheap to end,
// a carrier's address is not cheap to block. The campaign's exact user
// agent names such a login on any other network too (minted).
//
// Memory: per cohort about 900 bytes (a 1,024-bit set of account hashes
// and a 512-bit set of source hashes for the window, 16 source addresses,
// 3 evidence references, two decaying peaks); per failure pending its
// recovery horizon about 150 bytes with the map, at most MaxPending of them (beyond, failures
// are dropped uncounted); per source address with logins this window or
// the last about 100 bytes, at most 65,536 per window (beyond, an address
// not counted is treated as shared); the account history (that it logged
// in, from which networks, on which kinds of device), two generations of
// Options.HistoryBits (4 MiB by default); per recent first-visit login on
// a new device about 120 bytes, at most 65,536, for Recovery; cohorts idle
// for 7 days are forgotten. State is not checkpointed.
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
	// HistoryBits is the size in bits of each of the two generations of
	// the filter remembering, per account, that it logged in, the networks
	// it logged in from and the kinds of device it used (default 1<<24:
	// 2 MiB each, about 1.7 million entries at a 2 % false "seen"; a fuller
	// filter names fewer tokens, never more). Rounded up to a multiple of
	// 64.
	HistoryBits int
	// HistoryPeriod is how long one generation of that filter fills
	// before it becomes the older one (default 30 days): the history
	// covers the last one to two periods.
	HistoryPeriod time.Duration
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
	if o.HistoryBits <= 0 {
		o.HistoryBits = 1 << 24
	}
	o.HistoryBits = (o.HistoryBits + 63) / 64 * 64
	if o.HistoryPeriod <= 0 {
		o.HistoryPeriod = 30 * 24 * time.Hour
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
	// maxCands caps the recent first-visit logins kept for their token's
	// mint (beyond, the oldest is forgotten).
	maxCands = 1 << 16
	// histHashes is the number of bits one entry sets in the history
	// filter.
	histHashes = 3
	// rareFirsts: a network whose busiest window so far (decaying) saw
	// fewer first visits than this is one the company's customers do not
	// arrive at — a network abroad, a data centre.
	rareFirsts = 2
	// A campaign's user agent (campaignAgent): carried by at least
	// minAgentAccts of its failed accounts, agentRatio times more common
	// among them than among the company's successful logins, judged once
	// minAgentLogins of those were seen; at most maxCampAgents agents per
	// campaign and maxAgents for the company are counted.
	minAgentAccts  = 3
	agentRatio     = 100
	minAgentLogins = 1000
	maxCampAgents  = 256
	maxAgents      = 1 << 16
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
	return &shard{d: d, cohorts: map[string]*cohort{}, pending: map[uint64]*failure{}, cands: map[uint64]*cand{}}
}

type failure struct {
	at        time.Time
	acct      uint64
	c         *cohort
	src       netip.Addr
	ref       string
	succAt    float64 // the company's successes before the failure
	ua        uint64  // agentKey of its user agent
	recovered bool
}

type cohort struct {
	name  string
	h     uint64 // fnv1a of name
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
	// First visits: successful logins of accounts that had never logged
	// in from the network (in the history kept), this window, and their
	// decaying peak per window.
	firsts    float64
	firstPeak baseline.Peak
	// The campaign's user agents: distinct accounts with unrecovered
	// failures counted per agentKey (at most maxCampAgents agents), since
	// the first window of the campaign.
	agents     map[uint64]int
	agentTotal int

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

	// Every account's logins (hist), and the recent successful logins
	// that were an account's first visit to the network on a kind of
	// device it had not used (cands, by account and address, in arrival
	// order in candQ, at most maxCands, for Recovery), so the token
	// minted after one can be judged.
	hist  history
	cands map[uint64]*cand
	candQ []*cand
	// The company's successful logins per exact user agent (agentKey), at
	// most maxAgents of them (beyond, agentsFull and the rest unknown).
	agentSucc  map[uint64]float64
	agentsFull bool
	// The cohorts flagged, kept while their campaign may be under way
	// (pruned hourly).
	campaigns []*cohort
}

// cand is a successful login that was its account's first visit to the
// network on a kind of device the account had not used (or an account
// with no logins at all in the history kept).
type cand struct {
	at      time.Time
	acct    uint64
	src     netip.Addr
	co      *cohort
	known   bool   // the account had logged in before (elsewhere, on another device)
	device  string // the login's kind of device (deviceOf)
	ua      uint64 // agentKey of its user agent
	claimed bool   // a mint took it
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
		co = &cohort{name: name, h: fnv1a([]byte(name)), first: ev.Time}
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
		s.countAgent(agentKey(ev.UserAgent))
		s.winSucc++
		if ws.Equal(co.start) {
			co.succ++
		}
		if st := s.stat(ev.Source.IP); st != nil {
			st.succ++
		}
		s.remember(c, co, ev, h)
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
	f := &failure{at: ev.Time, acct: h, c: co, src: ev.Source.IP, ref: c.Ref(ev), succAt: s.succTotal, ua: agentKey(ev.UserAgent)}
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
	s.campaigns = slices.DeleteFunc(s.campaigns, func(co *cohort) bool { return !co.active(wm, s.d.opts.Window) })
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
	co.countAgent(f.ua)
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
	if !slices.Contains(s.campaigns, co) {
		s.campaigns = append(s.campaigns, co)
	}
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

// minted names a token minted while its network's campaign is under
// way when the login it follows is the campaign's by the lower bar a
// flagged network earns: a follow-up finding about the cohort, so a
// playbook revokes what the campaign's successful logins got. Two bars:
//
//   - a campaign source: an address of the network that is bot-like
//     (botLike) and failed on at least minOtherAccts accounts other than
//     the one the token is for (a customer who mistyped their own
//     password, or a household where one person gave up, is not a list
//     being tried). The finding relates the source and the token.
//   - a campaign login (campaignLogin): the account's first visit to the
//     network on a kind of device it had never used, and one more thing a
//     customer's login does not have. The finding relates the token only:
//     revoking a session costs its holder a new login, blocking an
//     address of a carrier holds everyone behind it.
func (s *shard) minted(c *engine.Context, co *cohort, ev *event.Event) {
	acct := fnv1a([]byte(ev.User.ID))
	if co != nil && co.active(ev.Time, s.d.opts.Window) {
		succ, fails, accts, _ := s.logins(ev.Source.IP)
		others := 0
		for i, a := range accts {
			if a != acct && !slices.Contains(accts[:i], a) {
				others++
			}
		}
		if s.botLike(ev.Source.IP) && others >= minOtherAccts {
			s.nameToken(c, co, co, ev, true, fmt.Sprintf("a source of the campaign (%d failed logins from it, on %d other accounts, and %d successful, in this window and the last)", fails, others, succ))
			return
		}
		if why := s.campaignLogin(c, co, ev, acct, succ, others); why != "" {
			s.nameToken(c, co, co, ev, false, why)
			return
		}
	}
	// Elsewhere: a login on another network (flagged or not) carrying an
	// active campaign's own user agent is that campaign's too — a botnet
	// spreads over several networks, not all of which reach the floor.
	cd := s.cand(acct, co, ev)
	if cd == nil {
		return
	}
	for _, camp := range s.campaigns {
		if camp == co || !camp.active(ev.Time, s.d.opts.Window) || !s.campaignAgent(camp, cd.ua) {
			continue
		}
		cd.claimed = true
		s.nameToken(c, camp, co, ev, false, fmt.Sprintf("the account's first login from %s, on a kind of device (%s) it had not used, with the exact user agent of %d of the campaign's failed accounts on %s, one the company's logins rarely carry", co.name, cd.device, camp.agents[cd.ua], camp.name))
		return
	}
}

// nameToken emits the follow-up finding about camp's network naming the
// token ev minted on co (the same network, or another one the campaign
// reached), relating the source too when withSource.
func (s *shard) nameToken(c *engine.Context, camp, co *cohort, ev *event.Event, withSource bool, why string) {
	src := ev.Source.IP.String()
	related := []event.EntityKey{{Kind: event.EntityToken, ID: ev.Token.ID}}
	if withSource {
		related = append([]event.EntityKey{{Kind: event.EntitySource, ID: src}}, related...)
	}
	var tags []string
	if camp.hosting {
		tags = []string{TagHosting}
	}
	on := co.name
	if camp != co {
		on += ", while one flagged on " + camp.name + " was under way"
	}
	c.Emit(event.Finding{
		Kind:   Kind,
		Title:  "Token minted to a login of an active credential-stuffing campaign",
		Entity: event.EntityKey{Kind: EntityNetwork, ID: camp.name},
		Time:   ev.Time,
		Score:  Score,
		Explanation: fmt.Sprintf("At %s token %s was minted for %s to %s, on %s; the credential-stuffing campaign was flagged at %s; the login is the campaign's: %s. A campaign's successful logins are taken-over accounts, and their tokens its access.",
			ev.Time.UTC().Format(time.RFC3339), ev.Token.ID, ev.User.ID, src, on, camp.firedAt.UTC().Format(time.RFC3339), why),
		Evidence: []string{c.Ref(ev)},
		Related:  related,
		Tags:     tags,
	})
}

// cand returns the first-visit login on a new device (remember) the token
// ev minted on co follows: the same account and address, on co, at most
// Recovery before the mint, not yet taken by another mint; nil when none.
func (s *shard) cand(acct uint64, co *cohort, ev *event.Event) *cand {
	cd := s.cands[candKey(acct, ev.Source.IP)]
	if co == nil || cd == nil || cd.claimed || cd.co != co || ev.Time.Before(cd.at) || ev.Time.Sub(cd.at) > s.d.opts.Recovery {
		return nil
	}
	return cd
}

// campaignLogin returns why the login the token minted by ev follows is
// the campaign's on co, or "" when it is not one. The login must have been
// its account's first visit to the network (in the history kept, judged
// once Warmup of it is watched) on a kind of device the account had never
// used (deviceOf) — a customer logging in from the carrier they use, or
// abroad on their own phone, has been seen; a bot has a list's account
// and a user agent of its own. And one of:
//
//   - the account had logged in before (from other networks, on other
//     devices): a known customer arriving on a new network with a new
//     device at the moment that network is stuffing passwords;
//   - the network's first visits are rare (its busiest window so far,
//     decaying, had fewer than rareFirsts, and it is known or new, as for
//     flagging): a network the company's customers do not arrive at — a
//     data centre, a network abroad — where an account with no history
//     arriving now is the campaign's;
//   - the address failed on another account this window or the last and
//     no other login from it succeeded (succ counts this one): a bot whose
//     only failure is under the campaign-source bar, not a NAT, an office
//     or a household.
func (s *shard) campaignLogin(c *engine.Context, co *cohort, ev *event.Event, acct uint64, succ, others int) (why string) {
	cd := s.cand(acct, co, ev)
	if cd == nil {
		return "" // no first visit on a new device before this mint
	}
	first := "the account's first login from the network, on a kind of device (" + cd.device + ") it had not used"
	defer func() { cd.claimed = why != "" }()
	switch {
	case cd.known:
		return first + ", while it had logged in before from elsewhere"
	case co.firstPeak.Max < rareFirsts && s.judged(c, co):
		return fmt.Sprintf("%s, on a network where accounts' first visits are rare (at most %.1f in its busiest window so far)", first, co.firstPeak.Max)
	case others >= 1 && succ <= 1 && s.botLike(ev.Source.IP):
		return first + ", from an address that failed on another account in this window or the last, where no one else logged in"
	case s.campaignAgent(co, cd.ua):
		return fmt.Sprintf("%s, with the exact user agent of %d of the campaign's failed accounts, one the company's logins rarely carry", first, co.agents[cd.ua])
	}
	return ""
}

// campaignAgent reports whether ua (agentKey) is one of co's campaign's
// user agents: at least minAgentAccts of its failed accounts carried it,
// and its share of the campaign's failed accounts is at least agentRatio
// times its share of the company's successful logins (counted once there
// are minAgentLogins of them). A stuffing tool cycles through a short list
// of exact user agents, often of old versions; the company's customers
// spread over the current ones. A campaign copying a common one is not
// told apart (its share among customers is too high).
func (s *shard) campaignAgent(co *cohort, ua uint64) bool {
	n := co.agents[ua]
	if ua == 0 || n < minAgentAccts || co.agentTotal == 0 || s.succTotal < minAgentLogins {
		return false
	}
	succ, ok := s.agentSucc[ua]
	if !ok && s.agentsFull {
		return false // not counted: unknown, not rare
	}
	return float64(n)/float64(co.agentTotal) >= agentRatio*succ/s.succTotal
}

// countAgent counts a successful login with user agent ua (agentKey).
func (s *shard) countAgent(ua uint64) {
	if ua == 0 {
		return
	}
	if _, ok := s.agentSucc[ua]; !ok {
		if len(s.agentSucc) >= maxAgents {
			s.agentsFull = true
			return
		}
		if s.agentSucc == nil {
			s.agentSucc = map[uint64]float64{}
		}
	}
	s.agentSucc[ua]++
}

// countAgent counts an unrecovered failure's user agent towards the
// campaign's.
func (co *cohort) countAgent(ua uint64) {
	if ua == 0 {
		return
	}
	if _, ok := co.agents[ua]; !ok && len(co.agents) >= maxCampAgents {
		return
	}
	if co.agents == nil {
		co.agents = map[uint64]int{}
	}
	co.agents[ua]++
	co.agentTotal++
}

// agentKey hashes an exact user agent; 0 for none.
func agentKey(ua string) uint64 {
	if ua = strings.TrimSpace(ua); ua == "" {
		return 0
	}
	return fnv1a([]byte(ua)) | 1
}

// judged reports whether co's history is long enough to judge it (as for
// flagging): watched for Warmup, or first seen Warmup after watching began.
func (s *shard) judged(c *engine.Context, co *cohort) bool {
	known := co.start.Sub(co.first) >= s.d.opts.Warmup
	fresh := !c.Earliest().IsZero() && co.first.Sub(c.Earliest()) >= s.d.opts.Warmup
	return known || fresh
}

// remember adds a successful login of acct (hash) from co to the history;
// when it was the account's first visit to the network (once Warmup of
// history is watched) it counts towards the network's first visits, and
// when it also came on a kind of device the account had not used, it is
// kept as a candidate for its token's mint (campaignLogin).
func (s *shard) remember(c *engine.Context, co *cohort, ev *event.Event, acct uint64) {
	dev := deviceOf(ev.UserAgent)
	kAcct := mix(acct ^ 0x6163636f756e74)
	kNet := mix(acct ^ co.h*0x9e3779b97f4a7c15)
	kDev := mix(acct ^ fnv1a([]byte(dev))*0xc2b2ae3d27d4eb4f)
	known, netSeen, devSeen := s.hist.has(kAcct), s.hist.has(kNet), s.hist.has(kDev)
	p, n := s.d.opts.HistoryPeriod, s.d.opts.HistoryBits
	s.hist.add(kAcct, ev.Time, n, p)
	s.hist.add(kNet, ev.Time, n, p)
	if dev != "" {
		s.hist.add(kDev, ev.Time, n, p)
	}
	if netSeen || c.Earliest().IsZero() || ev.Time.Sub(c.Earliest()) < s.d.opts.Warmup {
		return
	}
	if ws := ev.Time.Truncate(s.d.opts.Window); ws.Equal(co.start) {
		co.firsts++
	}
	// Forget candidates older than a horizon, or beyond the cap.
	i := 0
	for ; i < len(s.candQ); i++ {
		old := s.candQ[i]
		if len(s.candQ)-i < maxCands && ev.Time.Sub(old.at) <= s.d.opts.Recovery {
			break
		}
		if key := candKey(old.acct, old.src); s.cands[key] == old {
			delete(s.cands, key)
		}
	}
	if i > 0 {
		clear(s.candQ[:i])
		s.candQ = s.candQ[i:]
		if cap(s.candQ) > 1024 && len(s.candQ) < cap(s.candQ)/4 {
			s.candQ = append([]*cand(nil), s.candQ...)
		}
	}
	if dev == "" || devSeen {
		return // a device it used before, or none to tell
	}
	cd := &cand{at: ev.Time, acct: acct, src: ev.Source.IP, co: co, known: known, device: dev, ua: agentKey(ev.UserAgent)}
	s.cands[candKey(acct, ev.Source.IP)] = cd
	s.candQ = append(s.candQ, cd)
}

// deviceOf is a user agent's kind of device, coarsely: its operating
// system (from the first parenthesised comment) and its first product's
// name ("Mozilla" for any browser, else the app or library). A browser or
// app updating itself keeps it; another phone, computer or program does
// not. Coarser than token_binding's user-agent family on purpose (every
// browser on one OS is one kind): a coarser kind is "seen" more often,
// which only names fewer tokens. "" when there is no user agent.
func deviceOf(ua string) string {
	ua = strings.TrimSpace(ua)
	if ua == "" {
		return ""
	}
	if len(ua) > 512 {
		ua = ua[:512]
	}
	l := strings.ToLower(ua)
	product := l
	if i := strings.IndexAny(product, " (/"); i >= 0 {
		product = product[:i]
	}
	os := "other"
	comment := ""
	if i := strings.IndexByte(l, '('); i >= 0 {
		comment = l[i:]
		if j := strings.IndexByte(comment, ')'); j >= 0 {
			comment = comment[:j]
		}
	}
	for _, o := range [...]struct{ marker, name string }{
		{"windows", "Windows"}, {"iphone", "iOS"}, {"ipad", "iOS"}, {"cpu os", "iOS"}, {"android", "Android"},
		{"cros", "ChromeOS"}, {"mac os", "macOS"}, {"macintosh", "macOS"}, {"linux", "Linux"}, {"x11", "Linux"},
	} {
		if strings.Contains(comment, o.marker) {
			os = o.name
			break
		}
	}
	return product + " on " + os
}

// candKey keys a candidate by account and source address.
func candKey(acct uint64, src netip.Addr) uint64 {
	a16 := src.As16()
	return mix(acct ^ fnv1a(a16[:]))
}

// mix is a 64-bit finaliser (SplitMix64's).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// history is a filter of what accounts did (logged in; from a network; on
// a kind of device), in two generations (the current one fills for a
// period, then becomes the older): an entry it has not seen did not
// happen within the last period or two; one it has may be a false "seen"
// (about 2 % at 1.7 million entries in 2^24 bits), which only names fewer
// tokens. Allocated at the first login.
type history struct {
	cur, prev []uint64
	start     time.Time
}

func (h *history) bits(k uint64, n int, f func(w int, b uint64) bool) bool {
	h2 := mix(k) | 1
	for i := range uint64(histHashes) {
		p := (k + i*h2) % uint64(n)
		if !f(int(p/64), uint64(1)<<(p%64)) {
			return false
		}
	}
	return true
}

// has reports whether k may have been added.
func (h *history) has(k uint64) bool {
	if h.cur == nil {
		return false
	}
	n := len(h.cur) * 64
	in := func(set []uint64) bool {
		return set != nil && h.bits(k, n, func(w int, b uint64) bool { return set[w]&b != 0 })
	}
	return in(h.cur) || in(h.prev)
}

// add adds k at t, starting a new generation when the current one has
// filled for period.
func (h *history) add(k uint64, t time.Time, nbits int, period time.Duration) {
	if h.cur == nil {
		h.cur, h.start = make([]uint64, nbits/64), t
	} else if age := t.Sub(h.start); age >= period {
		old := h.prev
		h.prev, h.start = h.cur, t
		if age >= 2*period {
			h.prev = nil // nothing logged in for a whole period
		}
		if old == nil {
			old = make([]uint64, nbits/64)
		}
		clear(old)
		h.cur = old
	}
	h.bits(k, nbits, func(w int, b uint64) bool { h.cur[w] |= b; return true })
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
		if !co.fired && !co.active(co.start, window) {
			// A campaign's own first visits are not the network's.
			co.firstPeak.Observe(co.start, window, co.firsts, decay)
		}
	}
	if !co.fired && !co.active(start, window) {
		clear(co.agents) // no campaign under way: its agents start anew
		co.agentTotal = 0
	}
	co.start = start
	co.firsts = 0
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
