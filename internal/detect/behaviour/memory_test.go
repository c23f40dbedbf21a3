package behaviour_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/behaviour"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap behaviour keeps per identity at
// scale (identities of 20 roles, each reading records in one hour) and
// its Footprint estimate against the measured heap:
//   - in steady state, once the hour has closed: an identity keeps its
//     learnt histograms and rings (1,792 B, see ident). Each role also
//     holds its peers' histograms and its model (≈ 700 KB, whatever its
//     size), so the budget of 2 KiB is asserted on the marginal cost of
//     an identity — the heap of 50,000 identities less that of 25,000, per
//     identity — and the average at 2,500 identities a role is reported;
//   - while the hour is open, each active identity also holds its window
//     of the hour (records, routes, evidence): reported, not held to the
//     budget, since only the identities active in the current hour have
//     one and the pool reuses them.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~150 MB")
	}
	const roles = 20
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	read := func(i int) *event.Event {
		return &event.Event{Time: t0.Add(time.Duration(i%3600) * time.Second), Dataset: event.DatasetGateway, Action: "read", URLPath: "/admin/customers/" + strconv.Itoa(i),
			User:    event.User{ID: "e:" + strconv.Itoa(i), Roles: []string{"role-" + strconv.Itoa(i%roles)}},
			Records: event.Records{Type: "customer", IDs: []string{strconv.Itoa(i), strconv.Itoa(i + 1), strconv.Itoa(i + 2)}, Fields: []string{"name"}}}
	}
	steady := func(t *testing.T, ids int) detecttest.Memory {
		return detecttest.MemoryPerEntity(t, behaviour.New(behaviour.Options{Model: true}), ids+roles, func(i int) *event.Event {
			if i < ids {
				return read(i)
			}
			// The next hour closes every window.
			r := "role-" + strconv.Itoa(i-ids)
			return &event.Event{Time: t0.Add(2 * time.Hour), Dataset: event.DatasetGateway, Action: "read",
				User: event.User{ID: "e:closer-" + r, Roles: []string{r}}, Records: event.Records{Type: "customer", IDs: []string{"1"}}}
		})
	}
	t.Run("steady", func(t *testing.T) {
		half, full := steady(t, 25_000), steady(t, 50_000)
		marginal := float64(full.Heap-half.Heap) / float64(full.Entities-half.Entities)
		t.Logf("marginal %.0f B per identity; average %.0f B at %d identities a role", marginal, full.Measured, full.Entities/roles)
		if marginal > detecttest.MaxBytesPerEntity {
			t.Errorf("%.0f bytes per identity (marginal), want at most %d", marginal, detecttest.MaxBytesPerEntity)
		}
		if r := full.Estimated / full.Measured; r < 2.0/3 || r > 1.5 {
			t.Errorf("Footprint estimates %.0f B per identity, ×%.2f the %.0f B measured", full.Estimated, r, full.Measured)
		}
	})
	t.Run("open hour", func(t *testing.T) {
		m := detecttest.MemoryPerEntity(t, behaviour.New(behaviour.Options{Model: true}), 50_000, read)
		if r := m.Estimated / m.Measured; r < 2.0/3 || r > 1.5 {
			t.Errorf("Footprint estimates %.0f B per identity, ×%.2f the %.0f B measured", m.Estimated, r, m.Measured)
		}
	})
}
