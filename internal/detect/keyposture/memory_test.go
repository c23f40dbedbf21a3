package keyposture_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/keyposture"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap keyposture keeps per tracked entity at scale (signing keys
// in the inventory and rostered identities, half of them custodians) against the 2 KiB budget, and
// its Footprint estimate against the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	m := detecttest.MemoryPerEntity(t, keyposture.New(keyposture.Options{}), 50000, func(i int) *event.Event {
		if i%2 == 0 {
			return &event.Event{Time: t0, Dataset: event.DatasetRoster, Action: "identity.snapshot",
				Identity: event.Identity{ID: "e:" + strconv.Itoa(i), Kind: "employee", Status: "active"}}
		}
		return &event.Event{Time: t0, Dataset: event.DatasetKeys, Action: "key.snapshot",
			Key: event.Key{ID: "key-" + strconv.Itoa(i), Status: "active", Custodians: []string{"e:" + strconv.Itoa(i-1)}}}
	})
	detecttest.CheckMemory(t, m)
}
