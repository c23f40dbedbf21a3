// Package keyposture detects signing keys whose posture invites forgery: a
// key still active after one of its custodians left, and a key kept active
// past its rotation age. Both are raised from the reference feeds alone,
// before any forged token is ever used — a key whose holder has left is a
// finding even if it is never misused.
//
// Input. The key inventory (keys.inventory events with key.id: key.created,
// key.retired, or any action carrying key.status and key.custodians) and
// the roster (hr.roster events with identity.id). Both are small reference
// feeds that must be joined (key custodian ↔ roster identity), so Key maps
// every one of them to the single constant entity InventoryEntity: the two
// feeds meet on one shard, whatever the shard count, and that shard holds
// the whole state. All other events are ignored (ok=false); they still move
// the engine's watermark, which is what drives re-raises.
//
// State (one shard): per key — active or retired (and since when), creation
// time (the key.created event's time, else the first sighting), the union of
// its custodians over time (someone who once held the key material still
// may), evidence references and when each finding kind was last raised; per
// identity — only custodians of a known key and terminated identities are
// remembered: kind, termination time and evidence. A later identity.upsert
// with status active and an event time after the termination (a rehire)
// clears the termination, as in the terminated detector. A key is retired
// from key.retired_at (else the retiring event's time) on; an active
// upsert later than that reactivates it.
//
// Findings, all about the key (entity key:<key.id>, the thing to revoke):
//
//   - key_custodian_terminated (score 85, high, immediate): when an
//     identity is terminated, for each active key it is a custodian of;
//     when a key is created or upserted naming a custodian already
//     terminated. Its time is the event time of the latest evidence (the
//     termination event, the key event). While the key stays active and a
//     custodian stays terminated it is raised again every Reraise of event
//     time, from Advance: at the latest multiple of Reraise past the last
//     raise that the watermark has reached — one finding per Advance however
//     many periods the watermark skipped.
//   - key_rotation_overdue (score 60, medium): when the watermark passes
//     created + RotationAge on a key still active, at the latest multiple
//     of Reraise past that moment, then every Reraise while active.
//
// No re-raise is ever timed at or after the key's retirement. The final
// Advance with engine.EndOfTime means the input ended, not that time passed:
// it emits nothing.
//
// What it cannot see: a key never listed in the inventory (tokens signed by
// it are the forged-token detectors' business), custodians the inventory
// does not name, and departures the roster does not report.
package keyposture

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// Name is the detector's stable name.
const Name = "key_posture"

// Finding kinds.
const (
	KindCustodianTerminated = "key_custodian_terminated"
	KindRotationOverdue     = "key_rotation_overdue"
)

// Scores of the findings.
const (
	ScoreCustodianTerminated = 85 // high
	ScoreRotationOverdue     = 60 // medium
)

// Option defaults.
const (
	DefaultRotationAge = 365 * 24 * time.Hour
	DefaultReraise     = 24 * time.Hour
)

// The one entity every roster and inventory event is keyed on: both feeds
// are small and must be joined, so they meet on one shard.
const (
	InventoryKind event.EntityKind = "inventory"
	InventoryID   string           = "signing-keys"
)

// InventoryEntity is the constant key of every event the detector reads.
var InventoryEntity = event.EntityKey{Kind: InventoryKind, ID: InventoryID}

// Options configure the detector.
type Options struct {
	// RotationAge is how long a key may stay active after its creation
	// (≤0 → DefaultRotationAge, 365 days).
	RotationAge time.Duration
	// Reraise is the event-time period at which a standing finding is
	// raised again while the key stays active (≤0 → DefaultReraise, 24h).
	Reraise time.Duration
}

// Detector is the signing-key posture detector. It holds only immutable
// configuration; the state lives in the value NewShard returns.
type Detector struct{ opts Options }

var _ engine.Detector = (*Detector)(nil)

// New returns the detector, applying the defaults of Options.
func New(opts Options) *Detector {
	if opts.RotationAge <= 0 {
		opts.RotationAge = DefaultRotationAge
	}
	if opts.Reraise <= 0 {
		opts.Reraise = DefaultReraise
	}
	return &Detector{opts: opts}
}

// Options returns the effective options (defaults applied).
func (d *Detector) Options() Options { return d.opts }

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: roster events with identity.id and key
// inventory events with key.id all key on InventoryEntity; nothing else is
// read. It does not allocate.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	switch ev.Dataset {
	case event.DatasetRoster:
		if ev.Identity.ID != "" {
			return InventoryEntity, true
		}
	case event.DatasetKeys:
		if ev.Key.ID != "" {
			return InventoryEntity, true
		}
	}
	return event.EntityKey{}, false
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{opts: d.opts, keys: map[string]*key{}, ids: map[string]*identity{}}
}

type key struct {
	id             string
	created        time.Time
	createdByEvent bool // created is a key.created event's time
	createdRef     string
	ref            string    // latest key event asserting the key, for evidence
	refTime        time.Time // its event time
	retired        bool
	retiredAt      time.Time
	statusTime     time.Time // event time of the event that set retired
	custodians     []string  // union over time, first-seen order
	// announced maps a custodian to the termination (identity.gen) already
	// raised for this key.
	announced       map[string]int
	custodianRaised time.Time // last key_custodian_terminated time
	rotationRaised  time.Time // last key_rotation_overdue time
}

// activeAt reports whether the key was active at t as far as is known.
func (k *key) activeAt(t time.Time) bool { return !k.retired || t.Before(k.retiredAt) }

// limit caps wm to the last instant the key was active.
func (k *key) limit(wm time.Time) time.Time {
	if k.retired && !k.retiredAt.After(wm) {
		return k.retiredAt.Add(-time.Nanosecond)
	}
	return wm
}

type identity struct {
	kind         string
	terminated   bool
	terminatedAt time.Time // identity.terminated_at, else the event time
	termTime     time.Time // event time of the roster event reporting it
	termRef      string
	statusTime   time.Time // event time of the event that last set the status
	gen          int       // counts terminations, so a re-termination is news
}

type shard struct {
	opts  Options
	keys  map[string]*key
	order []string // key ids, sorted: deterministic emission order
	ids   map[string]*identity
	next  time.Time // earliest time Advance may emit at; zero: none
	dirty bool      // next must be recomputed
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, _ event.EntityKey, ev *event.Event) {
	switch ev.Dataset {
	case event.DatasetRoster:
		s.roster(c, ev)
	case event.DatasetKeys:
		s.inventory(c, ev)
	}
}

func (s *shard) roster(c *engine.Context, ev *event.Event) {
	idv := ev.Identity.ID
	terminated := ev.Action == event.ActionIdentityTerminated || strings.EqualFold(ev.Identity.Status, "terminated")
	id := s.ids[idv]
	if id == nil {
		if !terminated {
			return // neither a custodian nor departed: nothing to remember
		}
		id = &identity{}
		s.ids[idv] = id
	}
	if ev.Identity.Kind != "" {
		id.kind = ev.Identity.Kind
	}
	if !terminated {
		// A rehire (active again after the termination) clears it; a stale
		// "active" upsert from before the termination does not.
		if id.terminated && strings.EqualFold(ev.Identity.Status, "active") && ev.Time.After(id.terminatedAt) && ev.Time.After(id.statusTime) {
			id.terminated = false
			id.statusTime = ev.Time
			s.dirty = true
		}
		return
	}
	at := ev.Identity.TerminatedAt
	if at.IsZero() {
		at = ev.Time
	}
	if id.terminated {
		if at.Before(id.terminatedAt) { // back-dated: the same departure
			id.terminatedAt = at
			id.termRef = c.Ref(ev)
			id.statusTime = ev.Time
		}
		return
	}
	if !id.statusTime.IsZero() && !at.After(id.statusTime) {
		return // a stale report of a departure a rehire has since cleared
	}
	id.terminated = true
	id.gen++
	id.terminatedAt = at
	id.termTime = ev.Time
	id.termRef = c.Ref(ev)
	id.statusTime = ev.Time
	for _, kid := range s.order {
		if k := s.keys[kid]; slices.Contains(k.custodians, idv) {
			s.announce(c, k)
		}
	}
	s.dirty = true
}

func (s *shard) inventory(c *engine.Context, ev *event.Event) {
	kid := ev.Key.ID
	k := s.keys[kid]
	if k == nil {
		k = &key{id: kid, announced: map[string]int{}}
		s.keys[kid] = k
		i, _ := slices.BinarySearch(s.order, kid)
		s.order = slices.Insert(s.order, i, kid)
	}
	ref := c.Ref(ev)
	if ev.Action == event.ActionKeyCreated {
		if !k.createdByEvent || ev.Time.Before(k.created) {
			k.created, k.createdRef, k.createdByEvent = ev.Time, ref, true
		}
	} else if !k.createdByEvent && (k.created.IsZero() || ev.Time.Before(k.created)) {
		k.created, k.createdRef = ev.Time, ref
	}
	for _, cid := range ev.Key.Custodians {
		if cid == "" || slices.Contains(k.custodians, cid) {
			continue
		}
		k.custodians = append(k.custodians, cid)
		if s.ids[cid] == nil {
			s.ids[cid] = &identity{}
		}
	}
	if ev.Action == event.ActionKeyRetired || strings.EqualFold(ev.Key.Status, "retired") {
		at := ev.Key.RetiredAt
		if at.IsZero() {
			at = ev.Time
		}
		if !k.retired || at.Before(k.retiredAt) {
			k.retired, k.retiredAt, k.statusTime = true, at, ev.Time
		}
		if k.ref == "" {
			k.ref, k.refTime = ref, ev.Time
		}
	} else {
		// Reactivated only by news later than the retirement, not by a
		// stale snapshot.
		if k.retired && strings.EqualFold(ev.Key.Status, "active") && ev.Time.After(k.retiredAt) && ev.Time.After(k.statusTime) {
			k.retired, k.retiredAt, k.statusTime = false, time.Time{}, ev.Time
		}
		if k.ref == "" || !ev.Time.Before(k.refTime) {
			k.ref, k.refTime = ref, ev.Time
		}
	}
	s.announce(c, k)
	s.dirty = true
}

// announce raises key_custodian_terminated for k when one of its terminated
// custodians has not been raised yet and the key is active at the time of
// the latest evidence.
func (s *shard) announce(c *engine.Context, k *key) {
	fresh := false
	t := k.refTime
	for _, cid := range k.custodians {
		id := s.ids[cid]
		if id == nil || !id.terminated {
			continue
		}
		if id.termTime.After(t) {
			t = id.termTime
		}
		if k.announced[cid] != id.gen {
			fresh = true
		}
	}
	if !fresh || !k.activeAt(t) {
		return
	}
	for _, cid := range k.custodians {
		if id := s.ids[cid]; id != nil && id.terminated {
			k.announced[cid] = id.gen
		}
	}
	c.Emit(s.custodianFinding(k, t, false))
	if t.After(k.custodianRaised) {
		k.custodianRaised = t
	}
}

// Advance implements engine.Advancer: the re-raises and rotation findings.
func (s *shard) Advance(c *engine.Context, wm time.Time) {
	if !wm.Before(engine.EndOfTime) {
		return // the input ended; time did not pass
	}
	if s.dirty {
		s.recompute()
	}
	if s.next.IsZero() || wm.Before(s.next) {
		return
	}
	r := s.opts.Reraise
	for _, kid := range s.order {
		k := s.keys[kid]
		lim := k.limit(wm)
		if !k.custodianRaised.IsZero() && s.hasDeparted(k) {
			if n := lim.Sub(k.custodianRaised) / r; n >= 1 {
				t := k.custodianRaised.Add(n * r)
				c.Emit(s.custodianFinding(k, t, true))
				k.custodianRaised = t
			}
		}
		if k.created.IsZero() {
			continue
		}
		var t time.Time
		if k.rotationRaised.IsZero() {
			due := k.created.Add(s.opts.RotationAge)
			if lim.Before(due) {
				continue
			}
			t = due.Add(lim.Sub(due) / r * r)
		} else {
			n := lim.Sub(k.rotationRaised) / r
			if n < 1 {
				continue
			}
			t = k.rotationRaised.Add(n * r)
		}
		c.Emit(s.rotationFinding(k, t))
		k.rotationRaised = t
	}
	s.recompute()
}

// hasDeparted reports whether a terminated custodian of k has been raised.
func (s *shard) hasDeparted(k *key) bool {
	for _, cid := range k.custodians {
		if id := s.ids[cid]; id != nil && id.terminated && k.announced[cid] == id.gen {
			return true
		}
	}
	return false
}

// recompute sets next, the earliest time any key has a finding due.
func (s *shard) recompute() {
	s.dirty = false
	s.next = time.Time{}
	consider := func(k *key, t time.Time) {
		if !k.activeAt(t) {
			return
		}
		if s.next.IsZero() || t.Before(s.next) {
			s.next = t
		}
	}
	for _, kid := range s.order {
		k := s.keys[kid]
		if !k.custodianRaised.IsZero() && s.hasDeparted(k) {
			consider(k, k.custodianRaised.Add(s.opts.Reraise))
		}
		switch {
		case k.created.IsZero():
		case k.rotationRaised.IsZero():
			consider(k, k.created.Add(s.opts.RotationAge))
		default:
			consider(k, k.rotationRaised.Add(s.opts.Reraise))
		}
	}
}

func (s *shard) custodianFinding(k *key, t time.Time, reraise bool) event.Finding {
	var who, refs []string
	for _, cid := range k.custodians {
		id := s.ids[cid]
		if id == nil || !id.terminated {
			continue
		}
		w := cid
		if id.kind != "" {
			w += " (" + id.kind + ")"
		}
		switch {
		case !reraise && id.terminatedAt.After(t):
			w += " leaves on " + id.terminatedAt.UTC().Format(time.RFC3339)
		case !reraise:
			w += " left on " + id.terminatedAt.UTC().Format(time.RFC3339)
		default:
			w += " " + since(t.Sub(id.terminatedAt))
		}
		who = append(who, w)
		refs = append(refs, id.termRef)
	}
	refs = append(refs, k.ref)
	noun := "custodian"
	if len(who) > 1 {
		noun = "custodians"
	}
	var expl string
	if reraise {
		expl = fmt.Sprintf("Key %s's %s %s; the key is still active.", k.id, noun, join(who))
	} else {
		expl = fmt.Sprintf("Key %s is still active; its %s %s.", k.id, noun, join(who))
	}
	return event.Finding{
		Kind:        KindCustodianTerminated,
		Title:       "Signing key held by a departed custodian",
		Entity:      event.EntityKey{Kind: event.EntitySigningKey, ID: k.id},
		Time:        t,
		Score:       ScoreCustodianTerminated,
		Severity:    event.SeverityForScore(ScoreCustodianTerminated),
		Explanation: expl,
		Evidence:    refs,
		Immediate:   true,
	}
}

func (s *shard) rotationFinding(k *key, t time.Time) event.Finding {
	expl := fmt.Sprintf("Key %s has been active since %s (%d days), past the %s rotation age.",
		k.id, k.created.UTC().Format(time.DateOnly), t.Sub(k.created)/(24*time.Hour), age(s.opts.RotationAge))
	return event.Finding{
		Kind:        KindRotationOverdue,
		Title:       "Signing key overdue for rotation",
		Entity:      event.EntityKey{Kind: event.EntitySigningKey, ID: k.id},
		Time:        t,
		Score:       ScoreRotationOverdue,
		Severity:    event.SeverityForScore(ScoreRotationOverdue),
		Explanation: expl,
		Evidence:    []string{k.createdRef},
	}
}

// since renders how long ago a departure was: "left 175 days ago", or
// "leaves in 3 days" for a termination dated in the future.
func since(d time.Duration) string {
	if d < 0 {
		return "leaves in " + span(-d)
	}
	return "left " + span(d) + " ago"
}

// span renders a duration coarsely in days, hours or minutes.
func span(d time.Duration) string {
	n, unit := int64(d/time.Minute), "minute"
	switch {
	case d >= 24*time.Hour:
		n, unit = int64(d/(24*time.Hour)), "day"
	case d >= time.Hour:
		n, unit = int64(d/time.Hour), "hour"
	}
	if n != 1 {
		unit += "s"
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// age renders the rotation age: "365-day", or the duration when it is not
// a whole number of days.
func age(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d-day", d/(24*time.Hour))
	}
	return d.String()
}

// join renders "a", "a and b", "a, b and c".
func join(xs []string) string {
	if len(xs) <= 1 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}
