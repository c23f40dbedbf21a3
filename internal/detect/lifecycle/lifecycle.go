// Package lifecycle watches staff and service identities for use that
// their life cycle does not explain: an identity that comes back after a
// long dormancy, and a service identity driven from an interactive client.
//
// State is keyed by principal and kept only for identities the roster
// names as employee, contractor or service (or, for services, that carry
// the "service" role on their events): customers cost a map miss. For each
// it remembers when it last acted. Dormancy is measured in event time from
// what the stream has shown: an identity that has not acted since the
// detector started is not dormant yet (no history is not a long silence),
// so the first activity after start only sets the clock.
//
//   - dormant_identity_active: activity after at least Dormancy (default
//     90 days) without any. Score 55.
//   - service_interactive_client: a service identity whose request carries
//     a browser user agent ("Mozilla/"): services call from code, so a
//     browser means a person holding the service's credential. Score 65.
//     Reported once per identity per day.
package lifecycle

import (
	"fmt"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// Name is the detector's stable name.
const Name = "identity_lifecycle"

// Finding kinds and scores.
const (
	KindDormant     = "dormant_identity_active"
	KindInteractive = "service_interactive_client"

	ScoreDormant     = 55
	ScoreInteractive = 65
)

// DefaultDormancy is how long without activity makes an identity dormant.
const DefaultDormancy = 90 * 24 * time.Hour

// Options configure the detector.
type Options struct {
	// Dormancy is the silence after which activity is a finding (0 → 90 days).
	Dormancy time.Duration
}

// Detector is the identity-lifecycle detector.
type Detector struct{ opts Options }

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector {
	if opts.Dormancy <= 0 {
		opts.Dormancy = DefaultDormancy
	}
	return &Detector{opts: opts}
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: roster events on identity.id, activity
// on user.id.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) { return ev.PrincipalKey() }

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{opts: d.opts, ids: map[string]*identity{}}
}

type identity struct {
	kind       string
	service    bool
	last       time.Time // last activity, event time
	lastRef    string
	reportedOn int64 // day number of the last interactive-client report
}

type shard struct {
	opts Options
	ids  map[string]*identity
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	if ev.Dataset == event.DatasetRoster {
		kind := strings.ToLower(ev.Identity.Kind)
		switch kind {
		case "employee", "contractor", "service":
			id := s.ids[key.ID]
			if id == nil {
				id = &identity{reportedOn: -1}
				s.ids[key.ID] = id
			}
			id.kind = kind
			id.service = kind == "service" || hasRole(ev.Identity.Roles, "service")
		default:
			if kind != "" {
				delete(s.ids, key.ID)
			}
		}
		return
	}
	id := s.ids[key.ID]
	if id == nil {
		if !hasRole(ev.User.Roles, "service") {
			return // a customer, or staff the roster has not named
		}
		id = &identity{kind: "service", service: true, reportedOn: -1}
		s.ids[key.ID] = id
	}
	if id.service && strings.HasPrefix(ev.UserAgent, "Mozilla/") {
		if day := ev.Time.Unix() / 86400; day != id.reportedOn {
			id.reportedOn = day
			c.Emit(event.Finding{
				Kind:   KindInteractive,
				Title:  "Service identity used from a browser",
				Entity: key,
				Time:   ev.Time,
				Score:  ScoreInteractive,
				Explanation: fmt.Sprintf("Service identity %s performed %s%s with a browser user agent (%s) at %s; services call from code, so a person is holding its credential.",
					key.ID, ev.Action, from(ev), trunc(ev.UserAgent), ev.Time.UTC().Format(time.RFC3339)),
				Evidence: []string{c.Ref(ev)},
			})
		}
	}
	if !id.last.IsZero() {
		if gap := ev.Time.Sub(id.last); gap >= s.opts.Dormancy {
			c.Emit(event.Finding{
				Kind:   KindDormant,
				Title:  "Dormant identity active again",
				Entity: key,
				Time:   ev.Time,
				Score:  ScoreDormant,
				Explanation: fmt.Sprintf("%s (%s) performed %s%s at %s after %d days without any activity (last at %s).",
					key.ID, id.kind, ev.Action, from(ev), ev.Time.UTC().Format(time.RFC3339), int(gap.Hours()/24), id.last.UTC().Format(time.RFC3339)),
				Evidence: []string{c.Ref(ev), id.lastRef},
			})
		}
	}
	if ev.Time.After(id.last) {
		id.last = ev.Time
		id.lastRef = c.Ref(ev)
	}
}

func hasRole(roles []string, r string) bool {
	for _, x := range roles {
		if strings.EqualFold(x, r) {
			return true
		}
	}
	return false
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

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
