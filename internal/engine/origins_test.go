package engine_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// clockProbe records, on shard 0, the watermark and the auth.token
// stream's progress at every Advance.
type clockProbe struct {
	mu   sync.Mutex
	wms  []time.Time
	prog []time.Time
	late map[string]bool
}

func (p *clockProbe) Name() string      { return "probe" }
func (p *clockProbe) Streams() []string { return []string{event.DatasetToken} }
func (p *clockProbe) Key(ev *event.Event) (event.EntityKey, bool) {
	return event.EntityKey{Kind: event.EntityPrincipal, ID: "all"}, true
}
func (p *clockProbe) NewShard() engine.Shard { return (*probeShard)(p) }

type probeShard clockProbe

func (s *probeShard) Process(_ *engine.Context, _ event.EntityKey, ev *event.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.ID != "" {
		s.late[ev.ID] = ev.Late
	}
}

func (s *probeShard) Advance(c *engine.Context, wm time.Time) {
	if c.Shard() != 0 || wm.Equal(engine.EndOfTime) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wms = append(s.wms, wm)
	s.prog = append(s.prog, c.StreamTime(event.DatasetToken))
}

func (p *clockProbe) last() (wm, prog time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.wms) == 0 {
		return time.Time{}, time.Time{}
	}
	return p.wms[len(p.wms)-1], p.prog[len(p.prog)-1]
}

// step is one thing done to the engine: a batch, a tick or an origin's end.
type step struct {
	origin  string
	arrived time.Duration // after w0; <0: no arrival clock
	events  []event.Event
	tick    time.Duration // >0: Tick(w0+tick) instead of a batch
	end     bool
	// after the step: the watermark and token progress, relative to t0
	// (-1: zero)
	wm, prog time.Duration
}

var w0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) // the wall clock

func rel(d time.Duration) time.Time {
	if d < 0 {
		return time.Time{}
	}
	return t0.Add(d)
}

func gw(id string, at time.Duration) event.Event {
	return event.Event{ID: id, Time: t0.Add(at), Dataset: event.DatasetGateway, Action: "read", User: event.User{ID: "u"}}
}

func mintAt(id string, at time.Duration) event.Event {
	return event.Event{ID: id, Time: t0.Add(at), Dataset: event.DatasetToken, Action: event.ActionTokenIssued, User: event.User{ID: "u"}}
}

func TestOrigins(t *testing.T) {
	const m = time.Minute
	for _, tc := range []struct {
		name  string
		steps []step
		late  []string // ids marked late
	}{
		{
			name: "one origin: newest event time minus the lateness",
			steps: []step{
				{arrived: -1, events: []event.Event{gw("a", 10*m)}, wm: 9 * m, prog: -1},
				{arrived: -1, events: []event.Event{gw("b", 8*m)}, wm: 9 * m, prog: -1},
			},
			late: []string{"b"},
		},
		{
			name: "a lagging origin holds the watermark back instead of being late",
			steps: []step{
				{origin: "live", arrived: -1, events: []event.Event{gw("a", 60*m)}, wm: 59 * m, prog: -1},
				// a second origin starts behind: the watermark cannot go back,
				// so its first events are late…
				{origin: "backlog", arrived: -1, events: []event.Event{gw("b", 30*m)}, wm: 59 * m, prog: -1},
				// …but the live origin's progress no longer moves it on alone
				{origin: "live", arrived: -1, events: []event.Event{gw("c", 90*m)}, wm: 59 * m, prog: -1},
				{origin: "backlog", arrived: -1, events: []event.Event{gw("d", 70*m)}, wm: 69 * m, prog: -1},
				// the backlog's end releases the live origin
				{origin: "backlog", arrived: -1, end: true, wm: 89 * m, prog: -1},
			},
			late: []string{"b"},
		},
		{
			name: "an origin further behind than the maximum lag does not hold the others back",
			steps: []step{
				{origin: "gw", arrived: -1, events: []event.Event{gw("a", 10*m)}, wm: 9 * m, prog: -1},
				// a broken clock, or a token holder posting events dated long ago
				{origin: "evil", arrived: -1, events: []event.Event{gw("old", -10*24*time.Hour)}, wm: 9 * m, prog: -1},
				{origin: "gw", arrived: -1, events: []event.Event{gw("b", 40*m)}, wm: 39 * m, prog: -1},
				{origin: "evil", arrived: -1, events: []event.Event{gw("old2", -10*24*time.Hour+time.Second)}, wm: 39 * m, prog: -1},
				{origin: "gw", arrived: -1, events: []event.Event{gw("c", 70*m)}, wm: 69 * m, prog: -1},
				// within the lag, an origin behind still holds
				{origin: "slow", arrived: -1, events: []event.Event{gw("s", 50*m)}, wm: 69 * m, prog: -1},
				{origin: "gw", arrived: -1, events: []event.Event{gw("d", 80*m)}, wm: 69 * m, prog: -1},
			},
			late: []string{"old", "old2", "s"},
		},
		{
			name: "mints through two shippers count as far as the slower has delivered",
			steps: []step{
				{origin: "issuer-a", arrived: -1, events: []event.Event{mintAt("m1", 10*m)}, wm: 9 * m, prog: 10 * m},
				{origin: "issuer-b", arrived: -1, events: []event.Event{mintAt("m2", 5*m)}, wm: 9 * m, prog: 10 * m},
				{origin: "issuer-a", arrived: -1, events: []event.Event{mintAt("m3", 20*m)}, wm: 9 * m, prog: 10 * m},
				{origin: "issuer-b", arrived: -1, events: []event.Event{mintAt("m4", 15*m)}, wm: 14 * m, prog: 15 * m},
				{origin: "gateway", arrived: -1, events: []event.Event{gw("g", 30*m)}, wm: 14 * m, prog: 15 * m},
			},
			late: []string{"m2"}, // it started behind the watermark
		},
		{
			name: "a tick before any batch does nothing (a backlog posted to a fresh server is not late)",
			steps: []step{
				{tick: 10 * 24 * time.Hour, wm: -1, prog: -1},
				{origin: "tok", arrived: 10*24*time.Hour + time.Second, events: []event.Event{gw("a", 10*m), gw("b", 9*m)}, wm: 9 * m, prog: -1},
			},
		},
		{
			name: "an idle origin stops holding the others back",
			steps: []step{
				{origin: "hr", arrived: 0, events: []event.Event{gw("a", 10*m)}, wm: 9 * m, prog: -1},
				{origin: "gw", arrived: time.Second, events: []event.Event{gw("b", 20*m)}, wm: 9 * m, prog: -1},
				{origin: "gw", arrived: 29 * time.Second, events: []event.Event{gw("c", 21*m)}, wm: 9 * m, prog: -1},
				// 30 s after hr's last delivery, hr is idle
				{origin: "gw", arrived: 30 * time.Second, events: []event.Event{gw("d", 22*m)}, wm: 21 * m, prog: -1},
			},
		},
		{
			name: "when every origin is idle the wall clock advances them by their own pace",
			steps: []step{
				// a backfill: event time two days behind arrival
				{origin: "tok", arrived: 0, events: []event.Event{gw("a", 10*m), mintAt("m", 9*m)}, wm: 9 * m, prog: 9 * m},
				{tick: 29 * time.Second, wm: 9 * m, prog: 9 * m},
				// idle for the watermark after the idleness (30 s), for a
				// watched stream only after the lateness (1 m)
				{tick: 30 * time.Second, wm: 9*m + 30*time.Second, prog: 9 * m},
				{tick: 60 * time.Second, wm: 10 * m, prog: 10 * m},
				{tick: 5 * m, wm: 14 * m, prog: 14 * m},
				// the backfill resumes where it was, not late
				{origin: "tok", arrived: 5*m + time.Second, events: []event.Event{gw("b", 14*m+10*time.Second)}, wm: 14 * m, prog: 14 * m},
			},
		},
		{
			name: "an idle issuer is advanced by the wall while the gateway is active",
			steps: []step{
				{origin: "issuer", arrived: 0, events: []event.Event{mintAt("m", 10*m)}, wm: 9 * m, prog: 10 * m},
				{origin: "gw", arrived: 10 * time.Second, events: []event.Event{gw("a", 10*m+10*time.Second)}, wm: 9 * m, prog: 10 * m},
				// the issuer stops holding the watermark after the idleness,
				// its own stream only after the lateness: a stalled issuer
				// shipper is waited for as long as the lateness rule would
				{origin: "gw", arrived: 40 * time.Second, events: []event.Event{gw("b", 10*m+40*time.Second)}, wm: 9*m + 40*time.Second, prog: 10 * m},
				{origin: "gw", arrived: 60 * time.Second, events: []event.Event{gw("c", 11*m)}, wm: 10 * m, prog: 11 * m},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &clockProbe{late: map[string]bool{}}
			e, err := engine.New(engine.Options{Detectors: []engine.Detector{p}, Shards: 1, Lateness: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- e.Run(context.Background()) }()
			ctx := context.Background()
			for i, st := range tc.steps {
				switch {
				case st.tick > 0:
					e.Tick(w0.Add(st.tick))
				case st.end:
					if err := e.EndOrigin(ctx, st.origin); err != nil {
						t.Fatal(err)
					}
				default:
					b := engine.Batch{Events: slices.Clone(st.events), Origin: st.origin}
					if st.arrived >= 0 {
						b.Arrived = w0.Add(st.arrived)
					}
					if err := e.Submit(ctx, b); err != nil {
						t.Fatal(err)
					}
				}
				// A checkpoint's output comes after everything before it.
				if err := e.Checkpoint(ctx, uint64(i+1)); err != nil {
					t.Fatal(err)
				}
				for o := range e.Output() {
					if o.Snapshot != nil && o.Snapshot.Mark == uint64(i+1) {
						break
					}
				}
				if wm, prog := p.last(); !wm.Equal(rel(st.wm)) || !prog.Equal(rel(st.prog)) {
					t.Errorf("step %d: watermark %v, progress %v; want %v, %v", i, wm.Sub(t0), prog.Sub(t0), st.wm, st.prog)
				}
			}
			e.Close()
			for range e.Output() {
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			for id, late := range p.late {
				if want := slices.Contains(tc.late, id); late != want {
					t.Errorf("%s: late %v, want %v", id, late, want)
				}
			}
		})
	}
}

// BenchmarkRouteOrigins measures a one-event batch from one origin while
// n origins are known and active: the router's per-batch cost grows with
// the origins it keeps (every token, tailed file identity, input file).
func BenchmarkRouteOrigins(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			p := &clockProbe{late: map[string]bool{}}
			e, err := engine.New(engine.Options{Detectors: []engine.Detector{p}, Shards: 1, Lateness: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- e.Run(context.Background()) }()
			go func() {
				for range e.Output() {
				}
			}()
			ctx := context.Background()
			for i := range n {
				if err := e.Submit(ctx, engine.Batch{Origin: strconv.Itoa(i), Arrived: w0, Events: []event.Event{gw("", time.Minute)}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// within the idleness of every origin's delivery
				at := time.Duration(i%20000) * time.Millisecond
				if err := e.Submit(ctx, engine.Batch{Origin: "0", Arrived: w0.Add(at), Events: []event.Event{gw("", at+time.Hour)}}); err != nil {
					b.Fatal(err)
				}
			}
			e.Close()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		})
	}
}
