package alert_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
)

// BenchmarkRiskMemory holds risk for a million entities (each with two
// medium findings of different detectors below the threshold, the
// expensive case: both findings are kept for the alert they may lead to)
// and reports the heap per tracked entity.
func BenchmarkRiskMemory(b *testing.B) {
	const n = 1_000_000
	expl := "e:1 (cs-agent) performed admin.customer.view at 2025-06-01T02:00:00Z (hour 02 UTC), when cs-agent identities do at most 0.4% of their activity."
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s, _ := alert.New(alert.Options{})
		batch := make([]event.Finding, 0, 2)
		for i := range n {
			e := event.EntityKey{Kind: event.EntityPrincipal, ID: fmt.Sprintf("e:%d", i)}
			at := t0.Add(time.Duration(i) * time.Millisecond)
			batch = append(batch[:0],
				event.Finding{Detector: "off_hours", Kind: "off_hours_access", Title: "Access at unusual hours", Entity: e, Time: at, Score: 40,
					Explanation: expl, Evidence: []string{fmt.Sprintf("ev-%d", i)}},
				event.Finding{Detector: "geo", Kind: "new_network", Title: "New network", Entity: e, Time: at, Score: 25,
					Explanation: expl, Evidence: []string{fmt.Sprintf("ev-%d", i)}})
			s.Process(batch)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if s.Tracked() != n || s.Raised() != 0 {
			b.Fatalf("tracked %d raised %d", s.Tracked(), s.Raised())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entity")
		runtime.KeepAlive(s)
	}
}
