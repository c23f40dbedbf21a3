package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/haechi-sec/haechi/internal/longtext"
	"github.com/haechi-sec/haechi/internal/store"
)

// postgresSchema returns HAECHI_TEST_POSTGRES with search_path set to a
// schema of its own, dropped when t ends; it skips t when the variable is
// unset and fails it when the server is unreachable (docs/store.md).
func postgresSchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("HAECHI_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("HAECHI_TEST_POSTGRES not set: skipping the PostgreSQL store (set it to a postgres:// URL; see docs/store.md)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("HAECHI_TEST_POSTGRES is set but PostgreSQL is unreachable: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "haechi_ledger_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Record ids an event may carry that PostgreSQL's text cannot hold as
// they are (a NUL byte, invalid UTF-8; the store writes them with U+FFFD)
// keep one number across flushes, a look-up after the dictionary has
// forgotten them, and a restart; the entries always store (PostgreSQL
// indexes at most ≈ 2.7 kB of a name: a longer id is stored shortened). Two such ids
// the store cannot tell apart ("a\x00b", "a\xffb" on PostgreSQL) are one
// id to the dictionary too: numbering them apart would store one name
// for two numbers — a conflict that fails every later flush.
func TestDictRecordIDsTheStoreRewrites(t *testing.T) {
	odd := []string{"a\x00b", "a\xffb", "c\xc3", "nul\x00", "plain:1", longtext.Incompressible("L", 64<<10), longtext.Incompressible("L", 64<<10) + "!", longtext.Incompressible("M", 2600)[:2600]}
	for _, tc := range []struct {
		name   string
		target func(t *testing.T) string
		opts   store.Options
	}{
		{"sqlite", func(t *testing.T) string { return t.TempDir() }, store.Options{}},
		{"pebble", func(t *testing.T) string { return t.TempDir() }, store.Options{LedgerEngine: store.LedgerPebble}},
		{"postgres", postgresSchema, store.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			target := tc.target(t)
			st, err := store.Open(ctx, target, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { st.Close() }()
			opts := DictOptions{CacheEntries: 2, FilterBytes: 1 << 10}
			d, err := OpenDict(ctx, st, opts)
			if err != nil {
				t.Fatal(err)
			}
			flush := func(phase string) {
				t.Helper()
				p := d.takePending()
				if err := st.MergeLedger(ctx, p, nil); err != nil {
					t.Fatalf("%s: flush: %v", phase, err)
				}
				d.stored(p)
			}
			first := map[string]uint32{}
			check := func(phase string) {
				t.Helper()
				got := make([]uint32, len(odd))
				if n := d.numberAll(got, odd); n != 0 {
					t.Fatalf("%s: %d dropped", phase, n)
				}
				for i, rid := range odd {
					if v, ok := first[rid]; ok && v != got[i] {
						t.Fatalf("%s: %q numbered %d, was %d", phase, rid, got[i], v)
					}
					first[rid] = got[i]
				}
				flush(phase)
			}
			check("new")
			// Forget them (generations of two), then ask the store.
			d.numberAll(make([]uint32, 6), []string{"x:1", "x:2", "x:3", "x:4", "x:5", "x:6"})
			flush("others")
			check("looked up")
			st.Close()
			if st, err = store.Open(ctx, target, tc.opts); err != nil {
				t.Fatal(err)
			}
			if d, err = OpenDict(ctx, st, opts); err != nil {
				t.Fatal(err)
			}
			check("restarted")
			// One number names one stored id.
			names := map[string]uint32{}
			if err := st.ScanLedgerDict(ctx, func(id uint32, rid string) error {
				if v, ok := names[rid]; ok {
					t.Errorf("%q stored as %d and %d", rid, v, id)
				}
				names[rid] = id
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A shared dictionary (cluster workers) over PostgreSQL numbers such ids
// once too: asked again after it forgot them, or by another worker, the
// store answers with the number it stored.
func TestSharedDictRecordIDsTheStoreRewrites(t *testing.T) {
	ctx := t.Context()
	target := postgresSchema(t)
	st, err := store.Open(ctx, target, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	odd := []string{"a\x00b", "a\xffb", "c\xc3", "nul\x00", "plain:1"}
	d := NewSharedDict(st, DictOptions{CacheEntries: 8})
	other := NewSharedDict(st, DictOptions{CacheEntries: 8})
	first := map[string]uint32{}
	for phase, dd := range []*Dict{d, nil, d, other} {
		if dd == nil { // forget them
			for i := range 3 {
				d.numberAll(make([]uint32, 8), []string{"x:1", "x:2", "x:3", "x:4", "x:5", "x:6", "x:7", fmt.Sprint("x:", 8+i)})
			}
			continue
		}
		got := make([]uint32, len(odd))
		if n := dd.numberAll(got, odd); n != 0 {
			t.Fatalf("phase %d: %d dropped", phase, n)
		}
		for i, rid := range odd {
			if v, ok := first[rid]; ok && v != got[i] {
				t.Fatalf("phase %d: %q numbered %d, was %d", phase, rid, got[i], v)
			}
			first[rid] = got[i]
		}
	}
}

// A shared dictionary numbers every id of a batch the store numbered,
// even when the batch holds more new ids than its two generations
// remember (or other shards' numbering pushes them out meanwhile): none
// is dropped for having been forgotten between the store's answer and
// the batch's numbers.
func TestSharedDictBatchLargerThanCache(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := NewSharedDict(st, DictOptions{CacheEntries: 2})
	rids := make([]string, 10)
	for i := range rids {
		rids[i] = fmt.Sprint("o:", i)
	}
	got := make([]uint32, len(rids))
	if n := d.numberAll(got, rids); n != 0 {
		t.Fatalf("%d of %d ids dropped", n, len(rids))
	}
	seen := map[uint32]bool{}
	for i, v := range got {
		if v < DictBase || seen[v] {
			t.Fatalf("%q numbered %d (%v)", rids[i], v, got)
		}
		seen[v] = true
	}
}

// The dictionary's memory is bounded in bytes, not only in ids: record
// ids of 64 KiB each (an event line holds many) leave it holding about
// what ids of ordinary length would, not CacheEntries × 64 KiB per
// generation.
func TestBoundedDictLongIDs(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, t.TempDir(), store.Options{LedgerEngine: store.LedgerPebble})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const cache = 256
	d, err := OpenDict(ctx, st, DictOptions{CacheEntries: cache, FilterBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	held := func() int {
		d.mu.RLock()
		defer d.mu.RUnlock()
		n := 0
		for _, m := range []map[string]uint32{d.cur, d.old, d.unstored} {
			for k := range m {
				n += len(k)
			}
		}
		return n
	}
	long := strings.Repeat("x", 64<<10)
	batch := make([]string, 16)
	first := map[string]uint32{}
	for b := range 64 {
		for i := range batch {
			batch[i] = fmt.Sprintf("%s:%d:%d", long, b, i)
		}
		got := make([]uint32, len(batch))
		if n := d.numberAll(got, batch); n != 0 {
			t.Fatalf("%d dropped", n)
		}
		for i, rid := range batch {
			first[rid] = got[i]
		}
		p := d.takePending()
		if err := st.MergeLedger(ctx, p, nil); err != nil {
			t.Fatal(err)
		}
		d.stored(p)
	}
	// Two generations of ids averaging 64 bytes, and one batch not yet
	// stored.
	if limit := 2*cache*dictIDBytes + len(batch)*(len(long)+16); held() > limit {
		t.Fatalf("%d bytes of ids held, bound %d", held(), limit)
	}
	// Still exact: every id keeps its number (looked up).
	for rid, v := range first {
		if got, ok := d.ID(rid); !ok || got != v {
			t.Fatalf("renumbered: %d, was %d", got, v)
		}
	}
}

// failingSink fails every merge while failing is set.
type failingSink struct {
	Sink
	failing atomic.Bool
}

func (f *failingSink) MergeLedger(ctx context.Context, dict []store.LedgerDictEntry, rows []store.LedgerRow) error {
	if f.failing.Load() {
		return errors.New("store unavailable")
	}
	return f.Sink.MergeLedger(ctx, dict, rows)
}

// Entries whose flush was lost (the writer gave up) keep their numbers:
// they stay unstored — never taken for stored, so never forgotten and
// then looked up in a store that does not hold them — and are stored
// with the next flush; after a restart every id still has that number.
func TestBoundedDictLostFlush(t *testing.T) {
	for _, engine := range []string{store.LedgerSQLite, store.LedgerPebble} {
		t.Run(engine, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			st, err := store.Open(ctx, dir, store.Options{LedgerEngine: engine})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { st.Close() }()
			opts := DictOptions{CacheEntries: 2, FilterBytes: 1 << 10}
			d, err := OpenDict(ctx, st, opts)
			if err != nil {
				t.Fatal(err)
			}
			sink := &failingSink{Sink: st}
			l := New(sink, d, Options{Logger: slog.New(slog.DiscardHandler)})
			want := map[string]uint32{}
			number := func(phase string, rids ...string) {
				t.Helper()
				got := make([]uint32, len(rids))
				if n := d.numberAll(got, rids); n != 0 {
					t.Fatalf("%s: %d dropped", phase, n)
				}
				for i, rid := range rids {
					if v, ok := want[rid]; ok && v != got[i] {
						t.Fatalf("%s: %q numbered %d, was %d", phase, rid, got[i], v)
					}
					want[rid] = got[i]
				}
			}
			stored := []string{"s:1", "s:2", "s:3", "s:4", "s:5", "s:6", "s:7", "s:8"}
			number("before", stored...)
			l.write(ctx, nil, true)
			number("lost", "x:1", "x:2", "x:3")
			sink.failing.Store(true)
			l.write(ctx, nil, true) // gives up: x:1..3 lost
			if l.Err() == nil {
				t.Fatal("the flush was not lost")
			}
			sink.failing.Store(false)
			// Stored ids, looked up and remembered, rotate the generations
			// before the lost entries are stored again.
			for i := 0; i < len(stored); i += 2 {
				number("stored ids", stored[i], stored[i+1])
			}
			number("after loss", "x:1", "x:2", "x:3", "y:1")
			l.write(ctx, nil, true)
			number("stored", "x:1", "x:2", "x:3", "y:1")
			st.Close()
			if st, err = store.Open(ctx, dir, store.Options{LedgerEngine: engine}); err != nil {
				t.Fatal(err)
			}
			if d, err = OpenDict(ctx, st, opts); err != nil {
				t.Fatal(err)
			}
			for rid := range want {
				number("restarted", rid)
			}
			if len(d.takePending()) != 0 {
				t.Fatal("ids numbered anew after the restart")
			}
		})
	}
}

// rewritingStore is a store over SQLite that, like PostgreSQL's, holds
// record ids rewritten (NUL and invalid UTF-8 as U+FFFD): what it writes,
// looks up and answers is the rewritten form. It says so (DictForm).
type rewritingStore struct{ *store.Store }

func rewriteRID(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}

func (r rewritingStore) LedgerRIDForm() func(string) string { return rewriteRID }

func (r rewritingStore) MergeLedger(ctx context.Context, dict []store.LedgerDictEntry, rows []store.LedgerRow) error {
	out := make([]store.LedgerDictEntry, len(dict))
	for i, e := range dict {
		out[i] = store.LedgerDictEntry{ID: e.ID, RID: rewriteRID(e.RID)}
	}
	return r.Store.MergeLedger(ctx, out, rows)
}

func (r rewritingStore) LookupLedgerDict(ctx context.Context, rids []string) (map[string]uint32, error) {
	asked := make([]string, len(rids))
	for i, rid := range rids {
		asked[i] = rewriteRID(rid)
	}
	return r.Store.LookupLedgerDict(ctx, asked)
}

// The dictionary's side of TestDictRecordIDsTheStoreRewrites without a
// PostgreSQL server: over a store that rewrites ids, every id keeps one
// number across a look-up and a restart, and ids it cannot tell apart
// share it.
func TestDictNumbersInTheStoreForm(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st, err := store.Open(ctx, dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { st.Close() }()
	opts := DictOptions{CacheEntries: 2, FilterBytes: 1 << 10}
	d, err := OpenDict(ctx, rewritingStore{st}, opts)
	if err != nil {
		t.Fatal(err)
	}
	odd := []string{"a\x00b", "a\xffb", "c\xc3", "nul\x00", "plain:1"}
	want := map[string]uint32{}
	check := func(phase string, rids ...string) {
		t.Helper()
		got := make([]uint32, len(rids))
		if n := d.numberAll(got, rids); n != 0 {
			t.Fatalf("%s: %d dropped", phase, n)
		}
		for i, rid := range rids {
			if v, ok := want[rid]; ok && v != got[i] {
				t.Fatalf("%s: %q numbered %d, was %d", phase, rid, got[i], v)
			}
			want[rid] = got[i]
		}
		p := d.takePending()
		if err := (rewritingStore{st}).MergeLedger(ctx, p, nil); err != nil {
			t.Fatalf("%s: %v", phase, err)
		}
		d.stored(p)
	}
	check("new", odd...)
	if want["a\x00b"] != want["a\xffb"] {
		t.Fatalf("ids the store cannot tell apart numbered %d and %d", want["a\x00b"], want["a\xffb"])
	}
	check("others", "x:1", "x:2", "x:3", "x:4", "x:5", "x:6")
	check("looked up", odd...)
	st.Close()
	if st, err = store.Open(ctx, dir, store.Options{}); err != nil {
		t.Fatal(err)
	}
	if d, err = OpenDict(ctx, rewritingStore{st}, opts); err != nil {
		t.Fatal(err)
	}
	check("restarted", odd...)
}

// An id the dictionary must ask the store about is asked for once per
// batch however often the batch repeats it (a client repeating one old id
// would otherwise make a look-up of one id as long as the batch).
func TestDictAsksOnceForARepeatedID(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := OpenDict(ctx, st, DictOptions{CacheEntries: 1, FilterBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	flush := func() {
		p := d.takePending()
		if err := st.MergeLedger(ctx, p, nil); err != nil {
			t.Fatal(err)
		}
		d.stored(p)
	}
	old, _ := d.ID("old:1")
	flush()
	d.ID("b:1")
	d.ID("b:2")
	d.ID("b:3")
	flush()
	asked := d.asked.Load()
	batch := make([]string, 1000)
	for i := range batch {
		batch[i] = "old:1"
	}
	got := make([]uint32, len(batch))
	if n := d.numberAll(got, batch); n != 0 || got[0] != old || got[999] != old {
		t.Fatalf("dropped %d, numbers %d…%d, want %d", n, got[0], got[999], old)
	}
	if n := d.asked.Load() - asked; n != 1 {
		t.Fatalf("asked the store for %d ids, want 1", n)
	}
}
