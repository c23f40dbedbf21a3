package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// recorder keys on user.id and records, per shard, what it saw.
type recorder struct {
	mu       sync.Mutex
	seen     map[string][]int // key → shards that processed it
	late     map[string]bool  // event id → Late mark
	wms      map[int][]time.Time
	bcast    map[int]int // shard → broadcast events seen
	block    chan struct{}
	emitOnID string
}

var (
	_ engine.Detector    = (*recorder)(nil)
	_ engine.Broadcaster = (*recorder)(nil)
)

func newRecorder() *recorder {
	return &recorder{seen: map[string][]int{}, late: map[string]bool{}, wms: map[int][]time.Time{}, bcast: map[int]int{}}
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Key(ev *event.Event) (event.EntityKey, bool) {
	if ev.User.ID == "" {
		return event.EntityKey{}, false
	}
	return event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}, true
}
func (r *recorder) Broadcast(ev *event.Event) bool { return ev.Dataset == event.DatasetKeys }
func (r *recorder) NewShard() engine.Shard         { return &recShard{r: r} }

type recShard struct{ r *recorder }

func (s *recShard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	if s.r.block != nil {
		<-s.r.block
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if ev.Dataset == event.DatasetKeys {
		s.r.bcast[c.Shard()]++
		return
	}
	s.r.seen[key.ID] = append(s.r.seen[key.ID], c.Shard())
	s.r.late[ev.ID] = ev.Late
	if ev.ID == s.r.emitOnID {
		c.Emit(event.Finding{Kind: "k", Entity: key, Time: ev.Time, Score: 50, Evidence: []string{c.Ref(ev)}})
	}
}

func (s *recShard) Advance(c *engine.Context, wm time.Time) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.wms[c.Shard()] = append(s.r.wms[c.Shard()], wm)
}

var t0 = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func ev(id, user string, at time.Duration) event.Event {
	return event.Event{ID: id, Time: t0.Add(at), Dataset: event.DatasetGateway, Action: "read", User: event.User{ID: user}}
}

// run starts e, draining its output; wait waits for it to finish.
func run(t *testing.T, e *engine.Engine) (wait func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range e.Output() {
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- e.Run(context.Background()) }()
	return func() {
		if err := <-errc; err != nil {
			t.Error(err)
		}
		<-done
	}
}

func collect(t *testing.T, e *engine.Engine, batches ...[]event.Event) []engine.Output {
	t.Helper()
	var outs []engine.Output
	done := make(chan struct{})
	go func() {
		defer close(done)
		for o := range e.Output() {
			outs = append(outs, o)
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- e.Run(context.Background()) }()
	for _, b := range batches {
		if err := e.Submit(context.Background(), engine.Batch{Events: b}); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	<-done
	return outs
}

func TestKeysStayOnOneShard(t *testing.T) {
	r := newRecorder()
	e, err := engine.New(engine.Options{Detectors: []engine.Detector{r}, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	var batch []event.Event
	users := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for i := 0; i < 400; i++ {
		batch = append(batch, ev("", users[i%len(users)], time.Duration(i)*time.Second))
	}
	batch = append(batch, event.Event{Time: t0, Dataset: event.DatasetKeys, Action: "key.created"}) // broadcast
	batch = append(batch, event.Event{Time: t0, Dataset: event.DatasetGateway, Action: "x"})        // no key
	outs := collect(t, e, batch[:200], batch[200:])
	total := 0
	for u, shards := range r.seen {
		total += len(shards)
		for _, s := range shards[1:] {
			if s != shards[0] {
				t.Errorf("key %s processed on shards %v", u, shards)
				break
			}
		}
	}
	if total != 400 {
		t.Errorf("processed %d keyed events, want 400", total)
	}
	if len(r.bcast) != 4 {
		t.Errorf("broadcast reached shards %v, want all 4", r.bcast)
	}
	finals := 0
	for _, o := range outs {
		if o.Final {
			finals++
			if !o.Watermark.Equal(engine.EndOfTime) {
				t.Errorf("final output watermark %v", o.Watermark)
			}
		}
	}
	if finals != 4 {
		t.Errorf("%d final outputs, want 4", finals)
	}
	for s, wms := range r.wms {
		for i := 1; i < len(wms); i++ {
			if !wms[i].After(wms[i-1]) {
				t.Errorf("shard %d: watermark went %v → %v", s, wms[i-1], wms[i])
			}
		}
		if last := wms[len(wms)-1]; !last.Equal(engine.EndOfTime) {
			t.Errorf("shard %d: last Advance at %v, want EndOfTime", s, last)
		}
	}
}

func TestLateness(t *testing.T) {
	r := newRecorder()
	e, err := engine.New(engine.Options{Detectors: []engine.Detector{r}, Shards: 2, Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	collect(t, e,
		[]event.Event{ev("first", "a", 10*time.Minute)},
		// watermark is now 9m: 9m30s is within lateness, 8m is late.
		[]event.Event{ev("within", "b", 9*time.Minute+30*time.Second), ev("late", "c", 8*time.Minute)},
	)
	want := map[string]bool{"first": false, "within": false, "late": true}
	for id, w := range want {
		if got := r.late[id]; got != w {
			t.Errorf("%s: Late=%v, want %v", id, got, w)
		}
	}
}

func TestFindingsCarryDetectorAndSeverity(t *testing.T) {
	r2 := newRecorder()
	r2.emitOnID = "x"
	e2, err := engine.New(engine.Options{Detectors: []engine.Detector{r2}, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Finding
	for _, o := range collect(t, e2, []event.Event{ev("x", "a", time.Second)}) {
		got = append(got, o.Findings...)
	}
	if len(got) != 1 {
		t.Fatalf("got %d findings, want 1", len(got))
	}
	f := got[0]
	if f.Detector != "recorder" || f.Severity != event.SeverityMedium || f.Evidence[0] != "x" {
		t.Errorf("finding %+v: want detector recorder, severity medium, evidence x", f)
	}
}

func TestRefFallsBackToInputAndLine(t *testing.T) {
	r := newRecorder()
	r.emitOnID = ""
	e, _ := engine.New(engine.Options{Detectors: []engine.Detector{r}, Shards: 1,
		InputName: func(i uint32) string { return map[uint32]string{3: "file.ndjson"}[i] }})
	x := ev("", "a", 0)
	x.Input, x.Line = 3, 42
	var got []event.Finding
	for _, o := range collect(t, e, []event.Event{x}) {
		got = append(got, o.Findings...)
	}
	if len(got) != 1 || got[0].Evidence[0] != "file.ndjson:42" {
		t.Fatalf("findings %+v, want evidence file.ndjson:42", got)
	}
}

func TestTrySubmitWhenFull(t *testing.T) {
	r := newRecorder()
	r.block = make(chan struct{})
	e, err := engine.New(engine.Options{Detectors: []engine.Detector{r}, Shards: 1, QueueSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	wait := run(t, e)
	batch := func(n int) []event.Event {
		b := make([]event.Event, n)
		for i := range b {
			b[i] = ev("", "a", time.Duration(i))
		}
		return b
	}
	if err := e.TrySubmit(engine.Batch{Events: batch(8)}); err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if err := e.TrySubmit(engine.Batch{Events: batch(5)}); !errors.Is(err, engine.ErrFull) {
		t.Fatalf("second batch: %v, want ErrFull", err)
	}
	if d := e.QueueDepth(); d != 8 {
		t.Errorf("queue depth %d, want 8", d)
	}
	close(r.block) // let the shard work
	deadline := time.Now().Add(10 * time.Second)
	for e.QueueDepth() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := e.TrySubmit(engine.Batch{Events: batch(5)}); err != nil {
		t.Fatalf("after draining: %v", err)
	}
	e.Close()
	wait()
	if err := e.Submit(context.Background(), engine.Batch{Events: batch(1)}); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Submit after Close: %v, want ErrClosed", err)
	}
	if n := len(r.seen["a"]); n != 13 {
		t.Errorf("processed %d events, want 13", n)
	}
}

func TestSubmitWaitsForRoom(t *testing.T) {
	r := newRecorder()
	r.block = make(chan struct{})
	e, _ := engine.New(engine.Options{Detectors: []engine.Detector{r}, Shards: 1, QueueSize: 4})
	wait := run(t, e)
	if err := e.Submit(context.Background(), engine.Batch{Events: []event.Event{ev("", "a", 0), ev("", "a", 1), ev("", "a", 2)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.Submit(ctx, engine.Batch{Events: []event.Event{ev("", "a", 3), ev("", "a", 4)}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit into a full engine: %v, want deadline exceeded", err)
	}
	close(r.block)
	if err := e.Submit(context.Background(), engine.Batch{Events: []event.Event{ev("", "a", 3), ev("", "a", 4)}}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	wait()
	if n := len(r.seen["a"]); n != 5 {
		t.Errorf("processed %d events, want 5", n)
	}
}

func TestAdvanceToMovesWatermarkWithoutEvents(t *testing.T) {
	r := newRecorder()
	e, _ := engine.New(engine.Options{Detectors: []engine.Detector{r}, Shards: 2})
	wait := run(t, e)
	target := t0.Add(time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for e.Watermark().Before(target) && time.Now().Before(deadline) {
		e.AdvanceTo(target)
		time.Sleep(time.Millisecond)
	}
	if !e.Watermark().Equal(target) {
		t.Fatalf("watermark %v, want %v", e.Watermark(), target)
	}
	e.AdvanceTo(t0) // backwards: ignored
	e.Close()
	wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := 0; s < 2; s++ {
		if len(r.wms[s]) < 2 || !r.wms[s][0].Equal(target) {
			t.Errorf("shard %d advanced through %v, want %v first", s, r.wms[s], target)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	r := newRecorder()
	for name, o := range map[string]engine.Options{
		"duplicate":    {Detectors: []engine.Detector{r, r}},
		"nil":          {Detectors: []engine.Detector{nil}},
		"neg shards":   {Shards: -1},
		"neg queue":    {QueueSize: -1},
		"neg lateness": {Lateness: -time.Second},
	} {
		if _, err := engine.New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

// emitter emits one finding per event, keyed on user.id.
type emitter struct{}

func (emitter) Name() string { return "emitter" }
func (emitter) Key(ev *event.Event) (event.EntityKey, bool) {
	return event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}, true
}
func (emitter) NewShard() engine.Shard { return emitterShard{} }

type emitterShard struct{}

func (emitterShard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	if ev.ID[len(ev.ID)-1]%3 == 0 { // uneven work across shards
		time.Sleep(time.Microsecond * time.Duration(len(ev.ID)))
	}
	c.Emit(event.Finding{Kind: "k", Entity: key, Time: ev.Time, Score: 50, Evidence: []string{ev.ID}})
}

// The output sequence — which shard's output comes when, with which
// findings and watermark — is the same in every run of the same input,
// whatever the shard goroutines' timing: alerts (their ids, their
// sessions) depend on it, and replays and restarts must reproduce them.
func TestOutputOrderIsDeterministic(t *testing.T) {
	var batches [][]event.Event
	for b := range 40 {
		var batch []event.Event
		for i := range 50 {
			n := b*50 + i
			batch = append(batch, ev(fmt.Sprintf("e%d", n), fmt.Sprintf("u%d", n%37), time.Duration(n)*time.Second))
		}
		batches = append(batches, batch)
	}
	fingerprint := func() []string {
		e, err := engine.New(engine.Options{Detectors: []engine.Detector{emitter{}}, Shards: 4})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range collect(t, e, batches...) {
			s := fmt.Sprintf("%d %s", o.Shard, o.Watermark.Format(time.RFC3339))
			for _, f := range o.Findings {
				s += " " + f.Evidence[0]
			}
			out = append(out, s)
		}
		return out
	}
	want := fingerprint()
	for range 5 {
		if got := fingerprint(); !slices.Equal(got, want) {
			t.Fatalf("output order differs between runs:\nfirst %v\nlater %v", want[:8], got[:8])
		}
	}
}

// watcher watches the token issuer's stream and records, per shard, the
// stream's progress at every Advance.
type watcher struct {
	mu   sync.Mutex
	seen map[int][]time.Time // shard → StreamTime(auth.token) at each Advance
}

var _ engine.StreamWatcher = (*watcher)(nil)

func (w *watcher) Name() string      { return "watcher" }
func (w *watcher) Streams() []string { return []string{event.DatasetToken, event.DatasetToken, ""} }
func (w *watcher) Key(ev *event.Event) (event.EntityKey, bool) {
	return event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}, ev.User.ID != ""
}
func (w *watcher) NewShard() engine.Shard { return &watchShard{w: w} }

type watchShard struct{ w *watcher }

func (s *watchShard) Process(*engine.Context, event.EntityKey, *event.Event) {}
func (s *watchShard) Advance(c *engine.Context, _ time.Time) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.w.seen[c.Shard()] = append(s.w.seen[c.Shard()], c.StreamTime(event.DatasetToken))
}

// TestStreamProgress: a watched stream's progress is the newest event time
// of its dataset the router has seen or been told (Batch.Streams), the same
// on every shard; a move of it alone calls the watchers' Advance (not the
// others'), and it never goes back.
func TestStreamProgress(t *testing.T) {
	if got := engine.StreamsOf([]engine.Detector{newRecorder(), &watcher{}}); !slices.Equal(got, []string{event.DatasetToken}) {
		t.Fatalf("StreamsOf = %v", got)
	}
	w := &watcher{seen: map[int][]time.Time{}}
	r := newRecorder()
	e, err := engine.New(engine.Options{Detectors: []engine.Detector{r, w}, Shards: 2, Lateness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(at time.Duration) event.Event {
		return event.Event{Time: t0.Add(at), Dataset: event.DatasetToken, Action: event.ActionTokenIssued}
	}
	wait := run(t, e)
	ctx := context.Background()
	for _, b := range []engine.Batch{
		{Events: []event.Event{ev("a", "u1", 10*time.Minute)}}, // watermark 9m, no mint yet
		{Events: []event.Event{mint(5 * time.Minute)}},         // a mint behind the watermark's source: only the stream moves
		{Events: []event.Event{mint(4 * time.Minute)}},         // older: nothing moves
		{Events: []event.Event{ev("b", "u2", 9*time.Minute)}, Streams: []engine.StreamTime{{Dataset: event.DatasetToken, Time: t0.Add(7 * time.Minute)}}}, // told by an upstream stage
		{Events: []event.Event{ev("c", "u3", 8*time.Minute)}, Streams: []engine.StreamTime{{Dataset: event.DatasetToken, Time: t0.Add(6 * time.Minute)}, {Dataset: "other", Time: t0.Add(time.Hour)}}},
	} {
		if err := e.Submit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	wait()
	want := []time.Time{{}, t0.Add(5 * time.Minute), t0.Add(7 * time.Minute), t0.Add(7 * time.Minute)} // the last at EndOfTime
	for shard := range 2 {
		if got := w.seen[shard]; !slices.EqualFunc(got, want, time.Time.Equal) {
			t.Errorf("shard %d: stream progress at Advance %v, want %v", shard, got, want)
		}
		// The recorder (no watcher) hears only the watermark's moves: 9m
		// and the end.
		if got := r.wms[shard]; len(got) != 2 {
			t.Errorf("shard %d: recorder advanced at %v, want twice", shard, got)
		}
	}
}

// timeEmitter keys on user.id and emits one finding per event, at its time.
type timeEmitter struct{}

func (timeEmitter) Name() string { return "timeEmitter" }
func (timeEmitter) Key(ev *event.Event) (event.EntityKey, bool) {
	return event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}, ev.User.ID != ""
}
func (timeEmitter) NewShard() engine.Shard { return timeEmitterShard{} }

type timeEmitterShard struct{}

func (timeEmitterShard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	c.Emit(event.Finding{Kind: "k", Entity: event.EntityKey{Kind: event.EntitySigningKey, ID: "k1"}, Time: ev.Time, Score: 95, Evidence: []string{c.Ref(ev)}})
}

// TestRoundFindingsInEventTimeOrder: findings of one message emitted on
// several shards reach the consumer in event-time order, not shard by
// shard — the alert stage opens an alert with the first finding to arrive,
// so a later finding of a lower-numbered shard handed on first would raise
// the alert late (a ghost-key alert at the second forged token's use
// instead of the first's).
func TestRoundFindingsInEventTimeOrder(t *testing.T) {
	const shards = 4
	// One user per shard, the highest shard's used first.
	users := make([]string, shards)
	for i := 0; users[shards-1] == "" || users[0] == ""; i++ {
		u := fmt.Sprintf("u%d", i)
		if s := engine.HashKey(event.EntityKey{Kind: event.EntityPrincipal, ID: u}) % shards; users[s] == "" {
			users[s] = u
		}
	}
	batch := []event.Event{
		ev("e1", users[shards-1], 0),
		ev("e2", users[0], time.Second),
		ev("e3", users[shards-1], 2*time.Second),
		ev("e4", users[0], 3*time.Second),
	}
	e, err := engine.New(engine.Options{Detectors: []engine.Detector{timeEmitter{}}, Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range collect(t, e, batch) {
		for _, f := range o.Findings {
			got = append(got, f.Evidence[0])
		}
	}
	if want := []string{"e1", "e2", "e3", "e4"}; !slices.Equal(got, want) {
		t.Errorf("findings in order %v, want %v (event time)", got, want)
	}
}

// counterValue returns the value of the counter name in reg (0 when absent).
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// TestProcessedCountsWhenProcessed: haechi_events_processed_total counts an
// event once the detectors have processed it, not when it is routed to
// their shards (haechi_events_routed_total) — serve's capacity is read from
// it (TestOverload, haechi bench).
func TestProcessedCountsWhenProcessed(t *testing.T) {
	r := newRecorder()
	r.block = make(chan struct{})
	reg := prometheus.NewRegistry()
	e, err := engine.New(engine.Options{Detectors: []engine.Detector{r}, Shards: 2, QueueSize: 100, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	wait := run(t, e)
	batch := []event.Event{ev("", "a", 0), ev("", "b", 1), ev("", "c", 2), ev("", "d", 3), ev("", "e", 4)}
	if err := e.Submit(context.Background(), engine.Batch{Events: batch}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	// Until the router has handed the batch to the shards (counted as
	// routed, or — wrongly — as processed).
	for counterValue(t, reg, "haechi_events_routed_total") != 5 && counterValue(t, reg, "haechi_events_processed_total") != 5 &&
		time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// Routed, not yet processed: the detectors are blocked.
	if n := counterValue(t, reg, "haechi_events_processed_total"); n != 0 {
		t.Errorf("processed %v events while the detectors were blocked, want 0", n)
	}
	close(r.block)
	e.Close()
	wait()
	if n := counterValue(t, reg, "haechi_events_processed_total"); n != 5 {
		t.Errorf("processed %v events, want 5", n)
	}
}
