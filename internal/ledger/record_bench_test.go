package ledger_test

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// BenchmarkRecordReplay records a stream through a real engine (2 shards,
// every dimension) and the ledger with serve's flush policy (the
// defaults: FlushEvery 10 minutes of event time) into the store, fed as
// fast as the ledger takes it — event time running thousands of times
// faster than the wall clock, as in a replay of old logs, haechi bench,
// or serve catching up on a backlog. One op is one event; the stream is
// 20,000 customers each reading its own record (name and email) every
// 4.2 s of event time on average (144,000 events a week, the size of
// `haechi bench --days 7 --customers 20000`), with 8 signing keys, 2,000
// source addresses in 200 networks and 4 countries. cpu-ns/event is the
// process's CPU time per event (the writer's and pebble's goroutines
// included, the last flush too); rows/event is the rows merged into the
// store per event: how often a (dimension, value, day) is rewritten;
// rows/batch is the rows of one MergeLedger call (one transaction).
func BenchmarkRecordReplay(b *testing.B) {
	for _, eng := range engines {
		b.Run("engine="+eng, func(b *testing.B) { benchRecord(b, eng) })
	}
}

func benchRecord(b *testing.B, engineName string) {
	ctx := context.Background()
	st, err := store.Open(ctx, b.TempDir(), store.Options{LedgerEngine: engineName})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	l, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(ctx) }()
	e, err := engine.New(engine.Options{Detectors: l.Detectors(), Shards: 2})
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for range e.Output() {
		}
	}()
	engDone := make(chan error, 1)
	go func() { engDone <- e.Run(ctx) }()

	const (
		customers = 20000
		spacing   = 4200 * time.Millisecond
		batch     = 1024
	)
	users, rids, tokens := make([]string, customers), make([]string, customers), make([]string, customers)
	for c := range customers {
		users[c], rids[c], tokens[c] = "m:"+strconv.Itoa(c), strconv.Itoa(1000000+c), fmt.Sprintf("tok-%d", c)
	}
	countries := []string{"KR", "KR", "KR", "US"}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// A fixed pseudo-random walk over customers (xorshift), the same in
	// every run.
	x := uint64(88172645463325252)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i += batch {
		evs := make([]event.Event, 0, min(batch, b.N-i))
		for j := i; j < min(i+batch, b.N); j++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			c := int(x % customers)
			src := int(x>>20) % 2000
			evs = append(evs, event.Event{
				Time: t0.Add(time.Duration(j) * spacing), Dataset: event.DatasetGateway, Action: "read",
				User:    event.User{ID: users[c]},
				Token:   event.Token{KeyID: "k" + strconv.Itoa(c%8), ID: tokens[c]},
				Source:  event.Source{IP: netip.AddrFrom4([4]byte{198, 18, byte(src / 10), byte(src % 10)}), Country: countries[c%4]},
				Records: event.Records{Type: "customer", IDs: []string{rids[c]}, Fields: []string{"name", "email"}},
			})
		}
		if err := e.Submit(ctx, engine.Batch{Events: evs}); err != nil {
			b.Fatal(err)
		}
	}
	e.Close()
	if err := <-engDone; err != nil {
		b.Fatal(err)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	}
	s := l.Stats()
	b.ReportMetric(float64(s.Rows)/float64(b.N), "rows/event")
	if s.Batches > 0 {
		b.ReportMetric(float64(s.Rows)/float64(s.Batches), "rows/batch")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
