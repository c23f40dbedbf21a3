// Package netname renders source addresses and their networks as entity
// ids — "203.0.113.7", "AS4766", "203.0.113.0/24", "2001:db8:1:2::/64" —
// without allocating on a cache hit, so detectors can key on them in
// engine.Detector.Key (which runs on the router for every event).
//
// The network of a source is its autonomous system when the event carries
// source.as.number (upstream or MaxMind enrichment), otherwise its /24
// (IPv4) or /64 (IPv6).
package netname

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"sync/atomic"

	"github.com/haechi-sec/haechi/internal/event"
)

// Cache is a direct-mapped table of immutable entries: safe for
// concurrent use, bounded, and a miss only costs the string it renders.
// The zero value is ready to use.
type Cache struct {
	slots [4096]atomic.Pointer[entry]
}

type entry struct {
	addr netip.Addr // address entries
	key  [17]byte   // network entries (key[0] is 'a', '4' or '6')
	name string
}

func (c *Cache) slot(b []byte) *atomic.Pointer[entry] {
	h := uint64(14695981039346656037)
	for _, x := range b {
		h = (h ^ uint64(x)) * 1099511628211
	}
	return &c.slots[h%uint64(len(c.slots))]
}

// Address returns a.String().
func (c *Cache) Address(a netip.Addr) string {
	b := a.As16()
	slot := c.slot(b[:])
	if e := slot.Load(); e != nil && e.addr == a {
		return e.name
	}
	name := a.String()
	slot.Store(&entry{addr: a, name: name})
	return name
}

// Network returns the id of the source's network: "AS<n>", else the /24
// or /64 prefix.
func (c *Cache) Network(src event.Source) string {
	var k [17]byte
	switch {
	case src.ASN != 0:
		k[0] = 'a'
		binary.BigEndian.PutUint32(k[1:], src.ASN)
	case src.IP.Is4() || src.IP.Is4In6():
		k[0] = '4'
		ip := src.IP.Unmap().As4()
		copy(k[1:], ip[:3])
	default:
		k[0] = '6'
		ip := src.IP.As16()
		copy(k[1:], ip[:8])
	}
	slot := c.slot(k[:])
	if e := slot.Load(); e != nil && e.key == k {
		return e.name
	}
	var name string
	switch k[0] {
	case 'a':
		name = "AS" + strconv.FormatUint(uint64(src.ASN), 10)
	case '4':
		name = netip.PrefixFrom(src.IP.Unmap(), 24).Masked().String()
	default:
		name = netip.PrefixFrom(src.IP, 64).Masked().String()
	}
	slot.Store(&entry{key: k, name: name})
	return name
}
