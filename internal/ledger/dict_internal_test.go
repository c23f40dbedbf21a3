package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/haechi-sec/haechi/internal/store"
)

// dictStream is a reproducible stream of record-id batches: ids drawn
// from a pool that keeps growing (new customers' orders), with most draws
// from recent ids and some from anywhere (an old order read again),
// small integers and repeats within a batch among them.
func dictStream(seed uint64, batches, batchLen int) [][]string {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var pool []string
	out := make([][]string, batches)
	for b := range out {
		batch := make([]string, batchLen)
		for i := range batch {
			switch x := r.IntN(100); {
			case x < 30 || len(pool) == 0:
				pool = append(pool, fmt.Sprintf("o:%d:%d", 10000000+len(pool)/3, len(pool)%3))
				batch[i] = pool[len(pool)-1]
			case x < 80:
				batch[i] = pool[len(pool)-1-r.IntN(min(len(pool), 64))]
			case x < 95:
				batch[i] = pool[r.IntN(len(pool))]
			default:
				batch[i] = fmt.Sprint(r.IntN(1000)) // a small integer: no entry
			}
		}
		out[b] = batch
	}
	return out
}

// flakyLookup fails every look-up while failing is set.
type flakyLookup struct {
	DictStore
	failing bool
	calls   int
}

func (f *flakyLookup) LookupLedgerDict(ctx context.Context, rids []string) (map[string]uint32, error) {
	f.calls++
	if f.failing {
		return nil, errors.New("store unavailable")
	}
	return f.DictStore.LookupLedgerDict(ctx, rids)
}

// A dictionary over a store that remembers only a few ids, with a filter
// small enough to answer "maybe" for most of them, numbers every id
// exactly as one that remembers everything — across flushes to the store
// and a restart from it, on both ledger engines — while holding no more
// than its bounds in memory.
func TestBoundedDictEqualsUnbounded(t *testing.T) {
	for _, engine := range []string{store.LedgerSQLite, store.LedgerPebble} {
		for _, tc := range []struct {
			name         string
			cache        int
			filterBytes  int
			flushEvery   int
			restartAfter int
		}{
			{"tiny-cache-saturated-filter", 4, 8, 3, 40},
			{"small-cache", 64, 1 << 10, 1, 25},
			{"flush-rarely", 16, 64, 17, 60},
		} {
			t.Run(engine+"/"+tc.name, func(t *testing.T) {
				ctx := t.Context()
				st, err := store.Open(ctx, t.TempDir(), store.Options{LedgerEngine: engine})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				opts := DictOptions{CacheEntries: tc.cache, FilterBytes: tc.filterBytes}
				d, err := OpenDict(ctx, st, opts)
				if err != nil {
					t.Fatal(err)
				}
				ref := NewDict()
				flush := func() {
					p := d.takePending()
					if err := st.MergeLedger(ctx, p, nil); err != nil {
						t.Fatal(err)
					}
					d.stored(p)
				}
				stream := dictStream(uint64(len(tc.name)), 100, 50)
				for b, batch := range stream {
					got := make([]uint32, len(batch))
					want := make([]uint32, len(batch))
					if n := d.numberAll(got, batch); n != 0 {
						t.Fatalf("batch %d: %d dropped", b, n)
					}
					ref.numberAll(want, batch)
					for i := range batch {
						if got[i] != want[i] {
							t.Fatalf("batch %d: %q numbered %d, want %d", b, batch[i], got[i], want[i])
						}
					}
					if max := 2*tc.cache + len(d.unstored); d.Remembered() > max {
						t.Fatalf("batch %d: %d ids in memory, bound %d", b, d.Remembered(), max)
					}
					if b%tc.flushEvery == 0 {
						flush()
					}
					if b == tc.restartAfter {
						flush()
						if d, err = OpenDict(ctx, st, opts); err != nil {
							t.Fatal(err)
						}
					}
				}
				flush()
				if d.lookups.Load() == 0 {
					t.Fatal("the store was never asked: the test does not exercise look-ups")
				}
				if d.Len() != ref.Len() {
					t.Fatalf("Len %d, want %d", d.Len(), ref.Len())
				}
				// What the store holds is the reference's dictionary.
				var stored []store.LedgerDictEntry
				if err := st.ScanLedgerDict(ctx, func(id uint32, rid string) error {
					stored = append(stored, store.LedgerDictEntry{ID: id, RID: rid})
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if len(stored) != ref.Len() {
					t.Fatalf("%d entries stored, want %d", len(stored), ref.Len())
				}
				for _, e := range stored {
					if n, ok := ref.Name(e.ID); !ok || n != e.RID {
						t.Fatalf("stored %d=%q, reference %q", e.ID, e.RID, n)
					}
				}
			})
		}
	}
}

// When the store cannot answer whether it numbered an id, the id is
// dropped (counted), never numbered a second time; new ids the filter
// rules out are numbered all the same, and once the store answers again
// the id gets its stored number.
func TestBoundedDictLookupFailure(t *testing.T) {
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
	old := []string{"a:1", "a:2", "a:3"}
	nums := make([]uint32, 3)
	d.numberAll(nums, old)
	p := d.takePending()
	if err := st.MergeLedger(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	d.stored(p)
	// Forget them: a generation of one, pushed out by other ids.
	d.numberAll(make([]uint32, 2), []string{"b:1", "b:2"})
	fl := &flakyLookup{DictStore: st, failing: true}
	d.lookup = fl
	got := make([]uint32, 2)
	if n := d.numberAll(got, []string{"a:1", "c:1"}); n != 1 {
		t.Fatalf("dropped %d, want 1 (a:1, which the store may hold)", n)
	}
	if got[0] != dropID || got[1] == dropID || got[1] == nums[0] {
		t.Fatalf("numbers %v (a:1 was %d)", got, nums[0])
	}
	if fl.calls != assignAttempts {
		t.Fatalf("asked %d times, want %d", fl.calls, assignAttempts)
	}
	fl.failing = false
	if v, ok := d.ID("a:1"); !ok || v != nums[0] {
		t.Fatalf("a:1 = %d %v after recovery, want %d", v, ok, nums[0])
	}
}

// The dictionary's memory does not grow with the ids it has numbered: a
// million ids through a dictionary of 2 × 4,096 leave it holding what
// its bounds allow, where one that remembers everything holds them all.
func TestBoundedDictMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("numbers a million ids")
	}
	ctx := t.Context()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const filter = 1 << 20
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	d, err := OpenDict(ctx, st, DictOptions{CacheEntries: 4096, FilterBytes: filter})
	if err != nil {
		t.Fatal(err)
	}
	// A million ids; a hundred thousand under the race detector (a
	// dictionary remembering all of them would still hold ≈ 10 MB, three
	// times the bound below), where they took minutes of a single
	// goroutine that the race run has nothing to check in.
	batches := 1000
	if raceEnabled {
		batches = 100
	}
	batch := make([]string, 1000)
	nums := make([]uint32, len(batch))
	for b := range batches {
		for i := range batch {
			batch[i] = fmt.Sprintf("order-%d-%d", b, i)
		}
		d.numberAll(nums, batch)
		p := d.takePending()
		if err := st.MergeLedger(ctx, p, nil); err != nil {
			t.Fatal(err)
		}
		d.stored(p)
	}
	grown := int64(heap()) - int64(before)
	runtime.KeepAlive(d)
	if d.Len() != batches*len(batch) {
		t.Fatalf("Len %d, want %d", d.Len(), batches*len(batch))
	}
	// Two generations of 4,096 ids (≈ 100 bytes each with their maps) and
	// the filter; a dictionary remembering all would hold ≈ 100 MB.
	if limit := int64(filter + 2*4096*200 + 1<<20); grown > limit {
		t.Fatalf("the dictionary holds %d bytes after %d ids, bound %d", grown, d.Len(), limit)
	}
	t.Logf("%d ids: %d bytes held (filter %d)", d.Len(), grown, filter)
}
