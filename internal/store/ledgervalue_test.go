package store

import (
	"context"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/longtext"
)

// A ledger value of any length (an attacker's 64 KiB principal or token)
// stores, flush after flush, and a scope of it — by the value as the event
// carried it — finds its rows and only them: long values that share a
// start stay apart. On PostgreSQL, whose btree entries hold ≈ 2.7 kB, a
// long value is stored shortened (pgTextKey); before, every flush
// holding it failed with SQLSTATE 54000 and the ledger's writer retried it
// for ever. Values PostgreSQL's text cannot hold ("a\x00b", "a\xffb": one
// stored value) merge into one day instead of failing the upsert.
func TestMergeLedgerLongValues(t *testing.T) {
	long := longtext.Incompressible("P", 64<<10)
	values := []string{long, long + "!", longtext.Incompressible("T", pgMaxLedgerRID+1), longtext.Incompressible("E", pgMaxLedgerRID)[:pgMaxLedgerRID], "a\x00b", "a\xffb", "short"}
	eachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t)
		ctx := context.Background()
		form := func(v string) string { return v }
		if b.name == "postgres" {
			form = pgTextKey
		}
		for round := range 2 { // the second ORs into stored days
			var rows []LedgerRow
			for i, v := range values {
				rows = append(rows, LedgerRow{Dim: "principal", Value: v, Day: 20000, RType: "customer", Bitmap: bm(t, uint32(i), uint32(100+round)), First: int64(10 + round), Last: int64(20 + round)})
			}
			if err := s.MergeLedger(ctx, nil, rows); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		for i, v := range values {
			rows, err := s.LedgerRows(ctx, "principal", []string{v}, 19999, 20001)
			if err != nil {
				t.Fatalf("%.20q: %v", v, err)
			}
			want := roaring.BitmapOf(uint32(i), 100, 101)
			for j, w := range values {
				if j != i && form(w) == form(v) {
					want.Add(uint32(j))
				}
			}
			if len(rows) != 1 {
				t.Fatalf("%.20q: %d rows", v, len(rows))
			}
			got := roaring.New()
			if _, err := got.FromBuffer(rows[0].Bitmap); err != nil {
				t.Fatal(err)
			}
			if !got.Equals(want) || rows[0].First != 10 || rows[0].Last != 21 || rows[0].Value != form(v) {
				t.Errorf("%.20q: %v first %d last %d value %.20q, want %v", v, got.ToArray(), rows[0].First, rows[0].Last, rows[0].Value, want.ToArray())
			}
		}
		stored, err := s.LedgerValues(ctx, "principal", 0, 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, v := range values {
			seen[form(v)] = true
		}
		if len(stored) != len(seen) {
			t.Fatalf("%d stored values, want %d", len(stored), len(seen))
		}
		for _, v := range stored {
			if !seen[v] {
				t.Errorf("stored value %.20q is no value's form", v)
			}
		}
	})
}
