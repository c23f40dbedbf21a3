package mint

import (
	"math"
	"time"
)

// golden is 2⁶⁴/φ: multiplying by it spreads FNV-1a's weak low bits over
// the top bits (Fibonacci hashing), which pick the stripe and the slot.
const golden = 0x9E3779B97F4A7C15

// Flags of a slot.
const (
	// flagAfterRetired: minted after its key's retirement (as known when
	// the mint was registered).
	flagAfterRetired uint16 = 1 << iota
	// flagRevoked: revoked (Revoke).
	flagRevoked
)

// slot is one token: 24 bytes. h == 0 marks an empty slot.
type slot struct {
	h     uint64
	exp   uint32 // toSec(expiry)
	user  uint32 // userHash of the user the token was minted for, 0 none (unbound)
	key   uint16 // key table index, 0 none
	cc    uint16 // mint context: binding.PackCountry, 0 none
	ua    uint16 // mint context: user agent family (client<<8 | os), 0 none
	flags uint16
}

// table is an open-addressing hash table with linear probing and
// backward-shift deletion, so it needs no tombstones. It grows to double
// when 4/5 full and sweep rebuilds it no more than 4/5 and at least 2/5
// full (minCap aside).
type table struct {
	s    []slot
	n    int
	bits uint8
}

const minBits = 4 // 16 slots per stripe at least

func (t *table) idx(h uint64) int {
	return int(((h * golden) << 6) >> (64 - t.bits))
}

// find returns the index of h, or -1.
func (t *table) find(h uint64) int {
	if t.n == 0 {
		return -1
	}
	mask := len(t.s) - 1
	for i := t.idx(h); ; i = (i + 1) & mask {
		switch t.s[i].h {
		case h:
			return i
		case 0:
			return -1
		}
	}
}

func (t *table) get(h uint64) (slot, bool) {
	if i := t.find(h); i >= 0 {
		return t.s[i], true
	}
	return slot{}, false
}

// upsert inserts s, or merges it into the slot already holding s.h (later
// expiry, key, user and context kept when s has none — a later mint's
// key or user wins over an earlier one's — flags ORed). It reports
// whether a slot was added.
func (t *table) upsert(s slot) bool {
	if i := t.find(s.h); i >= 0 {
		o := &t.s[i]
		o.exp = max(o.exp, s.exp)
		if s.key != 0 && o.key == 0 {
			o.key = s.key
		} else if s.key != 0 && s.key != o.key {
			// Minted again under another key: the later mint's key wins;
			// its retirement bit is the later mint's.
			o.key = s.key
			o.flags &^= flagAfterRetired
		}
		if s.user != 0 {
			o.user = s.user
		}
		if o.cc == 0 && o.ua == 0 {
			o.cc, o.ua = s.cc, s.ua
		}
		o.flags |= s.flags
		return false
	}
	if (t.n+1)*5 > len(t.s)*4 {
		t.resize(max(t.bits+1, minBits))
	}
	t.place(s)
	t.n++
	return true
}

// place puts s in its probe sequence's first empty slot (s.h is absent).
func (t *table) place(s slot) {
	mask := len(t.s) - 1
	i := t.idx(s.h)
	for t.s[i].h != 0 {
		i = (i + 1) & mask
	}
	t.s[i] = s
}

func (t *table) resize(b uint8) {
	old := t.s
	t.bits = b
	t.s = make([]slot, 1<<b)
	for _, s := range old {
		if s.h != 0 {
			t.place(s)
		}
	}
}

// sweep drops every slot whose exp is before cut and rebuilds the table at
// the smallest size that holds the rest at most 4/5 full, so memory
// follows the live tokens after a burst. It returns how many it dropped.
func (t *table) sweep(cut uint32) int {
	live := 0
	for i := range t.s {
		if t.s[i].h != 0 && t.s[i].exp >= cut {
			live++
		}
	}
	dropped := t.n - live
	if dropped == 0 {
		return 0
	}
	b := uint8(minBits)
	for live*5 > (1<<b)*4 {
		b++
	}
	old := t.s
	t.bits, t.s, t.n = b, make([]slot, 1<<b), live
	for _, s := range old {
		if s.h != 0 && s.exp >= cut {
			t.place(s)
		}
	}
	return dropped
}

// epoch is the origin of the uint32 second counters (as the detector's):
// times before it clamp to 0, after 2136 to math.MaxUint32.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

func toSec(t time.Time) uint32 {
	s := t.Unix() - epoch
	switch {
	case s < 0:
		return 0
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}
