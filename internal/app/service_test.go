package app

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// The lifecycle's contract: parts stop in the reverse of the order they
// were added, each stop before its run is cancelled and waited for; the
// first error of a stop or of a run (other than its cancellation) is
// Close's; a run that fails on its own closes Failed; Close is idempotent;
// a part added after Start runs at once.
func TestServiceLifecycle(t *testing.T) {
	var (
		mu  sync.Mutex
		log []string
	)
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, s)
	}
	s := &Service{failed: make(chan struct{})}
	runner := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			<-ctx.Done()
			note(name + " run ends")
			return ctx.Err()
		}
	}
	stopper := func(name string, err error) func(context.Context) error {
		return func(context.Context) error {
			note(name + " stop")
			return err
		}
	}
	s.Add("store", nil, stopper("store", nil))
	s.Add("writer", runner("writer"), stopper("writer", errors.New("flush failed")))
	s.Start(t.Context())
	s.Add("pipeline", runner("pipeline"), stopper("pipeline", errors.New("second error")))
	select {
	case <-s.Failed():
		t.Fatal("failed before anything failed")
	default:
	}
	err := s.Close(t.Context())
	if err == nil || err.Error() != "second error" {
		t.Errorf("Close: %v, want the first error in stop order (the pipeline's)", err)
	}
	want := []string{"pipeline stop", "pipeline run ends", "writer stop", "writer run ends", "store stop"}
	if !slices.Equal(log, want) {
		t.Errorf("order %q, want %q", log, want)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if s.Err() != nil {
		t.Errorf("Err after a clean stop: %v", s.Err())
	}

	// A run that fails on its own is reported, and again by Close.
	s = &Service{failed: make(chan struct{})}
	s.Add("worker", func(context.Context) error { return errors.New("brokers unreachable") }, nil)
	s.Start(t.Context())
	select {
	case <-s.Failed():
	case <-time.After(5 * time.Second):
		t.Fatal("a failed run did not close Failed")
	}
	if s.Err() == nil || s.Err().Error() != "worker: brokers unreachable" {
		t.Errorf("Err: %v", s.Err())
	}
	if err := s.Close(t.Context()); err == nil {
		t.Error("Close forgot the run's error")
	}
}
