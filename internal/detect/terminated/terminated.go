// Package terminated detects activity by an identity the roster says was
// terminated.
//
// The roster feed (hr.roster events, streamed or loaded from a snapshot at
// start-up through the same engine) tells the detector who left and when.
// Any activity (an event with user.id outside the roster and key feeds) by
// that identity after its termination time plus a grace period is a
// critical, immediate finding: a departed employee's credentials must be
// dead.
//
// State is kept only for identities the roster has named, keyed by
// principal, so millions of customers cost a map miss each. Each known
// identity keeps its last few activities, so a termination that arrives
// after the activity it covers (HR back-dates terminated_at, or the feed
// is late) still finds it. A later identity.upsert with status active and
// an event time after the termination (a rehire) clears it.
package terminated

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// Name is the detector's stable name.
const Name = "terminated_identity"

// Kind is the finding kind.
const Kind = "activity_after_termination"

// Score of a finding: critical.
const Score = 95

// recentN is how many recent activities each roster identity remembers for
// back-dated terminations.
const recentN = 16

// Options configure the detector.
type Options struct {
	// Grace after terminated_at during which activity is tolerated
	// (sessions draining, a last hand-over). Default 0.
	Grace time.Duration
	// CorporatePrefixes and CorporateASNs are the company's networks. A
	// finding about activity from an address outside them is tagged
	// event.TagExternalAccess (a departed employee from outside is an
	// outsider). None configured: any public address is outside (private,
	// shared CGNAT, loopback and link-local addresses are inside). No
	// source address: not established, not tagged.
	CorporatePrefixes []netip.Prefix
	CorporateASNs     []uint32
}

// Detector is the terminated-identity detector. It holds only immutable
// configuration; per-shard state lives in the value NewShard returns.
type Detector struct{ opts Options }

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector { return &Detector{opts: opts} }

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: roster events key on identity.id,
// activity on user.id, both as principals.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) { return ev.PrincipalKey() }

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{opts: d.opts, ids: map[string]*identity{}}
}

type identity struct {
	kind         string
	roles        []string
	terminated   bool
	terminatedAt time.Time
	termRef      string
	statusTime   time.Time // event time of the roster event that set the status
	recent       [recentN]activity
	next         int
}

type activity struct {
	time time.Time
	ref  string
	// what the event did (what), without its time: an identity's
	// activities repeat it, and the ring shares one string among them.
	what    string
	outside bool // from outside the company's networks (Options)
	ok      bool
}

type shard struct {
	opts Options
	ids  map[string]*identity
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	if ev.Dataset == event.DatasetRoster {
		s.roster(c, key, ev)
		return
	}
	id := s.ids[key.ID]
	if id == nil {
		return // not an identity the roster knows
	}
	if id.terminated && ev.Time.After(id.terminatedAt.Add(s.opts.Grace)) {
		c.Emit(s.finding(key, id, ev.Time, ev.Time, c.Ref(ev), what(ev), s.outside(ev)))
		return
	}
	// Remember it: a back-dated termination may still cover it.
	w := what(ev)
	for i := range id.recent {
		if id.recent[i].what == w {
			w = id.recent[i].what
			break
		}
	}
	id.recent[id.next] = activity{time: ev.Time, ref: c.Ref(ev), what: w, outside: s.outside(ev), ok: true}
	id.next = (id.next + 1) % recentN
}

func (s *shard) roster(c *engine.Context, key event.EntityKey, ev *event.Event) {
	id := s.ids[key.ID]
	if id == nil {
		id = &identity{}
		s.ids[key.ID] = id
	}
	if ev.Identity.Kind != "" {
		id.kind = ev.Identity.Kind
	}
	if len(ev.Identity.Roles) > 0 {
		id.roles = ev.Identity.Roles
	}
	terminated := ev.Action == event.ActionIdentityTerminated || strings.EqualFold(ev.Identity.Status, "terminated")
	if !terminated {
		// A rehire (active again after the termination) clears it; a stale
		// "active" upsert from before the termination does not.
		if id.terminated && strings.EqualFold(ev.Identity.Status, "active") && ev.Time.After(id.terminatedAt) && ev.Time.After(id.statusTime) {
			id.terminated = false
			id.statusTime = ev.Time
		}
		return
	}
	at := ev.Identity.TerminatedAt
	if at.IsZero() {
		at = ev.Time
	}
	if id.terminated && !at.Before(id.terminatedAt) {
		return // already known, same or later date
	}
	id.terminated = true
	id.terminatedAt = at
	id.statusTime = ev.Time
	id.termRef = c.Ref(ev)
	// Activity seen before the roster told us, but after the termination.
	for i := range id.recent {
		a := &id.recent[i]
		if a.ok && a.time.After(at.Add(s.opts.Grace)) {
			// Known only now that the roster says so: the finding's time
			// is the roster event's, so time to detect counts the delay.
			c.Emit(s.finding(key, id, a.time, maxTime(a.time, ev.Time), a.ref, a.what, a.outside))
			a.ok = false
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// finding reports activity at t, known at the event time seen.
// outside reports whether ev came from outside the company's networks
// (see Options.CorporatePrefixes).
func (s *shard) outside(ev *event.Event) bool {
	ip := ev.Source.IP.Unmap()
	if !ip.IsValid() {
		return false
	}
	if len(s.opts.CorporatePrefixes) > 0 || len(s.opts.CorporateASNs) > 0 {
		if ev.Source.ASN != 0 && slices.Contains(s.opts.CorporateASNs, ev.Source.ASN) {
			return false
		}
		return !slices.ContainsFunc(s.opts.CorporatePrefixes, func(p netip.Prefix) bool { return p.Contains(ip) })
	}
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !sharedCGNAT.Contains(ip)
}

// sharedCGNAT is RFC 6598's shared address space (carrier-grade NAT).
var sharedCGNAT = netip.MustParsePrefix("100.64.0.0/10")

// what is what the activity did (see what).
func (s *shard) finding(key event.EntityKey, id *identity, t, seen time.Time, ref, what string, outside bool) event.Finding {
	who := key.ID
	var attrs []string
	if id.kind != "" {
		attrs = append(attrs, id.kind)
	}
	if len(id.roles) > 0 {
		attrs = append(attrs, strings.Join(id.roles, ", "))
	}
	if len(attrs) > 0 {
		who += " (" + strings.Join(attrs, "; ") + ")"
	}
	expl := fmt.Sprintf("%s was terminated at %s but performed %s at %s, %s after termination.",
		who, id.terminatedAt.UTC().Format(time.RFC3339), what, t.UTC().Format(time.RFC3339), humanDuration(t.Sub(id.terminatedAt)))
	return event.Finding{
		Kind:        Kind,
		Title:       "Activity by a terminated identity",
		Entity:      key,
		Time:        seen,
		Score:       Score,
		Severity:    event.SeverityCritical,
		Explanation: expl,
		Evidence:    []string{ref, id.termRef},
		Immediate:   true,
		Tags:        externalTag(outside),
	}
}

// externalTag is the finding's tags: event.TagExternalAccess when the
// activity came from outside the company's networks.
func externalTag(outside bool) []string {
	if outside {
		return []string{event.TagExternalAccess}
	}
	return nil
}

// what renders what the event did, for the explanation ("performed …
// at" its time): its action and dataset, source and records.
func what(ev *event.Event) string {
	var b strings.Builder
	b.WriteString(ev.Action)
	b.WriteString(" (")
	b.WriteString(ev.Dataset)
	b.WriteString(")")
	if ev.Source.IP.IsValid() {
		b.WriteString(" from ")
		b.WriteString(ev.Source.IP.String())
		if ev.Source.Country != "" || ev.Source.ASN != 0 {
			b.WriteString(" [")
			if ev.Source.Country != "" {
				b.WriteString(ev.Source.Country)
			}
			if ev.Source.ASN != 0 {
				if ev.Source.Country != "" {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "AS%d", ev.Source.ASN)
			}
			b.WriteString("]")
		}
	}
	if n := len(ev.Records.IDs); n > 0 {
		typ := ev.Records.Type
		if typ == "" {
			typ = "personal-data"
		}
		fmt.Fprintf(&b, " touching %d %s record", n, typ)
		if n > 1 {
			b.WriteString("s")
		}
	}
	return b.String()
}

// humanDuration renders a positive duration coarsely: "3d 4h", "2h 5m", "40s".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", d/time.Minute, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
