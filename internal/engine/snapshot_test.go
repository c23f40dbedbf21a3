package engine_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
)

// counter counts events per user, and snapshots its counts.
type counter struct {
	mu     sync.Mutex
	shards []*countShard
}

func (c *counter) Name() string { return "counter" }
func (c *counter) Key(ev *event.Event) (event.EntityKey, bool) {
	return event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}, ev.User.ID != ""
}
func (c *counter) NewShard() engine.Shard {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &countShard{n: map[string]int{}}
	c.shards = append(c.shards, s)
	return s
}

func (c *counter) total() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, s := range c.shards {
		maps.Copy(out, s.n)
	}
	return out
}

type countShard struct{ n map[string]int }

func (s *countShard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) { s.n[key.ID]++ }

func (s *countShard) AppendSnapshot(w *snap.Writer) {
	w.Byte(1)
	w.Uint(uint64(len(s.n)))
	for k, v := range s.n {
		w.String(k)
		w.Uint(uint64(v))
	}
}

func (s *countShard) Restore(r *snap.Reader) error {
	if r.Byte() != 1 {
		return fmt.Errorf("version")
	}
	n := r.Count(2)
	for range n {
		k := r.String()
		s.n[k] = int(r.Uint())
	}
	return r.End()
}

// A checkpoint taken mid-stream and restored into a new engine, with the
// replayed part marked Restored, gives the state of an uninterrupted run.
func TestCheckpointRestore(t *testing.T) {
	var evs []event.Event
	for i := range 200 {
		evs = append(evs, ev(fmt.Sprint(i), fmt.Sprintf("u%d", i%17), time.Duration(i)*time.Second))
	}
	ctx := context.Background()

	// Uninterrupted.
	full := &counter{}
	e, _ := engine.New(engine.Options{Detectors: []engine.Detector{full}, Shards: 3})
	collect(t, e, append([]event.Event(nil), evs...))
	want := full.total()

	// First 120 events, then a checkpoint.
	first := &counter{}
	e, _ = engine.New(engine.Options{Detectors: []engine.Detector{first}, Shards: 3})
	var shots []*engine.ShardSnapshot
	done := make(chan struct{})
	go func() {
		defer close(done)
		for o := range e.Output() {
			if o.Snapshot != nil {
				shots = append(shots, o.Snapshot)
			}
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	if err := e.Submit(ctx, engine.Batch{Events: append([]event.Event(nil), evs[:120]...)}); err != nil {
		t.Fatal(err)
	}
	if err := e.Checkpoint(ctx, 120); err != nil {
		t.Fatal(err)
	}
	e.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	<-done
	if len(shots) != 3 {
		t.Fatalf("%d snapshot outputs, want one per shard", len(shots))
	}
	restore := map[string][][]byte{"counter": make([][]byte, 3)}
	for i, s := range shots {
		if s.Mark != 120 || len(s.Parts) != 1 || s.Parts[0].Detector != "counter" {
			t.Fatalf("snapshot %+v", s)
		}
		restore["counter"][i] = s.Parts[0].Data
	}
	// Outputs arrive round-robin by shard: index i is shard i.

	// Restart: restore, replay everything (the first 120 marked Restored).
	again := &counter{}
	e, _ = engine.New(engine.Options{Detectors: []engine.Detector{again}, Shards: 3, Restore: restore})
	replay := append([]event.Event(nil), evs...)
	for i := range 120 {
		replay[i].Restored = true
	}
	collect(t, e, replay)
	if got := again.total(); !maps.Equal(got, want) {
		t.Fatalf("after restore %v, want %v", got, want)
	}

	// A corrupt snapshot starts the shard cold (and it then counts the
	// Restored events too, as it must rebuild its state from them).
	bad := map[string][][]byte{"counter": {restore["counter"][0], []byte{9}, restore["counter"][2]}}
	cold := &counter{}
	e, _ = engine.New(engine.Options{Detectors: []engine.Detector{cold}, Shards: 3, Restore: bad})
	collect(t, e, append([]event.Event(nil), replay...))
	if got := cold.total(); !maps.Equal(got, want) {
		t.Fatalf("with one shard cold %v, want %v", got, want)
	}
}
