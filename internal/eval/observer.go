// Package eval is the scorecard: it runs the pipeline in-process over an
// event stream, in event time, and scores the alerts it raised against a
// ground truth (internal/truth) — per attack scenario: detected, time to
// detect, records exposed before containment and the alerts attributed to
// it; over benign traffic: false-positive alerts per 10,000 identities per
// day, ordinary and hard-benign apart.
//
// The score is computed only from the pipeline's alerts, the ground truth
// and a few facts an Observer notes about the events as they stream past
// (the time and records of each malicious event, the number of distinct
// identities, the span of event time). Detectors never see the ground
// truth: nothing on the detection path imports this package, internal/truth
// or the simulator (TestDetectionPathDoesNotImportSimulator).
package eval

import (
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

// malEvent is what the scorer needs of one malicious event.
type malEvent struct {
	seen    bool
	time    time.Time // earliest occurrence, when an id repeats
	records []string  // "type\x00id", every occurrence's, may repeat
	// refused: the gate refused an occurrence, by the containment at
	// refusedAt of kind refusedBy (the earliest, when several did).
	refused   bool
	refusedAt time.Time
	refusedBy string
}

// Observer watches the event stream as it is fed and keeps only what the
// scorer needs; events themselves are not retained.
//
// Memory is bounded by the ground truth (one entry per malicious event id,
// with its record ids) plus one map entry per distinct identity: an exact
// set of principal ids (user.id of activity, identity.id of roster events),
// roughly 50–80 bytes per identity — fine up to a few million identities,
// which is the scale the simulator and hand-labelled files run at.
//
// An Observer is not safe for concurrent use: call Observe from the
// goroutine that decodes.
type Observer struct {
	mal        map[string]*malEvent
	identities map[string]struct{}
	events     int64

	// Event-time span of activity events, and of all events as a fallback
	// when there is no activity.
	actMin, actMax time.Time
	allMin, allMax time.Time
}

// NewObserver returns an observer for the malicious event ids of t.
func NewObserver(t *truth.Truth) *Observer {
	o := &Observer{mal: map[string]*malEvent{}, identities: map[string]struct{}{}}
	if t != nil {
		for _, s := range t.Scenarios {
			for _, id := range s.MaliciousEventIDs {
				if id != "" && o.mal[id] == nil {
					o.mal[id] = &malEvent{}
				}
			}
		}
	}
	return o
}

// Observe notes one decoded event. It is called for every event before it
// is submitted to the pipeline and does not keep ev.
func (o *Observer) Observe(ev *event.Event) {
	o.events++
	widen(&o.allMin, &o.allMax, ev.Time)
	if ev.IsActivity() {
		widen(&o.actMin, &o.actMax, ev.Time)
		o.identity(ev.User.ID)
	}
	if ev.Dataset == event.DatasetRoster {
		o.identity(ev.Identity.ID)
	}
	if ev.ID == "" {
		return
	}
	m := o.mal[ev.ID]
	if m == nil {
		return
	}
	if !m.seen || ev.Time.Before(m.time) {
		m.time = ev.Time
	}
	m.seen = true
	if ev.Outcome == event.OutcomeFailure {
		return // a failed request exposed nothing (as in the ledger)
	}
	for _, r := range ev.Records.IDs {
		m.records = append(m.records, recordKey(ev.Records.Type, r))
	}
}

// Refused notes that the gate refused ev by containment c; call it
// before Observe of the refused (rewritten) event.
func (o *Observer) Refused(ev *event.Event, c Containment) {
	if ev.ID == "" {
		return
	}
	m := o.mal[ev.ID]
	if m == nil {
		return
	}
	if !m.refused || c.Time.Before(m.refusedAt) {
		m.refusedAt, m.refusedBy = c.Time, c.Kind
	}
	m.refused = true
}

func (o *Observer) identity(id string) {
	if id == "" {
		return
	}
	if _, ok := o.identities[id]; !ok {
		o.identities[id] = struct{}{}
	}
}

// Events returns the number of events observed.
func (o *Observer) Events() int64 { return o.events }

// Identities returns the number of distinct identities observed.
func (o *Observer) Identities() int { return len(o.identities) }

// Span returns the event-time span of the activity events (of all events
// when there was no activity). Roster and key-inventory events often carry
// old timestamps (a key created years ago) and would stretch the span.
func (o *Observer) Span() time.Duration {
	if !o.actMin.IsZero() {
		return o.actMax.Sub(o.actMin)
	}
	return o.allMax.Sub(o.allMin)
}

func widen(lo, hi *time.Time, t time.Time) {
	if t.IsZero() {
		return
	}
	if lo.IsZero() || t.Before(*lo) {
		*lo = t
	}
	if hi.IsZero() || t.After(*hi) {
		*hi = t
	}
}

// recordKey names a record: its type and id (the same id under two record
// types is two records).
func recordKey(typ, id string) string { return typ + "\x00" + id }
