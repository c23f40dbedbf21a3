package token

import (
	"github.com/haechi-sec/haechi/internal/detect/tokenuse"
	"math"
	"time"
)

// epoch is the origin of the compact uint32 second counters. Times before
// it clamp to 0 and times after 2136-02-07 clamp to math.MaxUint32.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// toSec converts t to seconds since epoch, clamped to uint32.
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

// fromSec is the inverse of toSec (to the second).
func fromSec(s uint32) time.Time { return time.Unix(int64(s)+epoch, 0).UTC() }

// hashID is tokenuse.Hash: stable across processes and versions, so the
// index can be checkpointed.
func hashID(id string) uint64 { return tokenuse.Hash(id) }

// Bits of the per-token "already fired" set: each finding kind fires at
// most once per token.
const (
	fRetired uint8 = 1 << iota
	fUnknown
	fFuture
	fLifetime
	fMulti
	fExpired
	firedBits = 6
)

// loc is the first place a token was used from: the country and AS number
// of the first use that carried either, and that use's time.
type loc struct {
	cc  uint16 // packCountry; 0 none
	asn uint32 // 0 none
	at  uint32 // toSec of the use
}

func (l loc) empty() bool { return l.cc == 0 && l.asn == 0 }

// observe folds a use's location into l. It reports whether the use is
// somewhere else: a different country or a different AS than remembered,
// judged only on the fields both carry. Missing fields are filled in.
func (l loc) observe(cc uint16, asn uint32, at uint32) (loc, bool) {
	if cc == 0 && asn == 0 {
		return l, false
	}
	if l.empty() {
		return loc{cc: cc, asn: asn, at: at}, false
	}
	if (cc != 0 && l.cc != 0 && cc != l.cc) || (asn != 0 && l.asn != 0 && asn != l.asn) {
		return l, true
	}
	if l.cc == 0 {
		l.cc = cc
	}
	if l.asn == 0 {
		l.asn = asn
	}
	return l, false
}

// packCountry packs an ISO 3166-1 alpha-2 code into 10 bits (1..676);
// anything else (absent, wrong length, not letters) is 0, "no country".
func packCountry(s string) uint16 {
	if len(s) != 2 {
		return 0
	}
	a, b := s[0]&^0x20, s[1]&^0x20 // upper-case ASCII letters
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' {
		return 0
	}
	return uint16(a-'A')*26 + uint16(b-'A') + 1
}

// unpackCountry is the inverse of packCountry; "" for 0.
func unpackCountry(v uint16) string {
	if v == 0 || v > 26*26 {
		return ""
	}
	v--
	return string([]byte{'A' + byte(v/26), 'A' + byte(v%26)})
}

// mintEntry is what the index remembers of one minted token: 16 bytes.
// With the 8-byte hash key a map slot is 24 bytes; Go's swiss-table map
// adds one control byte per slot and keeps its tables between 7/16 and 7/8
// full, so a live token costs 27–57 bytes.
type mintEntry struct {
	exp uint32 // when the index may forget it: toSec(expiry)
	asn uint32 // loc.asn
	at  uint32 // loc.at
	key uint16 // low 15 bits the index into the shard's key table (0 none), top bit keyAfterRetired
	ccf uint16 // low 10 bits loc.cc, high 6 bits the fired set
}

const ccMask = 1<<10 - 1

// keyAfterRetired is the bit of mintEntry.key saying the token was minted
// after its key's retirement (as known when the mint was processed);
// keyMask selects the key table index.
const (
	keyAfterRetired = 1 << 15
	keyMask         = keyAfterRetired - 1
)

func (m *mintEntry) keyIndex() uint16 { return m.key & keyMask }

// afterRetirement reports whether the token was minted after its key had
// been retired (beyond ClockSkew).
func (m *mintEntry) afterRetirement() bool { return m.key&keyAfterRetired != 0 }

func (m *mintEntry) loc() loc           { return loc{cc: m.ccf & ccMask, asn: m.asn, at: m.at} }
func (m *mintEntry) fired() uint8       { return uint8(m.ccf >> 10) }
func (m *mintEntry) setFired(f uint8)   { m.ccf = m.ccf&ccMask | uint16(f&(1<<firedBits-1))<<10 }
func (m *mintEntry) setLoc(l loc)       { m.ccf = m.ccf&^ccMask | l.cc&ccMask; m.asn = l.asn; m.at = l.at }
func (m *mintEntry) expires() time.Time { return fromSec(m.exp) }

// mintIndex is a shard's set of minted, unexpired tokens: the 64-bit hash
// of the token id → mintEntry. Token ids themselves are not stored.
type mintIndex struct {
	m    map[uint64]mintEntry
	peak int // largest len since the map was last rebuilt
}

func newMintIndex() mintIndex { return mintIndex{m: map[uint64]mintEntry{}} }

func (x *mintIndex) get(h uint64) (mintEntry, bool) {
	e, ok := x.m[h]
	return e, ok
}

func (x *mintIndex) put(h uint64, e mintEntry) {
	x.m[h] = e
	if len(x.m) > x.peak {
		x.peak = len(x.m)
	}
}

func (x *mintIndex) len() int { return len(x.m) }

// sweep forgets every token whose exp is before now (seconds since epoch)
// and returns how many it forgot.
func (x *mintIndex) sweep(now uint32) int {
	n := 0
	for h, e := range x.m {
		if e.exp < now {
			delete(x.m, h)
			n++
		}
	}
	x.m = shrink(x.m, &x.peak)
	return n
}

// shrink rebuilds m when it has fallen to a quarter of its peak size: Go
// maps never give memory back, so after a burst of tokens the memory bound
// would otherwise hold for the burst rather than for the live tokens.
func shrink[V any](m map[uint64]V, peak *int) map[uint64]V {
	if *peak < 1<<14 || len(m)*4 > *peak {
		return m
	}
	n := make(map[uint64]V, len(m))
	for k, v := range m {
		n[k] = v
	}
	*peak = len(n)
	return n
}
