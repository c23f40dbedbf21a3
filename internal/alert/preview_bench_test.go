package alert

import (
	"fmt"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// BenchmarkPreview previews one entity's latest immediate finding on an
// ordered stage holding many findings of many entities — what cluster mode
// does for every immediate finding while the watermark lags (the longer
// findings are held, the more are held): held findings over 2,000
// entities, held/2,000 of them the previewed entity's.
func BenchmarkPreview(b *testing.B) {
	for _, held := range []int{4_000, 40_000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			s, err := New(Options{Ordered: true, RaiseAhead: true})
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
			const entities = 2_000
			fs := make([]event.Finding, 0, held)
			for i := range held {
				e := event.EntityKey{Kind: event.EntityPrincipal, ID: fmt.Sprintf("e:%d", i%entities)}
				fs = append(fs, event.Finding{Detector: []string{"geo", "off_hours", "volume"}[i%3], Kind: "k", Title: "T",
					Entity: e, Time: t0.Add(time.Duration(held-i) * time.Second), Score: float64(10 + i%50),
					Explanation: "an explanation of the finding, as long as a real one tends to be", Evidence: []string{fmt.Sprintf("ev-%d", i)},
					Immediate: i%entities == 7 && i%3 == 0})
			}
			s.Process(fs)
			k := event.EntityKey{Kind: event.EntityPrincipal, ID: "e:7"}
			if s.lastImmediate(k) < 0 {
				b.Fatal("no immediate finding held")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s.preview(s.held[s.lastImmediate(k)])
			}
			if s.Raised() != 1 {
				b.Fatalf("raised %d, want 1", s.Raised())
			}
		})
	}
}
