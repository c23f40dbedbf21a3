package behaviour

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// BenchmarkMemoryPerIdentity tracks 1,000,000 identities in 20 roles, each
// having acted in one closed hour, and reports the heap per identity in
// steady state (open windows closed and returned to the pool).
func BenchmarkMemoryPerIdentity(b *testing.B) {
	const ids, roles = 1_000_000, 20
	t0 := time.Date(2025, 5, 5, 9, 0, 0, 0, time.UTC)
	roleNames := make([]string, roles)
	for i := range roleNames {
		roleNames[i] = "role-" + strconv.Itoa(i)
	}
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := New(Options{Model: true}).NewShard().(*shard)
		c := &engine.Context{}
		ev := event.Event{Dataset: event.DatasetGateway, Action: "read", URLPath: "/admin/customers/1",
			Records: event.Records{Type: "customer", IDs: []string{"1", "2", "3"}, Fields: []string{"name"}}}
		for i := range ids {
			r := roleNames[i%roles]
			ev.User = event.User{ID: fmt.Sprintf("e:%07d", i), Roles: []string{r}}
			ev.Time = t0.Add(time.Duration(i%3600) * time.Second)
			ev.ID = ""
			s.Process(c, event.EntityKey{Kind: EntityRole, ID: r}, &ev)
		}
		// The next hour closes every window.
		for _, r := range roleNames {
			ev.User = event.User{ID: "e:closer", Roles: []string{r}}
			ev.Time = t0.Add(2 * time.Hour)
			s.Process(c, event.EntityKey{Kind: EntityRole, ID: r}, &ev)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		n := 0
		for _, r := range s.roles {
			n += len(r.ids)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/identity")
		b.ReportMetric(float64(n), "identities")
		runtime.KeepAlive(s)
	}
}
