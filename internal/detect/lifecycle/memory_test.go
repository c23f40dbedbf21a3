package lifecycle_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/lifecycle"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap lifecycle keeps per tracked entity at scale (rostered
// staff identities, each acting once) against the 2 KiB budget, and its Footprint estimate against
// the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{58, byte(i >> 16), byte(i >> 8), byte(i)}) }
	m := detecttest.MemoryPerEntity(t, lifecycle.New(lifecycle.Options{}), 50000, func(i int) *event.Event {
		if i%2 == 0 {
			return &event.Event{Time: t0, Dataset: event.DatasetRoster, Action: "identity.snapshot",
				Identity: event.Identity{ID: "e:" + strconv.Itoa(i), Kind: "employee", Status: "active", Roles: []string{"support"}}}
		}
		return &event.Event{Time: t0.Add(time.Duration(i) * time.Second), Dataset: event.DatasetGateway, Action: "read",
			User: event.User{ID: "e:" + strconv.Itoa(i-1), Roles: []string{"support"}}, Source: event.Source{IP: addr(i)}}
	})
	detecttest.CheckMemory(t, m)
}
