package scripted_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/scripted"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap scripted keeps per tracked entity at scale (source
// addresses of scripted clients, and rostered staff) against the 2 KiB budget, and its Footprint
// estimate against the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{58, byte(i >> 16), byte(i >> 8), byte(i)}) }
	m := detecttest.MemoryPerEntity(t, scripted.New(scripted.Options{UserAgents: config.DefaultScriptedUserAgents}), 100000, func(i int) *event.Event {
		if i%2 == 0 {
			return &event.Event{Time: t0, Dataset: event.DatasetRoster, Action: "identity.snapshot",
				Identity: event.Identity{ID: "e:" + strconv.Itoa(i), Kind: "employee", Status: "active"}}
		}
		return &event.Event{Time: t0.Add(time.Duration(i) * time.Second), Dataset: event.DatasetGateway, Action: "member.profile.read",
			User: event.User{ID: "c:" + strconv.Itoa(i)}, Source: event.Source{IP: addr(i)}, UserAgent: "python-requests/2.31"}
	})
	detecttest.CheckMemory(t, m)
}
