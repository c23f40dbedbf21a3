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
// profile and are not flagged; a person working from another time zone
// is (the simulator labels that hard but benign).
package offhours

import (
	"fmt"
	"math"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
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

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector {
	opts.defaults()
	return &Detector{opts: opts}
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: activity by an identity with a role
// keys on its first role.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
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
}

type shard struct {
	opts  Options
	roles map[string]*profile
	ids   map[string]*identity
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
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
