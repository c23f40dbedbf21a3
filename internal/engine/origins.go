package engine

import "time"

// DefaultIdleness is Options.Idleness when left zero.
const DefaultIdleness = 30 * time.Second

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
// origins that carried it: the minimum over active carriers, else the
// latest wall-advanced idle carrier. So mints reaching haechi through two
// shippers count as far as the slower one has delivered.
//
// Times computed here are candidates: the router never moves the
// watermark or a dataset's progress backwards.
type origins struct {
	byName   map[string]*origin
	all      []*origin // in order of first appearance
	arrived  time.Time // the arrival clock: newest Batch.Arrived or Tick
	idleness time.Duration
	datasets int
}

func newOrigins(idleness time.Duration, datasets int) *origins {
	return &origins{byName: map[string]*origin{}, idleness: idleness, datasets: datasets}
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

// active reports whether s holds the input's time back.
func (o *origins) active(s *origin) bool {
	if s.ended {
		return false
	}
	if o.arrived.IsZero() {
		return true // no arrival clock: only the end of an origin ends it
	}
	return !s.arrived.IsZero() && o.arrived.Sub(s.arrived) < o.idleness
}

// advanced is an idle origin's time t moved on by the arrival time elapsed
// since it last delivered.
func (o *origins) advanced(s *origin, t time.Time) time.Time {
	if s.arrived.IsZero() || o.arrived.IsZero() {
		return t
	}
	return t.Add(o.arrived.Sub(s.arrived))
}

// timeOf returns the input's event time: the minimum over active origins
// other than except of their newest event time (ok=false when there is
// none), or, with allIdle and no active origin at all, the latest
// wall-advanced idle one.
func (o *origins) timeOf(except *origin, allIdle bool) (t time.Time, ok bool) {
	anyActive := false
	for _, s := range o.all {
		if !o.active(s) || s.maxSeen.IsZero() {
			continue
		}
		anyActive = true
		if s == except {
			continue
		}
		if !ok || s.maxSeen.Before(t) {
			t, ok = s.maxSeen, true
		}
	}
	if ok || anyActive || !allIdle {
		return t, ok
	}
	for _, s := range o.all {
		if s.ended || s.maxSeen.IsZero() {
			continue
		}
		if a := o.advanced(s, s.maxSeen); !ok || a.After(t) {
			t, ok = a, true
		}
	}
	return t, ok
}

// progressOf is timeOf for watched dataset d over the origins that carried
// it.
func (o *origins) progressOf(d int, except *origin, allIdle bool) (t time.Time, ok bool) {
	anyActive := false
	for _, s := range o.all {
		if !o.active(s) || s.watched[d].IsZero() {
			continue
		}
		anyActive = true
		if s == except {
			continue
		}
		if !ok || s.watched[d].Before(t) {
			t, ok = s.watched[d], true
		}
	}
	if ok || anyActive || !allIdle {
		return t, ok
	}
	for _, s := range o.all {
		if s.ended || s.watched[d].IsZero() {
			continue
		}
		if a := o.advanced(s, s.watched[d]); !ok || a.After(t) {
			t, ok = a, true
		}
	}
	return t, ok
}

// earlier returns the earlier of a and b, where ok says whether b is set.
func earlier(a time.Time, b time.Time, ok bool) time.Time {
	if ok && b.Before(a) {
		return b
	}
	return a
}
