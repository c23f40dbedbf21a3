package store

import (
	"context"
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
	s := openTest(t)
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
}
