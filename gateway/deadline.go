package gateway

import (
	"sync"
	"time"
)

// deadlines gives checks their timeout without a timer each: after returns
// a channel closed once the timeout has passed, shared by every check
// whose deadline falls in the same tick. One goroutine ticks, while any
// deadline is pending, and closes the channels whose tick has passed, so
// a deadline fires between its timeout and its timeout plus two ticks.
// Ticks count from the monotonic clock (a step of the wall clock moves no
// deadline). A check over a stream costs a mutex and, at most once a tick,
// a channel; context.WithTimeout cost a timer of the runtime's heap set
// and stopped per check, and a registration with a cancellable parent
// (the gateway's request).
type deadlines struct {
	tick  time.Duration
	start time.Time // tick 0 (with its monotonic reading)
	mu    sync.Mutex
	at    map[int64]chan struct{} // by tick number: closed once it passed
	// closed: close was called; after hands out closed channels.
	closed bool
	wake   chan struct{} // capacity 1: a deadline was added to an empty map
	stop   chan struct{}
	done   chan struct{}
}

// expiredCh is a channel closed from the start, for deadlines asked of a
// closed deadlines.
var expiredCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// newDeadlines starts the ticking goroutine; close ends it.
func newDeadlines(tick time.Duration) *deadlines {
	d := &deadlines{tick: tick, start: time.Now(), at: map[int64]chan struct{}{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go d.run()
	return d
}

// deadlineTick is the granularity of a check's timeout over a stream: a
// twentieth of the timeout, at least a millisecond.
func deadlineTick(timeout time.Duration) time.Duration {
	return max(timeout/20, time.Millisecond)
}

// after returns a channel closed once timeout has passed (at most two
// ticks later), or at once when d was closed.
func (d *deadlines) after(timeout time.Duration) <-chan struct{} {
	n := int64(time.Since(d.start)+timeout)/int64(d.tick) + 1
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return expiredCh
	}
	ch := d.at[n]
	if ch == nil {
		ch = make(chan struct{})
		d.at[n] = ch
		if len(d.at) == 1 {
			select {
			case d.wake <- struct{}{}:
			default:
			}
		}
	}
	d.mu.Unlock()
	return ch
}

func (d *deadlines) run() {
	defer close(d.done)
	t := time.NewTicker(d.tick)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			past := int64(now.Sub(d.start)) / int64(d.tick)
			d.mu.Lock()
			for n, ch := range d.at {
				if n <= past {
					close(ch)
					delete(d.at, n)
				}
			}
			idle := len(d.at) == 0
			d.mu.Unlock()
			if idle {
				// Nothing pending: sleep until a deadline is asked for.
				t.Stop()
				select {
				case <-d.stop:
					return
				case <-d.wake:
				}
				t.Reset(d.tick)
			}
		}
	}
}

// close stops the ticking and closes every pending channel: checks still
// waiting on one end as timed out, and later ones at once.
func (d *deadlines) close() {
	close(d.stop)
	<-d.done
	d.mu.Lock()
	d.closed = true
	for n, ch := range d.at {
		close(ch)
		delete(d.at, n)
	}
	d.mu.Unlock()
}
