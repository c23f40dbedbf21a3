package sim

import (
	"context"
	"io"
	"testing"
	"time"
)

type countW struct{ n int64 }

func (c *countW) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkGenerate reports simulated events per second (run with GOMAXPROCS=1).
func BenchmarkGenerate(b *testing.B) {
	var events, bytes int64
	for i := 0; i < b.N; i++ {
		var w countW
		var n int64
		_, err := Generate(context.Background(), Options{Seed: uint64(i), Days: 1, Customers: 200_000}, &w,
			func(k int64, _ time.Time) { n = k })
		if err != nil {
			b.Fatal(err)
		}
		events += n
		bytes += w.n
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(events), "B/event")
	_ = io.Discard
}
