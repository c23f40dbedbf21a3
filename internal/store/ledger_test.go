package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/google/go-cmp/cmp"
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
	cpu0 := cpuTime()
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
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkMergeLedgerCustomerDays merges flushes of what customers
// reading their own data make: 64 principals' days, half new and half
// ORed into stored days, each of one record type and four field
// categories of the same one or two records (the whole set, name, phone,
// email) — 320 cells per flush.
func BenchmarkMergeLedgerCustomerDays(b *testing.B) {
	for _, be := range []backend{sqliteBackend, postgresBackend} {
		b.Run(be.name, func(b *testing.B) {
			if be.name == "postgres" {
				requirePostgres(b)
			}
			s := be.open(b)
			ctx := b.Context()
			const half = 32
			var rows []LedgerRow
			n, day := 0, int64(20000)
			add := func(i int, day int64) {
				ids := []uint32{uint32(n + i)}
				if i%3 == 0 {
					ids = append(ids, uint32(n+i+1))
				}
				bm, err := roaring.BitmapOf(ids...).ToBytes()
				if err != nil {
					b.Fatal(err)
				}
				for _, f := range []string{"", "name", "phone", "email", "address"} {
					if f == "address" && i%2 == 0 {
						continue
					}
					rows = append(rows, LedgerRow{Dim: "principal", Value: fmt.Sprintf("m:%d", i), Day: day, RType: "customer", Field: f,
						Bitmap: bm, First: int64(n), Last: int64(n + 1)})
				}
			}
			cells := 0
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				rows = rows[:0]
				for i := range half {
					add(i, day) // stored by the previous flush
				}
				day++
				for i := range half {
					add(i, day) // new
				}
				n += 2 * half
				cells += len(rows)
				if err := s.MergeLedger(ctx, nil, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(cells)/b.Elapsed().Seconds(), "cells/s")
		})
	}
}

// TestAssignLedgerDictConcurrent: several processes (one Store each on the
// same database) numbering overlapping record ids at once never give one
// id two numbers or one number to two ids, and the numbers stay contiguous
// from the first.
func TestAssignLedgerDictConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		target := b.target(t)
		const (
			procs  = 4
			rounds = 30
			first  = 1 << 31
		)
		ctx := t.Context()
		stores := make([]*Store, procs)
		for i := range stores {
			stores[i] = openAt(t, target)
		}
		// Existing entries (a single serve's MergeLedger) come first.
		if err := stores[0].SaveLedgerDict(ctx, []LedgerDictEntry{{ID: first, RID: "pre-0"}, {ID: first + 1, RID: "pre-1"}}); err != nil {
			t.Fatal(err)
		}
		seen := make([]map[string]uint32, procs)
		errc := make(chan error, procs)
		var wg sync.WaitGroup
		for p, s := range stores {
			seen[p] = map[string]uint32{}
			wg.Go(func() {
				for r := range rounds {
					// Shared ids (every process asks), own ids, a known one.
					rids := []string{fmt.Sprintf("shared-%d", r), fmt.Sprintf("own-%d-%d", p, r), fmt.Sprintf("shared-%d", (r+p)%rounds), "pre-1"}
					es, err := s.AssignLedgerDict(ctx, rids, first)
					if err != nil {
						errc <- err
						return
					}
					for i, e := range es {
						if e.RID != rids[i] {
							errc <- fmt.Errorf("entry %d is %q, want %q", i, e.RID, rids[i])
							return
						}
						if old, ok := seen[p][e.RID]; ok && old != e.ID {
							errc <- fmt.Errorf("%q numbered %d then %d", e.RID, old, e.ID)
							return
						}
						seen[p][e.RID] = e.ID
					}
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		stored, err := stores[0].LoadLedgerDict(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := 2 + rounds + procs*rounds; len(stored) != want {
			t.Fatalf("%d entries stored, want %d", len(stored), want)
		}
		byRID := map[string]uint32{}
		for i, e := range stored { // ordered by id
			if e.ID != first+uint32(i) {
				t.Fatalf("entry %d has number %d: not contiguous from %d", i, e.ID, uint32(first))
			}
			byRID[e.RID] = e.ID
		}
		if byRID["pre-1"] != first+1 {
			t.Errorf("pre-1 renumbered to %d", byRID["pre-1"])
		}
		for p := range seen {
			for rid, id := range seen[p] {
				if byRID[rid] != id {
					t.Errorf("process %d was given %d for %q, the store has %d", p, id, rid, byRID[rid])
				}
			}
		}
	})
}

// BenchmarkSortedLedgerRows sorts and merges a flush the size replay
// hands the store every six hours of event time with tens of thousands
// of customers. rows: 20,000 cells in map order (the ledger's), each one
// row, one in ten a second cell of an earlier key (a shard's and
// another's). cells: 10,000 cells in map order, each handed as the ledger
// does, its rows one after another (the type's whole set and one to three
// field categories), one in ten a second hand-off of an earlier cell.
func BenchmarkSortedLedgerRows(b *testing.B) {
	bm, err := roaring.BitmapOf(1, 2, 3).ToBytes()
	if err != nil {
		b.Fatal(err)
	}
	fields := []string{"", "name", "phone", "email", "address"}
	dims := []string{"principal", "source", "key"}
	bench := func(b *testing.B, rows []LedgerRow) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			out, err := sortedLedgerRows(rows)
			if err != nil || len(out) == 0 {
				b.Fatal(len(out), err)
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
	}
	b.Run("rows", func(b *testing.B) {
		const n = 20_000
		rows := make([]LedgerRow, 0, n)
		for i := range n {
			k := i
			if i%10 == 9 {
				k = (i * 7919) % i
			}
			rows = append(rows, LedgerRow{Dim: dims[k%3], Value: fmt.Sprintf("m:%d", (k*104729)%n/5),
				Day: 20000 + int64(k%2), RType: "customer", Field: fields[k%5], Bitmap: bm, First: int64(i), Last: int64(i + 1)})
		}
		bench(b, rows)
	})
	b.Run("cells", func(b *testing.B) {
		const n = 10_000
		var rows []LedgerRow
		for i := range n {
			k := i
			if i%10 == 9 {
				k = (i * 7919) % i
			}
			dim, value, day := dims[k%3], fmt.Sprintf("m:%d", (k*104729)%n), 20000+int64(k%2)
			for _, f := range []string{"", fields[1+k%4], fields[1+(k+1)%4], fields[1+(k+2)%4]}[:2+k%3] {
				rows = append(rows, LedgerRow{Dim: dim, Value: value, Day: day, RType: "customer", Field: f,
					Bitmap: bm, First: int64(i), Last: int64(i + 1)})
			}
		}
		bench(b, rows)
	})
}

// sortedLedgerRows sorts by key and merges the rows of one key, whatever
// their order.
func TestSortedLedgerRows(t *testing.T) {
	bm := func(ids ...uint32) []byte {
		b, err := roaring.BitmapOf(ids...).ToBytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rows := []LedgerRow{
		{Dim: "source", Value: "b", Day: 2, RType: "customer", Bitmap: bm(5), First: 5, Last: 6},
		{Dim: "principal", Value: "a", Day: 1, RType: "customer", Field: "name", Bitmap: bm(1), First: 3, Last: 4},
		{Dim: "principal", Value: "a", Day: 1, RType: "customer", Bitmap: bm(1, 2), First: 1, Last: 9},
		{Dim: "principal", Value: "a", Day: 1, RType: "customer", Field: "name", Bitmap: bm(7), First: 2, Last: 3},
		{Dim: "principal", Value: "a", Day: 1, RType: "customer", Field: "name", Bitmap: bm(8), First: 4, Last: 8},
	}
	out, err := sortedLedgerRows(rows)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		key         string
		ids         []uint32
		first, last int64
	}
	var got []row
	for _, r := range out {
		b := roaring.New()
		if _, err := b.FromBuffer(r.Bitmap); err != nil {
			t.Fatal(err)
		}
		got = append(got, row{fmt.Sprintf("%s=%s/%d/%s/%s", r.Dim, r.Value, r.Day, r.RType, r.Field), b.ToArray(), r.First, r.Last})
	}
	want := []row{
		{"principal=a/1/customer/", []uint32{1, 2}, 1, 9},
		{"principal=a/1/customer/name", []uint32{1, 7, 8}, 2, 8},
		{"source=b/2/customer/", []uint32{5}, 5, 6},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if rows[0].Dim != "source" || rows[1].Field != "name" {
		t.Error("the input was reordered")
	}
}

// BenchmarkSaveLedgerDict stores 1,000 new dictionary entries a flush (a
// tenth of them already stored: a retried flush), the ledger's dictionary
// path on SQLite.
func BenchmarkSaveLedgerDict(b *testing.B) {
	s := sqliteBackend.open(b)
	ctx := b.Context()
	next := uint32(1 << 31)
	var dict []LedgerDictEntry
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		keep := dict[len(dict)-len(dict)/10:]
		dict = append(dict[:0:0], keep...)
		for range 1000 - len(dict) {
			dict = append(dict, LedgerDictEntry{ID: next, RID: fmt.Sprintf("c-%d", next)})
			next++
		}
		if err := s.SaveLedgerDict(ctx, dict); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
}

// BenchmarkSaveLedgerDictNew is a local dictionary's usual flush on
// SQLite: 1,000 entries, every one new.
func BenchmarkSaveLedgerDictNew(b *testing.B) {
	s := sqliteBackend.open(b)
	ctx := b.Context()
	next := uint32(1 << 31)
	dict := make([]LedgerDictEntry, 1000)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		for i := range dict {
			dict[i] = LedgerDictEntry{ID: next, RID: fmt.Sprintf("o:%d:%d", 10000000+next%20000, next/20000)}
			next++
		}
		if err := s.SaveLedgerDict(ctx, dict); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
}

// TestMergeLedgerCorruptStoredDay: a merge into a stored day whose cells
// cannot be decoded fails and leaves the day as it was (the union is
// computed from what is stored, never written over it).
func TestMergeLedgerCorruptStoredDay(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t)
		ctx := t.Context()
		row := LedgerRow{Dim: "key", Value: "k1", Day: 20000, RType: "customer", Bitmap: bm(t, 1), First: 1, Last: 2}
		if err := s.MergeLedger(ctx, nil, []LedgerRow{row}); err != nil {
			t.Fatal(err)
		}
		bad := []byte{cellsVersion, 1, 200} // one cell, its type's length past the end
		if _, err := s.db.ExecContext(ctx, s.dialect.rebind(`UPDATE ledger_days SET cells = ? WHERE dim = 'key'`), bad); err != nil {
			t.Fatal(err)
		}
		row.Bitmap = bm(t, 2)
		if err := s.MergeLedger(ctx, nil, []LedgerRow{row}); err == nil || !strings.Contains(err.Error(), "malformed ledger cells") {
			t.Fatalf("merge into a corrupt day: %v", err)
		}
		var got []byte
		if err := s.db.QueryRowContext(ctx, `SELECT cells FROM ledger_days WHERE dim = 'key'`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, bad) {
			t.Errorf("stored cells %x, want %x", got, bad)
		}
	})
}

// TestSortedLedgerRowsModel: on random flushes from a small key space —
// cells' rows in runs as the ledger hands them, runs split, one cell in
// several runs, rows shuffled — sortedLedgerRows equals sorting every row
// by its full key and merging equal keys.
func TestSortedLedgerRowsModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for trial := range 200 {
		var rows []LedgerRow
		for range rng.IntN(40) {
			dim, value, day, rtype := []string{"key", "source"}[rng.IntN(2)], fmt.Sprint(rng.IntN(3)), int64(rng.IntN(2)), []string{"customer", "order"}[rng.IntN(2)]
			for range 1 + rng.IntN(3) {
				rows = append(rows, LedgerRow{Dim: dim, Value: value, Day: day, RType: rtype, Field: []string{"", "name", "email"}[rng.IntN(3)],
					Bitmap: bm(t, uint32(rng.IntN(100))), First: int64(rng.IntN(50)), Last: int64(50 + rng.IntN(50))})
			}
		}
		if trial%3 == 0 {
			rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		}
		got, err := sortedLedgerRows(rows)
		if err != nil {
			t.Fatal(err)
		}
		model := slices.Clone(rows)
		slices.SortStableFunc(model, func(a, b LedgerRow) int { return compareLedgerKey(&a, &b) })
		var want []LedgerRow
		for _, r := range model {
			if n := len(want); n > 0 && compareLedgerKey(&want[n-1], &r) == 0 {
				m, err := mergeLedgerRow(&r, want[n-1].Bitmap, want[n-1].First, want[n-1].Last)
				if err != nil {
					t.Fatal(err)
				}
				want[n-1] = m
				continue
			}
			want = append(want, r)
		}
		if diff := cmp.Diff(decodeAll(t, want), decodeAll(t, got)); diff != "" {
			t.Fatalf("trial %d (-model +got):\n%s", trial, diff)
		}
	}
}
