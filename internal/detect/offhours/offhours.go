// Package offhours flags staff, service and partner identities acting at
// hours when neither they nor their role's peers normally act — the CS
// agent looking customers up at 3 a.m.
//
// Like record_volume it keys on the role carried in user.roles, so an
// identity meets its peers on one shard. Per role and per identity it
// keeps a decaying 24-bin histogram of activity by hour of day (UTC: the
// profile is relative, so no time zone is needed). An event is off-hours
// when, at its hour and the hours either side (people start early and stay
// late), the identity's own share of activity and its role's share are
// both below MaxShare (default 2%), and both have enough history
// to say so (MinHistory events, default 200 for the role and 50 for the
// identity). A new identity is judged by its role alone. Reported once per
// identity per day, about the identity, with its share and its role's.
//
// On-call engineers build night activity into their own and their role's
// profile and are not flagged. The profiles describe the hours of the
// identity's usual place: an event from a source located in another
// country than the one the identity usually acts from (a majority vote
// over its located events, or the roster's identity.country when it
// gives one) is neither judged nor learnt — the hour of a
// person abroad says nothing about their habits, and acting from abroad
// is principal_geo's to judge; nor is anything it does within a day of
// such an event (a traveller connecting through the office VPN appears at
// home, at the hours of where they are), nor anything later in a session
// (the same token) that began within that day: a traveller's last
// working day on the VPN is one session, however long. Events without a country (office networks
// with no enrichment) count as the usual place.
package offhours

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
)

// Name is the detector's stable name.
const Name = "off_hours"

// Kind and score of its finding.
const (
	Kind  = "off_hours_access"
	Score = 45
)

// EntityRole is the entity kind of the shard key.
const EntityRole event.EntityKind = "role"

// Options configure the detector. Zero values take the defaults.
type Options struct {
	MaxShare       float64 // share of activity at an hour below which it is unusual (0.02)
	MinRoleHistory float64 // events the role needs before it can judge (200)
	MinOwnHistory  float64 // events the identity needs before its own profile counts (50)
	HalfLifeInDays float64 // decay of the profiles (30)
}

func (o *Options) defaults() {
	if o.MaxShare <= 0 {
		o.MaxShare = 0.02
	}
	if o.MinRoleHistory <= 0 {
		o.MinRoleHistory = 200
	}
	if o.MinOwnHistory <= 0 {
		o.MinOwnHistory = 50
	}
	if o.HalfLifeInDays <= 0 {
		o.HalfLifeInDays = 30
	}
}

// Detector is the off-hours detector.
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

// Key implements engine.Detector: activity by an identity with a role
// keys on its first role; so does a roster entry with roles (it gives the
// identity's country).
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if ev.Dataset == event.DatasetRoster && len(ev.Identity.Roles) > 0 && ev.Identity.ID != "" {
		return event.EntityKey{Kind: EntityRole, ID: ev.Identity.Roles[0]}, true
	}
	if len(ev.User.Roles) == 0 || !ev.IsActivity() {
		return event.EntityKey{}, false
	}
	return event.EntityKey{Kind: EntityRole, ID: ev.User.Roles[0]}, true
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{opts: d.opts, roles: map[string]*profile{}, ids: map[string]*identity{}}
}

// profile is a decaying histogram of activity by hour of day.
type profile struct {
	bins  [24]float64
	total float64
	at    time.Time // time the weights are decayed to
}

func (p *profile) add(t time.Time, halfLife time.Duration) {
	if !p.at.IsZero() && t.After(p.at) {
		f := decayFactor(t.Sub(p.at), halfLife)
		for i := range p.bins {
			p.bins[i] *= f
		}
		p.total *= f
	}
	if t.After(p.at) {
		p.at = t
	}
	p.bins[t.UTC().Hour()]++
	p.total++
}

// share is the largest share of activity at hour h or the hours either
// side of it: people start early and stay late, so an hour next to a busy
// one is not unusual.
func (p *profile) share(h int) float64 {
	if p.total == 0 {
		return 0
	}
	m := max(p.bins[(h+23)%24], p.bins[h], p.bins[(h+1)%24])
	return m / p.total
}

type identity struct {
	own      profile
	reported int64 // day number of the last report
	home     string
	homeVote int
	rostered bool      // home comes from the roster: no votes
	abroadAt time.Time // last event from another country
	// travelToken is the token of the latest session that began while
	// the identity was travelling: its later events are not judged either.
	travelToken string
}

// travelling is how long after an event from abroad the identity's hours
// are not judged: someone abroad who connects through the office VPN
// appears at home at the hours of where they are.
const travelling = 24 * time.Hour

// abroad reports whether cc (a source country, possibly empty) differs
// from the identity's usual country, and votes cc into it (Boyer–Moore
// majority: the country most of its located events come from wins).
func (id *identity) abroad(cc string) bool {
	if cc == "" {
		return false
	}
	away := id.home != "" && cc != id.home && (id.homeVote >= 3 || id.rostered)
	switch {
	case id.rostered:
	case cc == id.home:
		id.homeVote++
	case id.homeVote == 0:
		id.home, id.homeVote = cc, 1
	default:
		id.homeVote--
	}
	return away
}

type shard struct {
	opts  Options
	roles map[string]*profile
	ids   map[string]*identity
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	if ev.Dataset == event.DatasetRoster {
		id := s.ids[ev.Identity.ID]
		if id == nil {
			id = &identity{reported: -1}
			s.ids[ev.Identity.ID] = id
		}
		if cc := strings.ToUpper(ev.Identity.Country); cc != "" {
			id.home, id.rostered = cc, true
		}
		return
	}
	halfLife := time.Duration(s.opts.HalfLifeInDays * float64(24*time.Hour))
	r := s.roles[key.ID]
	if r == nil {
		r = &profile{}
		s.roles[key.ID] = r
	}
	id := s.ids[ev.User.ID]
	if id == nil {
		id = &identity{reported: -1}
		s.ids[ev.User.ID] = id
	}
	if id.abroad(ev.Source.Country) {
		id.abroadAt = ev.Time
		if ev.Token.ID != "" {
			id.travelToken = ev.Token.ID
		}
		return
	}
	if !id.abroadAt.IsZero() && ev.Time.Sub(id.abroadAt) < travelling {
		if ev.Token.ID != "" {
			id.travelToken = ev.Token.ID
		}
		return
	}
	if ev.Token.ID != "" && ev.Token.ID == id.travelToken {
		return
	}
	h := ev.Time.UTC().Hour()
	roleShare, ownShare := r.share(h), id.own.share(h)
	roleKnows := r.total >= s.opts.MinRoleHistory
	ownKnows := id.own.total >= s.opts.MinOwnHistory
	unusual := roleKnows && roleShare < s.opts.MaxShare && (!ownKnows || ownShare < s.opts.MaxShare)
	if day := ev.Time.Unix() / 86400; unusual && day != id.reported {
		id.reported = day
		own := "it has too little history of its own"
		if ownKnows {
			own = fmt.Sprintf("%.1f%% of its own activity falls in that hour", 100*ownShare)
		}
		c.Emit(event.Finding{
			Kind:   Kind,
			Title:  "Access at hours unusual for the identity and its role",
			Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID},
			Time:   ev.Time,
			Score:  Score,
			Explanation: fmt.Sprintf("%s (%s) performed %s at %s (hour %02d UTC), when %s identities do at most %.1f%% of their activity (that hour or the next or previous) and %s%s.",
				ev.User.ID, key.ID, ev.Action, ev.Time.UTC().Format(time.RFC3339), h, key.ID, 100*roleShare, own, records(ev)),
			Evidence: []string{c.Ref(ev)},
			Figures: []event.Figure{{Name: "hour_utc", Value: float64(h)}, {Name: "role_share_pct", Value: math.Round(1000*roleShare) / 10},
				{Name: "own_share_pct", Value: math.Round(1000*ownShare) / 10}, {Name: "own_history_events", Value: math.Round(id.own.total)}},
		})
	}
	r.add(ev.Time, halfLife)
	id.own.add(ev.Time, halfLife)
}

func records(ev *event.Event) string {
	if n := len(ev.Records.IDs); n > 0 {
		return fmt.Sprintf("; it touched %d %s record(s)", n, ev.Records.Type)
	}
	return ""
}

// decayFactor is 2^(−d/halfLife).
func decayFactor(d, halfLife time.Duration) float64 {
	return math.Exp2(-float64(d) / float64(halfLife))
}

const snapshotVersion = 2 // 2: identity.travelToken

// AppendSnapshot implements engine.Snapshotter: the role and identity
// profiles, in key order.
func (s *shard) AppendSnapshot(w *snap.Writer) {
	w.Byte(snapshotVersion)
	w.Uint(uint64(len(s.roles)))
	for _, k := range slices.Sorted(maps.Keys(s.roles)) {
		w.String(k)
		s.roles[k].append(w)
	}
	w.Uint(uint64(len(s.ids)))
	for _, k := range slices.Sorted(maps.Keys(s.ids)) {
		id := s.ids[k]
		w.String(k)
		id.own.append(w)
		w.Int(id.reported)
		w.String(id.home)
		w.Int(int64(id.homeVote))
		w.Bool(id.rostered)
		w.Time(id.abroadAt)
		w.String(id.travelToken)
	}
}

// Restore implements engine.Snapshotter.
func (s *shard) Restore(r *snap.Reader) error {
	v := r.Byte()
	if r.Err() == nil && v != snapshotVersion && v != 1 {
		return fmt.Errorf("off_hours: snapshot version %d, want %d", v, snapshotVersion)
	}
	roles, ids := map[string]*profile{}, map[string]*identity{}
	for range r.Count(200) {
		k := r.String()
		p := &profile{}
		p.read(r)
		roles[k] = p
	}
	for range r.Count(200) {
		k := r.String()
		id := &identity{}
		id.own.read(r)
		id.reported = r.Int()
		id.home = r.String()
		id.homeVote = int(r.Int())
		id.rostered = r.Bool()
		id.abroadAt = r.Time()
		if v >= 2 {
			id.travelToken = r.String()
		}
		ids[k] = id
	}
	if err := r.End(); err != nil {
		return fmt.Errorf("off_hours: %w", err)
	}
	s.roles, s.ids = roles, ids
	return nil
}

func (p *profile) append(w *snap.Writer) {
	for _, b := range p.bins {
		w.Float(b)
	}
	w.Float(p.total)
	w.Time(p.at)
}

func (p *profile) read(r *snap.Reader) {
	for i := range p.bins {
		p.bins[i] = r.Float()
	}
	p.total = r.Float()
	p.at = r.Time()
}
