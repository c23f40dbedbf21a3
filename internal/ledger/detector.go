package ledger

import (
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
	if len(ev.Records.IDs) == 0 || ev.Outcome == event.OutcomeFailure || ev.Drill || !ev.IsActivity() {
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
	all         *roaring.Bitmap
	fields      map[string]*fieldSet
	first, last int64 // unix nanoseconds
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
		c = &cell{all: roaring.New(), first: t, last: t}
		s.cells[ck] = c
	}
	c.first, c.last = min(c.first, t), max(c.last, t)
	var dropped int
	s.ids, dropped = s.d.l.dict.appendIDs(s.ids[:0], ev.Records.IDs)
	if dropped > 0 {
		s.d.l.unnumbered.Add(int64(dropped))
		s.d.l.opts.Logger.Error("ledger: record ids dropped: the store did not number them", "ids", dropped, "dimension", s.d.dim)
	}
	c.all.AddMany(s.ids)
	for _, f := range ev.Records.Fields {
		if f == "" {
			continue
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
		fs.bm.AddMany(s.ids)
	}
	s.d.l.touches.Add(int64(len(s.ids)))
	s.dirty += len(s.ids)
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
