package gateway

import (
	"sync"
	"time"
)

// deadlines gives checks their timeout without a timer each: after returns
// a channel closed once the timeout has passed, shared by every check
// whose deadline falls in the same tick. One goroutine ticks and closes
// the channels whose tick has passed, so a deadline fires between its
// timeout and its timeout plus two ticks. A check over a stream costs a
// mutex and, at most once a tick, a channel; context.WithTimeout cost a
// timer of the runtime's heap set and stopped per check, and a
// registration with a cancellable parent (the gateway's request).
type deadlines struct {
	tick time.Duration
	mu   sync.Mutex
	at   map[int64]chan struct{} // by tick number: closed once it passed
	stop chan struct{}
	done chan struct{}
}

// newDeadlines starts the ticking goroutine; stop ends it.
func newDeadlines(tick time.Duration) *deadlines {
	d := &deadlines{tick: tick, at: map[int64]chan struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
	go d.run()
	return d
}

// deadlineTick is the granularity of a check's timeout over a stream: a
// twentieth of the timeout, at least a millisecond.
func deadlineTick(timeout time.Duration) time.Duration {
	return max(timeout/20, time.Millisecond)
}

// after returns a channel closed once timeout has passed (at most two
// ticks later).
func (d *deadlines) after(timeout time.Duration) <-chan struct{} {
	n := (time.Now().UnixNano()+int64(timeout))/int64(d.tick) + 1
	d.mu.Lock()
	ch := d.at[n]
	if ch == nil {
		ch = make(chan struct{})
		d.at[n] = ch
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
			past := now.UnixNano() / int64(d.tick)
			d.mu.Lock()
			for n, ch := range d.at {
				if n <= past {
					close(ch)
					delete(d.at, n)
				}
			}
			d.mu.Unlock()
		}
	}
}

// close stops the ticking; channels not yet closed stay open (the checks
// waiting on them are failed by their stream's close).
func (d *deadlines) close() {
	close(d.stop)
	<-d.done
}
