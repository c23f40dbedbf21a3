package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/google/go-cmp/cmp"
)

// ledgerEngine is what the ledger benchmarks and the KV test drive.
type ledgerEngine interface {
	MergeLedger(ctx context.Context, dict []LedgerDictEntry, rows []LedgerRow) error
	LedgerRows(ctx context.Context, dim string, values []string, fromDay, toDay int64) ([]LedgerRow, error)
	LedgerValues(ctx context.Context, dim string, fromDay, toDay int64) ([]string, error)
	LoadLedgerDict(ctx context.Context) ([]LedgerDictEntry, error)
	LedgerDictNames(ctx context.Context, ids []uint32) (map[uint32]string, error)
}

func openLedgerKV(t testing.TB) *LedgerKV {
	k, err := OpenLedgerKV(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// randomFlushes returns flushes of random rows over few values, days,
// types and fields, so that keys repeat within and across flushes.
func randomFlushes(rng *rand.Rand, n int) [][]LedgerRow {
	var out [][]LedgerRow
	for range n {
		var rows []LedgerRow
		for range rng.IntN(40) + 1 {
			ids := make([]uint32, rng.IntN(5)+1)
			for i := range ids {
				ids[i] = rng.Uint32N(300)
				if rng.IntN(4) == 0 {
					ids[i] = DictBaseForTest + rng.Uint32N(20)
				}
			}
			bm, _ := roaring.BitmapOf(ids...).ToBytes()
			first := rng.Int64N(1000) - 500
			rows = append(rows, LedgerRow{
				Dim:    []string{"principal", "source"}[rng.IntN(2)],
				Value:  []string{"a", "b", "a\x00b", "a\x00", "", "zz"}[rng.IntN(6)],
				Day:    int64(rng.IntN(5)) - 2,
				RType:  []string{"customer", "order"}[rng.IntN(2)],
				Field:  []string{"", "name", "phone"}[rng.IntN(3)],
				Bitmap: bm, First: first, Last: first + rng.Int64N(100),
			})
		}
		out = append(out, rows)
	}
	return out
}

// DictBaseForTest is the ledger's first dictionary number (ledger.DictBase).
const DictBaseForTest = 1 << 31

// TestLedgerKVMatchesSQLite: the same flushes merged into SQLite and into
// the pebble ledger read back the same rows, values and dictionary, before
// and after the pebble ledger is closed, reopened and compacted.
func TestLedgerKVMatchesSQLite(t *testing.T) {
	ctx := t.Context()
	sq := sqliteBackend.open(t)
	dir := t.TempDir()
	kv, err := OpenLedgerKV(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 9))
	for i, rows := range randomFlushes(rng, 60) {
		dict := []LedgerDictEntry{{ID: DictBaseForTest + uint32(i), RID: fmt.Sprintf("r:%d", i)}}
		for _, e := range []ledgerEngine{sq, kv} {
			if err := e.MergeLedger(ctx, dict, rows); err != nil {
				t.Fatal(err)
			}
		}
	}
	compare := func(stage string) {
		t.Helper()
		for _, dim := range []string{"principal", "source", "key"} {
			for _, q := range []struct {
				values   []string
				from, to int64
			}{{nil, -10, 10}, {nil, -1, 0}, {[]string{"a"}, -10, 10}, {[]string{"a\x00", "", "b"}, -1, 1}, {[]string{"zz", "nope"}, 2, 2}} {
				want, err := sq.LedgerRows(ctx, dim, q.values, q.from, q.to)
				if err != nil {
					t.Fatal(err)
				}
				got, err := kv.LedgerRows(ctx, dim, q.values, q.from, q.to)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(decodeAll(t, want), decodeAll(t, got)); diff != "" {
					t.Errorf("%s: rows %s %q [%d,%d] (-sqlite +pebble):\n%s", stage, dim, q.values, q.from, q.to, diff)
				}
				wv, _ := sq.LedgerValues(ctx, dim, q.from, q.to)
				gv, err := kv.LedgerValues(ctx, dim, q.from, q.to)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(wv, gv); diff != "" {
					t.Errorf("%s: values %s [%d,%d] (-sqlite +pebble):\n%s", stage, dim, q.from, q.to, diff)
				}
			}
		}
		wd, _ := sq.LoadLedgerDict(ctx)
		gd, err := kv.LoadLedgerDict(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wd, gd); diff != "" {
			t.Errorf("%s: dictionary (-sqlite +pebble):\n%s", stage, diff)
		}
		names, err := kv.LedgerDictNames(ctx, []uint32{DictBaseForTest + 3, 5, DictBaseForTest + 1000})
		if err != nil || len(names) != 1 || names[DictBaseForTest+3] != "r:3" {
			t.Errorf("%s: names %v %v", stage, names, err)
		}
	}
	compare("open")
	if err := kv.db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	compare("compacted")
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	if kv, err = OpenLedgerKV(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	compare("reopened")
}

// decodeAll returns rows with their bitmaps as id lists (equal sets
// serialize alike only after the same run optimisation).
func decodeAll(t *testing.T, rows []LedgerRow) []string {
	t.Helper()
	var out []string
	for _, r := range rows {
		bm := roaring.New()
		if _, err := bm.FromBuffer(r.Bitmap); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s|%q|%d|%s|%s|%d|%d|%v", r.Dim, r.Value, r.Day, r.RType, r.Field, r.First, r.Last, bm.ToArray()))
	}
	return out
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLedgerFlush merges flushes the size of serve's (2,000
// customers' days: each one record type and four or five field categories
// of one or two records, a tenth of them with a new dictionary id), half
// into days stored by the previous flush and half into new days, into a
// ledger that grows by 1,000 days a flush. cpu-ms/op is the process's CPU
// time (user + system) per flush, background work (pebble's compactions)
// included.
func BenchmarkLedgerFlush(b *testing.B) {
	for _, name := range []string{"sqlite", "pebble"} {
		b.Run(name, func(b *testing.B) {
			var e ledgerEngine
			if name == "sqlite" {
				e = sqliteBackend.open(b)
			} else {
				e = openLedgerKV(b)
			}
			benchLedgerFlush(b, e)
		})
	}
}

func benchLedgerFlush(b *testing.B, e ledgerEngine) {
	ctx := b.Context()
	const half = 1000
	var rows []LedgerRow
	var dict []LedgerDictEntry
	n, day, next := 0, int64(20000), uint32(DictBaseForTest)
	add := func(i int, day int64) {
		ids := []uint32{uint32(n + i)}
		if i%10 == 0 {
			ids[0] = next
			dict = append(dict, LedgerDictEntry{ID: next, RID: fmt.Sprintf("c-%d", next)})
			next++
		}
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
			rows = append(rows, LedgerRow{Dim: "principal", Value: fmt.Sprintf("m:%d", i+int(day%7)*half), Day: day, RType: "customer", Field: f,
				Bitmap: bm, First: int64(n), Last: int64(n + 1)})
		}
	}
	cells := 0
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		rows, dict = rows[:0], dict[:0]
		for i := range half {
			add(i, day) // stored by the previous flush
		}
		day++
		for i := range half {
			add(i, day) // new
		}
		n += 2 * half
		cells += len(rows)
		if err := e.MergeLedger(ctx, dict, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(cells)/b.Elapsed().Seconds(), "cells/s")
}

// TestLedgerEngineSwitch: a SQLite store opened with the pebble ledger
// copies the tables' ledger into pebble, and stays on pebble: the default
// engine finds it, the sqlite engine is refused, a PostgreSQL store
// refuses pebble.
func TestLedgerEngineSwitch(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	open := func(engine string) (*Store, error) { return Open(ctx, dir, Options{LedgerEngine: engine}) }
	rowsOf := func(s *Store) []string {
		t.Helper()
		rs, err := s.LedgerRows(ctx, "principal", nil, -100, 100)
		if err != nil {
			t.Fatal(err)
		}
		return decodeAll(t, rs)
	}
	s, err := open(LedgerSQLite)
	if err != nil {
		t.Fatal(err)
	}
	flushes := randomFlushes(rand.New(rand.NewPCG(3, 4)), 20)
	dict := []LedgerDictEntry{{ID: DictBaseForTest, RID: "r:0"}}
	for _, rows := range flushes[:10] {
		if err := s.MergeLedger(ctx, dict, rows); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s, err = open(LedgerPebble)
	if err != nil {
		t.Fatal(err)
	}
	for _, rows := range flushes[10:] {
		if err := s.MergeLedger(ctx, nil, rows); err != nil {
			t.Fatal(err)
		}
	}
	got := rowsOf(s)
	if d, err := s.LoadLedgerDict(ctx); err != nil || len(d) != 1 || d[0] != dict[0] {
		t.Errorf("dictionary after the copy: %v %v", d, err)
	}
	s.Close()

	// The same flushes into a store that never left SQLite.
	ref, err := Open(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, rows := range flushes {
		if err := ref.MergeLedger(ctx, nil, rows); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(rowsOf(ref), got); diff != "" {
		t.Errorf("switched store (-sqlite throughout +switched):\n%s", diff)
	}

	if s, err = open(""); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, rowsOf(s)); diff != "" {
		t.Errorf("default engine did not find the pebble ledger:\n%s", diff)
	}
	s.Close()
	if s, err := open(LedgerSQLite); err == nil {
		s.Close()
		t.Error("sqlite ledger engine accepted over a pebble ledger")
	}
	if _, err := Open(ctx, "postgres://haechi@127.0.0.1:1/x", Options{LedgerEngine: LedgerPebble}); err == nil || !strings.Contains(err.Error(), "pebble") {
		t.Errorf("PostgreSQL with the pebble ledger: %v", err)
	}
}

// TestLedgerKVOneProcess: a second store on the directory cannot open the
// pebble ledger while the first holds it, and says what to do instead.
func TestLedgerKVOneProcess(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	a, err := Open(ctx, dir, Options{LedgerEngine: LedgerPebble})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.LoadLedgerDict(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.LedgerValues(ctx, "key", 0, 1); err == nil || !strings.Contains(err.Error(), "/v1/scope") {
		t.Errorf("second opener: %v", err)
	}
}

// LookupLedgerDict and ScanLedgerDict answer alike on both ledger engines,
// including a pebble ledger written before it kept the dictionary's
// inverse keys (they are written when it is opened).
func TestLedgerDictLookup(t *testing.T) {
	ctx := t.Context()
	var entries []LedgerDictEntry
	for i := range 1200 { // more than one look-up chunk
		entries = append(entries, LedgerDictEntry{ID: DictBaseForTest + uint32(i), RID: fmt.Sprintf("o:%d:x'\"", i)})
	}
	ask := []string{entries[0].RID, "absent", entries[1199].RID, entries[600].RID, entries[600].RID, ""}
	want := map[string]uint32{entries[0].RID: entries[0].ID, entries[1199].RID: entries[1199].ID, entries[600].RID: entries[600].ID}
	check := func(t *testing.T, s *Store) {
		t.Helper()
		got, err := s.LookupLedgerDict(ctx, ask)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("look-up (-want +got):\n%s", diff)
		}
		var scanned []LedgerDictEntry
		if err := s.ScanLedgerDict(ctx, func(id uint32, rid string) error {
			scanned = append(scanned, LedgerDictEntry{ID: id, RID: rid})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(entries, scanned); diff != "" {
			t.Errorf("scan (-want +got):\n%s", diff)
		}
	}
	eachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t)
		if err := s.MergeLedger(ctx, entries, nil); err != nil {
			t.Fatal(err)
		}
		check(t, s)
	})
	t.Run("pebble", func(t *testing.T) {
		s, err := Open(ctx, t.TempDir(), Options{LedgerEngine: LedgerPebble})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.MergeLedger(ctx, entries, nil); err != nil {
			t.Fatal(err)
		}
		check(t, s)
	})
	t.Run("pebble-before-inverse-keys", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(ctx, dir, Options{LedgerEngine: LedgerPebble})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MergeLedger(ctx, entries, nil); err != nil {
			t.Fatal(err)
		}
		// Take the ledger back to what an older haechi wrote.
		kv, err := s.ledgerKV(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := kv.db.DeleteRange([]byte{'r'}, []byte{'s'}, nil); err != nil {
			t.Fatal(err)
		}
		if err := kv.db.Delete(kvDictIndexedKey, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := kv.LookupLedgerDict(ctx, ask); err != nil || len(got) != 0 {
			t.Fatalf("inverse keys not removed: %v %v", got, err)
		}
		s.Close()
		if s, err = Open(ctx, dir, Options{LedgerEngine: LedgerPebble}); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(t, s)
	})
}
