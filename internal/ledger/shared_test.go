package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// run feeds evs, one batch, to an engine over l's principal detector,
// checkpoints with mark 1, waits until the mark is durable and closes the
// engine.
func run(t *testing.T, l *ledger.Ledger, evs []event.Event) {
	t.Helper()
	ctx := t.Context()
	eng, err := engine.New(engine.Options{Detectors: []engine.Detector{l.Detector(ledger.Principal)}, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range eng.Output() {
		}
	}()
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	if err := eng.Submit(ctx, engine.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Checkpoint(ctx, 1); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.WaitDurable(wctx, 1); err != nil {
		t.Fatal(err)
	}
	eng.Close()
	<-done
}

func reads(user string, at time.Time, rids ...string) event.Event {
	return event.Event{Time: at, Dataset: event.DatasetGateway, Action: "read", User: event.User{ID: user},
		Records: event.Records{Type: "customer", IDs: rids, Fields: []string{"email"}}}
}

// Two processes (two stores on one database) with shared dictionaries
// number overlapping record ids identically and contiguously, and their
// merged rows are the union.
func TestSharedDictAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	var stores []*store.Store
	for range 2 {
		st, err := store.Open(t.Context(), dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores = append(stores, st)
	}
	t0 := ts("2025-06-24T09:00:00Z")
	var evs [2][]event.Event
	for i := range 40 {
		// Process 0 meets c:0…c:39 forwards, process 1 backwards; both
		// also meet ids of their own, and a small integer.
		evs[0] = append(evs[0], reads("m:1", t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("c:%d", i), fmt.Sprintf("p0:%d", i), "7"))
		evs[1] = append(evs[1], reads("m:1", t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("c:%d", 39-i), fmt.Sprintf("p1:%d", i)))
	}
	dicts := make([]*ledger.Dict, 2)
	done := make(chan struct{})
	for p := range 2 {
		dicts[p] = ledger.NewSharedDict(stores[p])
		l := ledger.New(stores[p], dicts[p], ledger.Options{FlushEvery: time.Hour})
		go func() { _ = l.Run(t.Context()) }()
		go func() {
			defer func() { done <- struct{}{} }()
			run(t, l, evs[p])
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	<-done
	<-done
	stored, err := stores[0].LoadLedgerDict(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 120 {
		t.Fatalf("%d dictionary entries, want 120", len(stored))
	}
	for i, e := range stored {
		if e.ID != ledger.DictBase+uint32(i) {
			t.Fatalf("entry %d numbered %d", i, e.ID)
		}
		for p, d := range dicts {
			if n, ok := d.Name(e.ID); ok && n != e.RID {
				t.Errorf("process %d names %d %q, the store %q", p, e.ID, n, e.RID)
			}
		}
	}
	if err := ledger.NewSharedDict(stores[0]).Load(stored); err == nil {
		t.Error("a shared dictionary loaded entries")
	}
	r := scope(t, stores[1], ledger.Query{Terms: []ledger.Term{{Dim: ledger.Principal, Values: []string{"m:1"}}}})
	if r.Total != 121 || r.ByField["email"] != 121 {
		t.Errorf("scope %d records (%d email), want 121", r.Total, r.ByField["email"])
	}
}

// After Abandon, nothing more is stored, and waiting for a mark never
// stored fails instead of blocking.
func TestAbandon(t *testing.T) {
	st := openStore(t)
	t0 := ts("2025-06-24T09:00:00Z")
	l := ledger.New(st, ledger.NewSharedDict(st), ledger.Options{FlushEvery: time.Hour})
	go func() { _ = l.Run(t.Context()) }()
	run(t, l, []event.Event{reads("m:1", t0, "c:1")})
	l.Abandon()
	eng, err := engine.New(engine.Options{Detectors: []engine.Detector{l.Detector(ledger.Principal)}, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range eng.Output() {
		}
	}()
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(t.Context()) }()
	if err := eng.Submit(t.Context(), engine.Batch{Events: []event.Event{reads("m:1", t0.Add(time.Second), "c:2")}}); err != nil {
		t.Fatal(err)
	}
	eng.Close() // EndOfTime: a hand-off after Abandon
	<-done
	r := scope(t, st, ledger.Query{Terms: []ledger.Term{{Dim: ledger.Principal, Values: []string{"m:1"}}}})
	if r.Total != 1 {
		t.Errorf("%d records, want 1 (the one handed off after Abandon dropped)", r.Total)
	}
	if err := l.WaitDurable(t.Context(), 2); err == nil {
		t.Error("WaitDurable of a mark never stored succeeded after Abandon")
	}
}

// A field row's first and last are those of the accesses that exposed the
// field, whatever the hand-offs: flushing after every event or once gives
// the same rows.
func TestFieldTimesIndependentOfHandoffs(t *testing.T) {
	t0 := ts("2025-06-24T09:00:00Z")
	evs := []event.Event{
		{Time: t0, Dataset: event.DatasetGateway, Action: "read", User: event.User{ID: "m:1"}, Records: event.Records{Type: "customer", IDs: []string{"1"}}},
		reads("m:1", t0.Add(time.Minute), "1"),
		{Time: t0.Add(2 * time.Minute), Dataset: event.DatasetGateway, Action: "read", User: event.User{ID: "m:1"}, Records: event.Records{Type: "customer", IDs: []string{"1"}}},
	}
	var got [][]store.LedgerRow
	for _, maxDirty := range []int{1, 1 << 20} {
		st := openStore(t)
		l := ledger.New(st, nil, ledger.Options{FlushEvery: time.Hour, MaxDirty: maxDirty})
		go func() { _ = l.Run(t.Context()) }()
		run(t, l, slices.Clone(evs))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		rows, err := st.LedgerRows(t.Context(), string(ledger.Principal), nil, 0, 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rows)
	}
	for _, rows := range got {
		for _, r := range rows {
			if r.Field == "email" && (r.First != t0.Add(time.Minute).UnixNano() || r.Last != r.First) {
				t.Errorf("email row first %d last %d, want both %d", r.First, r.Last, t0.Add(time.Minute).UnixNano())
			}
		}
	}
	if len(got[0]) != 2 || len(got[1]) != 2 {
		t.Fatalf("rows %d and %d, want 2", len(got[0]), len(got[1]))
	}
}

// Touches do not wait for FlushEvery of event time: once the oldest has
// waited MaxStale of wall time, the next watermark move hands them off (a
// quiet stream, or a watermark that jumped to the wall clock, would
// otherwise keep the last minutes out of scope).
func TestStaleTouchesHandedOff(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	var wall atomic.Int64
	wall.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	l := ledger.New(st, nil, ledger.Options{FlushEvery: time.Hour, MaxStale: 5 * time.Second,
		Now: func() time.Time { return time.Unix(0, wall.Load()) }})
	go func() { _ = l.Run(ctx) }()
	eng, err := engine.New(engine.Options{Detectors: []engine.Detector{l.Detector(ledger.Principal)}, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range eng.Output() {
		}
	}()
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	defer func() { eng.Close(); <-done; _ = l.Close() }()
	t0 := ts("2025-06-24T09:00:00Z")
	if err := eng.Submit(ctx, engine.Batch{Events: []event.Event{reads("m:1", t0, "1", "2")}}); err != nil {
		t.Fatal(err)
	}
	stored := func() int {
		rows, err := st.LedgerRows(ctx, string(ledger.Principal), nil, 0, 1<<62)
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}
	eng.AdvanceTo(t0.Add(time.Second))
	time.Sleep(200 * time.Millisecond)
	if n := stored(); n != 0 {
		t.Fatalf("%d rows stored before the touches were stale", n)
	}
	wall.Add(int64(6 * time.Second))
	eng.AdvanceTo(t0.Add(2 * time.Second))
	deadline := time.Now().Add(10 * time.Second)
	for stored() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("stale touches were not handed off when the watermark moved")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
