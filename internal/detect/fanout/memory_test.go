package fanout_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/fanout"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap fanout keeps per tracked entity at scale (source addresses
// of 50 networks, each serving a few principals) against the 2 KiB budget, and its Footprint
// estimate against the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{58, byte(i >> 16), byte(i >> 8), byte(i)}) }
	m := detecttest.MemoryPerEntity(t, fanout.New(fanout.Options{}), 100000, func(i int) *event.Event {
		return &event.Event{Time: t0.Add(time.Duration(i) * 10 * time.Millisecond), Dataset: event.DatasetGateway, Action: "member.profile.read",
			User: event.User{ID: "c:" + strconv.Itoa(i)}, Source: event.Source{IP: addr(i / 2), Country: "KR", ASN: 4766 + uint32(i%50)},
			Records: event.Records{Type: "customer", IDs: []string{strconv.Itoa(i)}}}
	})
	detecttest.CheckMemory(t, m)
}
