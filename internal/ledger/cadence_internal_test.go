package ledger

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// wallClock is a settable wall clock.
type wallClock struct{ t time.Time }

func (c *wallClock) now() time.Time { return c.t }

// cadenceShard returns a principal shard of a ledger that is never run:
// its hand-offs stay in the queue, where the test counts them (the
// queue's bound in cells is lifted: nothing drains it).
func cadenceShard(clk *wallClock, o Options) (*Ledger, *shard) {
	o.Now, o.QueueSize, o.MaxQueuedCells = clk.now, 1000, 1<<30
	l := New(nil, nil, o)
	return l, l.Detector(Principal).NewShard().(*shard)
}

func touch(s *shard, user string, at time.Time) {
	ev := event.Event{Time: at, Dataset: event.DatasetGateway, Action: "read", User: event.User{ID: user},
		Records: event.Records{Type: "customer", IDs: []string{"1"}}}
	s.Process(nil, event.EntityKey{Kind: event.EntityPrincipal, ID: user}, &ev)
}

// The hand-offs FlushEvery of event time makes are at least MinInterval
// of wall time apart: when event time runs far faster than the wall clock
// (a replay, serve catching up), a busy value's day is not handed off —
// and rewritten in the store — at every FlushEvery. In real time, where
// FlushEvery of event time is as much wall time, nothing changes: one
// hand-off per FlushEvery.
func TestHandoffCadence(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const every = 10 * time.Minute
	cases := []struct {
		name string
		// wallStep is how far the wall clock moves per FlushEvery of
		// event time.
		wallStep    time.Duration
		minInterval time.Duration
		want        int // hand-offs of 36 steps (6 hours of event time)
	}{
		{"real time", every, 0, 36},
		{"replay, 10 ms a step", 10 * time.Millisecond, 0, 1},   // 0.36 s in all: the first only
		{"replay, 100 ms a step", 100 * time.Millisecond, 0, 4}, // one per second of wall time
		{"replay, 1 s a step", time.Second, 0, 36},              // as slow as the minimum
		{"replay, no minimum", 10 * time.Millisecond, -1, 36},   // MinInterval < 0: the old cadence
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &wallClock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
			l, s := cadenceShard(clk, Options{FlushEvery: every, MinInterval: c.minInterval, MaxStale: time.Hour})
			s.Advance(nil, t0)
			for i := 1; i <= 36; i++ {
				wm := t0.Add(time.Duration(i) * every)
				touch(s, "m:1", wm.Add(-time.Minute))
				clk.t = clk.t.Add(c.wallStep)
				s.Advance(nil, wm)
			}
			if got := len(l.ch); got != c.want {
				t.Errorf("%d hand-offs, want %d", got, c.want)
			}
			// The end of input hands off what waited.
			s.Advance(nil, engine.EndOfTime)
			if len(s.cells) != 0 {
				t.Errorf("%d cells left after EndOfTime", len(s.cells))
			}
		})
	}
}

// What MinInterval holds back stays bounded: touches are handed off once
// the oldest has waited MaxStale of wall time, and a shard that sees many
// values once hands off at MaxCells cells.
func TestHeldBackTouchesBounded(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	t.Run("MaxStale", func(t *testing.T) {
		clk := &wallClock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
		l, s := cadenceShard(clk, Options{FlushEvery: time.Minute, MinInterval: time.Hour, MaxStale: 5 * time.Second})
		s.Advance(nil, t0)
		touch(s, "m:1", t0)
		s.Advance(nil, t0.Add(2*time.Minute)) // the first FlushEvery: no hand-off yet
		n := len(l.ch)
		touch(s, "m:2", t0.Add(2*time.Minute))
		s.Advance(nil, t0.Add(4*time.Minute))
		if len(l.ch) != n {
			t.Fatalf("handed off within MinInterval: %d → %d", n, len(l.ch))
		}
		clk.t = clk.t.Add(5 * time.Second)
		s.Advance(nil, t0.Add(4*time.Minute+time.Second))
		if len(l.ch) != n+1 || len(s.cells) != 0 {
			t.Fatalf("stale touches not handed off: %d hand-offs, %d cells held", len(l.ch)-n, len(s.cells))
		}
	})
	t.Run("MaxCells", func(t *testing.T) {
		clk := &wallClock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
		l, s := cadenceShard(clk, Options{FlushEvery: time.Hour, MaxStale: time.Hour, MaxCells: 100})
		s.Advance(nil, t0)
		for i := range 250 {
			touch(s, "m:"+strconv.Itoa(i), t0)
		}
		if len(l.ch) != 2 || len(s.cells) != 50 {
			t.Fatalf("%d hand-offs, %d cells held; want 2 and 50", len(l.ch), len(s.cells))
		}
	})
}

// gatedSink stores nothing until its gate opens.
type gatedSink struct {
	gate  chan struct{}
	calls atomic.Int64
}

func (g *gatedSink) MergeLedger(ctx context.Context, _ []store.LedgerDictEntry, _ []store.LedgerRow) error {
	g.calls.Add(1)
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// While the store is slower than the shards, the cells queued for the
// writer stay within MaxQueuedCells (the hand-offs MinInterval and
// MaxCells make are large; a queue of 64 of them was not a bound): the
// shard blocks instead.
func TestQueuedCellsBounded(t *testing.T) {
	sink := &gatedSink{gate: make(chan struct{})}
	clk := &wallClock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	l := New(sink, nil, Options{Now: clk.now, FlushEvery: time.Hour, MaxStale: time.Hour, MaxCells: 10, MaxQueuedCells: 20})
	runDone := make(chan error, 1)
	go func() { runDone <- l.Run(t.Context()) }()
	s := l.Detector(Principal).NewShard().(*shard)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for i := range 100 {
			touch(s, "m:"+strconv.Itoa(i), t0)
		}
		s.Advance(nil, engine.EndOfTime)
	}()
	// The writer's batch (10 cells, counted until it is stored) and one
	// queued hand-off make 20; the shard's third (10 more) waits.
	const want = 30
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats().Touches < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if got := l.Stats().Touches; got != want {
		t.Fatalf("%d touches taken while the store was blocked, want %d", got, want)
	}
	close(sink.gate)
	<-fed
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Touches != 100 || s.Rows != 100 {
		t.Fatalf("stats %+v, want 100 touches and rows", s)
	}
}
