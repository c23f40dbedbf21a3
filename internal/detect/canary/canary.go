// Package canary detects any access to a canary record.
//
// Canary records are planted personal-data records (a fake customer, a fake
// address) that no legitimate process ever reads; their ids are configured
// (--canary-records, config detectors.canary). Any event whose records.ids
// contains one is a critical, immediate finding about whoever read it: the
// principal (user.id) when known, else the source address, else the record.
//
// The detector keeps no state: Key does the membership test on the router
// and returns ok only for canary hits, so ordinary traffic costs a set
// lookup per record id and nothing on the shards.
package canary

import (
	"fmt"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// Name is the detector's stable name.
const Name = "canary_record"

// Kind is the finding kind.
const Kind = "canary_record_access"

// Score of a finding: critical, the highest confidence there is.
const Score = 100

// Detector is the canary-record detector.
type Detector struct {
	ids map[string]struct{}
}

var _ engine.Detector = (*Detector)(nil)

// New returns the detector for the given canary record ids (empty ids are
// ignored). With no ids it never fires.
func New(ids []string) *Detector {
	d := &Detector{ids: make(map[string]struct{}, len(ids))}
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			d.ids[id] = struct{}{}
		}
	}
	return d
}

// Len returns the number of canary ids.
func (d *Detector) Len() int { return len(d.ids) }

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: ok only when the event touched a canary.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if len(d.ids) == 0 {
		return event.EntityKey{}, false
	}
	hit := ""
	for _, id := range ev.Records.IDs {
		if _, ok := d.ids[id]; ok {
			hit = id
			break
		}
	}
	if hit == "" {
		return event.EntityKey{}, false
	}
	switch {
	case ev.User.ID != "":
		return event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}, true
	case ev.Source.IP.IsValid():
		return event.EntityKey{Kind: event.EntitySource, ID: ev.Source.IP.String()}, true
	}
	return event.EntityKey{Kind: event.EntityRecord, ID: hit}, true
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard { return shard{d} }

type shard struct{ d *Detector }

// Process implements engine.Shard.
func (s shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	var hits []string
	for _, id := range ev.Records.IDs {
		if _, ok := s.d.ids[id]; ok {
			hits = append(hits, id)
		}
	}
	what := "record"
	if ev.Records.Type != "" {
		what = ev.Records.Type + " record"
	}
	if len(hits) > 1 {
		what += "s"
	}
	from := ""
	if ev.Source.IP.IsValid() {
		from = " from " + ev.Source.IP.String()
		if ev.Source.Country != "" {
			from += " [" + ev.Source.Country + "]"
		}
	}
	who := ev.User.ID
	if who == "" {
		who = "A client with no user id"
	}
	expl := fmt.Sprintf("%s read canary %s %s via %s%s at %s; canary records are never read by legitimate traffic.",
		who, what, strings.Join(hits, ", "), ev.Action, from, ev.Time.UTC().Format(time.RFC3339))
	c.Emit(event.Finding{
		Kind:        Kind,
		Title:       "Canary record read",
		Entity:      key,
		Time:        ev.Time,
		Score:       Score,
		Severity:    event.SeverityCritical,
		Explanation: expl,
		Evidence:    []string{c.Ref(ev)},
		Immediate:   true,
	})
}
