package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/snap"
	"github.com/haechi-sec/haechi/internal/store"
)

// SourceHeader is the header of a findings record naming where it came
// from (see Dedup).
const SourceHeader = "haechi-src"

// ImmediateHeader is present on a findings record whose finding is
// Immediate (it alerts at once; event.Finding's JSON form leaves it out).
const ImmediateHeader = "haechi-immediate"

// kindDetector restricts a detector to one repartition topic: it keys only
// events copied there for a key (copyKeyed) and only on keys of the
// topic's kind, and takes broadcasts only from broadcast copies. The copy
// flags travel in event.Input (the input index, used only to name evidence
// of events without an id: InputName names the input topic for every
// value).
type kindDetector struct {
	engine.Detector
	b    engine.Broadcaster
	kind event.EntityKind
}

func (d *kindDetector) Broadcast(ev *event.Event) bool {
	return d.b != nil && ev.Input&copyBroadcast != 0 && d.b.Broadcast(ev)
}

func (d *kindDetector) Key(ev *event.Event) (event.EntityKey, bool) {
	if ev.Input&copyKeyed == 0 || (d.b != nil && d.b.Broadcast(ev)) {
		return event.EntityKey{}, false
	}
	k, ok := d.Detector.Key(ev)
	if !ok || k.Kind != d.kind {
		return event.EntityKey{}, false
	}
	return k, true
}

// watchingKindDetector is a kindDetector whose detector watches streams
// (engine.StreamWatcher): the partition engine tracks them for it, as one
// engine over the input would.
type watchingKindDetector struct {
	kindDetector
	streams []string
}

func (d *watchingKindDetector) Streams() []string { return d.streams }

// ledgerDetector is a partition's ledger detector. Its shards snapshot as
// a marker with no state: a checkpoint is stored only once the ledger's
// deltas of every record below it are (ship waits for them), so a
// checkpoint holding the marker vouches for them, and the engine makes a
// restored ledger skip the records marked Restored, as it does for any
// restored detector. A checkpoint without it (written before the ledger
// ran) vouches for nothing: the ledger then records the replayed records
// again, which the OR-merge absorbs.
type ledgerDetector struct{ kindDetector }

func (d *ledgerDetector) NewShard() engine.Shard { return &ledgerShard{d.Detector.NewShard()} }

// ledgerShard forwards to the ledger's shard and adds the marker snapshot.
type ledgerShard struct{ engine.Shard }

const ledgerMarker = 1

func (s *ledgerShard) AppendSnapshot(w *snap.Writer) { w.Byte(ledgerMarker) }

func (s *ledgerShard) Restore(r *snap.Reader) error {
	if v := r.Byte(); r.Err() == nil && v != ledgerMarker {
		return fmt.Errorf("ledger marker %d, want %d", v, ledgerMarker)
	}
	return r.End()
}

func (s *ledgerShard) Advance(c *engine.Context, wm time.Time) {
	if a, ok := s.Shard.(engine.Advancer); ok {
		a.Advance(c, wm)
	}
}

func (s *ledgerShard) Mark(c *engine.Context, m uint64) {
	if mk, ok := s.Shard.(engine.Marker); ok {
		mk.Mark(c, m)
	}
}

// pending is what one submitted engine message stands for: the engine
// tags every output the message yields with its tag (engine.Output.Tag).
type pending struct {
	tag    uint64
	offset int64         // the record it belongs to (a checkpoint: the next offset)
	done   chan struct{} // checkpoint: closed once stored (or failed)
}

// partition is one assigned repartition partition: its engine and the
// goroutine that ships its outputs.
type partition struct {
	w        *Worker
	topic    string
	part     int32
	eng      *engine.Engine
	restored int64 // records below are covered by the restored checkpoint
	// inputs: what the engine was last told of each input partition's
	// time; each input partition is an origin of its own (engine.Batch).
	inputs  map[int32]*inputTime
	since   int
	mark    uint64
	last    int64          // offset of the last record handed over
	failed  atomic.Bool    // a finding was not produced: store no checkpoint
	led     *ledger.Ledger // Options.Ledger on a topic of a ledger dimension
	ledDone chan error

	qmu   sync.Mutex
	queue []pending
	// subs are the engine messages of the poll being handled, handed
	// to the engine together at its end (flush); tag numbers them.
	subs []engine.Submission
	tag  uint64

	dead    atomic.Bool // crashed: ship nothing more
	runDone chan struct{}
	outDone chan struct{}
}

func (p *partition) push(e pending) {
	p.qmu.Lock()
	p.queue = append(p.queue, e)
	p.qmu.Unlock()
}

// pending returns what the message tagged tag stands for, dropping the
// ones before it (answered already); false if it is not queued.
func (p *partition) pending(tag uint64) (pending, bool) {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	for len(p.queue) > 0 && p.queue[0].tag < tag {
		p.queue = p.queue[1:]
	}
	if len(p.queue) == 0 || p.queue[0].tag != tag {
		return pending{}, false
	}
	return p.queue[0], true
}

// add queues an engine message standing for e, to be handed over with
// the poll's others (flush).
func (p *partition) add(sb engine.Submission, e pending) {
	p.tag++
	sb.Tag, e.tag = p.tag, p.tag
	p.push(e)
	p.subs = append(p.subs, sb)
}

// flush hands the engine the messages added since the last flush, in one
// call: processed exactly as if submitted one by one (engine.SubmitGroup),
// at the engine's cost of one. Every record of a poll was a batch of its
// own (one event, or the ticks before it), handed over alone: the
// router's and the shards' per-message hand-offs were most of a
// partition's engine CPU (docs/scale-out.md).
func (p *partition) flush(ctx context.Context) error {
	if len(p.subs) == 0 {
		return nil
	}
	if p.w.handedOff != nil {
		p.w.handedOff(len(p.subs))
	}
	err := p.eng.SubmitGroup(ctx, p.subs)
	clear(p.subs)
	p.subs = p.subs[:0]
	return err
}

// detector is the detection stage of a worker.
type detector struct {
	w        *Worker
	findings *kgo.Client
	dec      *decode.Decoder // the JSON values of headers before version 4
	er       *eventReader
	mu       sync.Mutex
	parts    map[string]map[int32]*partition
	crashed  atomic.Bool
}

// detectPollMax bounds the records of one poll of the detection stage.
// A poll's records are decoded together (about 1 kB each, held until the
// poll is handled) and their new record ids numbered in one request to
// the store. Unbounded, a worker catching up polled everything fetched —
// in BenchmarkClusterCost 299 k records in one poll of three, a 375 MB
// slice grown by copying and scanned by every GC cycle, and a worker of
// 2 GB RSS for 50 k events.
const detectPollMax = 8192

func (w *Worker) runDetect(ctx context.Context) error {
	d := &detector{w: w, dec: decode.NewDecoder(), er: newEventReader(), parts: map[string]map[int32]*partition{}}
	var err error
	d.findings, err = kgo.NewClient(w.clientOpts(kgo.DefaultProduceTopic(FindingsTopic(w.opts.Prefix)),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return fmt.Errorf("kafka: findings client: %w", err)
	}
	defer d.findings.Close()
	var topics []string
	for _, k := range w.kinds {
		topics = append(topics, RepartitionTopic(w.opts.Prefix, k))
	}
	cl, err := kgo.NewClient(w.clientOpts(
		kgo.ConsumerGroup(w.opts.Group+"-detect"),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { d.release(ctx, m, true) }),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { d.release(ctx, m, false) }),
	)...)
	if err != nil {
		return fmt.Errorf("kafka: detect client: %w", err)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-w.stop:
			cancel()
		case <-pctx.Done():
		}
	}()
	var recs []prepared // one poll's records, decoded
	for {
		fs := cl.PollRecords(pctx, detectPollMax)
		if pctx.Err() != nil {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			w.opts.Logger.Warn("kafka: detect fetch", "topic", t, "partition", p, "err", err)
		})
		d.mu.Lock()
		var herr error
		recs = recs[:0]
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, prepared{})
			d.prepare(&recs[len(recs)-1], r)
		})
		d.prefetch(recs)
		if w.polled != nil {
			w.polled(len(recs))
		}
		for i := range recs {
			if herr == nil {
				herr = d.handle(ctx, &recs[i])
			}
			recs[i] = prepared{}
		}
		if herr == nil {
			herr = d.flush(ctx)
		}
		d.mu.Unlock()
		cl.AllowRebalance()
		if herr != nil && pctx.Err() == nil {
			d.crash()
			cl.CloseAllowingRebalance()
			return herr
		}
	}
	if ctx.Err() != nil {
		// A crash: keep nothing, ship nothing, checkpoint nothing.
		d.crash()
		cl.CloseAllowingRebalance()
		return nil
	}
	// Graceful: checkpoint every owned partition, then leave.
	d.mu.Lock()
	all := map[string][]int32{}
	for t, ps := range d.parts {
		for p := range ps {
			all[t] = append(all[t], p)
		}
	}
	d.mu.Unlock()
	d.release(ctx, all, true)
	cl.CloseAllowingRebalance()
	return nil
}

// flush hands every partition's engine the messages of the poll.
func (d *detector) flush(ctx context.Context) error {
	for _, ps := range d.parts {
		for _, p := range ps {
			if err := p.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// crash drops every partition without a checkpoint.
func (d *detector) crash() {
	d.crashed.Store(true)
	d.mu.Lock()
	defer d.mu.Unlock()
	for t, ps := range d.parts {
		for _, p := range ps {
			p.dead.Store(true)
			p.eng.Close()
			<-p.runDone
			<-p.outDone
			p.closeLedger(false)
		}
		delete(d.parts, t)
	}
}

// release closes the engines of m's partitions, checkpointing them first
// when graceful (a revocation) and the worker has not crashed.
func (d *detector) release(ctx context.Context, m map[string][]int32, graceful bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for t, ps := range m {
		for _, n := range ps {
			p := d.parts[t][n]
			if p == nil {
				continue
			}
			if graceful && !d.crashed.Load() && p.since > 0 {
				if err := p.checkpoint(ctx); err != nil {
					d.w.opts.Logger.Warn("kafka: checkpoint on revocation", "topic", t, "partition", n, "err", err)
				}
			}
			if !graceful || d.crashed.Load() {
				p.dead.Store(true)
			}
			p.eng.Close()
			<-p.runDone
			<-p.outDone
			p.closeLedger(graceful && !d.crashed.Load())
			delete(d.parts[t], n)
		}
	}
}

func (d *detector) kindOf(topic string) (event.EntityKind, bool) {
	for _, k := range d.w.kinds {
		if RepartitionTopic(d.w.opts.Prefix, k) == topic {
			return k, true
		}
	}
	return "", false
}

// open starts the engine of (topic, part), restored from its checkpoint.
func (d *detector) open(ctx context.Context, topic string, part int32) (*partition, error) {
	kind, ok := d.kindOf(topic)
	if !ok {
		return nil, fmt.Errorf("kafka: record of unknown topic %s", topic)
	}
	var dets []engine.Detector
	for _, det := range d.w.opts.Detectors() {
		b, _ := det.(engine.Broadcaster)
		kd := kindDetector{Detector: det, b: b, kind: kind}
		if w, ok := det.(engine.StreamWatcher); ok {
			dets = append(dets, &watchingKindDetector{kindDetector: kd, streams: w.Streams()})
			continue
		}
		dets = append(dets, &kd)
	}
	p := &partition{w: d.w, topic: topic, part: part, inputs: map[int32]*inputTime{}, runDone: make(chan struct{}), outDone: make(chan struct{})}
	if dim, ok := d.w.ledgerDimension(kind); ok {
		// The partition's own ledger (its writer, its marks), numbering
		// ids with the worker's shared dictionary.
		var sink ledger.Sink = d.w.opts.Store
		if d.w.ledgerSink != nil {
			sink = d.w.ledgerSink
		}
		p.led = ledger.New(sink, d.w.dict, ledger.Options{Logger: d.w.opts.Logger, FlushEvery: d.w.opts.LedgerFlushEvery})
		dets = append(dets, &ledgerDetector{kindDetector{Detector: p.led.Detector(dim), kind: kind}})
	}
	// An input partition whose events route elsewhere is heard from
	// every TickEvery of its event time: idle only after two ticks missed.
	opts := engine.Options{Detectors: dets, Shards: 1, Lateness: d.w.opts.Lateness, Idleness: max(d.w.opts.Idleness, 2*d.w.opts.TickEvery), MaxOriginLag: d.w.opts.MaxOriginLag,
		InputName: func(uint32) string { return d.w.opts.Topic }, Logger: d.w.opts.Logger}
	c, ok, err := d.w.opts.Store.LoadPartitionCheckpoint(ctx, d.w.opts.Group, topic, part)
	if err != nil {
		return nil, err
	}
	if ok {
		parts, err := decodeState(c.Data)
		if err != nil {
			d.w.opts.Logger.Error("kafka: checkpoint unreadable; the partition starts cold", "topic", topic, "partition", part, "err", err)
		} else {
			opts.Restore = map[string][][]byte{}
			for _, sp := range parts {
				opts.Restore[sp.Detector] = [][]byte{sp.Data}
			}
			p.restored = c.NextOffset
		}
	}
	p.eng, err = engine.New(opts)
	if err != nil {
		return nil, err
	}
	if p.led != nil {
		p.ledDone = make(chan error, 1)
		go func() { p.ledDone <- p.led.Run(context.WithoutCancel(ctx)) }()
	}
	go func() {
		defer close(p.runDone)
		_ = p.eng.Run(context.WithoutCancel(ctx))
	}()
	go func() {
		defer close(p.outDone)
		d.ship(p)
	}()
	d.w.opts.Logger.Info("kafka: partition opened", "topic", topic, "partition", part, "restored_below", p.restored)
	return p, nil
}

// prepared is a repartition record with its header read and its event
// decoded (when it carries one).
type prepared struct {
	r      *kgo.Record
	h      header
	herr   error // the header is not valid: the record is skipped
	ev     event.Event
	hasEv  bool
	evErr  error // the event does not decode: skipped
	ledger bool  // a keyed copy on a topic of a ledger dimension
}

// prepare reads r's header and decodes its event into pr (zero), in
// place: a prepared record is large (an event.Event), and returned by
// value it was allocated on the heap for every record, ticks included.
func (d *detector) prepare(pr *prepared, r *kgo.Record) {
	pr.r = r
	var hv []byte
	for _, h := range r.Headers {
		if h.Key == headerKey {
			hv = h.Value
		}
	}
	if pr.h, pr.herr = parseHeader(hv); pr.herr != nil || pr.h.Flags == 0 {
		return
	}
	if pr.h.version >= 4 {
		// The event as the re-keying stage decoded and enriched it.
		if pr.evErr = d.er.read(r.Value, &pr.ev); pr.evErr != nil {
			return
		}
	} else {
		// A record of a worker before version 4: the input's JSON line.
		if pr.evErr = d.dec.Decode(r.Value, &pr.ev); pr.evErr != nil {
			return
		}
		if d.w.opts.Enrich != nil {
			d.w.opts.Enrich(&pr.ev)
		}
	}
	pr.hasEv = true
	if kind, ok := d.kindOf(r.Topic); ok && pr.h.Flags&copyKeyed != 0 {
		_, pr.ledger = d.w.ledgerDimension(kind)
	}
}

// prefetch numbers, in one request to the store, the record ids of a
// poll's events that the worker's shared ledger dictionary does not know
// yet. Without it each partition's ledger asks the store for the ids of
// one event at a time, on its shard, and every worker asks again for ids
// its partitions meet: the store's transactions grew with the events and
// with the workers (BenchmarkClusterCost, docs/scale-out.md).
func (d *detector) prefetch(recs []prepared) {
	if d.w.dict == nil {
		return
	}
	var rids []string
	for i := range recs {
		if recs[i].ledger {
			rids = append(rids, recs[i].ev.Records.IDs...)
		}
	}
	d.w.dict.Prefetch(rids)
}

// handle feeds one repartition record to its partition's engine.
func (d *detector) handle(ctx context.Context, pr *prepared) error {
	r := pr.r
	ps := d.parts[r.Topic]
	if ps == nil {
		ps = map[int32]*partition{}
		d.parts[r.Topic] = ps
	}
	p := ps[r.Partition]
	if p == nil {
		var err error
		if p, err = d.open(ctx, r.Topic, r.Partition); err != nil {
			return err
		}
		ps[r.Partition] = p
	}
	h := pr.h
	if pr.herr != nil {
		d.w.opts.Logger.Warn("kafka: repartition record without a valid header skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", pr.herr)
		return nil
	}
	restored := r.Offset < p.restored
	defer func() { p.last = r.Offset }()
	// Time first: what one engine over the input partition knew before
	// this event. Each input partition is the engine's origin of its own:
	// the engine's time is the minimum over the active ones, and one that
	// has sent nothing for the idleness (by the input records' timestamps)
	// stops holding the others back.
	in := p.inputs[h.InPartition]
	if in == nil {
		in = &inputTime{}
		p.inputs[h.InPartition] = in
	}
	origin := "in " + strconv.FormatInt(int64(h.InPartition), 10)
	var ticks []event.Event
	streamsMoved := in.streamsMoved(h.Streams)
	if h.Watermark.After(in.lastWM) || streamsMoved {
		in.lastWM = later(in.lastWM, h.Watermark)
		// A reference-data event (which never counts as "earliest") at
		// watermark+lateness moves this engine's watermark to the input's
		// (and carries the watched streams' progress, below).
		ticks = append(ticks, event.Event{Time: h.Watermark.Add(d.w.opts.Lateness), Dataset: event.DatasetKeys, Restored: restored})
	}
	if !h.Earliest.IsZero() && !h.Earliest.Equal(in.lastE) {
		in.lastE = h.Earliest
		ticks = append(ticks, event.Event{Time: h.Earliest, Restored: restored})
	}
	now := time.Now()
	if len(ticks) > 0 {
		p.add(engine.Submission{Batch: engine.Batch{Events: ticks, Streams: h.Streams, Received: now, Origin: origin, Arrived: h.Arrived}}, pending{offset: r.Offset})
	}
	if h.Flags != 0 {
		if !pr.hasEv {
			d.w.opts.Logger.Warn("kafka: bad repartitioned event skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", pr.evErr)
		} else {
			ev := pr.ev
			ev.Input = uint32(h.Flags)
			ev.Line = uint32(h.InOffset + 1)
			ev.Restored = restored
			p.add(engine.Submission{Batch: engine.Batch{Events: []event.Event{ev}, Received: now, Origin: origin, Arrived: h.Arrived}}, pending{offset: r.Offset})
		}
	}
	if r.Offset >= p.restored {
		p.since++
		if p.since >= d.w.opts.CheckpointEvery {
			p.checkpointAt(r.Offset + 1)
		}
	}
	return nil
}

// closeLedger stops the partition's ledger once its engine has finished:
// storing what is left when graceful, dropping it otherwise (a crash; the
// successor replays from the checkpoint).
func (p *partition) closeLedger(graceful bool) {
	if p.led == nil {
		return
	}
	if graceful {
		if err := p.led.Close(); err != nil {
			p.w.opts.Logger.Error("kafka: ledger rows lost on release", "topic", p.topic, "partition", p.part, "err", err)
		}
	} else {
		p.led.Abandon()
	}
	<-p.ledDone
}

// checkpoint checkpoints everything handed to the engine so far and
// waits until it is stored.
func (p *partition) checkpoint(ctx context.Context) error {
	done := p.checkpointAt(p.last + 1)
	if err := p.flush(ctx); err != nil {
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// checkpointAt adds a request to the engine for a snapshot covering
// every record below next; the shipping goroutine stores it once the
// findings before it are acknowledged, then closes the channel returned.
func (p *partition) checkpointAt(next int64) <-chan struct{} {
	p.since = 0
	p.mark++
	done := make(chan struct{})
	p.add(engine.Submission{Mark: p.mark, Checkpoint: true}, pending{offset: next, done: done})
	return done
}

// ship sends p's findings and stores its checkpoints, in output order.
func (d *detector) ship(p *partition) {
	sh := &shipState{lastOff: -1}
	log := d.w.opts.Logger
	byKey := kgo.StickyKeyPartitioner(nil).ForTopic(FindingsTopic(d.w.opts.Prefix))
	produced := func(_ *kgo.Record, err error) {
		if err != nil {
			p.failed.Store(true)
			log.Error("kafka: finding not produced", "err", err)
		}
	}
	for o := range p.eng.Output() {
		outs := []engine.Output{o}
		if o.Group != nil {
			outs = o.Group
		}
		for i := range outs {
			d.shipOne(p, &outs[i], sh, byKey, produced)
		}
	}
}

// shipState is what ship carries from one output to the next.
type shipState struct {
	lastOff int64  // the record of the last findings shipped
	seq     uint64 // the next finding's number within it
	prevWM  time.Time
}

// shipOne ships one engine output of p (see ship).
func (d *detector) shipOne(p *partition, out *engine.Output, sh *shipState, byKey kgo.TopicPartitioner, produced func(*kgo.Record, error)) {
	log := d.w.opts.Logger
	if out.Final {
		return // the end-of-input flush of a stream that goes on
	}
	e, ok := p.pending(out.Tag)
	if !ok {
		return
	}
	if p.dead.Load() {
		if e.done != nil {
			close(e.done)
		}
		return
	}
	if out.Snapshot != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := d.findings.Flush(ctx)
		if err == nil && p.failed.Load() {
			err = errors.New("a finding was not produced since the last checkpoint")
		}
		if err == nil && p.led != nil {
			// The ledger's deltas of every covered record first: a
			// successor skips the records below the checkpoint.
			err = p.led.WaitDurable(ctx, out.Snapshot.Mark)
			if err == nil && p.led.Incomplete() {
				err = errors.New("ledger record ids were dropped since the partition opened")
			}
		}
		if err == nil {
			err = d.w.opts.Store.SavePartitionCheckpoints(ctx, []store.PartitionCheckpoint{{
				Group: d.w.opts.Group, Topic: p.topic, Partition: p.part, NextOffset: e.offset,
				Data: encodeState(out.Snapshot.Parts), SavedAt: time.Now(),
			}})
		}
		cancel()
		if err != nil {
			log.Error("kafka: checkpoint not stored; the next one will be tried", "topic", p.topic, "partition", p.part, "err", err)
		}
		if e.done != nil {
			close(e.done)
		}
		return
	}
	if e.offset != sh.lastOff {
		sh.lastOff, sh.seq = e.offset, 0
	}
	for i := range out.Findings {
		f := &out.Findings[i]
		v, err := json.Marshal(f)
		if err != nil {
			log.Error("kafka: finding not encoded", "err", err)
			continue
		}
		src := source{Topic: p.topic, Partition: p.part, Offset: e.offset, Seq: sh.seq}
		sh.seq++
		rec := &kgo.Record{
			Key: []byte(string(f.Entity.Kind) + ":" + f.Entity.ID), Value: v,
			Headers: []kgo.RecordHeader{{Key: SourceHeader, Value: src.append(nil)}},
		}
		if f.Immediate {
			// Not part of a finding's JSON form.
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: ImmediateHeader})
		}
		// Kafka's default partitioning of the key (murmur2), chosen
		// here because marks need the manual partitioner.
		rec.Partition = int32(byKey.Partition(rec, int(d.w.nf)))
		d.findings.Produce(context.Background(), rec, produced)
	}
	// Marks depend on the outputs' watermarks only (never on
	// checkpoints), so a successor replaying the partition sends the
	// same marks with the same sources.
	if markDue(sh.prevWM, out.Watermark, d.w.opts.MarkEvery) && e.offset >= p.restored {
		src := source{Topic: p.topic, Partition: p.part, Offset: e.offset, Seq: sh.seq}
		sh.seq++
		hs := []kgo.RecordHeader{{Key: SourceHeader, Value: src.append(nil)}, {Key: MarkHeader, Value: appendMark(nil, out.Watermark)}}
		for fp := range d.w.nf {
			d.findings.Produce(context.Background(), &kgo.Record{Partition: fp, Headers: hs}, produced)
		}
	}
	if out.Watermark.After(sh.prevWM) {
		sh.prevWM = out.Watermark
	}
}

// inputTime is what a partition's engine was last told of one input
// partition's time: its watermark, earliest activity and the watched
// streams' progress.
type inputTime struct {
	lastWM, lastE time.Time
	lastStreams   []engine.StreamTime
}

// streamsMoved reports whether the input partition's watched streams (a
// header's Streams) are ahead of what the engine was last told, and
// remembers them.
func (in *inputTime) streamsMoved(streams []engine.StreamTime) bool {
	moved := false
	for _, st := range streams {
		i := slices.IndexFunc(in.lastStreams, func(l engine.StreamTime) bool { return l.Dataset == st.Dataset })
		switch {
		case i < 0:
			in.lastStreams = append(in.lastStreams, st)
			moved = true
		case st.Time.After(in.lastStreams[i].Time):
			in.lastStreams[i].Time = st.Time
			moved = true
		}
	}
	return moved
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
