package ledger_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// BenchmarkScope: one key touching N distinct customers (LEDGER_BENCH_N,
// default 2,000,000; the figure is 33,700,000) spread evenly over
// 150 days, each customer once, ids drawn from [0, 1.5·N); fields: name
// (all), phone (all), address (half), entrance_code (a tenth). Reports the
// stored bitmap bytes per touch.
func BenchmarkScope(b *testing.B) {
	n := 2_000_000
	if s := os.Getenv("LEDGER_BENCH_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		n = v
	}
	const days = 150
	ctx := context.Background()
	st, err := store.Open(ctx, b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	perm := rng.Perm(n * 3 / 2)[:n]
	const day0 = 20000
	var bytes int64
	for d := range days {
		ids := perm[d*n/days : (d+1)*n/days]
		all, addr, code := roaring.New(), roaring.New(), roaring.New()
		for i, id := range ids {
			all.Add(uint32(id))
			if i%2 == 0 {
				addr.Add(uint32(id))
			}
			if i%10 == 0 {
				code.Add(uint32(id))
			}
		}
		var rows []store.LedgerRow
		for _, f := range []struct {
			name string
			bm   *roaring.Bitmap
		}{{"", all}, {"name", all}, {"phone", all}, {"address", addr}, {"entrance_code", code}} {
			f.bm.RunOptimize()
			blob, err := f.bm.ToBytes()
			if err != nil {
				b.Fatal(err)
			}
			bytes += int64(len(blob))
			t := ledger.DayTime(day0 + int64(d)).UnixNano()
			rows = append(rows, store.LedgerRow{Dim: "key", Value: "k1", Day: day0 + int64(d), RType: "customer", Field: f.name, Bitmap: blob, First: t, Last: t + 1})
		}
		if err := st.MergeLedger(ctx, nil, rows); err != nil {
			b.Fatal(err)
		}
	}
	q := ledger.Query{Terms: []ledger.Term{{Dim: ledger.Key, Values: []string{"k1"}}},
		From: ledger.DayTime(day0), To: ledger.DayTime(day0 + days - 1)}
	b.ResetTimer()
	for b.Loop() {
		r, err := ledger.Scope(ctx, st, q)
		if err != nil {
			b.Fatal(err)
		}
		if r.Total != int64(n) {
			b.Fatalf("total %d, want %d", r.Total, n)
		}
	}
	b.ReportMetric(float64(bytes)/float64(n), "stored-B/touch")
	b.ReportMetric(float64(n), "customers")
}
