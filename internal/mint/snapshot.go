package mint

import (
	"fmt"
	"time"

	"github.com/haechi-sec/haechi/internal/snap"
)

// snapshotVersion 2 adds each key's revocation time; version 3 stores
// each slot's user hash where versions 1 and 2 stored the mint's AS
// number (which no verdict read). Versions 1 and 2 are still read, their
// tokens unbound.
const snapshotVersion = 3

// Snapshot encodes the registry: coverage, key table and every slot. It
// locks one stripe at a time, so a concurrent Add may or may not be in
// it; app takes it between batches, where nothing else writes.
func (r *Registry) Snapshot() []byte {
	var w snap.Writer
	w.Byte(snapshotVersion)
	r.kmu.RLock()
	w.Time(r.since)
	w.Bool(r.inv)
	w.Uint(uint64(len(r.keys) - 1))
	for _, k := range r.keys[1:] {
		w.String(k.id)
		w.Bool(k.listed)
		w.Time(k.retiredAt)
		w.Time(k.revokedAt)
	}
	r.kmu.RUnlock()
	for i := range r.stripes {
		st := &r.stripes[i]
		st.mu.RLock()
		for _, s := range st.t.s {
			if s.h == 0 {
				continue
			}
			w.Uint(s.h)
			w.Uint(uint64(s.exp))
			w.Uint(uint64(s.user))
			w.Uint(uint64(s.key))
			w.Uint(uint64(s.cc))
			w.Uint(uint64(s.ua))
			w.Uint(uint64(s.flags))
		}
		st.mu.RUnlock()
	}
	w.Uint(0) // end: no slot has hash 0
	return w.B
}

// Restore replaces the registry's content with a snapshot's. A snapshot
// of another version or a damaged one is an error and leaves r empty.
func (r *Registry) Restore(b []byte) error {
	fresh := New(r.opts)
	if err := fresh.decode(b); err != nil {
		return fmt.Errorf("mint registry: %w", err)
	}
	r.kmu.Lock()
	r.keys, r.kidx, r.inv, r.since = fresh.keys, fresh.kidx, fresh.inv, fresh.since
	r.kmu.Unlock()
	for i := range r.stripes {
		r.stripes[i].mu.Lock()
		r.stripes[i].t = fresh.stripes[i].t
		r.stripes[i].mu.Unlock()
	}
	r.live.Store(fresh.live.Load())
	return nil
}

func (r *Registry) decode(b []byte) error {
	rd := snap.NewReader(b)
	v := rd.Byte()
	if rd.Err() == nil && (v < 1 || v > snapshotVersion) {
		return fmt.Errorf("snapshot version %d, want 1 to %d", v, snapshotVersion)
	}
	r.since = rd.Time()
	r.inv = rd.Bool()
	nk := rd.Count(3)
	if nk > maxKeys {
		return fmt.Errorf("snapshot has %d keys, at most %d", nk, maxKeys)
	}
	for range nk {
		id := rd.String()
		listed := rd.Bool()
		at := rd.Time()
		var revoked time.Time
		if v >= 2 {
			revoked = rd.Time()
		}
		if rd.Err() != nil {
			break
		}
		if _, dup := r.kidx[id]; dup || id == "" {
			return fmt.Errorf("snapshot key %q empty or repeated", id)
		}
		r.kidx[id] = uint16(len(r.keys))
		r.keys = append(r.keys, keyInfo{id: id, listed: listed, retiredAt: at, revokedAt: revoked})
	}
	for rd.Err() == nil {
		h := rd.Uint()
		if h == 0 || rd.Err() != nil {
			break
		}
		s := slot{h: h, exp: u32(rd), user: u32(rd), key: u16(rd), cc: u16(rd), ua: u16(rd), flags: u16(rd)}
		if v < 3 {
			s.user = 0 // the mint's AS number: the token is unbound
		}
		if int(s.key) >= len(r.keys) {
			rd.Fail("slot key index")
			break
		}
		st := &r.stripes[stripeOf(h)]
		if !st.t.upsert(s) {
			rd.Fail("repeated slot")
			break
		}
		r.live.Add(1)
	}
	return rd.End()
}

func u32(r *snap.Reader) uint32 {
	v := r.Uint()
	if v > 1<<32-1 {
		r.Fail("uint32")
	}
	return uint32(v)
}

func u16(r *snap.Reader) uint16 {
	v := r.Uint()
	if v > 1<<16-1 {
		r.Fail("uint16")
	}
	return uint16(v)
}
