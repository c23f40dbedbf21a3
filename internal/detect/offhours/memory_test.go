package offhours_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/offhours"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap offhours keeps per tracked entity at scale (identities of
// 20 roles acting at all hours) against the 2 KiB budget, and its Footprint estimate against the
// measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{58, byte(i >> 16), byte(i >> 8), byte(i)}) }
	m := detecttest.MemoryPerEntity(t, offhours.New(offhours.Options{}), 50000, func(i int) *event.Event {
		return &event.Event{Time: t0.Add(time.Duration(i) * time.Minute), Dataset: event.DatasetGateway, Action: "read",
			User: event.User{ID: "e:" + strconv.Itoa(i), Roles: []string{"role-" + strconv.Itoa(i%20)}}, Source: event.Source{IP: addr(i), Country: "KR"}}
	})
	detecttest.CheckMemory(t, m)
}
