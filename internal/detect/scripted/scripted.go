// Package scripted detects scripted HTTP clients on customer traffic.
//
// Customers reach their data through the shop's apps and browsers; a
// python-requests or curl user agent on a customer's session means
// someone is driving the account from a script — the signature of
// impersonation at scale when the source is also reading other
// customers. The markers come from a maintained list in config
// (detectors.scripted_client.user_agents) and match case-insensitively at
// the start of user_agent.original — a library's own default user agent
// starts with its name ("python-requests/2.32.3", "okhttp/4.12.0"), while
// an app built on the library names itself first ("ExampleShop/8.4.1
// (Android 14) okhttp/4.12.0") and is not a script. A marker written with
// a leading "*" matches anywhere ("*headlesschrome" inside a browser-like
// user agent).
//
// Customer traffic is activity by a principal that is not staff: the event
// carries no user.roles and the roster (hr.roster, broadcast to every
// shard: it is small) has not named it an employee, contractor or service.
// The detector does not rely on id prefixes.
//
// Key matches the user agent (a pure function of it, cached) and routes
// only scripted requests, keyed by source address — or by principal when
// the event has none — so a source is judged on one shard: it is reported
// once per day, not once per request, however many customers it acts as.
// The finding is about the source, which is what a block contains, and
// names the principal it acted as.
package scripted

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/netname"
)

// Name is the detector's stable name.
const Name = "scripted_client"

// Kind is the finding kind.
const Kind = "scripted_client"

// Score of a finding: medium on its own; it adds weight to whatever else
// the source does.
const Score = 45

// repeat is how long a source (or principal) stays reported before the
// next scripted request is reported again.
const repeat = 24 * time.Hour

// uaCacheSize bounds the cache of user-agent verdicts.
const uaCacheSize = 4096

// Options configure the detector.
type Options struct {
	// UserAgents are case-insensitive substrings that mark a scripted
	// client. Empty entries are ignored; with none the detector is idle.
	UserAgents []string
}

// Detector is the scripted-client detector.
type Detector struct {
	markers []marker

	// cache maps a user agent to the marker it contains ("" for none): a
	// pure function of the string, safe to share with the router. The
	// decoder interns user agents, so it stays small and hot.
	cache  sync.Map
	cached atomic.Int32
	names  netname.Cache
}

var (
	_ engine.Detector    = (*Detector)(nil)
	_ engine.Broadcaster = (*Detector)(nil)
)

type marker struct {
	text     string // lower-case
	anywhere bool
}

// New returns the detector.
func New(opts Options) *Detector {
	d := &Detector{}
	for _, m := range opts.UserAgents {
		m = strings.ToLower(strings.TrimSpace(m))
		anywhere := strings.HasPrefix(m, "*")
		if m = strings.TrimPrefix(m, "*"); m != "" {
			d.markers = append(d.markers, marker{text: m, anywhere: anywhere})
		}
	}
	return d
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Broadcast implements engine.Broadcaster: roster events reach every
// shard, which keeps the set of staff identities.
func (d *Detector) Broadcast(ev *event.Event) bool {
	return len(d.markers) > 0 && ev.Dataset == event.DatasetRoster && ev.Identity.ID != ""
}

// Key implements engine.Detector: only activity with a scripted user agent
// and no staff roles is routed, keyed by source address, else principal.
// The address's text comes from a shared cache, so it rarely allocates.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if len(d.markers) == 0 || ev.UserAgent == "" || len(ev.User.Roles) > 0 || !ev.IsActivity() {
		return event.EntityKey{}, false
	}
	if d.match(ev.UserAgent) == "" {
		return event.EntityKey{}, false
	}
	if ev.Source.IP.IsValid() {
		return event.EntityKey{Kind: event.EntitySource, ID: d.names.Address(ev.Source.IP)}, true
	}
	return event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}, true
}

// match returns the marker ua contains, or "".
func (d *Detector) match(ua string) string {
	if m, ok := d.cache.Load(ua); ok {
		return m.(string)
	}
	lower := strings.ToLower(strings.TrimSpace(ua))
	m := ""
	for _, mk := range d.markers {
		if (mk.anywhere && strings.Contains(lower, mk.text)) || strings.HasPrefix(lower, mk.text) {
			m = mk.text
			break
		}
	}
	if d.cached.Load() < uaCacheSize {
		if _, loaded := d.cache.LoadOrStore(ua, m); !loaded {
			d.cached.Add(1)
		}
	}
	return m
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{d: d, staff: map[string]bool{}, last: map[string]time.Time{}}
}

type shard struct {
	d     *Detector
	staff map[string]bool      // roster-named identities that are not customers
	last  map[string]time.Time // reported entity id → event time of the report
	swept time.Time
}

var _ engine.Advancer = (*shard)(nil)

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	if ev.Dataset == event.DatasetRoster {
		switch strings.ToLower(ev.Identity.Kind) {
		case "", "customer":
			delete(s.staff, ev.Identity.ID)
		default:
			s.staff[ev.Identity.ID] = true
		}
		return
	}
	if s.staff[ev.User.ID] {
		return
	}
	subject, entity := key.ID, key
	if t, ok := s.last[subject]; ok && ev.Time.Sub(t) < repeat && !ev.Time.Before(t) {
		return
	}
	s.last[subject] = ev.Time
	who := "as " + ev.User.ID
	if entity.Kind == event.EntityPrincipal {
		who = ""
	}
	expl := fmt.Sprintf("%s used a scripted HTTP client (%s) on customer traffic%s: %s at %s; customers' apps and browsers do not send this user agent.",
		subject, quote(ev.UserAgent), prefixSpace(who), ev.Action, ev.Time.UTC().Format(time.RFC3339))
	c.Emit(event.Finding{
		Kind:        Kind,
		Title:       "Scripted client on customer traffic",
		Entity:      entity,
		Time:        ev.Time,
		Score:       Score,
		Explanation: expl,
		Evidence:    []string{c.Ref(ev)},
	})
}

// Advance implements engine.Advancer: it forgets reports older than a day
// (once per hour of event time) so the map holds only sources reported in
// the last day.
func (s *shard) Advance(_ *engine.Context, wm time.Time) {
	if wm.Equal(engine.EndOfTime) || wm.Sub(s.swept) < time.Hour {
		return
	}
	s.swept = wm
	for k, t := range s.last {
		if wm.Sub(t) >= repeat {
			delete(s.last, k)
		}
	}
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

func prefixSpace(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}
