package detecttest

import (
	"runtime"
	"testing"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// MaxBytesPerEntity is the memory budget of a tracked entity in every
// detector (issue 22): state must grow with live entities, by at most this
// much each.
const MaxBytesPerEntity = 2048

// Memory is what MemoryPerEntity measured.
type Memory struct {
	Entities  int     // as the shard's Footprint reports them
	Heap      int64   // live heap the shard kept, in all
	Bytes     int64   // the shard's estimate, in all
	Measured  float64 // live heap the shard kept, per entity (runtime.MemStats)
	Estimated float64 // the shard's own estimate (Footprint), per entity
}

// MemoryPerEntity feeds the n events next returns (for 0 … n-1; next
// builds each afresh, so what the shard keeps of an event — its ids —
// counts, and the rest is garbage) to one shard of d, as the engine
// routes them (Key, or every event for a Broadcaster that takes it), and
// measures the live heap the shard kept (after a full collection, before
// and after) per entity its Footprint reports, besides Footprint's own
// estimate. The shard must implement engine.Footprinter and report at
// least one entity. Tests assert on the result; skip it under -short
// (it allocates tens of MB).
func MemoryPerEntity(t testing.TB, d engine.Detector, n int, next func(i int) *event.Event) Memory {
	t.Helper()
	c := engine.NewTestContext(0, 1)
	// Twice: objects with finalizers, and what earlier tests in the same
	// binary left behind, are freed by the second cycle, not during the
	// measurement.
	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	sh := d.NewShard()
	fp, ok := sh.(engine.Footprinter)
	if !ok {
		t.Fatalf("%s: its shard does not implement engine.Footprinter", d.Name())
	}
	b, _ := d.(engine.Broadcaster)
	for i := range n {
		ev := next(i)
		if b != nil && b.Broadcast(ev) {
			sh.Process(c, event.EntityKey{}, ev)
			continue
		}
		k, ok := d.Key(ev)
		if !ok {
			t.Fatalf("%s: event %d is not one the detector takes: %+v", d.Name(), i, ev)
		}
		sh.Process(c, k, ev)
	}
	c.TakeFindings()
	runtime.GC()
	runtime.ReadMemStats(&after)
	entities, est := fp.Footprint()
	runtime.KeepAlive(sh)
	if entities == 0 {
		t.Fatalf("%s: Footprint reports no entities after %d events", d.Name(), n)
	}
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	m := Memory{Entities: entities, Heap: heap, Bytes: est,
		Measured:  (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(entities),
		Estimated: float64(est) / float64(entities)}
	t.Logf("%s: %d entities, %.0f B each measured, %.0f B estimated", d.Name(), entities, m.Measured, m.Estimated)
	return m
}

// memorySlack is the heap noise CheckMemory tolerates over all entities.
const memorySlack = 2 << 20

// CheckMemory fails t when m exceeds MaxBytesPerEntity or the estimate is
// off the measured heap by more than a third: the budget, and the
// estimate the haechi_detector_bytes gauge reports, both hold.
func CheckMemory(t testing.TB, m Memory) {
	t.Helper()
	if m.Measured > MaxBytesPerEntity {
		t.Errorf("%.0f bytes per entity measured, want at most %d", m.Measured, MaxBytesPerEntity)
	}
	// Within a third, give or take memorySlack over all entities: the heap
	// of the whole test binary moves by a megabyte or two between two
	// readings (earlier tests' garbage, the runtime's own), which is tens
	// of bytes per entity at these counts — CI once read principal_geo at
	// 54 B measured against 83 B on the previous runs.
	slack := float64(memorySlack) / float64(max(m.Entities, 1))
	if d := m.Estimated - m.Measured; d > m.Measured/2+slack || -d > m.Measured/3+slack {
		t.Errorf("Footprint estimates %.0f B per entity against %.0f B measured: want within a third (± %.0f B of heap noise)", m.Estimated, m.Measured, slack)
	}
}
