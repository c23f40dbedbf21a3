// Package engine runs detectors over the event stream in event time.
//
// Each detector declares the entity it keys its state on. The engine hashes
// that key to one of N shards; one goroutine owns each shard and all the
// detector state in it, so detectors hold no locks. Events for one key are
// seen by its shard in arrival order. Queues are bounded: admission counts
// events in flight, so a producer either waits (replay) or is told the engine
// is full (HTTP ingest answers 429) — nothing is dropped.
//
// Time is event time. Every batch names its origin (a file, an ingest
// token, a Kafka partition); the input's event time is the minimum over the
// active origins of their newest event time, and the watermark is that
// minus the allowed lateness. An event older than the watermark is marked
// Late (and still processed). An origin that has delivered nothing for the
// idleness (by the batches' arrival times and Tick) stops holding the
// others back, and once none is active the wall clock advances the idle
// ones at their own pace (see origins). Detectors that must wait for
// something that may arrive late (a token mint, say) act when the watermark
// passes the moment they wait for, through Advancer. A detector waiting for
// one particular stream (a token's mint on the issuer's stream) can instead
// read that stream's own progress (StreamWatcher, Context.StreamTime) — the
// minimum over the active origins that carry it — and act as soon as it has
// passed. A drill's events (event.Event.Drill) do not move a watched
// stream: a drill's own mint says nothing of how far the deployment's
// issuer has come.
// Live serving, file replay and simulation share this one code path.
package engine

import (
	"slices"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// Detector is one detection, registered as an ordinary value in the explicit
// list given to New.
//
// Contract:
//   - Name is stable and unique within the engine; it names findings,
//     metrics and configuration.
//   - Key is called on the router goroutine for every event, concurrently
//     with shard goroutines: it must be cheap and must only read the event,
//     immutable configuration and concurrency-safe caches of pure functions
//     of the event (never shard state). ok=false means the detector ignores
//     the event. Key must not allocate on the common path.
//   - NewShard is called once per shard at start; the returned state is
//     owned by that shard's goroutine and never touched by another.
type Detector interface {
	Name() string
	Key(ev *event.Event) (key event.EntityKey, ok bool)
	NewShard() Shard
}

// Broadcaster is implemented by detectors that need some events — reference
// data such as the key inventory — on every shard. When Broadcast returns
// true the event is delivered to every shard's state with a zero key and Key
// is not consulted.
type Broadcaster interface {
	Broadcast(ev *event.Event) bool
}

// StreamWatcher is implemented by detectors whose decisions wait for
// another input stream rather than for the global lateness: a token is
// "never minted" once the issuer's stream (auth.token) has moved past the
// token's issue time, not five minutes after its use. Streams names the
// datasets whose progress the detector's shards read through
// Context.StreamTime; it is called once, by New. A shard of a detector
// that watches streams has Advance called whenever one of them moved, even
// when the watermark did not.
type StreamWatcher interface {
	Streams() []string
}

// StreamsOf returns the datasets the detectors watch (StreamWatcher), each
// once, in the order first named.
func StreamsOf(dets []Detector) []string {
	var out []string
	for _, d := range dets {
		w, ok := d.(StreamWatcher)
		if !ok {
			continue
		}
		for _, s := range w.Streams() {
			if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// StreamTime is the progress of one input stream: the newest event time
// seen on it.
type StreamTime struct {
	Dataset string
	Time    time.Time
}

// Shard is one shard's share of a detector's state.
//
// Process is called only from the owning shard goroutine, for events whose
// key hashes to that shard, in arrival order. It must not retain c or ev
// beyond the call — the event's slot is reused for a later batch once every
// shard has processed it — but may keep values read from it (strings,
// slices, times are never modified). Findings are emitted with c.Emit.
type Shard interface {
	Process(c *Context, key event.EntityKey, ev *event.Event)
}

// Advancer is implemented by shard state that acts on the passage of event
// time: timers ("no mint arrived within the lateness") and eviction. Advance
// is called on the shard goroutine after a batch whenever the watermark has
// moved forward — for a StreamWatcher also whenever a watched stream moved
// (then watermark is unchanged) — and once more with EndOfTime when the
// input ends.
type Advancer interface {
	Advance(c *Context, watermark time.Time)
}

// Marker is implemented by shard state that acts on Engine.Mark: Mark is
// called once everything submitted before the mark has been processed on
// this shard.
type Marker interface {
	Mark(c *Context, mark uint64)
}

// EndOfTime is the watermark announced when the input has ended: every
// timer fires and every window closes.
var EndOfTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// Context is handed to detector state on the shard goroutine. It is only
// valid during the call it was passed to.
type Context struct {
	shard     int
	shards    int
	detector  string
	watermark time.Time
	earliest  time.Time
	streams   []string    // watched datasets (shared, read-only)
	progress  []time.Time // their progress, by index (shared, read-only)
	findings  []event.Finding
	inputName func(uint32) string
	// current is the event being processed (Process), nil otherwise:
	// Emit cites it (event.Finding.Cited).
	current *event.Event
}

// Shard returns the index of the shard goroutine running the call.
func (c *Context) Shard() int { return c.shard }

// Shards returns the number of shards.
func (c *Context) Shards() int { return c.shards }

// Watermark returns the engine's event-time watermark as this shard knows
// it: no event older than this is expected (later ones are marked Late).
func (c *Context) Watermark() time.Time { return c.watermark }

// Earliest returns the earliest event time the engine has seen so far,
// reference data excepted (the same on every shard for a given batch; roster and key-inventory
// events do not count, they are often dated long before): the start of
// what haechi has watched. State that existed before it (a token minted before haechi
// started) cannot be known; detectors use this to stay honest about it.
func (c *Context) Earliest() time.Time { return c.earliest }

// StreamTime returns the progress of a watched stream (see StreamWatcher)
// as this shard knows it: the newest event time of that dataset the engine
// had routed when it handed over the batch being processed (events of the
// batch included), or announced through Batch.Streams. Every event of the
// dataset up to that point has been processed by this shard before the
// call, so a decision "the stream passed t and did not deliver x" is as
// sound as the stream's order. Zero for a dataset no detector watches, or
// before any event of it.
func (c *Context) StreamTime(dataset string) time.Time {
	for i, s := range c.streams {
		if s == dataset && i < len(c.progress) {
			return c.progress[i]
		}
	}
	return time.Time{}
}

// Ref returns the evidence reference of ev: its event.id, or input:line.
func (c *Context) Ref(ev *event.Event) string {
	if ev.ID != "" {
		return ev.ID
	}
	name := "input"
	if c.inputName != nil {
		name = c.inputName(ev.Input)
	}
	return ev.RefWith(name)
}

// Emit records a finding. Detector defaults to the calling detector's name
// and Severity to event.SeverityForScore(Score).
func (c *Context) Emit(f event.Finding) {
	if f.Detector == "" {
		f.Detector = c.detector
	}
	if f.Severity == 0 {
		f.Severity = event.SeverityForScore(f.Score)
	}
	if c.current != nil && len(f.Evidence) > 0 {
		if ref := c.Ref(c.current); slices.Contains(f.Evidence, ref) && !slices.ContainsFunc(f.Cited, func(x event.Citation) bool { return x.Ref == ref }) {
			f.Cited = append(slices.Clip(f.Cited), event.CitationOf(ref, c.current))
		}
	}
	c.findings = append(c.findings, f)
}

// NewTestContext returns a Context for driving a Shard directly, outside
// an engine (fuzzing, benchmarks): shard of shards, no watermark yet.
// Findings emitted through it are kept until TakeFindings.
func NewTestContext(shard, shards int) *Context {
	return &Context{shard: shard, shards: shards}
}

// TakeFindings returns and forgets the findings emitted so far.
func (c *Context) TakeFindings() []event.Finding {
	f := c.findings
	c.findings = nil
	return f
}

// Footprinter is implemented by shard state that can say how much it
// holds, for the per-detector memory report (Engine.Footprints, the
// haechi_detector_entities and haechi_detector_bytes gauges): the entities
// it tracks (principals, tokens, sources, … — whatever it keys state on)
// and an estimate of the heap bytes its state takes (internal/memsize).
//
// Footprint is called on the shard's goroutine between two Process calls,
// at most every 5 s of wall time while the shard is busy and every second
// while it has nothing queued (and further apart when the calls take long:
// they cost a shard 2 % at most), and once more before the input's end is
// announced. It must only read the
// state: never change it, emit or allocate in proportion to it.
type Footprinter interface {
	Footprint() (entities int, bytes int64)
}
