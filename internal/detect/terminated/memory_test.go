package terminated_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/terminated"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap terminated keeps per tracked entity at
// scale (rostered staff identities, each acting a few times) against the 2 KiB budget, and its Footprint estimate
// against the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{58, byte(i >> 16), byte(i >> 8), byte(i)}) }
	m := detecttest.MemoryPerEntity(t, terminated.New(terminated.Options{}), 60000, func(i int) *event.Event {
		if i%3 == 0 {
			return &event.Event{Time: t0, Dataset: event.DatasetRoster, Action: "identity.snapshot",
				Identity: event.Identity{ID: "e:" + strconv.Itoa(i/3), Kind: "employee", Status: "active", Roles: []string{"support"}}}
		}
		return &event.Event{Time: t0.Add(time.Duration(i) * time.Second), Dataset: event.DatasetGateway, Action: "read", ID: "ev-" + strconv.Itoa(i),
			User: event.User{ID: "e:" + strconv.Itoa(i/3), Roles: []string{"support"}}, Source: event.Source{IP: addr(i)}}
	})
	detecttest.CheckMemory(t, m)
}
