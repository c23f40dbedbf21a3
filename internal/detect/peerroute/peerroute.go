// Package peerroute flags staff, service and partner identities reading
// personal data through a route their role's peers do not use — the CS
// agent opening customer records directly instead of through the ticket
// they work on, the partner calling a lookup endpoint no partner calls.
//
// Like record_volume it keys on the role carried in user.roles, so an
// identity meets its peers on one shard and a new identity is judged
// against them from its first request. Only requests that touched records
// are considered. A route is the action, the HTTP method and the URL path
// with every segment that holds a digit replaced by {} (so
// /admin/tickets/T-41/customers/7 and …/T-98/customers/3 are one route).
//
// Per role it keeps each route's decaying share of the role's record
// reads and which identities used it lately; per identity, on how many
// days it used each route. A request is on an uncommon route when the role
// has history (MinRoleHistory reads over at least a day), the route's
// share of the role's reads is below MaxShare (default 0.5%), fewer than
// MinPeers other identities of the role (default 3) used it in the last 30
// days, and the identity itself used it on fewer than OwnDays days
// (default 3). Roles with fewer than MinPeers+1 identities seen are not
// judged: there are no peers to compare with. Reported once per identity,
// route and day, with score 50 — medium: a route is context, and an alert
// needs another line of evidence (the hour, the volume, the network).
//
// What it cannot see: misuse through the routes peers use (a CS agent
// opening a ticketed customer who is not the ticket's), and routes rolled
// out to a whole role at once are flagged for the first identities to use
// them until MinPeers have (a medium finding each, no alert alone).
package peerroute

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/baseline"
	"github.com/haechi-sec/haechi/internal/detect/urlpath"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
)

// Name is the detector's stable name.
const Name = "peer_route"

// Kind and score of its finding.
const (
	Kind  = "uncommon_route"
	Score = 50
)

// EntityRole is the entity kind of the shard key: a role.
const EntityRole = baseline.EntityRole

// Options configure the detector. Zero values take the defaults.
type Options struct {
	MaxShare       float64 // route's share of the role's reads below which it is uncommon (0.005)
	MinPeers       int     // other identities using a route that make it common (3)
	OwnDays        int     // days on which an identity used a route that make it its own habit (3)
	MinRoleHistory float64 // decayed record reads the role needs before judging (500)
	HalfLifeInDays float64 // decay of route weights (30)
}

func (o *Options) defaults() {
	if o.MaxShare <= 0 {
		o.MaxShare = 0.005
	}
	if o.MinPeers <= 0 {
		o.MinPeers = 3
	}
	if o.OwnDays <= 0 {
		o.OwnDays = 3
	}
	if o.MinRoleHistory <= 0 {
		o.MinRoleHistory = 500
	}
	if o.HalfLifeInDays <= 0 {
		o.HalfLifeInDays = 30
	}
}

// Bounds on state, so a role with endless distinct routes (ids the
// template missed) cannot grow without limit.
const (
	maxRoutesPerRole = 512
	maxRoutesPerID   = 64
	maxPeersKept     = 8
	peerMemoryDays   = 30
)

// Detector is the peer-route detector.
type Detector struct{ opts Options }

var (
	_ engine.Detector    = (*Detector)(nil)
	_ engine.Snapshotter = (*shard)(nil)
)

// New returns the detector.
func New(opts Options) *Detector {
	opts.defaults()
	return &Detector{opts: opts}
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: activity that touched records, by an
// identity with a role, keys on its first role.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) { return baseline.RecordReadByRole(ev) }

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{opts: d.opts, roles: map[string]*role{}}
}

type shard struct {
	opts  Options
	roles map[string]*role
}

type peer struct {
	id  string
	day int64
}

type route struct {
	weight float64
	peers  []peer // most recent users, up to maxPeersKept
}

type ownRoute struct {
	days    int
	lastDay int64
	fired   int64 // day of the last report, -1 none
}

type role struct {
	routes  map[string]*route
	total   float64
	at      time.Time // time the weights are decayed to
	first   time.Time
	members map[string]map[string]*ownRoute // identity → its routes
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	r := s.roles[key.ID]
	if r == nil {
		r = &role{routes: map[string]*route{}, members: map[string]map[string]*ownRoute{}, first: ev.Time}
		s.roles[key.ID] = r
	}
	r.decayTo(ev.Time, s.opts.HalfLifeInDays)
	name := Route(ev)
	day := ev.Time.Unix() / 86400
	mine := r.members[ev.User.ID]
	if mine == nil {
		mine = map[string]*ownRoute{}
		r.members[ev.User.ID] = mine
	}
	own := mine[name]
	rt := r.routes[name]

	// Judge before learning from the request.
	if r.total >= s.opts.MinRoleHistory && ev.Time.Sub(r.first) >= 24*time.Hour && len(r.members) > s.opts.MinPeers {
		share, peers := 0.0, 0
		if rt != nil {
			share = rt.weight / r.total
			peers = rt.recentPeers(ev.User.ID, day)
		}
		days := 0
		if own != nil {
			days = own.days
		}
		if share < s.opts.MaxShare && peers < s.opts.MinPeers && days < s.opts.OwnDays && (own == nil || own.fired != day) {
			if own == nil {
				own = &ownRoute{fired: -1}
				mine[name] = own
			}
			own.fired = day
			c.Emit(event.Finding{
				Kind:   Kind,
				Title:  "Personal data read through a route its peers do not use",
				Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID},
				Time:   ev.Time,
				Score:  Score,
				Explanation: fmt.Sprintf("%s (%s) read %s through %q, a route that carries %.2f%% of %s identities' record reads, that %s used in the last %d days, and that %s.",
					ev.User.ID, key.ID, recordsOf(ev), name, 100*share, key.ID, others(peers, key.ID), peerMemoryDays, ownUse(days)),
				Evidence: []string{c.Ref(ev)},
				Figures: []event.Figure{
					{Name: "role_share_pct", Value: math.Round(10000*share) / 100},
					{Name: "peers_using", Value: float64(peers)},
					{Name: "own_days", Value: float64(days)},
				},
			})
		}
	}

	// Learn.
	if rt == nil {
		if len(r.routes) >= maxRoutesPerRole {
			r.evictLightest()
		}
		rt = &route{}
		r.routes[name] = rt
	}
	rt.weight++
	r.total++
	rt.saw(ev.User.ID, day)
	if own == nil {
		if len(mine) >= maxRoutesPerID {
			return
		}
		own = &ownRoute{fired: -1}
		mine[name] = own
	}
	if own.days == 0 || own.lastDay != day {
		own.days++
		own.lastDay = day
	}
}

func others(n int, role string) string {
	switch n {
	case 0:
		return "no other " + role + " identity"
	case 1:
		return "only one other " + role + " identity"
	}
	return fmt.Sprintf("only %d other %s identities", n, role)
}

func ownUse(days int) string {
	if days == 0 {
		return "it had not used before"
	}
	return fmt.Sprintf("it had used on %d day(s) only", days)
}

func recordsOf(ev *event.Event) string {
	t := ev.Records.Type
	if t == "" {
		t = "record"
	}
	return fmt.Sprintf("%d %s record(s)", len(ev.Records.IDs), t)
}

// decayTo decays every route weight to t, at most once an hour.
func (r *role) decayTo(t time.Time, halfLifeDays float64) {
	if r.at.IsZero() {
		r.at = t
		return
	}
	dt := t.Sub(r.at)
	if dt < time.Hour {
		return
	}
	f := math.Exp2(-dt.Hours() / (24 * halfLifeDays))
	for _, rt := range r.routes {
		rt.weight *= f
	}
	r.total *= f
	r.at = t
}

func (r *role) evictLightest() {
	var worst string
	w := math.Inf(1)
	for name, rt := range r.routes {
		if rt.weight < w || (rt.weight == w && name < worst) {
			worst, w = name, rt.weight
		}
	}
	delete(r.routes, worst)
}

// saw records that id used the route on day.
func (rt *route) saw(id string, day int64) {
	if i := slices.IndexFunc(rt.peers, func(p peer) bool { return p.id == id }); i >= 0 {
		rt.peers[i].day = day
		return
	}
	if len(rt.peers) < maxPeersKept {
		rt.peers = append(rt.peers, peer{id, day})
		return
	}
	// Replace the least recent user.
	old := 0
	for i := range rt.peers {
		if rt.peers[i].day < rt.peers[old].day {
			old = i
		}
	}
	rt.peers[old] = peer{id, day}
}

// recentPeers counts identities other than self that used the route in the
// last peerMemoryDays days.
func (rt *route) recentPeers(self string, day int64) int {
	n := 0
	for _, p := range rt.peers {
		if p.id != self && day-p.day <= peerMemoryDays {
			n++
		}
	}
	return n
}

// Route is the route of a request: action, method and the URL path with
// every segment that holds a digit replaced by {}.
func Route(ev *event.Event) string {
	var b strings.Builder
	b.WriteString(ev.Action)
	if ev.HTTP.Method != "" {
		b.WriteByte(' ')
		b.WriteString(ev.HTTP.Method)
	}
	if ev.URLPath != "" {
		b.WriteByte(' ')
		b.WriteString(urlpath.Template(ev.URLPath))
	}
	return b.String()
}

const snapshotVersion = 1

// AppendSnapshot implements engine.Snapshotter: every role's routes and
// their recent users, and every identity's own routes.
func (s *shard) AppendSnapshot(w *snap.Writer) {
	w.Byte(snapshotVersion)
	w.Uint(uint64(len(s.roles)))
	for _, k := range slices.Sorted(maps.Keys(s.roles)) {
		r := s.roles[k]
		w.String(k)
		w.Float(r.total)
		w.Time(r.at)
		w.Time(r.first)
		w.Uint(uint64(len(r.routes)))
		for _, name := range slices.Sorted(maps.Keys(r.routes)) {
			rt := r.routes[name]
			w.String(name)
			w.Float(rt.weight)
			w.Uint(uint64(len(rt.peers)))
			for _, p := range rt.peers {
				w.String(p.id)
				w.Int(p.day)
			}
		}
		w.Uint(uint64(len(r.members)))
		for _, id := range slices.Sorted(maps.Keys(r.members)) {
			mine := r.members[id]
			w.String(id)
			w.Uint(uint64(len(mine)))
			for _, name := range slices.Sorted(maps.Keys(mine)) {
				o := mine[name]
				w.String(name)
				w.Int(int64(o.days))
				w.Int(o.lastDay)
				w.Int(o.fired)
			}
		}
	}
}

// Restore implements engine.Snapshotter.
func (s *shard) Restore(r *snap.Reader) error {
	if v := r.Byte(); r.Err() == nil && v != snapshotVersion {
		return fmt.Errorf("peer_route: snapshot version %d, want %d", v, snapshotVersion)
	}
	roles := map[string]*role{}
	for range r.Count(20) {
		k := r.String()
		ro := &role{routes: map[string]*route{}, members: map[string]map[string]*ownRoute{}}
		ro.total = r.Float()
		ro.at = r.Time()
		ro.first = r.Time()
		for range r.Count(10) {
			name := r.String()
			rt := &route{weight: r.Float()}
			for range r.Count(2) {
				rt.peers = append(rt.peers, peer{id: r.String(), day: r.Int()})
			}
			ro.routes[name] = rt
		}
		for range r.Count(2) {
			id := r.String()
			mine := map[string]*ownRoute{}
			for range r.Count(4) {
				name := r.String()
				mine[name] = &ownRoute{days: int(r.Int()), lastDay: r.Int(), fired: r.Int()}
			}
			ro.members[id] = mine
		}
		roles[k] = ro
	}
	if err := r.End(); err != nil {
		return fmt.Errorf("peer_route: %w", err)
	}
	s.roles = roles
	return nil
}
