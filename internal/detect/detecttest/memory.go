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

// CheckMemory fails t when m exceeds MaxBytesPerEntity or the estimate is
// off the measured heap by more than a third: the budget, and the
// estimate the haechi_detector_bytes gauge reports, both hold.
func CheckMemory(t testing.TB, m Memory) {
	t.Helper()
	if m.Measured > MaxBytesPerEntity {
		t.Errorf("%.0f bytes per entity measured, want at most %d", m.Measured, MaxBytesPerEntity)
	}
	if r := m.Estimated / m.Measured; r < 2.0/3 || r > 1.5 {
		t.Errorf("Footprint estimates %.0f B per entity, ×%.2f the %.0f B measured: want within a third", m.Estimated, r, m.Measured)
	}
}
