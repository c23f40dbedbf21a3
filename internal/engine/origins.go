package engine

import "time"

// Defaults of Options.Idleness and Options.MaxOriginLag.
const (
	DefaultIdleness     = 30 * time.Second
	DefaultMaxOriginLag = time.Hour
)

// forgetAfter is how long, by the arrival clock, an origin may deliver
// nothing before it is forgotten (see origins.forget).
const forgetAfter = 24 * time.Hour

// origin is the router's view of one input stream (Batch.Origin): its own
// event time, when it last delivered, whether it has ended, and the
// progress of every watched dataset on it.
type origin struct {
	name    string
	maxSeen time.Time   // newest event time
	arrived time.Time   // newest Batch.Arrived (zero: none)
	ended   bool        // EndOrigin; a later batch reopens it
	watched []time.Time // newest event time per watched dataset (Engine.streams index)
}

// origins is the event time of the whole input, made of its origins' own
// times the way stream processors do it (Flink, Beam, Kafka Streams):
//
//   - Each origin's event time is the newest event time it delivered.
//   - The input's event time is the minimum over the active origins: an
//     origin behind the others (a shipper catching up) holds the
//     watermark back rather than having its events marked late.
//   - An origin more than the maximum lag behind the leading active one
//     does not hold the others back (its events are late): a broken clock
//     or a hostile shipper cannot stall detection (see minOver).
//   - An origin is active until it ends (EndOrigin: a file read to its
//     end) or goes idle: when batches carry an arrival time, an origin
//     that has delivered nothing for the idleness while the input's
//     arrival clock (the newest arrival, or Tick) moved on no longer holds
//     the others back.
//   - When no origin is active, the wall clock advances the idle ones:
//     each is taken to have moved on by the arrival time elapsed since it
//     last delivered (its event time keeps its own distance to the wall,
//     so a backfill's time never jumps to the present), and the input's
//     event time is the latest of them. Without an arrival clock (replay)
//     nothing is idle and only events move time.
//
// A watched dataset's progress (StreamTime) follows the same rule over the
// origins that carried it — the minimum over active carriers, else the
// latest wall-advanced idle carrier — except that a carrier goes idle only
// after the lateness (see progressOf). So mints reaching haechi through two
// shippers count as far as the slower one has delivered.
//
// Times computed here are candidates: the router never moves the
// watermark or a dataset's progress backwards.
type origins struct {
	byName   map[string]*origin
	all      []*origin // in order of first appearance
	arrived  time.Time // the arrival clock: newest Batch.Arrived or Tick
	idleness time.Duration
	// watchIdleness is the idleness of watched datasets' carriers:
	// max(idleness, lateness) (see progressOf).
	watchIdleness time.Duration
	maxLag        time.Duration
	datasets      int
}

func newOrigins(idleness, lateness, maxLag time.Duration, datasets int) *origins {
	return &origins{byName: map[string]*origin{}, idleness: idleness, watchIdleness: max(idleness, lateness),
		maxLag: maxLag, datasets: datasets}
}

// get returns the named origin, creating it on first use.
func (o *origins) get(name string) *origin {
	if s := o.byName[name]; s != nil {
		return s
	}
	s := &origin{name: name, watched: make([]time.Time, o.datasets)}
	o.byName[name] = s
	o.all = append(o.all, s)
	return s
}

// deliver records that origin s delivers a batch that arrived at arrived
// (zero: no arrival clock); an ended origin is reopened.
func (o *origins) deliver(s *origin, arrived time.Time) {
	s.ended = false
	if arrived.After(o.arrived) {
		o.arrived = arrived
	}
	if arrived.After(s.arrived) {
		s.arrived = arrived
	}
}

// tick moves the arrival clock to now (the input is caught up: nothing
// that arrived before now is still waiting).
func (o *origins) tick(now time.Time) {
	if now.After(o.arrived) {
		o.arrived = now
	}
}

// active reports whether s holds the input's time back: it has not ended
// and has delivered within idle of the arrival clock.
func (o *origins) active(s *origin, idle time.Duration) bool {
	if s.ended {
		return false
	}
	if o.arrived.IsZero() {
		return true // no arrival clock: only the end of an origin ends it
	}
	return !s.arrived.IsZero() && o.arrived.Sub(s.arrived) < idle
}

// advanced is an idle origin's time t moved on by the arrival time elapsed
// since it last delivered.
func (o *origins) advanced(s *origin, t time.Time) time.Time {
	if s.arrived.IsZero() || o.arrived.IsZero() {
		return t
	}
	return t.Add(o.arrived.Sub(s.arrived))
}

// minOver returns the minimum of at(s) — an origin's newest event time, or
// of one watched dataset — over the origins that hold the input's time
// back: active, with a time, and no more than maxLag behind the leading
// active one. except is left out of the minimum (ok=false when no other
// holds) and exceptHolds says whether it would hold. With allIdle and no
// active origin at all, t is instead the latest wall-advanced one.
//
// The lag cap is what keeps one origin from stalling detection: a shipper
// with a broken clock, or a token holder posting events dated years ago,
// would otherwise hold every window and timer of every other origin for as
// long as it keeps sending. An origin further behind than maxLag has its
// events marked late, as before origins existed.
func (o *origins) minOver(at func(*origin) time.Time, idle time.Duration, except *origin, allIdle bool) (t time.Time, ok, exceptHolds bool) {
	var lead time.Time
	anyActive := false
	for _, s := range o.all {
		if v := at(s); !v.IsZero() && o.active(s, idle) {
			anyActive = true
			if v.After(lead) {
				lead = v
			}
		}
	}
	if anyActive {
		floor := lead.Add(-o.maxLag)
		for _, s := range o.all {
			v := at(s)
			if v.IsZero() || v.Before(floor) || !o.active(s, idle) {
				continue
			}
			if s == except {
				exceptHolds = true
				continue
			}
			if !ok || v.Before(t) {
				t, ok = v, true
			}
		}
		return t, ok, exceptHolds
	}
	if !allIdle {
		return t, false, false
	}
	for _, s := range o.all {
		if v := at(s); !s.ended && !v.IsZero() {
			if a := o.advanced(s, v); !ok || a.After(t) {
				t, ok = a, true
			}
		}
	}
	return t, ok, false
}

// timeOf is minOver of the origins' newest event time.
func (o *origins) timeOf(except *origin, allIdle bool) (t time.Time, ok, exceptHolds bool) {
	return o.minOver(func(s *origin) time.Time { return s.maxSeen }, o.idleness, except, allIdle)
}

// progressOf is minOver of watched dataset d's newest event time, over the
// origins that carried it. A carrier stops holding it back only after
// watchIdleness — at least the lateness — not the idleness: a watcher
// acts on this progress at once (the issuer rule judges a token never
// minted), so a stalled issuer shipper must hold it as long as the
// lateness rule would have waited; a quiet issuer then costs no more than
// the lateness rule did.
func (o *origins) progressOf(d int, except *origin, allIdle bool) (t time.Time, ok, exceptHolds bool) {
	return o.minOver(func(s *origin) time.Time { return s.watched[d] }, o.watchIdleness, except, allIdle)
}

// forget drops origins that can no longer matter: ended ones (a later
// batch recreates them), and ones that have delivered nothing for
// forgetAfter by the arrival clock — a rotated tailed file, a retired
// shipper — except the one the all-idle advance would follow. An origin
// that comes back after that starts afresh, like a new one.
func (o *origins) forget() {
	if len(o.all) < 2 {
		return
	}
	var keep *origin // the latest wall-advanced origin
	var keepAt time.Time
	for _, s := range o.all {
		if a := o.advanced(s, s.maxSeen); !s.ended && !s.maxSeen.IsZero() && (keep == nil || a.After(keepAt)) {
			keep, keepAt = s, a
		}
	}
	kept := o.all[:0]
	for _, s := range o.all {
		stale := s.ended || (!o.arrived.IsZero() && o.arrived.Sub(s.arrived) >= forgetAfter)
		if stale && s != keep {
			delete(o.byName, s.name)
			continue
		}
		kept = append(kept, s)
	}
	clear(o.all[len(kept):])
	o.all = kept
}
