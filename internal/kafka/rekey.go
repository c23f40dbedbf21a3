package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// WatermarkHeader is the header of an input record that carries no event
// but advances the stream's watermark: its value is an RFC 3339 time, or
// "end" for the end of input (every timer fires, every window closes). A
// producer sends it when its source is quiet (as serve advances the
// watermark from the clock) or, in tests and backfills, at the end.
const WatermarkHeader = "haechi-watermark"

// inState is the re-keying stage's view of one input partition's time: it
// mirrors the engine router's (newest time seen, earliest activity,
// watermark), so each re-keyed event can carry what one engine over the
// whole partition would have known when the event arrived.
type inState struct {
	maxSeen, earliest, watermark time.Time
	ticked                       time.Time // watermark of the last tick to every partition
	// streams is the progress of the watched streams (engine.StreamsOf
	// the detectors), by index: the newest event time of each dataset.
	streams []time.Time
	// sent is the progress of the watched streams every partition last
	// heard in a tick (see streamsUnsent).
	sent []time.Time
}

// clone returns a copy of s that shares nothing with it.
func (s *inState) clone() *inState {
	c := *s
	c.streams = slices.Clone(s.streams)
	c.sent = slices.Clone(s.sent)
	return &c
}

// observeStreams advances the watched streams' progress over ev.
func (s *inState) observeStreams(ev *event.Event, streams []string) {
	for i, ds := range streams {
		if ev.Dataset != ds {
			continue
		}
		if len(s.streams) < len(streams) {
			s.streams = append(s.streams, make([]time.Time, len(streams)-len(s.streams))...)
		}
		if ev.Time.After(s.streams[i]) {
			s.streams[i] = ev.Time
		}
	}
}

// lagging reports whether ev moves a watched stream whose progress is
// behind the watermark (or that has none yet while the watermark has).
func (s *inState) lagging(ev *event.Event, streams []string) bool {
	if s.watermark.IsZero() {
		return false
	}
	for i, ds := range streams {
		if ev.Dataset != ds {
			continue
		}
		var at time.Time
		if i < len(s.streams) {
			at = s.streams[i]
		}
		return ev.Time.After(at) && at.Before(s.watermark)
	}
	return false
}

// streamTimes returns the header form of the watched streams' progress
// (those with any event so far).
func (s *inState) streamTimes(streams []string) []engine.StreamTime {
	var out []engine.StreamTime
	for i, t := range s.streams {
		if !t.IsZero() && i < len(streams) {
			out = append(out, engine.StreamTime{Dataset: streams[i], Time: t})
		}
	}
	return out
}

// streamsUnsent reports whether the watched streams have moved since every
// partition last heard them in a tick, and records that they now hear
// them (the caller sends the tick).
func (s *inState) streamsUnsent() bool {
	if slices.Equal(s.streams, s.sent) {
		return false
	}
	s.sent = append(s.sent[:0], s.streams...)
	return true
}

// tickDue reports whether the watermark has moved by every since the last
// tick to every partition (and records the tick).
func (s *inState) tickDue(every time.Duration) bool {
	if s.watermark.IsZero() || s.watermark.Sub(s.ticked) < every {
		return false
	}
	s.ticked = s.watermark
	return true
}

// observe advances s over ev and returns the header fields for it: the
// watermark before it and the earliest activity including it.
func (s *inState) observe(ev *event.Event, lateness time.Duration) (wm, earliest time.Time) {
	wm = s.watermark
	if ev.Time.After(s.maxSeen) {
		s.maxSeen = ev.Time
	}
	if ev.Dataset != event.DatasetRoster && ev.Dataset != event.DatasetKeys && (s.earliest.IsZero() || ev.Time.Before(s.earliest)) {
		s.earliest = ev.Time
	}
	if w := s.maxSeen.Add(-lateness); w.After(s.watermark) {
		s.watermark = w
	}
	return wm, s.earliest
}

func (s *inState) advance(t time.Time) {
	if t.After(s.watermark) {
		s.watermark = t
	}
}

// parseWatermark reads a WatermarkHeader value.
func parseWatermark(v []byte) (time.Time, error) {
	if string(v) == "end" {
		return engine.EndOfTime, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return time.Time{}, fmt.Errorf("kafka: %s header: %w", WatermarkHeader, err)
	}
	return t.UTC(), nil
}

// rekeyer routes events to repartition partitions.
type rekeyer struct {
	w      *Worker
	dets   []engine.Detector
	bcasts []engine.Broadcaster
	dec    *decode.Decoder
	dests  map[dest]destInfo
	order  []dest
	// streams are the datasets the detectors watch (engine.StreamsOf).
	streams []string
}

type dest struct {
	kind event.EntityKind
	part int32
}

type destInfo struct {
	flags byte
	key   string
}

func (w *Worker) newRekeyer() *rekeyer {
	r := &rekeyer{w: w, dets: w.rekeyDetectors(), dec: decode.NewDecoder(), dests: map[dest]destInfo{}}
	for _, d := range r.dets {
		b, _ := d.(engine.Broadcaster)
		r.bcasts = append(r.bcasts, b)
	}
	r.streams = engine.StreamsOf(r.dets)
	return r
}

// route fills r.order/r.dests with ev's destinations: for every detector
// that keys ev, the partition of its key in the topic of its kind (one copy
// per partition, however many detectors and ids land there); every
// partition of every topic when a Broadcaster asks for ev. It returns the
// number of keys of a kind without a topic.
func (r *rekeyer) route(ev *event.Event) (unknown int) {
	clear(r.dests)
	r.order = r.order[:0]
	bcast := false
	for i, d := range r.dets {
		if b := r.bcasts[i]; b != nil && b.Broadcast(ev) {
			bcast = true
			continue
		}
		k, ok := d.Key(ev)
		if !ok {
			continue
		}
		n, ok := r.w.counts[k.Kind]
		if !ok {
			unknown++
			continue
		}
		ds := dest{k.Kind, int32(engine.HashKey(k) % uint64(n))}
		info, seen := r.dests[ds]
		if !seen {
			info.key = k.ID
			r.order = append(r.order, ds)
		}
		info.flags |= copyKeyed
		r.dests[ds] = info
	}
	if bcast {
		for _, k := range r.w.kinds {
			for p := range r.w.counts[k] {
				ds := dest{k, p}
				info, seen := r.dests[ds]
				if !seen {
					r.order = append(r.order, ds)
				}
				info.flags |= copyBroadcast
				r.dests[ds] = info
			}
		}
	}
	slices.SortFunc(r.order, func(a, b dest) int {
		if a.kind != b.kind {
			if a.kind < b.kind {
				return -1
			}
			return 1
		}
		return int(a.part - b.part)
	})
	return unknown
}

// ticks returns a record per partition of every topic carrying only h (a
// watermark advance).
func (r *rekeyer) ticks(h header) []*kgo.Record {
	var rs []*kgo.Record
	hb := h.append(nil)
	for _, k := range r.w.kinds {
		for p := range r.w.counts[k] {
			rs = append(rs, &kgo.Record{Topic: RepartitionTopic(r.w.opts.Prefix, k), Partition: p,
				Headers: []kgo.RecordHeader{{Key: headerKey, Value: hb}}})
		}
	}
	return rs
}

// arrival is when rec reached haechi, for the partition engines' idleness
// (header.Arrived): the record's timestamp, but never after this stage's
// own clock. A producer sets the timestamp (CreateTime); one record stamped
// in the future would otherwise move every partition engine's arrival
// clock there for good, every input partition would look idle, and the
// wall advance of idle origins would push event time ahead by the skew.
func arrival(rec *kgo.Record) time.Time {
	if now := time.Now(); rec.Timestamp.After(now) {
		return now
	}
	return rec.Timestamp
}

// records turns one input record into repartition records, advancing st.
// A record that is not a valid event is counted and skipped.
func (r *rekeyer) records(rec *kgo.Record, st *inState, out []*kgo.Record) []*kgo.Record {
	log := r.w.opts.Logger
	lateness := r.w.opts.Lateness
	for _, h := range rec.Headers {
		if h.Key == WatermarkHeader {
			t, err := parseWatermark(h.Value)
			if err != nil {
				log.Warn("kafka: bad watermark record skipped", "partition", rec.Partition, "offset", rec.Offset, "err", err)
				return out
			}
			st.advance(t)
			st.ticked = st.watermark
			return append(out, r.ticks(header{Watermark: st.watermark, Earliest: st.earliest, Streams: st.streamTimes(r.streams), InPartition: rec.Partition, InOffset: rec.Offset, Arrived: arrival(rec)})...)
		}
	}
	var ev event.Event
	if err := r.dec.Decode(rec.Value, &ev); err != nil {
		if !errors.Is(err, decode.ErrEmpty) {
			log.Warn("kafka: bad event skipped", "partition", rec.Partition, "offset", rec.Offset, "err", err)
		}
		return out
	}
	if r.w.opts.Enrich != nil {
		r.w.opts.Enrich(&ev)
	}
	// The streams' progress before the event, as the watermark: the
	// partitions it goes to count the event itself.
	streams := st.streamTimes(r.streams)
	if st.lagging(&ev, r.streams) {
		// A watched stream behind the watermark moves: every partition
		// hears the time before it first, so none sees the watermark's
		// moves and this one at once — a watcher deciding by whichever
		// of the two passed its mark first decides as one engine would.
		out = append(out, r.ticks(header{Watermark: st.watermark, Earliest: st.earliest, Streams: streams, InPartition: rec.Partition, InOffset: rec.Offset, Arrived: arrival(rec)})...)
	}
	st.observeStreams(&ev, r.streams)
	wm, earliest := st.observe(&ev, lateness)
	if n := r.route(&ev); n > 0 {
		log.Warn("kafka: key of a kind without a repartition topic dropped", "offset", rec.Offset, "keys", n)
	}
	// Every copy carries the event as decoded (and enriched) here, in its
	// binary form: the detection partitions read it back instead of
	// parsing the JSON line again, once per copy.
	var val []byte
	if len(r.order) > 0 {
		val = appendEvent(make([]byte, 0, len(rec.Value)), &ev)
	}
	for _, ds := range r.order {
		info := r.dests[ds]
		h := header{Flags: info.flags, Watermark: wm, Earliest: earliest, Streams: streams, InPartition: rec.Partition, InOffset: rec.Offset, Arrived: arrival(rec)}
		out = append(out, &kgo.Record{Topic: RepartitionTopic(r.w.opts.Prefix, ds.kind), Partition: ds.part,
			Key: []byte(info.key), Value: val, Headers: []kgo.RecordHeader{{Key: headerKey, Value: h.append(nil)}}})
	}
	// Partitions that receive nothing for a while still hear the time, so
	// their timers fire (re-raises, windows) as in one engine.
	if st.tickDue(r.w.opts.TickEvery) {
		out = append(out, r.ticks(header{Watermark: st.watermark, Earliest: st.earliest, Streams: st.streamTimes(r.streams), InPartition: rec.Partition, InOffset: rec.Offset, Arrived: arrival(rec)})...)
	}
	return out
}

// streamsTick ends the records of one input partition in a poll (last is
// the last of them): if a watched stream moved since every partition last
// heard its progress, every partition hears it now, in a tick with the
// time after last. Without it a partition learns that the issuer's stream
// passed a token's mark only with its next record or tick (TickEvery of
// watermark), which, when the input pauses, may be much later than one
// engine, which knows at once: a forged-token verdict would wait. A tick
// carries exactly what one engine over the input partition knows after
// last, so it changes when a partition decides, never what.
func (r *rekeyer) streamsTick(last *kgo.Record, st *inState, out []*kgo.Record) []*kgo.Record {
	if !st.streamsUnsent() {
		return out
	}
	return append(out, r.ticks(header{Watermark: st.watermark, Earliest: st.earliest, Streams: st.streamTimes(r.streams),
		InPartition: last.Partition, InOffset: last.Offset, Arrived: last.Timestamp})...)
}

// runRekey is the re-keying stage: consume, produce and commit in one
// transaction per poll.
func (w *Worker) runRekey(ctx context.Context) error {
	log := w.opts.Logger
	var (
		mu     sync.Mutex
		states = map[int32]*inState{} // committed state per input partition
	)
	forget := func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range lost[w.opts.Topic] {
			delete(states, p)
		}
	}
	sess, err := kgo.NewGroupTransactSession(w.clientOpts(
		kgo.ConsumerGroup(w.opts.Group+"-rekey"),
		kgo.ConsumeTopics(w.opts.Topic),
		kgo.TransactionalID(w.opts.Group+"-rekey-"+w.opts.ID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// Stable fetch offsets (KIP-447) need no option: franz-go requires
		// them for every group consumer (RequireStableFetchOffsets is a
		// deprecated no-op), so a worker taking over a partition waits
		// for a pending transaction's offset commit instead of reading the
		// offset before it.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsRevoked(forget),
		kgo.OnPartitionsLost(forget),
	)...)
	if err != nil {
		return fmt.Errorf("kafka: rekey client: %w", err)
	}
	defer sess.Close()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-w.stop:
			cancel()
		case <-pctx.Done():
		}
	}()
	rk := w.newRekeyer()
	var out []*kgo.Record
	for {
		fs := sess.PollFetches(pctx)
		if pctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			log.Warn("kafka: rekey fetch", "topic", t, "partition", p, "err", err)
		})
		if fs.Empty() {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("kafka: rekey begin: %w", err)
		}
		// Work on copies: an aborted transaction leaves the committed state.
		mu.Lock()
		work := map[int32]*inState{}
		for p, s := range states {
			work[p] = s.clone()
		}
		mu.Unlock()
		var recoverErr error
		out = out[:0]
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if recoverErr != nil || len(fp.Records) == 0 {
				return
			}
			st := work[fp.Partition]
			if st == nil {
				// A partition new to this worker: rebuild its time from the
				// records before the first one it is handed.
				s, err := w.recoverInput(ctx, fp.Partition, fp.Records[0].Offset)
				if err != nil {
					recoverErr = err
					return
				}
				st = &s
				work[fp.Partition] = st
			}
			for _, rec := range fp.Records {
				out = rk.records(rec, st, out)
			}
			out = rk.streamsTick(fp.Records[len(fp.Records)-1], st, out)
		})
		var produceErr error
		var pmu sync.Mutex
		if recoverErr == nil {
			for _, r := range out {
				sess.Produce(ctx, r, func(_ *kgo.Record, err error) {
					if err != nil {
						pmu.Lock()
						produceErr = err
						pmu.Unlock()
					}
				})
			}
		}
		commit := kgo.TryCommit
		if recoverErr != nil {
			commit = kgo.TryAbort
		}
		committed, err := sess.End(ctx, commit)
		pmu.Lock()
		perr := produceErr
		pmu.Unlock()
		switch {
		case committed && perr == nil:
			mu.Lock()
			states = work
			mu.Unlock()
		default:
			// Aborted: the records come again; forget what they taught.
			mu.Lock()
			clear(states)
			mu.Unlock()
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("kafka: rekey transaction aborted", "err", errors.Join(err, perr, recoverErr))
		}
		if err != nil && ctx.Err() == nil && recoverErr == nil && perr == nil {
			log.Warn("kafka: rekey end", "err", err)
		}
	}
}

// recoverInput rebuilds the time state of input partition p from its
// retained records before offset upTo (the first one this worker was
// handed). It reads the partition directly; a quiet poll of two seconds ends
// it early (the offsets below upTo may be transaction markers).
func (w *Worker) recoverInput(ctx context.Context, p int32, upTo int64) (inState, error) {
	var st inState
	if upTo <= 0 {
		return st, nil
	}
	cl, err := kgo.NewClient(w.clientOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.opts.Topic: {p: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return st, fmt.Errorf("kafka: recover input: %w", err)
	}
	defer cl.Close()
	rk := w.newRekeyer()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		if fs.Empty() {
			return st, nil
		}
		done := false
		fs.EachRecord(func(rec *kgo.Record) {
			if done || rec.Offset >= upTo {
				done = true
				return
			}
			rk.observeOnly(rec, &st)
			if rec.Offset == upTo-1 {
				done = true
			}
		})
		if done {
			return st, nil
		}
	}
}

// observeOnly advances st over rec as records would, producing nothing.
func (r *rekeyer) observeOnly(rec *kgo.Record, st *inState) {
	for _, h := range rec.Headers {
		if h.Key == WatermarkHeader {
			if t, err := parseWatermark(h.Value); err == nil {
				st.advance(t)
				st.ticked = st.watermark
			}
			return
		}
	}
	var ev event.Event
	if r.dec.Decode(rec.Value, &ev) == nil {
		st.observeStreams(&ev, r.streams)
		st.observe(&ev, r.w.opts.Lateness)
		st.tickDue(r.w.opts.TickEvery)
	}
}
