package stuffing_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/stuffing"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap stuffing keeps per tracked entity at scale (logins of
// accounts from many source addresses, one in five failing) against the 2 KiB budget, and its
// Footprint estimate against the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{58, byte(i >> 16), byte(i >> 8), byte(i)}) }
	m := detecttest.MemoryPerEntity(t, stuffing.New(stuffing.Options{}), 100000, func(i int) *event.Event {
		o := event.OutcomeSuccess
		if i%5 == 0 {
			o = event.OutcomeFailure
		}
		return &event.Event{Time: t0.Add(time.Duration(i) * 100 * time.Millisecond), Dataset: event.DatasetLogin, Action: "login", Outcome: o,
			User: event.User{ID: "c:" + strconv.Itoa(i)}, Source: event.Source{IP: addr(i), Country: "KR", ASN: 4766 + uint32(i%50), ASOrg: "AS org " + strconv.Itoa(i%50)},
			UserAgent: "Mozilla/5.0 (Linux; Android 14) app/" + strconv.Itoa(i%40)}
	})
	detecttest.CheckMemory(t, m)
}
