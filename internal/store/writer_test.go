package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// runWriter starts w.Run and returns a function that waits for it.
func runWriter(t *testing.T, ctx context.Context, w *Writer) (wait func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	return sync.OnceValue(func() error {
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return")
			return nil
		}
	})
}

func TestWriterConcurrentPutsThenClose(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		var flushed atomic.Int64
		w := NewWriter(s, WriterOptions{
			MaxBatch:  50,
			QueueSize: 16, // small: Put must block, not drop
			OnFlush: func(n int, err error) {
				if err == nil {
					flushed.Add(int64(n))
				}
			},
		})
		wait := runWriter(t, ctx, w)

		const workers, perWorker = 8, 250
		var wg sync.WaitGroup
		for g := range workers {
			wg.Go(func() {
				for i := range perWorker {
					a := testAlert(fmt.Sprintf("w%d-%d", g, i), t0.Add(time.Duration(i)*time.Second), alice, i%3)
					if err := w.Put(ctx, a); err != nil {
						t.Errorf("Put: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := w.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := wait(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n, err := s.CountAlerts(ctx); err != nil || n != workers*perWorker {
			t.Fatalf("CountAlerts = %d, %v; want %d", n, err, workers*perWorker)
		}
		if got := flushed.Load(); got != workers*perWorker {
			t.Errorf("OnFlush counted %d alerts, want %d", got, workers*perWorker)
		}
		got, err := s.GetAlert(ctx, "w3-100")
		if err != nil || len(got.Findings) != 100%3 {
			t.Errorf("GetAlert(w3-100) = %d findings, %v", len(got.Findings), err)
		}

		if err := w.Put(ctx, event.Alert{ID: "late"}); !errors.Is(err, ErrWriterClosed) {
			t.Errorf("Put after Close = %v, want ErrWriterClosed", err)
		}
		if err := w.Flush(ctx); !errors.Is(err, ErrWriterClosed) {
			t.Errorf("Flush after Close = %v, want ErrWriterClosed", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if err := w.Run(ctx); !errors.Is(err, ErrWriterClosed) {
			t.Errorf("Run after Close = %v, want ErrWriterClosed", err)
		}
	})
}

func TestWriterCoalesces(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		var calls []int
		var mu sync.Mutex
		w := NewWriter(s, WriterOptions{
			FlushInterval: time.Hour,
			OnFlush: func(n int, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("flush error: %v", err)
				}
				calls = append(calls, n)
			},
		})
		defer w.Close()
		// Queue everything before Run starts, so it all lands in one batch.
		for i := range 100 {
			a := testAlert("same", t0, alice, i%4)
			a.Score = float64(i)
			if err := w.Put(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Put(ctx, testAlert("other", t0, alice, 1)); err != nil {
			t.Fatal(err)
		}
		runWriter(t, ctx, w)
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if len(calls) != 1 || calls[0] != 2 {
			t.Errorf("OnFlush calls = %v, want one batch of 2", calls)
		}
		mu.Unlock()
		got, err := s.GetAlert(ctx, "same")
		if err != nil {
			t.Fatal(err)
		}
		if got.Score != 99 || len(got.Findings) != 99%4 {
			t.Errorf("coalesced alert has score %v and %d findings; want the latest (99, %d)", got.Score, len(got.Findings), 99%4)
		}
	})
}

func TestWriterFlush(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		w := NewWriter(s, WriterOptions{FlushInterval: time.Hour}) // only Flush or MaxBatch commits
		runWriter(t, ctx, w)
		defer w.Close()
		for round := range 3 {
			for i := range 10 {
				if err := w.Put(ctx, event.Alert{ID: fmt.Sprintf("r%d-%d", round, i), Time: t0}); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if n, err := s.CountAlerts(ctx); err != nil || n != 10*(round+1) {
				t.Fatalf("after Flush %d: CountAlerts = %d, %v; want %d", round, n, err, 10*(round+1))
			}
		}
		if err := w.Flush(ctx); err != nil { // nothing pending
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := w.Flush(cctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Flush(cancelled) = %v", err)
		}
	})
}

func TestWriterFlushInterval(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		w := NewWriter(s, WriterOptions{FlushInterval: 10 * time.Millisecond})
		runWriter(t, ctx, w)
		defer w.Close()
		if err := w.Put(ctx, event.Alert{ID: "timed", Time: t0}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := s.GetAlert(ctx, "timed"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("alert not committed by the flush interval")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

func TestWriterCloseWithoutRun(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		w := NewWriter(s, WriterOptions{QueueSize: 1})
		if err := w.Put(ctx, event.Alert{ID: "queued", Time: t0}); err != nil {
			t.Fatal(err)
		}
		// The queue is full and nothing drains it: Put blocks until ctx ends.
		tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if err := w.Put(tctx, event.Alert{ID: "blocked"}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Put on a full queue = %v, want DeadlineExceeded", err)
		}
		if err := w.Put(ctx, event.Alert{}); err == nil {
			t.Error("Put with an empty id succeeded")
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAlert(ctx, "queued"); err != nil {
			t.Errorf("queued alert not drained by Close: %v", err)
		}
		if _, err := s.GetAlert(ctx, "blocked"); !errors.Is(err, ErrNotFound) {
			t.Errorf("alert whose Put failed was stored: %v", err)
		}
	})
}

func TestWriterCloseUnblocksPut(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		w := NewWriter(s, WriterOptions{QueueSize: 1})
		if err := w.Put(ctx, event.Alert{ID: "first", Time: t0}); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- w.Put(ctx, event.Alert{ID: "second", Time: t0}) }()
		time.Sleep(10 * time.Millisecond) // let it block
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		err := <-errc
		_, getErr := s.GetAlert(ctx, "second")
		switch {
		case err == nil && getErr != nil:
			t.Errorf("Put succeeded but the alert was not stored: %v", getErr)
		case err != nil && !errors.Is(err, ErrWriterClosed):
			t.Errorf("blocked Put = %v, want nil or ErrWriterClosed", err)
		}
	})
}

func TestWriterRunContextCancelDrains(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t)
		ctx, cancel := context.WithCancel(t.Context())
		w := NewWriter(s, WriterOptions{FlushInterval: time.Hour})
		wait := runWriter(t, ctx, w)
		for i := range 20 {
			if err := w.Put(t.Context(), event.Alert{ID: fmt.Sprintf("c%d", i), Time: t0}); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		if err := wait(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if n, err := s.CountAlerts(t.Context()); err != nil || n != 20 {
			t.Errorf("CountAlerts = %d, %v; want 20", n, err)
		}
		if err := w.Put(t.Context(), event.Alert{ID: "late"}); !errors.Is(err, ErrWriterClosed) {
			t.Errorf("Put after Run returned = %v, want ErrWriterClosed", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
}

func TestWriterRetries(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		var failures atomic.Int64
		var attempts []error
		var mu sync.Mutex
		w := NewWriter(s, WriterOptions{
			FlushInterval: time.Hour,
			OnFlush: func(n int, err error) {
				mu.Lock()
				defer mu.Unlock()
				attempts = append(attempts, err)
			},
		})
		w.saveFn = func(ctx context.Context, alerts []event.Alert, _ []ScoredFinding) error {
			if failures.Add(1) <= 2 {
				return errors.New("disk on fire")
			}
			return s.SaveAlerts(ctx, alerts)
		}
		runWriter(t, ctx, w)
		defer w.Close()
		if err := w.Put(ctx, event.Alert{ID: "retried", Time: t0}); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatalf("Flush = %v, want success after retries", err)
		}
		if _, err := s.GetAlert(ctx, "retried"); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(attempts) != 3 || attempts[0] == nil || attempts[1] == nil || attempts[2] != nil {
			t.Errorf("OnFlush errors = %v, want two failures then success", attempts)
		}
	})
}

func TestWriterCloseGivesUp(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		boom := errors.New("disk on fire")
		var calls atomic.Int64
		w := NewWriter(s, WriterOptions{FlushInterval: time.Hour, MaxBatch: 2})
		w.saveFn = func(context.Context, []event.Alert, []ScoredFinding) error {
			calls.Add(1)
			return boom
		}
		wait := runWriter(t, ctx, w)
		flushErr := make(chan error, 1)
		if err := w.Put(ctx, event.Alert{ID: "x", Time: t0}); err != nil {
			t.Fatal(err)
		}
		go func() { flushErr <- w.Flush(ctx) }()
		time.Sleep(20 * time.Millisecond) // Run is now retrying
		for _, id := range []string{"y", "z"} {
			if err := w.Put(ctx, event.Alert{ID: id, Time: t0}); err != nil {
				t.Fatal(err)
			}
		}
		err := w.Close()
		if !errors.Is(err, boom) {
			t.Fatalf("Close = %v, want the flush error", err)
		}
		if err := wait(); !errors.Is(err, boom) {
			t.Errorf("Run = %v, want the flush error", err)
		}
		if err := <-flushErr; !errors.Is(err, boom) {
			t.Errorf("Flush = %v, want the flush error", err)
		}
		// Batch [x] got bounded attempts; the next batch [y z] a single one.
		if n := calls.Load(); n > 3+finalAttempts+1 || n < 2 {
			t.Errorf("%d save attempts", n)
		}
	})
}
