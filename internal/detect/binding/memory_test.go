package binding_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/binding"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap binding keeps per tracked entity at scale (live tokens,
// each minted and then used once) against the 2 KiB budget, and its Footprint estimate against the
// measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 1}) }
	m := detecttest.MemoryPerEntity(t, binding.New(binding.Options{HostingMarkers: config.DefaultHostingMarkers}), 100000, func(i int) *event.Event {
		tok := "tk-" + strconv.Itoa(i)
		return &event.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Dataset: event.DatasetGateway, Action: "member.profile.read",
			User: event.User{ID: "c:" + strconv.Itoa(i)}, Token: event.Token{ID: tok, ExpiresAt: t0.Add(time.Hour)},
			Source: event.Source{IP: addr(i), Country: "KR", ASN: 4766, ASOrg: "Korea Telecom"}, UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)"}
	})
	detecttest.CheckMemory(t, m)
}
