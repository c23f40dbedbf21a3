package behaviour

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/haechi-sec/haechi/internal/snap"
)

const snapshotVersion = 4

// AppendSnapshot implements engine.Snapshotter: per role the peer
// histograms, hour-of-day profile, long-window peer histograms, the model's
// masses and score histogram; per identity its own histograms, hour-of-day
// profile, long-window sketches and its open hour, so a restored shard
// continues exactly where it stopped.
func (s *shard) AppendSnapshot(w *snap.Writer) {
	w.Byte(snapshotVersion)
	w.Bool(s.opts.Model)
	w.Uint(uint64(len(s.roles)))
	for _, name := range slices.Sorted(maps.Keys(s.roles)) {
		r := s.roles[name]
		w.String(name)
		w.Int(r.hour)
		for sl := range r.peers {
			for f := range r.peers[sl] {
				r.peers[sl][f].appendTo(w)
			}
		}
		for f := range r.peersAll {
			r.peersAll[f].appendTo(w)
		}
		for _, v := range r.hod {
			w.Float(v)
		}
		for i := range r.long {
			r.long[i].appendTo(w)
		}
		r.scores.appendTo(w)
		r.bar.appendTo(w)
		if r.model != nil {
			r.model.appendTo(w)
		}
		// Identities: open ones first, in the order their hour opened (the
		// order hours close in), then the rest sorted.
		w.Uint(uint64(len(r.ids)))
		for _, id := range r.open {
			id.appendTo(w)
		}
		for _, k := range slices.Sorted(maps.Keys(r.ids)) {
			if id := r.ids[k]; id.w == nil {
				id.appendTo(w)
			}
		}
	}
}

func (id *ident) appendTo(w *snap.Writer) {
	w.String(id.id)
	var b []byte
	for sl := range id.own {
		for f := range id.own[sl] {
			for _, v := range id.own[sl][f] {
				b = binary.LittleEndian.AppendUint16(b, v)
			}
		}
	}
	for _, v := range id.hod {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	b = id.sl.appendBytes(b)
	w.Bytes(b)
	st := &id.sl
	for _, v := range []int32{st.dayAt, st.since, st.bigAt, int32(st.big), int32(st.hour), int32(st.reads), int32(st.out), int32(st.strong), int32(st.medium),
		int32(st.last[0]), int32(st.last[1]), int32(st.last[2]), int32(st.last[3]), int32(st.pend[0][0]), int32(st.pend[0][1]), int32(st.pend[1][0]), int32(st.pend[1][1])} {
		w.Int(int64(v))
	}
	w.Int(int64(id.decayAt))
	w.Int(int64(id.anomDay))
	w.Bool(id.w != nil)
	if id.w == nil {
		return
	}
	x := id.w
	w.Uint(uint64(x.n))
	w.Uint(uint64(x.errs))
	w.Uint(uint64(x.reads))
	w.Uint(uint64(x.outside))
	w.Int(x.bytes)
	w.Bool(x.big != nil)
	if x.big != nil {
		w.Bytes(x.big[:])
	} else {
		w.Uint(uint64(len(x.recs)))
		for _, h := range slices.Sorted(maps.Keys(x.recs)) {
			w.Uint(h)
		}
	}
	w.Uint(uint64(len(x.ints)))
	for _, n := range slices.Sorted(maps.Keys(x.ints)) {
		w.Int(n)
	}
	w.Uint(uint64(x.adjacent))
	for _, set := range [][]uint64{x.types, x.fields, x.routes} {
		w.Uint(uint64(len(set)))
		for _, h := range set {
			w.Uint(h)
		}
	}
	w.Uint(uint64(len(x.refs)))
	for _, ref := range x.refs {
		w.String(ref)
	}
	w.String(x.lastRef)
	w.Uint(uint64(len(x.tokens)))
	for _, t := range x.tokens {
		w.String(t)
	}
	w.Time(x.last)
	w.Bool(x.fired)
}

const identBytes = slots*ownFeatures*ownBins*2 + 24*2 + slowBytes

// Restore implements engine.Snapshotter.
func (s *shard) Restore(r *snap.Reader) error {
	if v := r.Byte(); r.Err() == nil && v != snapshotVersion {
		return fmt.Errorf("behaviour: snapshot version %d, want %d", v, snapshotVersion)
	}
	if m := r.Bool(); r.Err() == nil && m != s.opts.Model {
		return fmt.Errorf("behaviour: snapshot taken with model %v, running with %v", m, s.opts.Model)
	}
	fresh := &shard{opts: s.opts, roles: map[string]*role{}}
	for range r.Count(8) {
		name := r.String()
		if _, dup := fresh.roles[name]; dup {
			r.Fail("duplicate role")
			break
		}
		ro := fresh.role(name)
		ro.hour = r.Int()
		for sl := range ro.peers {
			for f := range ro.peers[sl] {
				ro.peers[sl][f].readFrom(r)
			}
		}
		for f := range ro.peersAll {
			ro.peersAll[f].readFrom(r)
		}
		for h := range ro.hod {
			ro.hod[h] = r.Float()
			if !finite(ro.hod[h]) {
				r.Fail("hour profile")
			}
		}
		for i := range ro.long {
			ro.long[i].readFrom(r)
		}
		ro.scores.readFrom(r)
		ro.bar.readFrom(r)
		if ro.model != nil {
			ro.model.readFrom(r)
		}
		for range r.Count(identBytes) {
			id := fresh.readIdent(r)
			if r.Err() != nil {
				break
			}
			if _, dup := ro.ids[id.id]; dup {
				r.Fail("duplicate identity")
				break
			}
			ro.ids[id.id] = id
			if id.w != nil {
				ro.open = append(ro.open, id)
			}
		}
		if r.Err() != nil {
			break
		}
	}
	if err := r.End(); err != nil {
		return fmt.Errorf("behaviour: %w", err)
	}
	s.roles = fresh.roles
	return nil
}

func (s *shard) readIdent(r *snap.Reader) *ident {
	id := &ident{id: r.String()}
	b := r.Bytes()
	if r.Err() != nil {
		return id
	}
	if len(b) != identBytes {
		r.Fail("identity state size")
		return id
	}
	for sl := range id.own {
		for f := range id.own[sl] {
			for i := range id.own[sl][f] {
				id.own[sl][f][i] = binary.LittleEndian.Uint16(b)
				b = b[2:]
			}
		}
	}
	for h := range id.hod {
		id.hod[h] = binary.LittleEndian.Uint16(b)
		b = b[2:]
	}
	id.sl.readBytes(b)
	st := &id.sl
	for _, p := range []*int32{&st.dayAt, &st.since, &st.bigAt} {
		*p = int32(r.Int())
	}
	for _, p := range []*uint16{&st.big, &st.hour, &st.reads, &st.out, &st.strong, &st.medium, &st.last[0], &st.last[1], &st.last[2], &st.last[3], &st.pend[0][0], &st.pend[0][1], &st.pend[1][0], &st.pend[1][1]} {
		v := r.Int()
		if v < 0 || v > math.MaxUint16 {
			r.Fail("long-window counts")
			return id
		}
		*p = uint16(v)
	}
	if st.out > st.reads {
		r.Fail("long-window counts")
		return id
	}
	id.decayAt = int32(r.Int())
	id.anomDay = int32(r.Int())
	if !r.Bool() {
		return id
	}
	x := &window{recs: map[uint64]struct{}{}, ints: map[int64]struct{}{}}
	x.n = int(r.Uint())
	x.errs = int(r.Uint())
	x.reads = int(r.Uint())
	x.outside = int(r.Uint())
	x.bytes = r.Int()
	if x.n > 1<<40 || x.errs > x.n || x.reads > 1<<40 || x.outside > x.reads || x.bytes < 0 {
		r.Fail("open window counts")
		return id
	}
	if r.Bool() {
		bb := r.Bytes()
		if len(bb) != len(bigHLL{}) {
			r.Fail("open window sketch")
			return id
		}
		x.big = &bigHLL{}
		copy(x.big[:], bb)
	} else {
		n := r.Count(1)
		if n > exactRecords+1 {
			r.Fail("open window records")
			return id
		}
		for range n {
			x.recs[r.Uint()] = struct{}{}
		}
	}
	n := r.Count(1)
	if n > exactRecords {
		r.Fail("open window ids")
		return id
	}
	for range n {
		x.ints[r.Int()] = struct{}{}
	}
	x.adjacent = int(r.Uint())
	for _, set := range []*[]uint64{&x.types, &x.fields, &x.routes} {
		n := r.Count(1)
		if n > smallSet {
			r.Fail("open window set")
			return id
		}
		for range n {
			*set = append(*set, r.Uint())
		}
	}
	n = r.Count(1)
	if n > maxRefs {
		r.Fail("open window refs")
		return id
	}
	for range n {
		x.refs = append(x.refs, r.String())
	}
	x.lastRef = r.String()
	n = r.Count(1)
	if n > maxTokens {
		r.Fail("open window tokens")
		return id
	}
	for range n {
		x.tokens = append(x.tokens, r.String())
	}
	x.last = r.Time()
	x.fired = r.Bool() // thresholds are recomputed: the baselines have not moved since the hour opened
	id.w = x
	return id
}

// The role's typical bar of the day is kept: it is computed at the day's
// first ask from the identities' recent highs, which move as each rolls
// into the day, so one rebuilt after a restore in mid-day would differ.
func (b *typicalBar) appendTo(w *snap.Writer) {
	w.Int(int64(b.day))
	for i := range nWin {
		w.Bool(b.ok[i])
		w.Float(b.v[i])
		w.Uint(uint64(len(b.newc[i])))
		for _, x := range b.newc[i] {
			w.Float(x)
		}
	}
}

func (b *typicalBar) readFrom(r *snap.Reader) {
	b.day = int32(r.Int())
	for i := range nWin {
		b.ok[i] = r.Bool()
		b.v[i] = r.Float()
		if !finite(b.v[i]) || b.v[i] < 0 {
			r.Fail("typical bar")
			return
		}
		for range r.Count(8) {
			x := r.Float()
			if !finite(x) || x < 0 || len(b.newc[i]) > 0 && x < b.newc[i][len(b.newc[i])-1] {
				r.Fail("typical bar newcomers")
				return
			}
			b.newc[i] = append(b.newc[i], x)
		}
	}
}
