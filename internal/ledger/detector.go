package ledger

import (
	"slices"
	"strconv"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/netname"
)

// Entity kinds of the shard keys not defined by package event.
const (
	EntityNetwork event.EntityKind = "network"
	EntityCountry event.EntityKind = "country"
)

// Detector records one dimension of the ledger. It emits no findings.
type Detector struct {
	dim   Dimension
	kind  event.EntityKind
	name  string
	l     *Ledger
	names *netname.Cache
}

var _ engine.Detector = (*Detector)(nil)

// Detector returns the detector recording dimension dim into l. It panics
// on an unknown dimension.
func (l *Ledger) Detector(dim Dimension) *Detector {
	l.dets.Add(1)
	return newDetector(dim, l)
}

// KeyDetector returns a detector of dimension dim that only keys events
// (Key, Name): what a stage that routes events by key (cluster mode's
// re-keying) needs. Its NewShard panics.
func KeyDetector(dim Dimension) *Detector { return newDetector(dim, nil) }

func newDetector(dim Dimension, l *Ledger) *Detector {
	d := &Detector{dim: dim, name: "ledger_" + string(dim), l: l}
	switch dim {
	case Principal:
		d.kind = event.EntityPrincipal
	case Key:
		d.kind = event.EntitySigningKey
	case Token:
		d.kind = event.EntityToken
	case Source:
		d.kind = event.EntitySource
		d.names = &netname.Cache{}
	case Network:
		d.kind = EntityNetwork
		d.names = &netname.Cache{}
	case Country:
		d.kind = EntityCountry
	default:
		panic("ledger: unknown dimension " + strconv.Quote(string(dim)))
	}
	return d
}

// Detectors returns one detector per dimension, for engine.Options.
func (l *Ledger) Detectors() []engine.Detector {
	out := make([]engine.Detector, 0, len(Dimensions))
	for _, dim := range Dimensions {
		out = append(out, l.Detector(dim))
	}
	return out
}

// Name implements engine.Detector: "ledger_<dimension>".
func (d *Detector) Name() string { return d.name }

// Dimension returns the dimension recorded.
func (d *Detector) Dimension() Dimension { return d.dim }

// Key implements engine.Detector: activity that touched records, keyed on
// the dimension's value. A request that failed (event.outcome "failure":
// refused, not found, an error) exposed nothing and is not recorded, even
// when its log names the records it asked for (an nginx 403 on
// /members/{id}); "unknown" and an absent outcome count as exposure. A
// drill's event (event.Event.Drill) is never recorded: drill records are
// not customers' and stay out of every scope. It does not allocate once
// the source address or network is in the cache.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if !recorded(ev) {
		return event.EntityKey{}, false
	}
	var v string
	switch d.dim {
	case Principal:
		v = ev.User.ID
	case Key:
		v = ev.Token.KeyID
	case Token:
		v = ev.Token.ID
	case Source:
		if !ev.Source.IP.IsValid() {
			return event.EntityKey{}, false
		}
		v = d.names.Address(ev.Source.IP)
	case Network:
		if !ev.Source.IP.IsValid() {
			return event.EntityKey{}, false
		}
		v = d.names.Network(ev.Source)
	case Country:
		v = ev.Source.Country
	}
	if v == "" {
		return event.EntityKey{}, false
	}
	return event.EntityKey{Kind: d.kind, ID: v}, true
}

// recorded reports whether the ledger records ev: activity that touched
// records and did not fail, not a drill's (Key). Every such event has a
// principal (IsActivity), so the principal dimension records it.
func recorded(ev *event.Event) bool {
	return len(ev.Records.IDs) > 0 && ev.Outcome != event.OutcomeFailure && !ev.Drill && ev.IsActivity()
}

// Number sets the Records.Numbers of every event of evs the ledger
// records, numbering each record id once for all of the ledger's
// dimensions (one dictionary look-up per id instead of one per
// dimension), and clears it on the others. Call it before the events are
// routed (the pipeline does, as a batch is submitted); the shards then
// reuse the numbers. A shared dictionary (cluster mode) numbers nothing
// here: its shards ask the store for what they do not know.
func (l *Ledger) Number(evs []event.Event) {
	if l.dict.assign != nil {
		return
	}
	n := 0
	for i := range evs {
		if recorded(&evs[i]) {
			n += len(evs[i].Records.IDs)
		}
	}
	if n == 0 {
		for i := range evs {
			evs[i].Records.Numbers = nil
		}
		return
	}
	// Every id of the batch numbered in one call (one store look-up at
	// most), then sliced per event; one allocation each for the batch.
	rids := make([]string, 0, n)
	for i := range evs {
		if recorded(&evs[i]) {
			rids = append(rids, evs[i].Records.IDs...)
		}
	}
	buf := make([]uint32, n)
	if dropped := l.dict.numberAll(buf, rids); dropped > 0 {
		l.unnumbered.Add(int64(dropped))
		l.opts.Logger.Error("ledger: record ids dropped: the dictionary could not number them", "ids", dropped)
	}
	at := 0
	for i := range evs {
		ev := &evs[i]
		ev.Records.Numbers = nil
		if !recorded(ev) {
			continue
		}
		nums := buf[at : at+len(ev.Records.IDs) : at+len(ev.Records.IDs)]
		at += len(ev.Records.IDs)
		// An id that could not be numbered is left out.
		k := 0
		for _, v := range nums {
			if v != dropID {
				nums[k] = v
				k++
			}
		}
		ev.Records.Numbers = nums[:k:k]
	}
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	if d.l == nil {
		panic("ledger: NewShard of a KeyDetector")
	}
	return &shard{d: d, cells: map[cellKey]*cell{}}
}

var _ engine.Marker = (*shard)(nil)

// Mark implements engine.Marker: hand off everything now, tagged with the
// mark (even when nothing is dirty), so the writer can tell when every
// shard's state up to the mark is stored.
func (s *shard) Mark(c *engine.Context, mark uint64) {
	s.d.l.send(handoff{dim: s.d.dim, cells: s.cells, mark: mark, expect: s.d.l.dets.Load() * int64(c.Shards())})
	s.cells = map[cellKey]*cell{}
	s.dirty = 0
	s.handedAt = s.d.l.opts.Now()
}

type cellKey struct {
	value string
	day   int64
	rtype string
}

type cell struct {
	all *roaring.Bitmap
	// common are the field categories every event of the cell exposed
	// (each once, in the first event's order): their records and times
	// are all's and first's and last's, so they are not kept apart —
	// most cells (a customer reading their orders) expose the same fields
	// in every event. fields holds the others; the two never share a
	// field.
	common      []string
	fields      map[string]*fieldSet
	first, last int64 // unix nanoseconds
}

// newCommon returns the distinct non-empty categories of fields: fields
// itself when they are (the usual case; the cell only reads it and
// splitCommon copies before it writes).
func newCommon(fields []string) []string {
	distinct := true
	for i, f := range fields {
		if f == "" || slices.Contains(fields[:i], f) {
			distinct = false
			break
		}
	}
	if distinct {
		return fields[:len(fields):len(fields)]
	}
	var out []string
	for _, f := range fields {
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// exposes reports whether fields holds f.
func exposes(fields []string, f string) bool { return slices.Contains(fields, f) }

// splitCommon moves the common fields an event does not expose into
// fields, as they stand before the event: every event so far exposed
// them, so their records are all's and their times the cell's.
func (c *cell) splitCommon(fields []string) {
	if slices.Equal(c.common, fields) {
		return // the usual case: the same fields as the first event
	}
	kept := make([]string, 0, len(c.common)) // common may be an event's Fields: never written
	for _, f := range c.common {
		if exposes(fields, f) {
			kept = append(kept, f)
			continue
		}
		if c.fields == nil {
			c.fields = map[string]*fieldSet{}
		}
		c.fields[f] = &fieldSet{bm: c.all.Clone(), first: c.first, last: c.last}
	}
	c.common = kept
}

// fieldSet is a cell's records that exposed one field category, with the
// times of those accesses: a field row's First and Last are those of the
// events that exposed the field, so they do not depend on where hand-offs
// cut the stream (the cluster's checkpoints cut it elsewhere than one
// process's flushes).
type fieldSet struct {
	bm          *roaring.Bitmap
	first, last int64
}

type shard struct {
	d         *Detector
	cells     map[cellKey]*cell
	dirty     int
	lastFlush time.Time
	// dirtySince is the wall time the first of cells was made.
	dirtySince time.Time
	// handedAt is the wall time of the last hand-off (zero: none yet).
	handedAt time.Time
	ids      []uint32
}

// Process implements engine.Shard.
func (s *shard) Process(_ *engine.Context, key event.EntityKey, ev *event.Event) {
	rtype := ev.Records.Type
	if rtype == "" {
		rtype = UnknownType
	}
	ck := cellKey{value: key.ID, day: Day(ev.Time), rtype: rtype}
	c := s.cells[ck]
	t := ev.Time.UnixNano()
	if c == nil {
		if len(s.cells) == 0 {
			s.dirtySince = s.d.l.opts.Now()
		}
		c = &cell{all: roaring.New(), first: t, last: t, common: newCommon(ev.Records.Fields)}
		s.cells[ck] = c
	} else if len(c.common) > 0 {
		c.splitCommon(ev.Records.Fields)
	}
	c.first, c.last = min(c.first, t), max(c.last, t)
	ids := ev.Records.Numbers // numbered once for every dimension (Number)
	if ids == nil {
		var dropped int
		s.ids, dropped = s.d.l.dict.appendIDs(s.ids[:0], ev.Records.IDs)
		if dropped > 0 {
			s.d.l.unnumbered.Add(int64(dropped))
			s.d.l.opts.Logger.Error("ledger: record ids dropped: the store did not number them", "ids", dropped, "dimension", s.d.dim)
		}
		ids = s.ids
	}
	c.all.AddMany(ids)
	for _, f := range ev.Records.Fields {
		if f == "" || exposes(c.common, f) {
			continue // a common field's records are all's
		}
		if c.fields == nil {
			c.fields = map[string]*fieldSet{}
		}
		fs := c.fields[f]
		if fs == nil {
			fs = &fieldSet{bm: roaring.New(), first: t, last: t}
			c.fields[f] = fs
		}
		fs.first, fs.last = min(fs.first, t), max(fs.last, t)
		fs.bm.AddMany(ids)
	}
	s.d.l.touches.Add(int64(len(ids)))
	s.dirty += len(ids)
	if s.dirty >= s.d.l.opts.MaxDirty || len(s.cells) >= s.d.l.opts.MaxCells {
		s.handoff()
	}
}

// Advance implements engine.Advancer: hand off when the watermark has
// moved FlushEvery past the last hand-off and MinInterval of wall time
// has passed since it, when the oldest touch is stale, and at EndOfTime.
func (s *shard) Advance(_ *engine.Context, wm time.Time) {
	if wm.Equal(engine.EndOfTime) {
		s.lastFlush = wm
		s.handoff()
		return
	}
	if s.lastFlush.IsZero() {
		s.lastFlush = wm
		if s.stale() {
			s.handoff()
		}
		return
	}
	if (wm.Sub(s.lastFlush) >= s.d.l.opts.FlushEvery && s.waited()) || s.stale() {
		s.lastFlush = wm
		s.handoff()
	}
}

// waited reports whether MinInterval of wall time has passed since the
// last hand-off.
func (s *shard) waited() bool {
	return s.d.l.opts.MinInterval < 0 || s.d.l.opts.Now().Sub(s.handedAt) >= s.d.l.opts.MinInterval
}

// stale reports whether the shard's oldest unsent touch has waited
// MaxStale of wall time.
func (s *shard) stale() bool {
	return len(s.cells) > 0 && s.d.l.opts.Now().Sub(s.dirtySince) >= s.d.l.opts.MaxStale
}

func (s *shard) handoff() {
	if len(s.cells) == 0 {
		return
	}
	s.d.l.send(handoff{dim: s.d.dim, cells: s.cells})
	s.cells = map[cellKey]*cell{}
	s.dirty = 0
	s.handedAt = s.d.l.opts.Now()
}
