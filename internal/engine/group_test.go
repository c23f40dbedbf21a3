package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
)

// tracer emits a finding for everything it hears — each event (with what
// the shard knew then: watermark, earliest, the watched stream's progress,
// the Late mark), each Advance and each Mark — and snapshots its count, so
// that two engines' outputs are equal only if every detector call saw the
// same thing in the same order.
type tracer struct{ watch bool }

func (d *tracer) Name() string {
	if d.watch {
		return "tracer-watch"
	}
	return "tracer"
}

func (d *tracer) Key(ev *event.Event) (event.EntityKey, bool) {
	return event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}, ev.User.ID != ""
}
func (d *tracer) Broadcast(ev *event.Event) bool { return ev.Dataset == event.DatasetKeys }
func (d *tracer) NewShard() engine.Shard         { return &tracerShard{d: d} }

// watchingTracer is a tracer that watches the token stream.
type watchingTracer struct{ tracer }

func (d *watchingTracer) Streams() []string { return []string{event.DatasetToken} }

type tracerShard struct {
	d *tracer
	n int
}

func (s *tracerShard) emit(c *engine.Context, kind, id string, at time.Time) {
	s.n++
	c.Emit(event.Finding{Kind: kind, Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: id}, Time: at,
		Explanation: fmt.Sprintf("shard %d n %d wm %s earliest %s token %s", c.Shard(), s.n,
			c.Watermark().Format(time.RFC3339Nano), c.Earliest().Format(time.RFC3339Nano), c.StreamTime(event.DatasetToken).Format(time.RFC3339Nano))})
}

func (s *tracerShard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	s.emit(c, "event "+ev.ID+" late "+strconv.FormatBool(ev.Late), key.ID, ev.Time)
}
func (s *tracerShard) Advance(c *engine.Context, wm time.Time) { s.emit(c, "advance", "", wm) }
func (s *tracerShard) Mark(c *engine.Context, m uint64) {
	s.emit(c, "mark "+strconv.FormatUint(m, 10), "", time.Time{})
}
func (s *tracerShard) AppendSnapshot(w *snap.Writer) { w.Uint(uint64(s.n)) }
func (s *tracerShard) Restore(r *snap.Reader) error {
	s.n = int(r.Uint())
	return r.End()
}

// randomSubmissions is a stream of batches from three origins — events
// keyed and broadcast, of the watched stream and not, out of order, late,
// restored ones, Streams, arrival times with gaps past the idleness (an
// origin goes idle: the router moves the watermark before a batch) — with
// marks and checkpoints among them, each tagged with its position.
func randomSubmissions(rng *rand.Rand, n int) []engine.Submission {
	origins := []string{"in 0", "in 1", "in 2"}
	at := map[string]time.Duration{}
	arrived := t0
	var subs []engine.Submission
	id := 0
	for i := range n {
		tag := uint64(i + 1)
		switch rng.IntN(12) {
		case 0:
			subs = append(subs, engine.Submission{Mark: tag, Tag: tag})
			continue
		case 1:
			subs = append(subs, engine.Submission{Mark: tag, Checkpoint: true, Tag: tag})
			continue
		}
		o := origins[rng.IntN(len(origins))]
		arrived = arrived.Add(time.Duration(rng.IntN(20)) * time.Second)
		if rng.IntN(15) == 0 {
			arrived = arrived.Add(10 * time.Minute) // past the idleness
		}
		b := engine.Batch{Origin: o, Arrived: arrived}
		restored := rng.IntN(8) == 0
		for range 1 + rng.IntN(4) {
			at[o] += time.Duration(rng.IntN(90)-20) * time.Second
			ev := ev("e"+strconv.Itoa(id), "u"+strconv.Itoa(rng.IntN(5)), at[o])
			id++
			switch rng.IntN(6) {
			case 0:
				ev.Dataset = event.DatasetToken
			case 1:
				ev.Dataset, ev.User = event.DatasetKeys, event.User{}
			}
			ev.Restored = restored
			b.Events = append(b.Events, ev)
		}
		if rng.IntN(5) == 0 {
			b.Streams = []engine.StreamTime{{Dataset: event.DatasetToken, Time: t0.Add(at[o] - time.Duration(rng.IntN(600))*time.Second)}}
		}
		subs = append(subs, engine.Submission{Batch: b, Tag: tag})
	}
	return subs
}

// runEngine runs an engine over subs — one by one (groups nil) or in
// SubmitGroup calls of the given sizes — and returns its outputs, groups
// flattened.
func runEngine(t *testing.T, shards int, subs []engine.Submission, groups []int) []engine.Output {
	t.Helper()
	e, err := engine.New(engine.Options{Detectors: []engine.Detector{&tracer{}, &watchingTracer{tracer{watch: true}}},
		Shards: shards, Lateness: time.Minute, Idleness: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var outs []engine.Output
	done := make(chan struct{})
	go func() {
		defer close(done)
		for o := range e.Output() {
			if o.Group != nil {
				outs = append(outs, o.Group...)
				continue
			}
			outs = append(outs, o)
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- e.Run(context.Background()) }()
	ctx := context.Background()
	if groups == nil {
		for _, sb := range subs {
			// Batch copies: the engine stamps Late on the events it owns.
			var err error
			switch {
			case sb.Mark != 0 && sb.Checkpoint:
				err = e.Checkpoint(ctx, sb.Mark)
			case sb.Mark != 0:
				err = e.Mark(ctx, sb.Mark)
			default:
				err = e.Submit(ctx, sb.Batch)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	} else {
		for _, g := range groups {
			if err := e.SubmitGroup(ctx, subs[:g]); err != nil {
				t.Fatal(err)
			}
			subs = subs[g:]
		}
	}
	e.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	<-done
	return outs
}

func cloneSubmissions(subs []engine.Submission) []engine.Submission {
	c := make([]engine.Submission, len(subs))
	for i, sb := range subs {
		c[i] = sb
		c[i].Batch.Events = append([]event.Event(nil), sb.Batch.Events...)
	}
	return c
}

// TestSubmitGroupEqualsOneByOne: the messages of SubmitGroup calls, cut
// anywhere, yield exactly the outputs — findings with everything each
// detector call saw, watermarks, snapshots — of the same messages
// submitted one by one, in the same order; and each output carries the
// tag of the message that yielded it (an event's finding, the tag of the
// batch holding the event; a snapshot, its checkpoint's).
func TestSubmitGroupEqualsOneByOne(t *testing.T) {
	for seed := range uint64(40) {
		for _, shards := range []int{1, 3} {
			t.Run(fmt.Sprintf("seed=%d/shards=%d", seed, shards), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 38))
				subs := randomSubmissions(rng, 60+rng.IntN(120))
				want := runEngine(t, shards, cloneSubmissions(subs), nil)
				var groups []int
				for left := len(subs); left > 0; {
					g := min(left, 1+rng.IntN(40))
					groups = append(groups, g)
					left -= g
				}
				got := runEngine(t, shards, cloneSubmissions(subs), groups)
				if len(got) != len(want) {
					t.Fatalf("%d outputs, want %d", len(got), len(want))
				}
				tagOf := map[string]uint64{} // event id → tag of its batch
				for _, sb := range subs {
					for _, e := range sb.Batch.Events {
						tagOf[e.ID] = sb.Tag
					}
				}
				var lastTag uint64
				for i := range want {
					g, w := got[i], want[i]
					if g.Tag < lastTag && !g.Final {
						t.Fatalf("output %d: tag %d after %d", i, g.Tag, lastTag)
					}
					lastTag = g.Tag
					for _, f := range g.Findings {
						if id, ok := strings.CutPrefix(f.Kind, "event "); ok {
							id, _, _ = strings.Cut(id, " ")
							if tagOf[id] != g.Tag {
								t.Fatalf("output %d: finding of event %s tagged %d, its batch is %d", i, id, g.Tag, tagOf[id])
							}
						}
					}
					if g.Snapshot != nil && g.Snapshot.Mark != g.Tag {
						t.Fatalf("output %d: snapshot of mark %d tagged %d", i, g.Snapshot.Mark, g.Tag)
					}
					g.Tag = 0
					if !reflect.DeepEqual(g, w) {
						t.Fatalf("output %d differs:\n got %+v\nwant %+v", i, g, w)
					}
				}
			})
		}
	}
}
