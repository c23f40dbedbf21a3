package geo_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/geo"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap geo keeps per tracked entity at scale (customers, one in
// ten also from a second country) against the 2 KiB budget, and its Footprint estimate against the
// measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{58, byte(i >> 16), byte(i >> 8), byte(i)}) }
	m := detecttest.MemoryPerEntity(t, geo.New(geo.Options{HostingMarkers: config.DefaultHostingMarkers}), 100000, func(i int) *event.Event {
		cc, asn := "KR", uint32(4766)
		if i%10 == 0 {
			cc, asn = "JP", 2516
		}
		return &event.Event{Time: t0.Add(time.Duration(i) * time.Second), Dataset: event.DatasetGateway, Action: "member.profile.read",
			User: event.User{ID: "c:" + strconv.Itoa(i/2)}, Source: event.Source{IP: addr(i), Country: cc, ASN: asn, ASOrg: "Korea Telecom", Located: true, Lat: 37.5, Lon: 127}}
	})
	detecttest.CheckMemory(t, m)
}
