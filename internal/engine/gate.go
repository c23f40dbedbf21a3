package engine

import (
	"context"
	"sync"
)

// gate counts events in flight against a capacity. A request larger than
// the capacity is admitted when nothing else is in flight, so one oversized
// batch cannot wedge the engine.
type gate struct {
	mu   sync.Mutex
	used int
	cap  int
	wake chan struct{} // closed and replaced on every release
}

func newGate(capacity int) *gate {
	return &gate{cap: capacity, wake: make(chan struct{})}
}

func (g *gate) fits(n int) bool { return g.used+n <= g.cap || g.used == 0 }

func (g *gate) tryAcquire(n int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.fits(n) {
		return false
	}
	g.used += n
	return true
}

func (g *gate) acquire(ctx context.Context, n int) error {
	for {
		g.mu.Lock()
		if g.fits(n) {
			g.used += n
			g.mu.Unlock()
			return nil
		}
		wake := g.wake
		g.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *gate) release(n int) {
	g.mu.Lock()
	g.used -= n
	close(g.wake)
	g.wake = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) inUse() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used
}
