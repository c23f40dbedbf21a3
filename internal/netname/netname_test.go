package netname_test

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/netname"
)

func TestNames(t *testing.T) {
	var c netname.Cache
	for _, tc := range []struct {
		src  event.Source
		addr string
		net  string
	}{
		{event.Source{IP: netip.MustParseAddr("203.0.113.9")}, "203.0.113.9", "203.0.113.0/24"},
		{event.Source{IP: netip.MustParseAddr("::ffff:203.0.113.9")}, "::ffff:203.0.113.9", "203.0.113.0/24"},
		{event.Source{IP: netip.MustParseAddr("2001:db8:1:2::5")}, "2001:db8:1:2::5", "2001:db8:1:2::/64"},
		{event.Source{IP: netip.MustParseAddr("198.51.100.1"), ASN: 4766}, "198.51.100.1", "AS4766"},
	} {
		for range 2 { // miss, then hit
			if got := c.Address(tc.src.IP); got != tc.addr {
				t.Errorf("Address(%v) = %q, want %q", tc.src.IP, got, tc.addr)
			}
			if got := c.Network(tc.src); got != tc.net {
				t.Errorf("Network(%+v) = %q, want %q", tc.src, got, tc.net)
			}
		}
	}
}

func TestHitDoesNotAllocate(t *testing.T) {
	var c netname.Cache
	src := event.Source{IP: netip.MustParseAddr("203.0.113.9")}
	c.Address(src.IP)
	c.Network(src)
	if n := testing.AllocsPerRun(100, func() { c.Address(src.IP); c.Network(src) }); n != 0 {
		t.Fatalf("a hit allocates %.0f times", n)
	}
}

func TestConcurrent(t *testing.T) {
	var c netname.Cache
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				ip := netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)})
				if c.Address(ip) != ip.String() {
					t.Error("wrong name")
					return
				}
			}
		}()
	}
	wg.Wait()
}
