// Package fanout detects one source acting as many principals: the
// signature of impersonation at scale (forged or stolen tokens replayed
// from a few servers), even when each principal only reads its own data.
//
// State is keyed by network — the autonomous system when the event carries
// source.as.number (from upstream or from haechi's MaxMind enrichment),
// otherwise the address's /24 (IPv4) or /64 (IPv6) — so one shard sees
// every address of a network and can judge an address against its peers.
// Per network it keeps, in tumbling windows of event time (default one
// hour), the distinct principals each address acted as (exact, capped),
// the records they touched, and across windows:
//
//   - the address's own history: the most principals it served in a past
//     window (decaying, forgotten after a week idle);
//   - the network's peer history: a log₂ histogram of per-address,
//     per-window distinct principals over past windows (decaying).
//
// An address is flagged — once per window, at the moment it crosses, so
// the time to detect is the time to reach the threshold — when its
// distinct principals in the window reach
//
//	max(floor, factor × max(own past maximum, network's 99th percentile))
//
// Carrier NAT (thousands of customers behind one address) raises both its
// own history and its network's, so it does not fire; a hosting network,
// where an address normally serves one principal, fires at the floor.
// A network never seen before has no peers: only the floor applies, so
// after a restart (state is not yet checkpointed) a busy NAT address can
// fire until its network's history has built up — the floor is the guard.
//
// The finding is about the source address, which is what a block
// contains; the explanation names the network, the counts and the
// baseline it was compared with.
//
// Rotation across a network: a scraper that spreads its forged sessions
// over many addresses of one hosting network keeps every address under
// the per-address threshold. So the network's distinct principals per
// window (across all its addresses, exact up to NetMaxTracked) are also
// compared with the network's own past maximum (decaying):
//
//	max(NetFloor, factor × network's past maximum)
//
// (the baseline scaled by how far the whole traffic on the shard exceeds
// its own peak, so a surge of everyone — a marketing campaign — lifts the
// bar with it) reached from at least two addresses is kind
// network_fanout, about the
// network (entity kind "network": an AS, or a /24 or /64), once per window.
// Only networks whose past maximum is below NetFloor are judged: carrier
// and broadband networks serve hundreds or thousands of customers an hour,
// and there a rotating scraper looks like their customers (and a marketing
// surge lifts them all at once); a network that has never served NetFloor
// principals in a window suddenly doing so from several addresses has no
// such excuse. Counts saturate at NetMaxTracked, where a network is never
// judged either. Cold start: a network present when watching
// began is judged only after Warmup (default 24h) of its own history — its
// daily peak is not yet known — while a network first seen after Warmup of
// watching is new and judged at once. An attack already running from a
// network when haechi starts is therefore learned as that network's normal
// at this level (the per-address rule and principal_geo still see it).
//
// The same per-address window also counts logins (auth.login): an address
// whose failed logins in a window span at least FailFloor distinct
// principals, with at least half of its logins failing, is trying
// passwords across accounts (credential stuffing, password spraying) —
// kind login_failure_fanout, reported once per address and window. Carrier
// NAT addresses see many customers' logins but mostly successful ones.
package fanout

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/baseline"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/netname"
)

// Name is the detector's stable name.
const Name = "source_fanout"

// Kind is the finding kind.
const Kind = "source_fanout"

// KindNetwork is the finding kind for many principals across one network.
const KindNetwork = "network_fanout"

// KindLoginFailures is the finding kind for failed logins across accounts.
const KindLoginFailures = "login_failure_fanout"

// EntityNetwork is the entity kind of the shard key: an AS or a prefix.
const EntityNetwork event.EntityKind = "network"

// Options configure the detector. Zero values take the defaults.
type Options struct {
	// Window is the counting window (default 1h).
	Window time.Duration
	// Floor is the fewest distinct principals per address per window that
	// can be flagged (default 20).
	Floor int
	// Factor multiplies the baseline (default 4).
	Factor float64
	// MaxTracked caps the distinct principals counted exactly per address
	// and window (default 4096); above it the count stops growing.
	MaxTracked int
	// FailFloor is the fewest distinct principals with failed logins from
	// one address in a window that is flagged (default 5).
	FailFloor int
	// NetFloor is the fewest distinct principals per network and window
	// that can be flagged as rotation across the network (default 100).
	NetFloor int
	// NetMaxTracked caps the distinct principals counted per network and
	// window (default 16384); a network reaching it is never judged.
	NetMaxTracked int
	// Warmup is how much history a network present at start-up needs
	// before it is judged as a whole (default 24h).
	Warmup time.Duration
}

func (o *Options) defaults() {
	if o.Window <= 0 {
		o.Window = time.Hour
	}
	if o.Floor <= 0 {
		o.Floor = 20
	}
	if o.Factor <= 0 {
		o.Factor = 4
	}
	if o.MaxTracked <= 0 {
		o.MaxTracked = 4096
	}
	if o.FailFloor <= 0 {
		o.FailFloor = 5
	}
	if o.NetFloor <= 0 {
		o.NetFloor = 100
	}
	if o.NetMaxTracked <= 0 {
		o.NetMaxTracked = 16384
	}
	if o.Warmup <= 0 {
		o.Warmup = 24 * time.Hour
	}
}

const (
	decay      = 0.95 // per closed window, of the network histogram
	ownDecay   = 0.97 // per closed window, of an address's maximum
	minPeers   = 20.0 // histogram weight below which a network has no baseline
	idleForget = 7 * 24 * time.Hour
	maxRefs    = 3 // evidence refs kept per address and window
)

// Detector is the source fan-out detector.
type Detector struct {
	opts  Options
	names netname.Cache
}

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector {
	opts.defaults()
	return &Detector{opts: opts}
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: activity with a principal and a source
// address keys on the source's network.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if !ev.Source.IP.IsValid() || !ev.IsActivity() {
		return event.EntityKey{}, false
	}
	return event.EntityKey{Kind: EntityNetwork, ID: d.names.Network(ev.Source)}, true
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{opts: d.opts, nets: map[string]*network{}}
}

type shard struct {
	opts Options
	nets map[string]*network

	// The shard's whole traffic per window (requests), against its own
	// decaying peak: how much the population as a whole has grown, so a
	// surge of everyone (a marketing campaign) is not one network's.
	popStart time.Time
	popCount float64
	popPeak  baseline.Peak
}

type network struct {
	start time.Time // current window start
	addrs map[netip.Addr]*addrWindow
	hist  baseline.Log2Hist // per-address distinct principals per window
	own   map[netip.Addr]*baseline.Peak
	asOrg string

	first      time.Time           // first event seen from the network
	reqs       int                 // requests this window
	principals map[string]struct{} // this window, across addresses (capped)
	drillPrins int                 // of which drill principals: not learnt
	records    int
	netRefs    []string
	netFired   bool
	netPeak    baseline.Peak // the network's distinct principals per window
}

type addrWindow struct {
	// drill: a drill run's address (event.Event.Drill): judged, but its
	// counts stay out of the network's and its own baselines.
	drill      bool
	principals map[string]struct{}
	records    int
	requests   int
	refs       []string
	fired      bool

	logins, failures int
	failed           map[string]struct{} // principals with a failed login
	failRefs         []string
	failFired        bool
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	n := s.nets[key.ID]
	if n == nil {
		n = &network{addrs: map[netip.Addr]*addrWindow{}, own: map[netip.Addr]*baseline.Peak{},
			principals: map[string]struct{}{}, first: ev.Time}
		s.nets[key.ID] = n
	}
	if ev.Source.ASOrg != "" {
		n.asOrg = ev.Source.ASOrg
	}
	start := ev.Time.Truncate(s.opts.Window)
	if start.After(n.start) {
		n.roll(start, s.opts.Window)
	}
	if start.After(s.popStart) {
		if !s.popStart.IsZero() {
			s.popPeak.Observe(s.popStart, s.opts.Window, s.popCount, ownDecay)
		}
		s.popStart, s.popCount = start, 0
	}
	// Drill traffic (event.Event.Drill) is judged like any other but
	// learnt from by no baseline: not the population's, the network's,
	// nor the address's own.
	if !ev.Drill {
		s.popCount++
		n.reqs++
	}
	a := n.addrs[ev.Source.IP]
	if a == nil {
		a = &addrWindow{principals: map[string]struct{}{}, drill: ev.Drill}
		n.addrs[ev.Source.IP] = a
	}
	a.drill = a.drill && ev.Drill
	a.requests++
	a.records += len(ev.Records.IDs)
	if ev.Dataset == event.DatasetLogin {
		s.login(c, key, n, a, ev)
	}
	if _, seen := a.principals[ev.User.ID]; !seen && len(a.principals) < s.opts.MaxTracked {
		a.principals[ev.User.ID] = struct{}{}
		if len(a.refs) < maxRefs {
			a.refs = append(a.refs, c.Ref(ev))
		}
	}
	s.network(c, key, n, ev)
	if a.fired {
		return
	}
	own, peer := n.baseline(ev.Source.IP)
	threshold := math.Max(float64(s.opts.Floor), s.opts.Factor*math.Max(own, peer))
	count := len(a.principals)
	if float64(count) < threshold {
		return
	}
	a.fired = true
	evidence := append([]string(nil), a.refs...)
	if ref := c.Ref(ev); evidence[len(evidence)-1] != ref {
		evidence = append(evidence, ref)
	}
	netName := key.ID
	if n.asOrg != "" {
		netName += " " + n.asOrg
	}
	base := fmt.Sprintf("its own past maximum is %s and addresses in %s serve at most %s per window (99th percentile)",
		count0(own), key.ID, count0(peer))
	if peer == 0 {
		base = fmt.Sprintf("its own past maximum is %s and %s has no history yet", count0(own), key.ID)
	}
	expl := fmt.Sprintf("%s (%s) acted as %d distinct principals between %s and %s, touching %d records in %d requests; %s, so the threshold was %.0f.",
		ev.Source.IP, netName, count, n.start.UTC().Format(time.RFC3339), ev.Time.UTC().Format(time.RFC3339),
		a.records, a.requests, base, threshold)
	score := 70.0
	if float64(count) >= 4*threshold {
		score = 85
	}
	c.Emit(event.Finding{
		Kind:        Kind,
		Title:       "One source acting as many principals",
		Entity:      event.EntityKey{Kind: event.EntitySource, ID: ev.Source.IP.String()},
		Time:        ev.Time,
		Score:       score,
		Explanation: expl,
		Evidence:    evidence,
	})
}

// network counts the event's principal across the whole network and flags
// the network when its distinct principals in the window reach its
// threshold from several addresses.
func (s *shard) network(c *engine.Context, key event.EntityKey, n *network, ev *event.Event) {
	n.records += len(ev.Records.IDs)
	if len(n.principals) >= s.opts.NetMaxTracked {
		return
	}
	if _, seen := n.principals[ev.User.ID]; seen {
		return
	}
	n.principals[ev.User.ID] = struct{}{}
	if ev.Drill {
		n.drillPrins++
	}
	if len(n.netRefs) < maxRefs {
		n.netRefs = append(n.netRefs, c.Ref(ev))
	}
	count := len(n.principals)
	if n.netFired || count < s.opts.NetFloor || len(n.addrs) < 2 || count >= s.opts.NetMaxTracked {
		return
	}
	if n.netPeak.Max >= float64(s.opts.NetFloor) {
		return // a consumer-scale network: rotation looks like its customers
	}
	known := n.start.Sub(n.first) >= s.opts.Warmup
	fresh := !c.Earliest().IsZero() && n.first.Sub(c.Earliest()) >= s.opts.Warmup
	if !known && !fresh {
		return
	}
	// Growth is judged against the rest of the population's: when
	// everyone else's traffic has doubled, a network must have grown
	// factor × 2 to stand out.
	surge := 1.0
	if s.popPeak.Max > 0 {
		surge = math.Max(1, (s.popCount-float64(n.reqs))/s.popPeak.Max)
	}
	threshold := math.Max(float64(s.opts.NetFloor), s.opts.Factor*n.netPeak.Max*surge)
	if float64(count) < threshold {
		return
	}
	n.netFired = true
	busiest := 0
	for _, a := range n.addrs {
		busiest = max(busiest, len(a.principals))
	}
	netName := key.ID
	if n.asOrg != "" {
		netName += " (" + n.asOrg + ")"
	}
	base := fmt.Sprintf("its own past maximum is %s per window", count0(n.netPeak.Max))
	if surge > 1 {
		base += fmt.Sprintf(" and all traffic is %.1f× its usual peak", surge)
	}
	if fresh && !known {
		base = fmt.Sprintf("it was first seen %s, after %s of watching, so it has no history", n.first.UTC().Format(time.RFC3339), s.opts.Warmup)
	}
	evidence := append([]string(nil), n.netRefs...)
	if ref := c.Ref(ev); evidence[len(evidence)-1] != ref {
		evidence = append(evidence, ref)
	}
	score := 70.0
	if float64(count) >= 4*threshold {
		score = 85
	}
	c.Emit(event.Finding{
		Kind:   KindNetwork,
		Title:  "One network acting as many principals across rotating addresses",
		Entity: event.EntityKey{Kind: EntityNetwork, ID: key.ID},
		Time:   ev.Time,
		Score:  score,
		Explanation: fmt.Sprintf("%s acted as %d distinct principals from %d addresses (at most %d from one) between %s and %s, touching %d records; %s, so the threshold was %.0f.",
			netName, count, len(n.addrs), busiest, n.start.UTC().Format(time.RFC3339), ev.Time.UTC().Format(time.RFC3339),
			n.records, base, threshold),
		Evidence: evidence,
	})
}

// login counts a login attempt and flags the address when its failures
// span many accounts and dominate its logins.
func (s *shard) login(c *engine.Context, key event.EntityKey, n *network, a *addrWindow, ev *event.Event) {
	a.logins++
	if ev.Outcome != event.OutcomeFailure {
		return
	}
	a.failures++
	if a.failed == nil {
		a.failed = map[string]struct{}{}
	}
	if _, seen := a.failed[ev.User.ID]; !seen && len(a.failed) < s.opts.MaxTracked {
		a.failed[ev.User.ID] = struct{}{}
		if len(a.failRefs) < maxRefs {
			a.failRefs = append(a.failRefs, c.Ref(ev))
		}
	}
	if a.failFired || len(a.failed) < s.opts.FailFloor || 2*a.failures < a.logins {
		return
	}
	a.failFired = true
	netName := key.ID
	if n.asOrg != "" {
		netName += " " + n.asOrg
	}
	evidence := append([]string(nil), a.failRefs...)
	if ref := c.Ref(ev); evidence[len(evidence)-1] != ref {
		evidence = append(evidence, ref)
	}
	c.Emit(event.Finding{
		Kind:   KindLoginFailures,
		Title:  "Failed logins across many accounts from one source",
		Entity: event.EntityKey{Kind: event.EntitySource, ID: ev.Source.IP.String()},
		Time:   ev.Time,
		Score:  70,
		Explanation: fmt.Sprintf("%s (%s) failed to log in as %d distinct principals between %s and %s (%d of its %d logins failed): it is trying passwords across accounts.",
			ev.Source.IP, netName, len(a.failed), n.start.UTC().Format(time.RFC3339), ev.Time.UTC().Format(time.RFC3339), a.failures, a.logins),
		Evidence: evidence,
	})
}

// roll closes the current window: every address's count goes into its own
// history and the network's histogram, and a new window starts.
func (n *network) roll(start time.Time, window time.Duration) {
	if !n.start.IsZero() {
		n.hist.Decay(decay)
		for addr, a := range n.addrs {
			if a.drill {
				continue
			}
			c := float64(len(a.principals))
			n.hist.Add(uint64(c))
			o := n.own[addr]
			if o == nil {
				o = &baseline.Peak{}
				n.own[addr] = o
			}
			o.Observe(start, window, c, ownDecay)
		}
		for addr, o := range n.own {
			if start.Sub(o.Last) > idleForget {
				delete(n.own, addr)
			}
		}
		if real := len(n.principals) - n.drillPrins; real > 0 || n.drillPrins == 0 {
			n.netPeak.Observe(n.start, window, float64(real), ownDecay)
		}
	}
	clear(n.addrs)
	clear(n.principals)
	n.records, n.reqs, n.netRefs, n.netFired, n.drillPrins = 0, 0, nil, false, 0
	n.start = start
}

// baseline returns the address's own past maximum and the network's 99th
// percentile of per-address counts (0 when it has too little history).
func (n *network) baseline(addr netip.Addr) (own, peer float64) {
	if o := n.own[addr]; o != nil {
		own = o.Max
	}
	return own, n.hist.Quantile(0.99, minPeers)
}

func count0(f float64) string {
	return strconv.FormatFloat(math.Round(f), 'f', 0, 64)
}
