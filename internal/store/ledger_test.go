package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
)

func bm(t *testing.T, ids ...uint32) []byte {
	t.Helper()
	b, err := roaring.BitmapOf(ids...).ToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMergeLedger(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t)
		ctx := context.Background()
		row := func(ids []uint32, first, last int64) LedgerRow {
			return LedgerRow{Dim: "key", Value: "k1", Day: 20000, RType: "customer", Bitmap: bm(t, ids...), First: first, Last: last}
		}
		if err := s.MergeLedger(ctx, []LedgerDictEntry{{ID: 1 << 31, RID: "a:1"}}, []LedgerRow{row([]uint32{1, 2}, 10, 20)}); err != nil {
			t.Fatal(err)
		}
		if err := s.MergeLedger(ctx, []LedgerDictEntry{{ID: 1 << 31, RID: "a:1"}}, []LedgerRow{row([]uint32{2, 3, 1 << 31}, 5, 15)}); err != nil {
			t.Fatal(err)
		}
		rows, err := s.LedgerRows(ctx, "key", []string{"k1"}, 19999, 20001)
		if err != nil || len(rows) != 1 {
			t.Fatalf("rows %v %v", rows, err)
		}
		got := roaring.New()
		if _, err := got.FromBuffer(rows[0].Bitmap); err != nil {
			t.Fatal(err)
		}
		if !got.Equals(roaring.BitmapOf(1, 2, 3, 1<<31)) || rows[0].First != 5 || rows[0].Last != 20 {
			t.Errorf("merged %v first %d last %d", got.ToArray(), rows[0].First, rows[0].Last)
		}
		if rows, _ := s.LedgerRows(ctx, "key", nil, 20001, 20002); len(rows) != 0 {
			t.Errorf("out-of-window rows %v", rows)
		}
		if vs, err := s.LedgerValues(ctx, "key", 0, 1<<40); err != nil || len(vs) != 1 || vs[0] != "k1" {
			t.Errorf("values %v %v", vs, err)
		}
		if err := s.SaveLedgerDict(ctx, []LedgerDictEntry{{ID: 1 << 31, RID: "other"}}); err == nil {
			t.Error("conflicting id accepted")
		}
		if err := s.SaveLedgerDict(ctx, []LedgerDictEntry{{ID: 1<<31 + 1, RID: "a:1"}}); err == nil {
			t.Error("conflicting rid accepted")
		}
		d, err := s.LoadLedgerDict(ctx)
		if err != nil || len(d) != 1 || d[0] != (LedgerDictEntry{ID: 1 << 31, RID: "a:1"}) {
			t.Errorf("dict %v %v", d, err)
		}
		names, err := s.LedgerDictNames(ctx, []uint32{1 << 31, 7})
		if err != nil || len(names) != 1 || names[1<<31] != "a:1" {
			t.Errorf("names %v %v", names, err)
		}
	})
}

// BenchmarkMergeLedger merges flushes of 128 rows, half of them new and
// half ORed into stored rows (the read-modify-write path), each bitmap of
// 64 record ids.
func BenchmarkMergeLedger(b *testing.B) {
	for _, be := range []backend{sqliteBackend, postgresBackend} {
		b.Run(be.name, func(b *testing.B) {
			if be.name == "postgres" {
				requirePostgres(b)
			}
			benchmarkMergeLedger(b, be.open(b))
		})
	}
}

func benchmarkMergeLedger(b *testing.B, s *Store) {
	ctx := b.Context()
	const half = 64
	bitmap := func(seed int) []byte {
		ids := make([]uint32, 64)
		for i := range ids {
			ids[i] = uint32(seed*7919+i*104729) % 10_000_000
		}
		out, err := roaring.BitmapOf(ids...).ToBytes()
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	rows := make([]LedgerRow, 2*half)
	n, day := 0, int64(20000)
	b.ReportAllocs()
	for b.Loop() {
		for i := range half { // existing rows (from the previous flush's new ones)
			rows[i] = LedgerRow{Dim: "principal", Value: fmt.Sprintf("p%d", i), Day: day, RType: "customer",
				Bitmap: bitmap(n + i), First: int64(n), Last: int64(n + 1)}
		}
		day++
		for i := range half { // new rows: a new day
			rows[half+i] = LedgerRow{Dim: "principal", Value: fmt.Sprintf("p%d", i), Day: day, RType: "customer",
				Bitmap: bitmap(n + half + i), First: int64(n), Last: int64(n + 1)}
		}
		n += 2 * half
		if err := s.MergeLedger(ctx, nil, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}
