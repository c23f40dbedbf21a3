package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/clock"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
)

// Errors returned by Submit and TrySubmit.
var (
	ErrFull   = errors.New("engine queues are full")
	ErrClosed = errors.New("engine is closed")
)

// Options configure New. Zero values take the documented defaults.
type Options struct {
	// Detectors, in order. Names must be unique.
	Detectors []Detector
	// Shards is the number of shard goroutines (0 → GOMAXPROCS).
	Shards int
	// QueueSize bounds the events admitted but not yet processed
	// (0 → 65536). A single batch larger than this is admitted alone.
	QueueSize int
	// Lateness is how far behind the input's event time an event may
	// arrive before it is marked late (0 → 5 minutes; negative is
	// invalid). The input's event time is the minimum over its active
	// origins (Batch.Origin) of their newest event time.
	Lateness time.Duration
	// Idleness is how long an origin may deliver nothing, by the arrival
	// clock (Batch.Arrived, Tick), before it stops holding the others back
	// (0 → DefaultIdleness; negative is invalid).
	Idleness time.Duration
	// MaxOriginLag is how far an origin's event time may be behind the
	// leading active origin's and still hold the others back (0 →
	// DefaultMaxOriginLag; negative is invalid; less than Lateness counts
	// as Lateness): past it, its events are marked late instead, so no
	// origin can stall detection.
	MaxOriginLag time.Duration
	// InputName names an input index for evidence references (nil → "input").
	InputName func(uint32) string
	// Release, if set, is handed each batch's event slice once every shard
	// has processed it, so the producer can reuse it. It is called from a
	// shard goroutine and must be quick.
	Release func([]event.Event)
	// Restore holds checkpointed detector state to start from, by detector
	// name, one snapshot per shard (see Snapshotter and Engine.Checkpoint).
	// A detector's snapshots are used only when there is one per shard of
	// this engine; a shard whose snapshot is refused starts cold (logged).
	// A detector restored on a shard skips events marked Restored there:
	// its snapshot already holds them. Findings yielded by a batch whose
	// events are all Restored (by detectors that rebuild their state from
	// the replay) are dropped: they were emitted before the checkpoint.
	Restore map[string][][]byte
	// Clock is the wall clock, used only to measure lag (nil → clock.Wall).
	Clock clock.Clock
	// Logger (nil → discard) and Registerer (nil → metrics not registered).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Batch is a unit of admission: events decoded together, handed over to the
// engine, which owns the slice from then on.
type Batch struct {
	Events   []event.Event
	Received time.Time // wall-clock arrival, for the processing-lag metric
	// Streams, if set, advances the progress of watched streams (see
	// StreamWatcher) before the batch's events, as an upstream stage that
	// saw the whole input knows it: cluster mode's partition engines see
	// only their share of the issuer's stream and learn the rest from the
	// re-keying stage. Progress never moves backwards; datasets no
	// detector watches are ignored.
	Streams []StreamTime
	// Origin names the input stream the batch comes from — a file, an
	// ingest token, a Kafka partition — each with its own event time (see
	// origins). Batches of one origin are submitted in the order they
	// arrived. "" is an origin like any other: a caller that never names
	// one has a single origin, and the watermark is simply the newest
	// event time seen minus the lateness.
	Origin string
	// Arrived is when the batch reached haechi (the spool's acceptance
	// time), or zero when the input has no arrival clock (file replay,
	// simulation): then no origin ever goes idle and only events and
	// EndOrigin move event time.
	Arrived time.Time
}

// Output is what a shard reports after each batch it processed: the
// findings emitted (possibly none) and the watermark it has reached. The
// findings of one message on every shard come together, in event-time
// order, with the first shard's output of that message (see merge); the
// other shards' outputs of it carry none. The
// watermark of the whole engine, as far as findings are concerned, is the
// minimum over shards; a consumer that closes windows must use that minimum
// so no shard can still emit into a closed window. Final is set on each
// shard's last output (watermark EndOfTime).
type Output struct {
	Shard     int
	Shards    int
	Findings  []event.Finding
	Watermark time.Time
	Final     bool
	// Snapshot is set on the output that answers Engine.Checkpoint: the
	// shard's Snapshotter states at the checkpoint's mark.
	Snapshot *ShardSnapshot
	// Tag is the Tag of the Submission (Engine.SubmitGroup) whose
	// processing yielded the output — its events, its mark, or a watermark
	// the router moved before its events (an origin gone idle) — and 0 for
	// everything submitted otherwise.
	Tag uint64
	// Group, when not nil, stands for the outputs of one SubmitGroup call,
	// in the order they would have come one by one (round by round, shard
	// by shard); the output's other fields are then zero. Only SubmitGroup
	// yields one.
	Group []Output
}

// Submission is one message of Engine.SubmitGroup: a batch of events, or,
// when Mark is non-zero, a mark (Engine.Mark) or with Checkpoint a
// checkpoint (Engine.Checkpoint). Tag is handed back on every output the
// message yields (Output.Tag).
type Submission struct {
	Batch      Batch
	Mark       uint64
	Checkpoint bool
	Tag        uint64
}

// ShardSnapshot is one shard's part of a checkpoint.
type ShardSnapshot struct {
	Mark  uint64
	Parts []SnapshotPart // one per detector implementing Snapshotter, in detector order
}

// SnapshotPart is one detector's state on one shard.
type SnapshotPart struct {
	Detector string
	Data     []byte
}

// Engine routes events to detector shards. Create with New, start Run, feed
// with Submit/TrySubmit, stop with Close; Run returns when everything
// submitted before Close has been processed and Output is closed.
type Engine struct {
	opts  Options
	dets  []Detector
	bcast []Broadcaster
	// streams are the datasets detectors watch; watchers[d] is whether
	// detector d is one of the watchers.
	streams  []string
	watchers []bool
	in       chan inMsg
	out      chan Output
	shards   []chan shardMsg
	// shardOut carries each shard's outputs, one per message it received;
	// merge interleaves them round-robin into out.
	shardOut  []chan Output
	gate      *gate
	closeMu   sync.RWMutex
	closed    bool
	started   atomic.Bool
	itemPool  sync.Pool
	arenaPool sync.Pool // *[]item: SubmitGroup's item arrays
	groupPool sync.Pool // *[]shardMsg: SubmitGroup's messages to a shard
	m         *metrics
	watermark atomic.Int64 // unix nanos, for observers
	fp        *footprints
}

type inMsg struct {
	batch   Batch
	advance time.Time // non-zero: a watermark advance request, no events
	tick    time.Time // non-zero: the arrival clock moves (Engine.Tick)
	end     bool      // the origin named origin ends (Engine.EndOrigin)
	origin  string
	mark    uint64  // non-zero: a mark, no events (see Engine.Mark)
	snap    bool    // with mark: a checkpoint (see Engine.Checkpoint)
	tag     uint64  // Submission.Tag
	group   []inMsg // SubmitGroup: these messages, handled as one
}

type item struct {
	det int32
	key event.EntityKey
	ev  *event.Event
}

type shardMsg struct {
	items     *[]item
	watermark time.Time
	earliest  time.Time
	// progress of the watched streams after the batch (shared by every
	// shard, never modified); moved: it changed with this message.
	progress []time.Time
	moved    bool
	done     *batchDone
	received time.Time
	final    bool
	mark     uint64
	snap     bool
	// restored: every event of the batch is Restored — a replay of what
	// the restored checkpoint covers. Findings the message yields were
	// emitted before the checkpoint and are dropped.
	restored bool
	tag      uint64 // of the Submission it came from (Output.Tag)
	// arena: the items are arenaItems, part of a group's array (items is
	// then only a marker), not a slice of the pool
	arena      bool
	arenaItems []item
	arenaBuf   *[]item    // with group: that array, pooled once processed
	group      []shardMsg // a SubmitGroup's messages to this shard, in order
}

// batchDone releases a batch's admission once every shard it went to has
// processed it.
type batchDone struct {
	pending   atomic.Int32
	n         int
	gate      *gate
	events    []event.Event
	release   func([]event.Event)
	processed prometheus.Counter // haechi_events_processed_total
}

func (b *batchDone) finish() {
	if b != nil && b.pending.Add(-1) == 0 {
		b.processed.Add(float64(b.n))
		b.gate.release(b.n)
		if b.release != nil {
			b.release(b.events)
		}
	}
}

// New validates opts and builds an engine.
func New(opts Options) (*Engine, error) {
	if opts.Shards < 0 || opts.QueueSize < 0 || opts.Lateness < 0 || opts.Idleness < 0 || opts.MaxOriginLag < 0 {
		return nil, fmt.Errorf("engine: shards, queue size, lateness, idleness and maximum origin lag must not be negative")
	}
	if opts.MaxOriginLag == 0 {
		opts.MaxOriginLag = DefaultMaxOriginLag
	}
	if opts.Idleness == 0 {
		opts.Idleness = DefaultIdleness
	}
	if opts.Shards == 0 {
		opts.Shards = runtime.GOMAXPROCS(0)
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = 65536
	}
	if opts.Lateness == 0 {
		opts.Lateness = 5 * time.Minute
	}
	// An origin within the lateness is never a reason to mark events late.
	opts.MaxOriginLag = max(opts.MaxOriginLag, opts.Lateness)
	if opts.Clock == nil {
		opts.Clock = clock.Wall{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	e := &Engine{opts: opts, gate: newGate(opts.QueueSize)}
	for _, d := range opts.Detectors {
		if d == nil {
			return nil, errors.New("engine: nil detector")
		}
		if seen[d.Name()] {
			return nil, fmt.Errorf("engine: detector %q registered twice", d.Name())
		}
		seen[d.Name()] = true
		e.dets = append(e.dets, d)
		b, _ := d.(Broadcaster)
		e.bcast = append(e.bcast, b)
		_, w := d.(StreamWatcher)
		e.watchers = append(e.watchers, w)
	}
	e.streams = StreamsOf(e.dets)
	e.in = make(chan inMsg, 256)
	e.out = make(chan Output, 4*opts.Shards)
	e.shards = make([]chan shardMsg, opts.Shards)
	e.shardOut = make([]chan Output, opts.Shards)
	for i := range e.shards {
		e.shards[i] = make(chan shardMsg, 64)
		e.shardOut[i] = make(chan Output, 64)
	}
	e.itemPool.New = func() any { s := make([]item, 0, 256); return &s }
	e.fp = newFootprints(len(e.dets), opts.Shards)
	e.m = newMetrics(opts.Registerer, e)
	return e, nil
}

// Shards returns the number of shards.
func (e *Engine) Shards() int { return len(e.shards) }

// Output returns the channel of shard outputs. The caller must drain it
// until it is closed; the engine blocks (backpressure) when it is not.
func (e *Engine) Output() <-chan Output { return e.out }

// QueueDepth returns the number of events admitted but not yet processed.
func (e *Engine) QueueDepth() int { return e.gate.inUse() }

// Watermark returns the router's current watermark (zero before any event).
func (e *Engine) Watermark() time.Time {
	n := e.watermark.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Submit admits a batch (one without events is ignored, Streams and all),
// waiting while the engine is full. It returns
// ErrClosed after Close, or ctx's error.
func (e *Engine) Submit(ctx context.Context, b Batch) error {
	if len(b.Events) == 0 {
		return nil
	}
	if err := e.gate.acquire(ctx, len(b.Events)); err != nil {
		return err
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		e.gate.release(len(b.Events))
		return ErrClosed
	}
	select {
	case e.in <- inMsg{batch: b}:
		return nil
	case <-ctx.Done():
		e.gate.release(len(b.Events))
		return ctx.Err()
	}
}

// TrySubmit admits a batch only if there is room now; otherwise it returns
// ErrFull and the caller still owns the batch (HTTP ingest answers 429).
func (e *Engine) TrySubmit(b Batch) error {
	if len(b.Events) == 0 {
		return nil
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	if !e.gate.tryAcquire(len(b.Events)) {
		return ErrFull
	}
	select {
	case e.in <- inMsg{batch: b}:
		return nil
	default:
		e.gate.release(len(b.Events))
		return ErrFull
	}
}

// SubmitGroup hands the engine several messages at once — batches, marks
// and checkpoints, in order — and they are processed exactly as if each
// had been submitted on its own (Submit, Mark, Checkpoint) in that order:
// the same watermarks, splits, findings and snapshots. Only the hand-offs
// between the engine's goroutines are shared: one message to the router,
// one to each shard and one Output (with Group) for the whole call, where
// one by one every message costs its own, which for small batches (cluster
// mode's detection stage submits a batch per record) is most of the
// engine's work. Each message's outputs carry its Tag. Batches without
// events are ignored, as by Submit. It waits for room for all the events
// at once (a call larger than the queue is admitted alone).
func (e *Engine) SubmitGroup(ctx context.Context, subs []Submission) error {
	msgs := make([]inMsg, 0, len(subs))
	n := 0
	for _, sb := range subs {
		switch {
		case sb.Mark != 0:
			msgs = append(msgs, inMsg{mark: sb.Mark, snap: sb.Checkpoint, tag: sb.Tag})
		case len(sb.Batch.Events) > 0:
			msgs = append(msgs, inMsg{batch: sb.Batch, tag: sb.Tag})
			n += len(sb.Batch.Events)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := e.gate.acquire(ctx, n); err != nil {
		return err
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		e.gate.release(n)
		return ErrClosed
	}
	select {
	case e.in <- inMsg{group: msgs}:
		return nil
	case <-ctx.Done():
		e.gate.release(n)
		return ctx.Err()
	}
}

// Mark passes the mark m (non-zero) through the engine in order with the
// batches submitted before and after it: every shard, once it has
// processed everything submitted before the mark, calls Mark on its
// detector states that implement Marker. The ledger uses it to hand off
// its state and report when everything before a spool offset is stored.
// It waits for room in the router's queue.
func (e *Engine) Mark(ctx context.Context, m uint64) error {
	if m == 0 {
		return errors.New("engine: mark 0")
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	select {
	case e.in <- inMsg{mark: m}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Checkpoint is Mark with a snapshot: every shard, once it has processed
// everything submitted before it, calls Mark on its Markers and then
// writes every Snapshotter's state into its output's Snapshot (one output
// per shard, all with the same mark). The consumer assembles a checkpoint
// from the Shards outputs that carry mark m.
func (e *Engine) Checkpoint(ctx context.Context, m uint64) error {
	if m == 0 {
		return errors.New("engine: checkpoint mark 0")
	}
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	select {
	case e.in <- inMsg{mark: m, snap: true}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AdvanceTo moves the watermark to at least t without an event: a live
// source calls it with clock time minus lateness so timers fire and windows
// close while traffic is quiet. It never moves the watermark backwards and
// is a no-op after Close.
func (e *Engine) AdvanceTo(t time.Time) {
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return
	}
	select {
	case e.in <- inMsg{advance: t}:
	default: // the router is busy with events, which advance it anyway
	}
}

// Tick moves the arrival clock to now without an event. A live source calls
// it only while it is caught up — nothing that arrived before now is still
// waiting to be submitted — so origins that delivered nothing for the
// idleness stop holding the others back and, once none is active, the wall
// clock advances them (see origins). Unlike AdvanceTo it never moves event
// time past what the origins' own pace allows, and before the first batch
// it does nothing: a backlog posted to a fresh server is not late. It never
// blocks (a busy router is moved by the events anyway) and is a no-op after
// Close.
func (e *Engine) Tick(now time.Time) {
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed || now.IsZero() {
		return
	}
	select {
	case e.in <- inMsg{tick: now}:
	default:
	}
}

// EndOrigin says that the named origin has delivered everything (a file
// read to its end): it no longer holds the input's time back. A later batch
// from it reopens it. It waits for room in the router's queue.
func (e *Engine) EndOrigin(ctx context.Context, origin string) error {
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	select {
	case e.in <- inMsg{end: true, origin: origin}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops admission. Run then processes what was admitted, announces
// EndOfTime to every shard and returns. Close is idempotent.
func (e *Engine) Close() {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if !e.closed {
		e.closed = true
		close(e.in)
	}
}

// Run starts the shard goroutines and the router and returns when the input
// is closed (Close) and every shard has finished; ctx cancellation is
// treated like Close (admitted events are still processed). Run may be
// called once.
func (e *Engine) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("engine: Run called twice")
	}
	stop := context.AfterFunc(ctx, e.Close)
	defer stop()
	var wg sync.WaitGroup
	for i := range e.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.runShard(i)
		}()
	}
	merged := make(chan struct{})
	go func() {
		defer close(merged)
		e.merge()
	}()
	e.route()
	wg.Wait()
	<-merged
	close(e.out)
	return nil
}

// merge hands the shards' outputs on in a deterministic order. Every shard
// receives the same sequence of messages (each batch's share, watermark
// broadcasts, the final message) and answers each with exactly one
// Output, so taking one output from each shard in turn — a round, one
// message's outputs — yields, for the same input, the same sequence of
// outputs whatever the goroutines' timing, and the alert stage, which
// folds findings in that order and closes windows on those watermarks,
// raises the same alerts with the same ids in every run (replays, restarts
// after a crash).
//
// The findings of one round were emitted at the same point of the input,
// on shards that do not order among themselves: the round's findings of
// every shard are sorted together by event time (sortFindings) and handed
// on with the round's first output, the others' outputs carrying none.
// Handed on shard by shard, a later finding of a lower-numbered shard
// would come first, and the alert stage (which opens an alert with the
// first finding to arrive) would raise the alert at that later time — a
// forged token used at 16:00:00 and another at 16:02:14 in one batch
// alerted at 16:02:14. The watermarks of the round still come with their
// own shard's output, after every finding of the round (the first output
// is handed on first).
func (e *Engine) merge() {
	round := make([]Output, len(e.shardOut))
	sub := make([]Output, len(e.shardOut))
	for {
		for i, ch := range e.shardOut {
			o, ok := <-ch
			if !ok {
				return // every shard ends after the same final message
			}
			round[i] = o
		}
		if round[0].Group == nil {
			mergeRound(round)
			for i := range round {
				e.out <- round[i]
				round[i] = Output{}
			}
			continue
		}
		// A SubmitGroup's outputs: every shard answered the same messages,
		// one output each; merged message by message and handed on as one.
		n := len(round[0].Group)
		flat := make([]Output, 0, n*len(round))
		for j := range n {
			for i := range round {
				sub[i] = round[i].Group[j]
			}
			mergeRound(sub)
			flat = append(flat, sub...)
		}
		clear(sub)
		clear(round)
		e.out <- Output{Group: flat}
	}
}

// mergeRound sorts one round's findings together into its first output.
func mergeRound(round []Output) {
	n := 0
	for i := range round {
		n += len(round[i].Findings)
	}
	if len(round) > 1 && n > 0 {
		all := make([]event.Finding, 0, n)
		for i := range round {
			all = append(all, round[i].Findings...)
			round[i].Findings = nil
		}
		round[0].Findings = all
	}
	sortFindings(round[0].Findings)
}

// sortFindings orders one output's findings by time, detector, entity,
// kind and evidence: detectors that emit several findings at once (timers
// iterating over maps) need not order them.
func sortFindings(fs []event.Finding) {
	if len(fs) < 2 {
		return
	}
	slices.SortStableFunc(fs, func(a, b event.Finding) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Detector, b.Detector),
			cmp.Compare(a.Entity.Kind, b.Entity.Kind), cmp.Compare(a.Entity.ID, b.Entity.ID),
			cmp.Compare(a.Kind, b.Kind), slices.Compare(a.Evidence, b.Evidence))
	})
}

// route is the router goroutine: it stamps lateness, advances the watermark
// and splits each batch by shard.
func (e *Engine) route() {
	r := newRouter(e)
	for msg := range e.in {
		if msg.group != nil {
			// Each message exactly as on its own; what it sends the shards
			// is held and sent as one message per shard.
			r.grouped = make([][]shardMsg, len(e.shards))
			r.arena = make([][]item, len(e.shards))
			if r.start == nil {
				r.start = make([]int, len(e.shards))
			}
			for s := range e.shards {
				if g, ok := e.groupPool.Get().(*[]shardMsg); ok && cap(*g) >= len(msg.group) {
					r.grouped[s] = (*g)[:0]
				} else {
					r.grouped[s] = make([]shardMsg, 0, len(msg.group)+len(msg.group)/8+1)
				}
				if a, ok := e.arenaPool.Get().(*[]item); ok {
					r.arena[s] = (*a)[:0]
				}
			}
			for _, m := range msg.group {
				r.tag = m.tag
				if !r.control(m) {
					r.batch(m)
				}
			}
			r.tag = 0
			g := r.grouped
			r.grouped = nil
			if len(g[0]) > 0 {
				for s, ch := range e.shards {
					a := r.arena[s]
					ch <- shardMsg{group: g[s], arenaBuf: &a}
				}
			}
			r.arena = nil
			continue
		}
		if !r.control(msg) {
			r.batch(msg)
		}
	}
	for _, ch := range e.shards {
		ch <- shardMsg{watermark: EndOfTime, progress: r.progress, final: true}
		close(ch)
	}
}

// toShard sends m to shard s, or holds it while a group is routed.
func (r *router) toShard(s int, m shardMsg) {
	m.tag = r.tag
	if r.grouped != nil {
		if m.items != nil {
			// The group's items to a shard share one array (the pool's
			// slices hold 256 items each, and a group holds thousands
			// of messages at once): this message's are from start on.
			a := r.arena[s]
			m.arenaItems, m.arena = a[r.start[s]:len(a):len(a)], true
		}
		r.grouped[s] = append(r.grouped[s], m)
		return
	}
	r.e.shards[s] <- m
}

// router is the router goroutine's state.
type router struct {
	e         *Engine
	minSeen   time.Time // earliest activity (reference data aside)
	watermark time.Time
	perShard  []*[]item
	// progress of the watched streams; replaced (never modified) when it
	// moves, since shards read the previous slice concurrently.
	progress []time.Time
	orgs     *origins
	// what the other origins hold the watched streams at, and whether the
	// batch's origin holds them too, as of the batch's start (reused)
	othersP   []time.Time
	othersPOK []bool
	curHoldsP []bool
	// while a SubmitGroup is routed: its messages to each shard, and the
	// tag of the message being routed
	grouped [][]shardMsg
	tag     uint64
	// arena holds a group's items per shard, the message being routed's
	// from start on (see toShard); arenaMark marks perShard's entries of
	// a group's messages.
	arena     [][]item
	start     []int
	arenaMark []item
}

func newRouter(e *Engine) *router {
	n := len(e.streams)
	return &router{
		e:         e,
		perShard:  make([]*[]item, len(e.shards)),
		progress:  make([]time.Time, n),
		orgs:      newOrigins(e.opts.Idleness, e.opts.Lateness, e.opts.MaxOriginLag, n),
		othersP:   make([]time.Time, n),
		othersPOK: make([]bool, n),
		curHoldsP: make([]bool, n),
	}
}

// advanceStream moves stream i's progress to t, copying the slice on the
// first move of a message.
func (r *router) advanceStream(i int, t time.Time, moved *bool) {
	if !t.After(r.progress[i]) {
		return
	}
	if !*moved {
		r.progress = slices.Clone(r.progress)
		*moved = true
	}
	r.progress[i] = t
}

// settle moves the watermark and the watched streams to what the origins
// say now (an origin went idle or ended, the arrival clock moved) and
// tells every shard if anything moved.
func (r *router) settle(received time.Time) {
	r.orgs.forget()
	// Two flags: advanceStream copies the progress slice only on its first
	// move, and the slice the shards were last sent must not be written
	// even when the watermark moved first (a race with the shards reading
	// it, which showed them a later message's progress).
	wmMoved, moved := false, false
	if t, ok, _ := r.orgs.timeOf(nil, true); ok && t.Add(-r.e.opts.Lateness).After(r.watermark) {
		r.watermark = t.Add(-r.e.opts.Lateness)
		wmMoved = true
	}
	for i := range r.e.streams {
		if t, ok, _ := r.orgs.progressOf(i, nil, true); ok {
			r.advanceStream(i, t, &moved)
		}
	}
	if wmMoved || moved {
		r.broadcastWatermark(r.watermark, r.progress, received)
	}
}

// control handles a message that carries no events (a mark, an advance, a
// tick, an origin's end) and reports whether msg was one.
func (r *router) control(msg inMsg) bool {
	switch {
	case msg.mark != 0:
		for s := range r.e.shards {
			r.toShard(s, shardMsg{watermark: r.watermark, progress: r.progress, mark: msg.mark, snap: msg.snap})
		}
	case !msg.advance.IsZero():
		if msg.advance.After(r.watermark) {
			r.watermark = msg.advance
			r.broadcastWatermark(r.watermark, r.progress, msg.batch.Received)
		}
	case !msg.tick.IsZero():
		r.orgs.tick(msg.tick)
		r.settle(time.Time{})
	case msg.end:
		if s := r.orgs.byName[msg.origin]; s != nil {
			s.ended = true
			r.settle(time.Time{})
		}
	default:
		return false
	}
	return true
}

// batch routes one batch of events: lateness, the watermark, the watched
// streams, and each event to the shards of the detectors that key it.
func (r *router) batch(msg inMsg) {
	e, lateness := r.e, r.e.opts.Lateness
	evs := msg.batch.Events
	cur := r.orgs.get(msg.batch.Origin)
	r.orgs.deliver(cur, msg.batch.Arrived)
	// Origins that went idle since the last batch stop holding the others
	// back before this batch's events.
	r.settle(msg.batch.Received)
	// What the other active origins hold the input's time and the watched
	// streams at, and whether cur holds them too (a new origin does; one
	// further than the maximum lag behind does not), as of the batch's
	// start; only cur moves within the batch.
	others, othersOK, curHolds := r.orgs.timeOf(cur, false)
	curHolds = curHolds || cur.maxSeen.IsZero()
	for i := range e.streams {
		r.othersP[i], r.othersPOK[i], r.curHoldsP[i] = r.orgs.progressOf(i, cur, false)
		r.curHoldsP[i] = r.curHoldsP[i] || cur.watched[i].IsZero()
	}
	inputTime := func() time.Time { return held(cur.maxSeen, curHolds, others, othersOK) }
	streamTime := func(i int, t time.Time) time.Time { return held(t, r.curHoldsP[i], r.othersP[i], r.othersPOK[i]) }
	var late int
	restored := len(evs) > 0
	moved := false
	for _, st := range msg.batch.Streams {
		if i := slices.Index(e.streams, st.Dataset); i >= 0 {
			if st.Time.After(cur.watched[i]) {
				cur.watched[i] = st.Time
			}
			r.advanceStream(i, streamTime(i, cur.watched[i]), &moved)
		}
	}
	// Every shard hears about every batch's watermark, so shard outputs
	// (and the windows that close on them) keep moving even for shards
	// that received no events. A batch is split (one message per part,
	// each to every shard) where a watched stream behind the watermark
	// moves: no shard sees the watermark's moves before that point and the
	// stream's at once (see laggingMove).
	done := &batchDone{n: len(evs), gate: e.gate, events: evs, release: e.opts.Release, processed: e.m.processed}
	done.pending.Store(int32(len(e.shards)))
	send := func(wm time.Time, moved, restored bool) {
		for s := range e.shards {
			r.toShard(s, shardMsg{items: r.perShard[s], watermark: wm, earliest: r.minSeen, progress: r.progress, moved: moved,
				done: done, received: msg.batch.Received, restored: restored})
			r.perShard[s] = nil
		}
	}
	for i := range evs {
		ev := &evs[i]
		if i > 0 {
			wm := later(r.watermark, inputTime().Add(-lateness))
			if (moved || wm.After(r.watermark)) && e.laggingMove(ev, cur, streamTime, r.progress, wm) {
				done.pending.Add(int32(len(e.shards)))
				r.watermark = wm
				e.watermark.Store(r.watermark.UnixNano())
				send(r.watermark, moved, restored)
				moved, restored = false, true
			}
		}
		restored = restored && ev.Restored
		for si, ds := range e.streams {
			// A drill's event (event.Event.Drill: a drill's own mint)
			// does not say how far the deployment's stream has come.
			if ev.Dataset == ds && !ev.Drill {
				if ev.Time.After(cur.watched[si]) {
					cur.watched[si] = ev.Time
				}
				r.advanceStream(si, streamTime(si, cur.watched[si]), &moved)
			}
		}
		if ev.Time.Before(r.watermark) {
			ev.Late = true
			late++
		}
		if ev.Time.After(cur.maxSeen) {
			cur.maxSeen = ev.Time
		}
		// Reference data (roster, key inventory) is dated in the past
		// without meaning haechi watched then: only activity counts.
		if ev.Dataset != event.DatasetRoster && ev.Dataset != event.DatasetKeys && (r.minSeen.IsZero() || ev.Time.Before(r.minSeen)) {
			r.minSeen = ev.Time
		}
		r.dispatch(ev)
	}
	if wm := inputTime().Add(-lateness); !cur.maxSeen.IsZero() && wm.After(r.watermark) {
		r.watermark = wm
	}
	e.watermark.Store(r.watermark.UnixNano())
	e.m.late.Add(float64(late))
	e.m.routed.Add(float64(len(evs)))
	send(r.watermark, moved, restored)
}

// dispatch queues ev for every detector that takes it: on every shard for
// a broadcast, else on its key's shard.
func (r *router) dispatch(ev *event.Event) {
	e := r.e
	for d, det := range e.dets {
		if b := e.bcast[d]; b != nil && b.Broadcast(ev) {
			for s := range r.perShard {
				r.appendItem(s, item{det: int32(d), ev: ev})
			}
			continue
		}
		key, ok := det.Key(ev)
		if !ok {
			continue
		}
		s := int(HashKey(key) % uint64(len(r.perShard)))
		r.appendItem(s, item{det: int32(d), key: key, ev: ev})
	}
}

// laggingMove reports whether ev, from origin cur, moves a watched stream
// whose progress is behind the watermark wm (or has none yet). Where that
// happens inside a batch, the batch is split before ev: a watcher that
// decides by whichever passed its mark first — the watermark (a lateness)
// or the stream (its own deadline, at most the lateness after the same
// moment) — then sees them in the order one event per batch would show,
// whatever the batching. While the stream keeps up with the watermark no
// such ambiguity exists, so dense traffic is not split.
func (e *Engine) laggingMove(ev *event.Event, cur *origin, streamTime func(int, time.Time) time.Time, progress []time.Time, wm time.Time) bool {
	if wm.IsZero() {
		return false
	}
	for i, ds := range e.streams {
		if ev.Dataset != ds || ev.Drill || !progress[i].Before(wm) {
			continue
		}
		if streamTime(i, later(cur.watched[i], ev.Time)).After(progress[i]) {
			return true
		}
	}
	return false
}

// held is the input's time (or a watched stream's) given the batch's
// origin's own t, whether it holds the others back, and the minimum over
// the others (ok: there is one).
func held(t time.Time, holds bool, others time.Time, ok bool) time.Time {
	switch {
	case !ok:
		return t
	case !holds || others.Before(t):
		return others
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (r *router) broadcastWatermark(wm time.Time, progress []time.Time, received time.Time) {
	r.e.watermark.Store(wm.UnixNano())
	for s := range r.e.shards {
		r.toShard(s, shardMsg{watermark: wm, progress: progress, received: received})
	}
}

func (r *router) appendItem(s int, it item) {
	if r.grouped != nil {
		if r.perShard[s] == nil {
			r.perShard[s] = &r.arenaMark
			r.start[s] = len(r.arena[s])
		}
		r.arena[s] = append(r.arena[s], it)
		return
	}
	p := r.perShard[s]
	if p == nil {
		p = r.e.itemPool.Get().(*[]item)
		r.perShard[s] = p
	}
	*p = append(*p, it)
}

func (e *Engine) runShard(id int) {
	defer close(e.shardOut[id])
	states := make([]Shard, len(e.dets))
	advancers := make([]Advancer, len(e.dets))
	markers := make([]Marker, len(e.dets))
	snaps := make([]Snapshotter, len(e.dets))
	restored := make([]bool, len(e.dets))
	for d, det := range e.dets {
		states[d] = det.NewShard()
		snaps[d], _ = states[d].(Snapshotter)
		if data := e.opts.Restore[det.Name()]; snaps[d] != nil && len(data) == len(e.shards) && data[id] != nil {
			if err := snaps[d].Restore(snap.NewReader(data[id])); err != nil {
				e.opts.Logger.Warn("engine: checkpoint refused; the detector starts cold on this shard", "detector", det.Name(), "shard", id, "err", err)
				states[d] = det.NewShard()
				snaps[d], _ = states[d].(Snapshotter)
			} else {
				restored[d] = true
			}
		}
		advancers[d], _ = states[d].(Advancer)
		markers[d], _ = states[d].(Marker)
	}
	c := &Context{shard: id, shards: len(e.shards), inputName: e.opts.InputName, streams: e.streams}
	sampler := e.newShardSampler(id, states)
	var lastWM time.Time
	// step processes one message and returns its output.
	step := func(msg shardMsg) Output {
		if !msg.earliest.IsZero() {
			c.earliest = msg.earliest
		}
		if msg.progress != nil {
			c.progress = msg.progress
		}
		its := msg.arenaItems
		if msg.items != nil && !msg.arena {
			its = *msg.items
		}
		for _, it := range its {
			if it.ev.Restored && restored[it.det] {
				continue // the restored snapshot already holds it
			}
			c.detector = e.dets[it.det].Name()
			c.current = it.ev
			states[it.det].Process(c, it.key, it.ev)
			c.current = nil
		}
		if msg.items != nil && !msg.arena {
			clear(*msg.items) // drop event pointers before pooling
			*msg.items = (*msg.items)[:0]
			e.itemPool.Put(msg.items)
		}
		// The footprint as the stream left it, before the end closes
		// every window; else every few seconds.
		sampler.maybe(msg.final, len(e.shards[id]) == 0)
		if wmMoved := msg.watermark.After(lastWM); wmMoved || msg.moved {
			if wmMoved {
				lastWM = msg.watermark
				c.watermark = lastWM
			}
			for d, a := range advancers {
				// Only the watchers hear of a stream's progress alone.
				if a != nil && (wmMoved || e.watchers[d]) {
					c.detector = e.dets[d].Name()
					a.Advance(c, lastWM)
				}
			}
		}
		var shot *ShardSnapshot
		if msg.mark != 0 {
			for d, m := range markers {
				if m != nil {
					c.detector = e.dets[d].Name()
					m.Mark(c, msg.mark)
				}
			}
			if msg.snap {
				shot = &ShardSnapshot{Mark: msg.mark}
				for d, s := range snaps {
					if s != nil {
						var w snap.Writer
						s.AppendSnapshot(&w)
						shot.Parts = append(shot.Parts, SnapshotPart{Detector: e.dets[d].Name(), Data: w.B})
					}
				}
			}
		}
		if msg.restored {
			// Detectors rebuilding their state from the replay found these
			// before the checkpoint; the restored alert stage holds them.
			c.findings = c.findings[:0]
		}
		for i := range c.findings {
			e.m.findings.WithLabelValues(c.findings[i].Detector).Inc()
		}
		o := Output{Shard: id, Shards: len(e.shards), Findings: c.findings, Watermark: lastWM, Final: msg.final, Snapshot: shot, Tag: msg.tag}
		c.findings = nil
		return o
	}
	// after is what follows a message's output once it is handed on.
	after := func(msg *shardMsg) {
		if !msg.received.IsZero() {
			e.m.lag.Set(e.opts.Clock.Now().Sub(msg.received).Seconds())
		}
		msg.done.finish()
	}
	for msg := range e.shards[id] {
		if msg.group == nil {
			e.shardOut[id] <- step(msg)
			after(&msg)
			continue
		}
		outs := make([]Output, len(msg.group))
		for i := range msg.group {
			outs[i] = step(msg.group[i])
		}
		e.shardOut[id] <- Output{Shard: id, Shards: len(e.shards), Group: outs}
		for i := range msg.group {
			after(&msg.group[i])
		}
		if msg.arenaBuf != nil && cap(*msg.arenaBuf) > 0 {
			clear(*msg.arenaBuf) // drop event pointers before pooling
			e.arenaPool.Put(msg.arenaBuf)
		}
		clear(msg.group)
		g := msg.group[:0]
		e.groupPool.Put(&g)
	}
}

// HashKey is FNV-1a over the kind, 0xff and the id: stable across
// processes and versions, so shards map onto partitions the same way
// everywhere (cluster mode partitions its repartition topics by it).
func HashKey(k event.EntityKey) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(k.Kind); i++ {
		h ^= uint64(k.Kind[i])
		h *= prime
	}
	h ^= 0xff
	h *= prime
	for i := 0; i < len(k.ID); i++ {
		h ^= uint64(k.ID[i])
		h *= prime
	}
	return h
}
