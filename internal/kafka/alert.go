package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
	"github.com/haechi-sec/haechi/internal/store"
)

// The alert stage (group <group>-alert) consumes <prefix>-findings. Each
// assigned findings partition has its own alert.Stage: findings are keyed by
// entity, so an entity's risk and open alerts live on one worker. Repeats
// (findings a detection partition's successor emits again after a crash) are
// dropped by the partition's Dedup. Alert windows close on watermark marks:
// the stage's watermark is the minimum, over every repartition partition, of
// the last mark it sent to this findings partition.
//
// State is never committed to Kafka: the stage's snapshot, its Dedup marks,
// the watermark marks and the next offset are one row of the store, written
// in the same transaction as the alerts changed since the previous one
// (store.SaveScoredWithCheckpoint, with the scored findings of the risk
// index). A worker that takes a findings
// partition over restores that row and consumes from its offset: the alert
// changes after it are made again, identically (alert ids are
// deterministic), and written again with the next checkpoint.

// alertPart is one assigned findings partition.
type alertPart struct {
	part    int32
	st      *alert.Stage
	dedup   Dedup
	marks   map[srcPart]time.Time // last mark per repartition partition
	wm      time.Time             // the watermark the stage was advanced to
	next    int64                 // the next offset to handle
	since   int                   // records handled since the last checkpoint
	saved   time.Time             // wall clock of the last checkpoint
	changes []alertChange         // since the last checkpoint, in order
	// findings are the findings scored since the last checkpoint, for the
	// store's risk index (stored with the alerts and the checkpoint).
	findings []store.ScoredFinding
	// arrived are the findings of the poll being handled not yet handed
	// to the stage: handed over together (process) before the stage
	// advances and at the poll's end, so that the stage previews each
	// entity once for them (alert.Stage.Process), not once per finding.
	arrived []event.Finding
}

// process hands the stage the findings that arrived since the last call.
func (ap *alertPart) process() {
	if len(ap.arrived) == 0 {
		return
	}
	ap.st.Process(ap.arrived)
	clear(ap.arrived)
	ap.arrived = ap.arrived[:0]
}

type srcPart struct {
	topic string
	part  int32
}

type alertChange struct {
	c alert.Change
	a event.Alert
}

type alerter struct {
	w    *Worker
	mu   sync.Mutex
	part map[int32]*alertPart
	// sources are the repartition partitions every findings partition
	// hears marks from.
	sources []srcPart
}

func (w *Worker) runAlerts(ctx context.Context) error {
	a := &alerter{w: w, part: map[int32]*alertPart{}}
	for _, k := range w.kinds {
		for p := range w.counts[k] {
			a.sources = append(a.sources, srcPart{RepartitionTopic(w.opts.Prefix, k), p})
		}
	}
	topic := FindingsTopic(w.opts.Prefix)
	cl, err := kgo.NewClient(w.clientOpts(
		kgo.ConsumerGroup(w.opts.Group+"-alert"),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.AdjustFetchOffsetsFn(func(ctx context.Context, m map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			return a.assigned(ctx, m)
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { a.release(ctx, m[topic], true) }),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { a.release(ctx, m[topic], false) }),
	)...)
	if err != nil {
		return fmt.Errorf("kafka: alert client: %w", err)
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
	for pctx.Err() == nil {
		// Poll at most AlertFlush, so waiting changes are stored on time
		// when no more findings come.
		tctx, tcancel := context.WithTimeout(pctx, w.opts.AlertFlush)
		fs := cl.PollFetches(tctx)
		tcancel()
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				w.opts.Logger.Warn("kafka: alert fetch", "topic", t, "partition", p, "err", err)
			}
		})
		if pctx.Err() != nil {
			break
		}
		a.mu.Lock()
		fs.EachRecord(a.handle)
		now := time.Now()
		for _, ap := range a.part {
			ap.process()
		}
		for _, ap := range a.part {
			// Changes wait at most AlertFlush; a quiet partition is
			// checkpointed after ten, and at once at the end of input.
			idle := now.Sub(ap.saved) >= 10*w.opts.AlertFlush || !ap.wm.Before(engine.EndOfTime)
			if len(ap.changes) > 0 && now.Sub(ap.saved) >= w.opts.AlertFlush || ap.since >= w.opts.CheckpointEvery || ap.since > 0 && idle {
				a.save(ctx, ap)
			}
		}
		a.mu.Unlock()
		cl.AllowRebalance()
	}
	if ctx.Err() != nil {
		// A crash: store nothing more (the successor resumes from the last
		// checkpoint and makes the same changes again).
		a.mu.Lock()
		clear(a.part)
		a.mu.Unlock()
		cl.CloseAllowingRebalance()
		return nil
	}
	// Graceful: checkpoint every owned partition, then leave.
	a.mu.Lock()
	var all []int32
	for p := range a.part {
		all = append(all, p)
	}
	a.mu.Unlock()
	a.release(ctx, all, true)
	cl.CloseAllowingRebalance()
	return nil
}

// assigned opens the assigned partitions from their checkpoints and
// starts each at its checkpoint's offset.
func (a *alerter) assigned(ctx context.Context, m map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	topic := FindingsTopic(a.w.opts.Prefix)
	a.mu.Lock()
	defer a.mu.Unlock()
	for p := range m[topic] {
		ap, err := a.open(ctx, p)
		if err != nil {
			// The group session ends and is joined again: retried.
			a.w.opts.Logger.Error("kafka: alert partition not opened", "partition", p, "err", err)
			return nil, err
		}
		a.part[p] = ap
		if ap.next > 0 {
			m[topic][p] = kgo.NewOffset().At(ap.next).WithEpoch(-1)
		} else {
			m[topic][p] = kgo.NewOffset().AtStart()
		}
	}
	return m, nil
}

// open builds partition p's stage, restored from its checkpoint.
func (a *alerter) open(ctx context.Context, p int32) (*alertPart, error) {
	ap := &alertPart{part: p, marks: map[srcPart]time.Time{}, saved: time.Now()}
	opts := *a.w.opts.Alerts
	// Findings about an entity come from several partitions in no defined
	// order: only ordered processing makes the alerts a function of them.
	// An immediate finding's alert is raised on arrival all the same, by a
	// preview of ordered processing; a preview that a later-arriving,
	// earlier finding supersedes is withdrawn (alert.Superseded), so the
	// alerts that stand are ordered processing's.
	opts.Ordered, opts.RaiseAhead = true, !a.w.inOrder
	opts.Registerer = nil
	opts.Sinks = []alert.Sink{alert.SinkFunc(func(c alert.Change, al event.Alert) {
		ap.changes = append(ap.changes, alertChange{c, al})
	})}
	opts.FindingSinks = []alert.FindingSink{alert.FindingSinkFunc(func(sc alert.Scored) {
		sf := store.ScoredFinding{Finding: sc.Finding, Risk: sc.Risk, Threshold: sc.Threshold, Alert: sc.Alert, Suppressed: sc.Suppressed}
		sf.ID = store.FindingID(&sf.Finding)
		ap.findings = append(ap.findings, sf)
	})}
	if opts.Logger == nil {
		opts.Logger = a.w.opts.Logger
	}
	st, err := alert.New(opts)
	if err != nil {
		return nil, err
	}
	ap.st = st
	topic := FindingsTopic(a.w.opts.Prefix)
	c, ok, err := a.w.opts.Store.LoadPartitionCheckpoint(ctx, a.w.opts.Group, topic, p)
	if err != nil {
		return nil, err
	}
	if ok {
		s, err := decodeAlertState(c.Data)
		if err == nil {
			err = st.Restore(s.stage)
		}
		if err != nil {
			// Starting cold from the beginning would raise every alert
			// again with other state: refuse, loudly.
			return nil, fmt.Errorf("kafka: alert checkpoint of %s/%d unreadable: %w", topic, p, err)
		}
		ap.dedup, ap.marks, ap.wm, ap.next = s.dedup, s.marks, s.wm, c.NextOffset
	}
	a.w.opts.Logger.Info("kafka: alert partition opened", "topic", topic, "partition", p, "offset", ap.next)
	return ap, nil
}

// release drops partitions, checkpointing them first when graceful.
func (a *alerter) release(ctx context.Context, ps []int32, graceful bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range ps {
		ap := a.part[p]
		if ap == nil {
			continue
		}
		if graceful && (ap.since > 0 || len(ap.changes) > 0) {
			a.save(ctx, ap)
		}
		delete(a.part, p)
	}
}

// handle folds one findings record into its partition's stage.
func (a *alerter) handle(r *kgo.Record) {
	ap := a.part[r.Partition]
	if ap == nil || r.Offset < ap.next {
		return // not ours (any more), or covered by the checkpoint
	}
	ap.next = r.Offset + 1
	ap.since++
	var src, mark []byte
	isMark, immediate := false, false
	for _, h := range r.Headers {
		switch h.Key {
		case SourceHeader:
			src = h.Value
		case MarkHeader:
			mark, isMark = h.Value, true
		case ImmediateHeader:
			immediate = true
		}
	}
	if !ap.dedup.Fresh(r.Partition, src) {
		return
	}
	log := a.w.opts.Logger
	if isMark {
		s, err := parseSource(src)
		if err != nil {
			log.Warn("kafka: watermark mark without a source skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		wm, err := parseMark(mark)
		if err != nil {
			log.Warn("kafka: bad watermark mark skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		k := srcPart{s.Topic, s.Partition}
		if wm.After(ap.marks[k]) {
			ap.marks[k] = wm
		}
		if low := a.low(ap); low.After(ap.wm) {
			ap.process() // what arrived before the mark first
			ap.wm = low
			ap.st.Advance(low)
		}
		return
	}
	var f event.Finding
	if err := json.Unmarshal(r.Value, &f); err != nil {
		log.Warn("kafka: bad finding skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	f.Immediate = immediate
	ap.arrived = append(ap.arrived, f)
}

// low is the minimum mark over every repartition partition (zero until
// each has sent one).
func (a *alerter) low(ap *alertPart) time.Time {
	var low time.Time
	for i, s := range a.sources {
		m, ok := ap.marks[s]
		if !ok {
			return time.Time{}
		}
		if i == 0 || m.Before(low) {
			low = m
		}
	}
	return low
}

// save stores the alerts changed since the last checkpoint with the
// stage's state and offset, in one transaction, then tells the sinks. On
// failure everything stays pending for the next try; a stale checkpoint
// (another worker owns the partition) drops the partition.
func (a *alerter) save(ctx context.Context, ap *alertPart) {
	log := a.w.opts.Logger
	topic := FindingsTopic(a.w.opts.Prefix)
	stage, err := ap.st.Snapshot()
	if err != nil {
		log.Error("kafka: alert stage snapshot", "partition", ap.part, "err", err)
		return
	}
	data := encodeAlertState(alertState{stage: stage, dedup: ap.dedup, marks: ap.marks, wm: ap.wm})
	alerts := make([]event.Alert, len(ap.changes))
	for i, c := range ap.changes {
		alerts[i] = c.a
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err = a.w.opts.Store.SaveScoredWithCheckpoint(sctx, alerts, ap.findings, store.PartitionCheckpoint{
		Group: a.w.opts.Group, Topic: topic, Partition: ap.part, NextOffset: ap.next, Data: data, SavedAt: time.Now(),
	})
	if errors.Is(err, store.ErrStaleCheckpoint) {
		// Another worker stored a later checkpoint: a predecessor that
		// did not know it had lost the partition, or a successor if this
		// one has. Its state is what this stage would reach there (the
		// stage is deterministic): continue from it, skipping the records
		// it covers. If the partition is gone, the rebalance drops it.
		log.Warn("kafka: a later alert checkpoint is stored (another worker); resuming from it", "partition", ap.part)
		n, err := a.open(ctx, ap.part)
		if err != nil {
			log.Error("kafka: alert partition dropped", "partition", ap.part, "err", err)
			delete(a.part, ap.part)
			return
		}
		a.part[ap.part] = n
		return
	}
	if err != nil {
		log.Error("kafka: alerts and checkpoint not stored; retried with the next one", "partition", ap.part, "err", err)
		return
	}
	for _, c := range ap.changes {
		log.Debug("kafka: alert stored", "change", c.c, "id", c.a.ID, "entity", c.a.Entity.String(), "findings", c.a.FindingCount, "severity", c.a.Severity.String())
		for _, s := range a.w.opts.AlertSinks {
			s.Alert(c.c, c.a)
		}
	}
	clear(ap.findings)
	ap.changes, ap.findings, ap.since, ap.saved = ap.changes[:0], ap.findings[:0], 0, time.Now()
}

const alertStateVersion = 1

// alertState is a findings partition's checkpoint (the store row carries
// the offset).
type alertState struct {
	stage []byte // alert.Stage.Snapshot
	dedup Dedup
	marks map[srcPart]time.Time
	wm    time.Time
}

func appendTimeEnd(w *snap.Writer, t time.Time) {
	b := appendMark(nil, t)
	w.B = append(w.B, b...)
}

func readTimeEnd(r *snap.Reader) time.Time {
	if r.Bool() {
		return engine.EndOfTime
	}
	return r.Time()
}

func encodeAlertState(s alertState) []byte {
	var w snap.Writer
	w.Byte(alertStateVersion)
	w.Bytes(s.stage)
	keys := make([]dedupKey, 0, len(s.dedup.seen))
	for k := range s.dedup.seen {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y dedupKey) int {
		if x.findings != y.findings {
			return int(x.findings) - int(y.findings)
		}
		if x.topic != y.topic {
			if x.topic < y.topic {
				return -1
			}
			return 1
		}
		return int(x.part) - int(y.part)
	})
	w.Uint(uint64(len(keys)))
	for _, k := range keys {
		v := s.dedup.seen[k]
		w.Uint(uint64(k.findings))
		w.String(k.topic)
		w.Uint(uint64(k.part))
		w.Uint(v[0])
		w.Uint(v[1])
	}
	srcs := make([]srcPart, 0, len(s.marks))
	for k := range s.marks {
		srcs = append(srcs, k)
	}
	slices.SortFunc(srcs, func(x, y srcPart) int {
		if x.topic != y.topic {
			if x.topic < y.topic {
				return -1
			}
			return 1
		}
		return int(x.part) - int(y.part)
	})
	w.Uint(uint64(len(srcs)))
	for _, k := range srcs {
		w.String(k.topic)
		w.Uint(uint64(k.part))
		appendTimeEnd(&w, s.marks[k])
	}
	appendTimeEnd(&w, s.wm)
	return w.B
}

func decodeAlertState(b []byte) (alertState, error) {
	r := snap.NewReader(b)
	if v := r.Byte(); r.Err() == nil && v != alertStateVersion {
		return alertState{}, fmt.Errorf("kafka alert checkpoint: version %d, want %d", v, alertStateVersion)
	}
	var s alertState
	s.stage = r.Bytes()
	n := r.Count(5)
	for range n {
		f, topic, p := r.Uint(), r.String(), r.Uint()
		off, seq := r.Uint(), r.Uint()
		if r.Err() != nil {
			break
		}
		if f > 1<<31-1 || p > 1<<31-1 {
			return alertState{}, errors.New("kafka alert checkpoint: partition out of range")
		}
		if s.dedup.seen == nil {
			s.dedup.seen = map[dedupKey][2]uint64{}
		}
		s.dedup.seen[dedupKey{int32(f), topic, int32(p)}] = [2]uint64{off, seq}
	}
	n = r.Count(3)
	s.marks = make(map[srcPart]time.Time, n)
	for range n {
		topic, p := r.String(), r.Uint()
		t := readTimeEnd(r)
		if r.Err() != nil {
			break
		}
		if p > 1<<31-1 {
			return alertState{}, errors.New("kafka alert checkpoint: partition out of range")
		}
		s.marks[srcPart{topic, int32(p)}] = t
	}
	s.wm = readTimeEnd(r)
	if err := r.End(); err != nil {
		return alertState{}, fmt.Errorf("kafka alert checkpoint: %w", err)
	}
	return s, nil
}
