// Package privileged watches privileged identities — those holding an
// administrator's or similar role — for the lines of evidence of a
// takeover. Each is its own line of evidence (event.Finding.Line), so the
// alert stage counts them separately — each shared with the detector that
// owns the same observation for everyone, so that the two do not
// corroborate each other — and every finding is marked
// Privileged, so the alert stage weighs the identity's whole risk by
// alerts.privileged_multiplier (entity criticality):
//
//   - privileged_first_activity (line identity_lifecycle, 40): the identity acts for
//     the first time after at least Idle (30 days) without activity —
//     measured from the roster's identity.last_active when the roster
//     gives it, else from its last activity seen — or, with neither, for
//     the first time once haechi has watched for FirstAfter (7 days): an
//     administrator nobody saw for a week of watching. At start-up,
//     without identity.last_active, an identity's first activity only
//     sets the clock (no history is not a long silence).
//   - privileged_new_country (line principal_geo, 40): a country it has never
//     acted from, nor the roster's identity.country. The first country of
//     an identity the roster gives none is its own; eight are remembered
//     (beyond that it travels and the line is not judged). A network it
//     never used is principal_geo's new_network: one observation, one line.
//   - privileged_off_hours (line off_hours, 30): activity outside the
//     company's working hours in the company's time zone, wherever the
//     identity is (an administrator abroad acting in its afternoon is
//     acting in the company's night). The working hours are configured
//     (Options.Location with WorkStart, WorkEnd and WorkDays) or, by
//     default, learnt from the role's own activity: a decaying profile of
//     its identity-hours by hour of day (UTC — a profile needs no time
//     zone); an hour is off-hours when it and the hours either side hold
//     less than LearnMaxShare (2%) of the role's identity-hours, once the
//     profile holds a day's worth (LearnMinHours 24 identity-hours over at
//     least 24 hours of watching). A learnt profile has no weekdays: a
//     weekend afternoon is working hours. Once per identity per company day,
//     and not when it is the identity's habit: it acted off-hours from the
//     same place (the country it is in) on an earlier day within 30 days —
//     a night shift, a maintenance window, a traveller in another time
//     zone is news on its first day, not every day. The place of an
//     identity that acted from abroad within the last day is that country
//     even when an event shows home (a traveller on the office VPN).
//   - privileged_bulk_export (line privileged_identity, 50): the records its
//     sensitive actions (exports, role changes; configurable action
//     patterns) touched in a day — one per action that names none —
//     reach max(ExportFloor 100, ExportFactor 4 × max(its own busiest
//     past day, its role's 99th percentile of identity-days)). Checked at
//     every sensitive action, so a bulk export is reported at its first
//     request when that request alone crosses. Once per identity per day.
//
// Every finding names the source address and the token of its event as
// related, so a response can end the session and block where it came
// from without disabling the administrator.
//
// The detector keys on the identity's first privileged role (user.roles
// on activity, identity.roles on the roster), like record_volume, so an
// identity meets its peers on one shard. Events by identities with no
// privileged role cost one role scan in Key.
package privileged

import (
	"cmp"
	"fmt"
	"math"
	"path"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// Name is the detector's stable name.
const Name = "privileged_identity"

// Finding kinds, their lines of evidence and scores.
const (
	KindFirstActivity = "privileged_first_activity"
	KindNewCountry    = "privileged_new_country"
	KindOffHours      = "privileged_off_hours"
	KindBulkExport    = "privileged_bulk_export"

	// The lines of evidence (event.Finding.Line) are named after the
	// detector that owns the observation, so the same observation seen by
	// two detectors is counted once: a long silence is identity_lifecycle's,
	// a new place principal_geo's, an unusual hour off_hours'. The export
	// line is this detector's own.
	LineReturn = "identity_lifecycle"
	LinePlace  = "principal_geo"
	LineHours  = "off_hours"
	LineExport = Name

	ScoreFirstActivity = 40
	ScoreNewCountry    = 40
	ScoreOffHours      = 30
	ScoreBulkExport    = 50
)

// EntityRole is the entity kind of the shard key.
const EntityRole event.EntityKind = "role"

// DefaultRoles are the privileged roles when none are configured: a role
// matches case-insensitively, and "*" at either end of a pattern matches
// any prefix or suffix.
var DefaultRoles = []string{"admin", "administrator", "*-admin", "admin-*", "superuser", "super-admin", "root", "owner", "dba", "security-admin", "iam-admin"}

// DefaultSensitiveActions are the sensitive actions when none are
// configured: path.Match patterns on event.action, case-insensitive.
var DefaultSensitiveActions = []string{"*export*", "*download*", "*dump*", "*role.grant*", "*role.assign*", "*role.change*", "*role.update*", "*roles.*", "*permission.grant*"}

// Options configure the detector. Zero values take the defaults.
type Options struct {
	Roles            []string
	SensitiveActions []string
	// Location is the company's time zone; working hours are
	// [WorkStart, WorkEnd) after local midnight (08:00–20:00) on WorkDays
	// (nil → Monday to Friday). Nil: the working hours are learnt from
	// the role's activity (see the package comment), and a company day
	// starts at the quietest hour of the learnt profile.
	Location           *time.Location
	WorkStart, WorkEnd time.Duration
	WorkDays           []time.Weekday
	// Idle is the silence after which activity is a finding (30 days);
	// FirstAfter how long haechi must have watched before an identity's
	// first activity is (7 days).
	Idle, FirstAfter time.Duration
	// ExportFloor and ExportFactor set the bulk-export bar (100, 4).
	ExportFloor  float64
	ExportFactor float64
}

func (o *Options) defaults() {
	if len(o.Roles) == 0 {
		o.Roles = DefaultRoles
	}
	if len(o.SensitiveActions) == 0 {
		o.SensitiveActions = DefaultSensitiveActions
	}
	if o.WorkStart == 0 && o.WorkEnd == 0 {
		o.WorkStart, o.WorkEnd = 8*time.Hour, 20*time.Hour
	}
	if len(o.WorkDays) == 0 {
		o.WorkDays = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	}
	if o.Idle <= 0 {
		o.Idle = 30 * 24 * time.Hour
	}
	if o.FirstAfter <= 0 {
		o.FirstAfter = 7 * 24 * time.Hour
	}
	if o.ExportFloor <= 0 {
		o.ExportFloor = 100
	}
	if o.ExportFactor <= 0 {
		o.ExportFactor = 4
	}
}

// Detector is the privileged-identity detector.
type Detector struct {
	opts     Options
	roles    []string // lower-case patterns
	actions  []string // lower-case patterns
	workDays [7]bool
}

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector {
	opts.defaults()
	d := &Detector{opts: opts}
	for _, r := range opts.Roles {
		d.roles = append(d.roles, strings.ToLower(r))
	}
	for _, a := range opts.SensitiveActions {
		d.actions = append(d.actions, strings.ToLower(a))
	}
	for _, w := range opts.WorkDays {
		d.workDays[w%7] = true
	}
	return d
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: activity by an identity holding a
// privileged role keys on that role; so does a roster entry naming one.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if ev.Dataset == event.DatasetRoster {
		if r, ok := d.privilegedRole(ev.Identity.Roles); ok && ev.Identity.ID != "" {
			return event.EntityKey{Kind: EntityRole, ID: r}, true
		}
		return event.EntityKey{}, false
	}
	if len(ev.User.Roles) == 0 || !ev.IsActivity() {
		return event.EntityKey{}, false
	}
	if r, ok := d.privilegedRole(ev.User.Roles); ok {
		return event.EntityKey{Kind: EntityRole, ID: r}, true
	}
	return event.EntityKey{}, false
}

// privilegedRole returns the first role matching a privileged pattern.
func (d *Detector) privilegedRole(roles []string) (string, bool) {
	for _, r := range roles {
		for _, p := range d.roles {
			if matchRole(p, r) {
				return r, true
			}
		}
	}
	return "", false
}

// matchRole matches a lower-case pattern with an optional "*" at either
// end against a role, case-insensitively, without allocating.
func matchRole(p, r string) bool {
	pre, suf := strings.HasPrefix(p, "*"), strings.HasSuffix(p, "*") && len(p) > 1
	core := strings.TrimSuffix(strings.TrimPrefix(p, "*"), "*")
	switch {
	case pre && suf:
		return len(r) >= len(core) && containsFold(r, core)
	case pre:
		return len(r) >= len(core) && strings.EqualFold(r[len(r)-len(core):], core)
	case suf:
		return len(r) >= len(core) && strings.EqualFold(r[:len(core)], core)
	}
	return strings.EqualFold(p, r)
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

func (d *Detector) sensitive(action string) bool {
	a := strings.ToLower(action)
	for _, p := range d.actions {
		if ok, _ := path.Match(p, a); ok {
			return true
		}
	}
	return false
}

// Learning the working hours (Options.Location nil): an hour of day is
// off-hours when it and the hours either side hold less than
// LearnMaxShare of the role's identity-hours, judged once the profile
// holds LearnMinHours identity-hours gathered over at least a day.
const (
	LearnMaxShare = 0.02
	LearnMinHours = 24
	hoursHalfLife = 30 * 24 * time.Hour
)

// clock is a company clock reading: the time shown in explanations, the
// company day number and whether the time is outside working hours.
type clock struct {
	local time.Time
	day   int64
	off   bool
	share float64 // learnt: the role's share of identity-hours at the hour (±1)
}

// offHours reads t on the company clock: the configured one, or the one
// learnt in hp (which may not know yet: then nothing is off-hours and
// days are UTC days).
func (d *Detector) offHours(t time.Time, hp *hours) clock {
	if loc := d.opts.Location; loc != nil {
		l := t.In(loc)
		mid := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
		since := l.Sub(mid)
		off := !d.workDays[l.Weekday()] || since < d.opts.WorkStart || since >= d.opts.WorkEnd
		return clock{local: l, day: dayNumber(l), off: off}
	}
	u := t.UTC()
	if !hp.ready(t) {
		return clock{local: u, day: dayNumber(u)}
	}
	h := u.Hour()
	share := hp.share(h)
	// The company day starts at the quietest hour, so one working day is
	// one day wherever the company is.
	q := time.Duration(hp.quietest()) * time.Hour
	return clock{local: u, day: dayNumber(u.Add(-q)), off: share < LearnMaxShare, share: share}
}

// hours is a role's decaying profile of identity-hours by UTC hour of day
// (one per identity per clock hour it acted in), with the time it began.
type hours struct {
	bins  [24]float64
	total float64
	at    time.Time
	first time.Time
}

func (p *hours) add(t time.Time) {
	if p.first.IsZero() || t.Before(p.first) {
		p.first = t
	}
	if !p.at.IsZero() && t.After(p.at) {
		f := math.Exp2(-float64(t.Sub(p.at)) / float64(hoursHalfLife))
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

// ready reports whether the profile can judge at t: a day's worth of
// identity-hours, gathered over at least a day.
func (p *hours) ready(t time.Time) bool {
	return p != nil && p.total >= LearnMinHours && t.Sub(p.first) >= 24*time.Hour
}

// share is the largest share of identity-hours at hour h or the hours
// either side (people start early and stay late).
func (p *hours) share(h int) float64 {
	return max(p.bins[(h+23)%24], p.bins[h], p.bins[(h+1)%24]) / p.total
}

// quietest is the hour of day starting the quietest three hours.
func (p *hours) quietest() int {
	best, q := math.Inf(1), 0
	for h := range 24 {
		if v := p.bins[h] + p.bins[(h+1)%24] + p.bins[(h+2)%24]; v < best {
			best, q = v, h
		}
	}
	return q
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{d: d, ids: map[string]*identity{}, roles: map[string]*peers{}, hours: map[string]*hours{}}
}

const maxCountries = 8

type identity struct {
	rosterLast    time.Time // identity.last_active of the latest roster entry
	rosterCountry string
	last          time.Time // last activity seen, event time
	lastRef       string
	countries     []string
	offDay        int64 // company-local day of the last off-hours report
	day           int64 // company-local day of the export tally
	tally         float64
	ownMax        float64 // busiest past day's tally
	exportDay     int64   // day of the last bulk-export report
	home          string  // roster country, else the first country seen
	abroad        string  // the foreign country of its latest event from abroad
	abroadAt      time.Time
	offPlaces     []offPlace
	hour          int64 // the last clock hour (Unix hours) counted in the role's profile
}

// offPlace is where an identity has acted off-hours: the country it was
// in and the first and last company days of it.
type offPlace struct {
	country     string
	first, last int64
}

// Habits: off-hours from a place on an earlier day within habitDays is
// the identity's schedule; an identity acted from abroad within
// abroadFor is there.
const (
	habitDays    = 30
	maxOffPlaces = 8
	abroadFor    = 24 * time.Hour
)

// habitual records off-hours activity from place on day and reports
// whether the identity acted off-hours from there on an earlier day
// within habitDays.
func (x *identity) habitual(place string, day int64) bool {
	for i := range x.offPlaces {
		p := &x.offPlaces[i]
		if p.country != place {
			continue
		}
		if day-p.last > habitDays {
			p.first = day
		}
		p.last = max(p.last, day)
		return p.first < day
	}
	if len(x.offPlaces) < maxOffPlaces {
		x.offPlaces = append(x.offPlaces, offPlace{country: place, first: day, last: day})
	}
	return false
}

// peers is a role's decaying log₂ histogram of identity-day tallies of
// sensitive records (0 included: a day an identity acted without
// exporting), with a 30-day half-life.
type peers struct {
	bins  [24]float64
	total float64
	at    time.Time
}

const peerHalfLife = 30 * 24 * time.Hour

// minPeerDays is the identity-days a role needs before its percentile
// counts.
const minPeerDays = 10

func (p *peers) add(v float64, t time.Time) {
	if !p.at.IsZero() && t.After(p.at) {
		f := math.Exp2(-float64(t.Sub(p.at)) / float64(peerHalfLife))
		for i := range p.bins {
			p.bins[i] *= f
		}
		p.total *= f
	}
	if t.After(p.at) {
		p.at = t
	}
	b := min(int(math.Log2(v+1)), len(p.bins)-1)
	p.bins[b]++
	p.total++
}

// p99 is the upper edge of the bin holding the 99th percentile, 0 without
// enough history.
func (p *peers) p99() float64 {
	if p == nil || p.total < minPeerDays {
		return 0
	}
	cum := 0.0
	for i, w := range p.bins {
		cum += w
		if cum >= 0.99*p.total {
			return math.Exp2(float64(i+1)) - 1
		}
	}
	return math.Exp2(float64(len(p.bins))) - 1
}

type shard struct {
	d     *Detector
	ids   map[string]*identity
	roles map[string]*peers
	hours map[string]*hours // learnt working hours by role (Options.Location nil)
}

func (s *shard) identity(id string) *identity {
	x := s.ids[id]
	if x == nil {
		x = &identity{offDay: -1 << 62, day: -1 << 62, exportDay: -1 << 62}
		s.ids[id] = x
	}
	return x
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	if ev.Dataset == event.DatasetRoster {
		x := s.identity(ev.Identity.ID)
		if !ev.Identity.LastActive.IsZero() {
			x.rosterLast = ev.Identity.LastActive
		}
		if ev.Identity.Country != "" {
			x.rosterCountry = strings.ToUpper(ev.Identity.Country)
			x.home = x.rosterCountry
		}
		return
	}
	id := ev.User.ID
	x := s.identity(id)
	principal := event.EntityKey{Kind: event.EntityPrincipal, ID: id}
	emit := func(kind, line, title string, score float64, expl string, figs []event.Figure, refs ...string) {
		f := event.Finding{
			Kind: kind, Line: line, Title: title, Entity: principal, Time: ev.Time, Score: score,
			Explanation: expl, Evidence: append([]string{c.Ref(ev)}, refs...), Figures: figs, Privileged: true,
		}
		if ev.Source.IP.IsValid() {
			f.Related = append(f.Related, event.EntityKey{Kind: event.EntitySource, ID: ev.Source.IP.String()})
		}
		if ev.Token.ID != "" {
			f.Related = append(f.Related, event.EntityKey{Kind: event.EntityToken, ID: ev.Token.ID})
		}
		c.Emit(f)
	}
	who := fmt.Sprintf("Privileged identity %s (%s)", id, key.ID)

	// Return after a long silence, or a first appearance.
	prev, prevRef := x.last, x.lastRef
	if x.rosterLast.After(prev) {
		prev, prevRef = x.rosterLast, ""
	}
	switch {
	case !prev.IsZero():
		if gap := ev.Time.Sub(prev); gap >= s.d.opts.Idle {
			src := "its last activity seen"
			if prevRef == "" {
				src = "the roster's identity.last_active"
			}
			var refs []string
			if prevRef != "" {
				refs = append(refs, prevRef)
			}
			emit(KindFirstActivity, LineReturn, "Privileged identity active after a long silence", ScoreFirstActivity,
				fmt.Sprintf("%s performed %s%s at %s, its first activity in %d days (last active %s, from %s).",
					who, ev.Action, from(ev), ev.Time.UTC().Format(time.RFC3339), int(gap.Hours()/24), prev.UTC().Format(time.RFC3339), src),
				[]event.Figure{{Name: "idle_days", Value: math.Floor(gap.Hours() / 24)}}, refs...)
		}
	case !c.Earliest().IsZero() && ev.Time.Sub(c.Earliest()) >= s.d.opts.FirstAfter:
		watched := ev.Time.Sub(c.Earliest())
		emit(KindFirstActivity, LineReturn, "Privileged identity active for the first time", ScoreFirstActivity,
			fmt.Sprintf("%s performed %s%s at %s, its first activity in the %d days haechi has watched.",
				who, ev.Action, from(ev), ev.Time.UTC().Format(time.RFC3339), int(watched.Hours()/24)),
			[]event.Figure{{Name: "watched_days", Value: math.Floor(watched.Hours() / 24)}})
	}
	if ev.Time.After(x.last) {
		x.last, x.lastRef = ev.Time, c.Ref(ev)
	}

	// A country it never acted from.
	if cc := strings.ToUpper(ev.Source.Country); cc != "" && cc != x.rosterCountry && !contains(x.countries, cc) {
		if len(x.countries) < maxCountries {
			if len(x.countries) > 0 || x.rosterCountry != "" {
				known := x.countries
				if x.rosterCountry != "" {
					known = append([]string{x.rosterCountry}, known...)
				}
				emit(KindNewCountry, LinePlace, "Privileged identity in a new country", ScoreNewCountry,
					fmt.Sprintf("%s performed %s%s at %s, from %s, a country it has never acted from (known: %s).",
						who, ev.Action, from(ev), ev.Time.UTC().Format(time.RFC3339), cc, strings.Join(known, ", ")),
					[]event.Figure{{Name: "known_countries", Value: float64(len(known))}})
			}
			x.countries = append(x.countries, cc)
		}
	}

	// Where it is: abroad when this event, or one within the last day,
	// came from a country other than its home.
	cc := strings.ToUpper(ev.Source.Country)
	if x.home == "" {
		x.home = cmp.Or(x.rosterCountry, cc)
	}
	place := x.home
	if cc != "" && cc != x.home {
		x.abroad, x.abroadAt = cc, ev.Time
		place = cc
	} else if x.abroad != "" && ev.Time.Sub(x.abroadAt) < abroadFor && !ev.Time.Before(x.abroadAt) {
		place = x.abroad
	}

	// Outside the company's working hours, unless it is the identity's
	// habit from where it is. The learnt profile counts the event after
	// judging it.
	hp := s.hours[key.ID]
	if hp == nil && s.d.opts.Location == nil {
		hp = &hours{}
		s.hours[key.ID] = hp
	}
	ck := s.d.offHours(ev.Time, hp)
	local, lday := ck.local, ck.day
	if ck.off && lday != x.offDay && !x.habitual(place, lday) {
		x.offDay = lday
		if loc := s.d.opts.Location; loc != nil {
			emit(KindOffHours, LineHours, "Privileged identity active outside working hours", ScoreOffHours,
				fmt.Sprintf("%s performed %s%s at %s company time (%s), outside the company's working hours (%s–%s, %s).",
					who, ev.Action, from(ev), local.Format("Mon 15:04"), loc, hhmm(s.d.opts.WorkStart), hhmm(s.d.opts.WorkEnd), days(s.d.workDays)),
				[]event.Figure{{Name: "local_hour", Value: float64(local.Hour())}})
		} else {
			emit(KindOffHours, LineHours, "Privileged identity active outside working hours", ScoreOffHours,
				fmt.Sprintf("%s performed %s%s at %s UTC, outside the working hours learnt from its %s role's activity: that hour and the hours either side hold %.1f%% of the role's identity-hours (below %.0f%%).",
					who, ev.Action, from(ev), local.Format("Mon 15:04"), key.ID, 100*ck.share, 100*LearnMaxShare),
				[]event.Figure{{Name: "hour_utc", Value: float64(local.Hour())}, {Name: "role_share_pct", Value: math.Round(1000*ck.share) / 10}})
		}
	}
	if hp != nil {
		if h := ev.Time.Unix() / 3600; h != x.hour {
			x.hour = h
			hp.add(ev.Time)
		}
	}

	// The day's sensitive records against its own and its peers' days.
	p := s.roles[key.ID]
	if p == nil {
		p = &peers{}
		s.roles[key.ID] = p
	}
	if lday != x.day {
		if x.day != -1<<62 {
			p.add(x.tally, ev.Time)
			x.ownMax = max(x.ownMax, x.tally)
		}
		x.day, x.tally = lday, 0
	}
	if !s.d.sensitive(ev.Action) {
		return
	}
	x.tally += float64(max(len(ev.Records.IDs), 1))
	peer := p.p99()
	bar := max(s.d.opts.ExportFloor, s.d.opts.ExportFactor*max(x.ownMax, peer))
	if x.tally >= bar && x.exportDay != lday {
		x.exportDay = lday
		emit(KindBulkExport, LineExport, "Privileged identity exporting far more than its peers", ScoreBulkExport,
			fmt.Sprintf("%s performed %s%s at %s; its sensitive actions touched %.0f records today, against its own busiest day %.0f and its %s peers' 99th percentile %.0f (bar %.0f).",
				who, ev.Action, from(ev), ev.Time.UTC().Format(time.RFC3339), x.tally, x.ownMax, key.ID, peer, bar),
			[]event.Figure{{Name: "records_today", Value: x.tally}, {Name: "own_max", Value: x.ownMax}, {Name: "peers_p99", Value: peer}, {Name: "bar", Value: bar}})
	}
}

func dayNumber(local time.Time) int64 {
	y, m, d := local.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func hhmm(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60)
}

func days(w [7]bool) string {
	var out []string
	for i := 1; i <= 7; i++ {
		if w[i%7] {
			out = append(out, time.Weekday(i % 7).String()[:3])
		}
	}
	return strings.Join(out, " ")
}

func from(ev *event.Event) string {
	if !ev.Source.IP.IsValid() {
		return ""
	}
	s := " from " + ev.Source.IP.String()
	if ev.Source.Country != "" {
		s += " [" + ev.Source.Country + "]"
	}
	return s
}
