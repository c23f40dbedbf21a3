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

// TestMemoryPerEntity measures the heap terminated_identity keeps per rostered identity at scale
// (20,000 staff identities, each acting 17 times — past its ring of recent activities — from one
// of three addresses, reading one to three records) against the 2 KiB budget, and its Footprint
// estimate against the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	const ids, per = 20_000, 18
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	m := detecttest.MemoryPerEntity(t, terminated.New(terminated.Options{}), ids*per, func(i int) *event.Event {
		who, k := i/per, i%per
		if k == 0 {
			return &event.Event{Time: t0, Dataset: event.DatasetRoster, Action: "identity.snapshot",
				Identity: event.Identity{ID: "e:" + strconv.Itoa(who), Kind: "employee", Status: "active", Roles: []string{"support"}}}
		}
		ids := []string{"1", "2", "3"}[:1+k%3]
		return &event.Event{Time: t0.Add(time.Duration(i) * time.Second), Dataset: event.DatasetGateway, Action: "member.profile.read", ID: "ev-" + strconv.Itoa(i),
			User:    event.User{ID: "e:" + strconv.Itoa(who), Roles: []string{"support"}},
			Source:  event.Source{IP: netip.AddrFrom4([4]byte{211, byte(who >> 8), byte(who), byte(k % 3)}), Country: "KR", ASN: 4766},
			Records: event.Records{Type: "customer", IDs: ids}}
	})
	detecttest.CheckMemory(t, m)
}
