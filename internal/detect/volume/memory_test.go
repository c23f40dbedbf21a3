package volume_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/volume"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap volume keeps per tracked entity at scale (identities of 20
// roles, each reading a few records in the window) against the 2 KiB budget, and its Footprint
// estimate against the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	m := detecttest.MemoryPerEntity(t, volume.New(volume.Options{}), 50000, func(i int) *event.Event {
		return &event.Event{Time: t0.Add(time.Duration(i%3600) * time.Second), Dataset: event.DatasetGateway, Action: "read",
			User:    event.User{ID: "e:" + strconv.Itoa(i), Roles: []string{"role-" + strconv.Itoa(i%20)}},
			Records: event.Records{Type: "customer", IDs: []string{strconv.Itoa(i), strconv.Itoa(i + 7)}}}
	})
	detecttest.CheckMemory(t, m)
}
