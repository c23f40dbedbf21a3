// Package kafka runs haechi as a group of workers sharing one Kafka stream
// (cluster mode; docs/scale-out.md).
//
// A Worker has three stages, each a member of its own consumer group:
//
//   - Re-keying (group <group>-rekey) consumes the input topic of contract
//     NDJSON events and, as Kafka Streams repartitions, produces every event
//     to the repartition topic of each entity kind the detectors key it on
//     (<prefix>-by-<kind>), on the partition its key hashes to (FNV-1a, the
//     engine's hash, modulo the topic's partition count). Consuming, producing
//     and committing the input offsets happen in one Kafka transaction
//     (kgo.GroupTransactSession), and the detection stage reads
//     read_committed, so every event reaches each partition exactly once.
//   - Detection (group <group>-detect) consumes the repartition topics. Each
//     assigned partition runs its own one-shard engine over the detectors,
//     which see only the events routed there for their kind: every entity's
//     state lives on exactly one worker. Findings go to <prefix>-findings,
//     keyed by the finding's entity. With Options.Ledger, the partitions of
//     the ledger's dimensions also record the access ledger, stored before
//     each checkpoint.
//   - Alerts (group <group>-alert, when Options.Alerts is set) consumes
//     <prefix>-findings: one ordered alert.Stage per findings partition,
//     its alerts stored with its state and offset in one transaction
//     (alert.go).
//
// Detection commits no offsets to Kafka. Every CheckpointEvery records a
// partition's detector snapshots are written to the store together with the
// offset they cover, in one transaction (store.SavePartitionCheckpoints).
// The worker that takes a partition over (rebalance or crash) restores that
// checkpoint and replays the partition from its start, marking the records
// below the checkpoint Restored, exactly as serve replays its spool after a
// restart: snapshotting detectors skip them, the others rebuild their
// windows, and findings of restored records are dropped. Findings emitted
// after the checkpoint and before a crash are emitted again, identically
// (the engine is deterministic): each carries its origin (repartition
// partition, offset, sequence) in a header, and consumers drop repeats with
// a Dedup.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// DefaultKinds are the entity kinds the built-in detectors key on, one
// repartition topic each.
var DefaultKinds = []event.EntityKind{
	event.EntityPrincipal, event.EntitySource, event.EntityToken, event.EntitySigningKey,
	event.EntityRecord, "role", "network", "country", "inventory",
}

// Options configure a Worker.
type Options struct {
	// Brokers are the seed brokers.
	Brokers []string
	// Topic is the input topic of contract NDJSON events (one per record).
	Topic string
	// Group prefixes the consumer groups (<group>-rekey, <group>-detect),
	// the transactional id and the store rows of the checkpoints.
	Group string
	// Prefix names the topics the workers write: <prefix>-by-<kind> and
	// <prefix>-findings ("" → Topic).
	Prefix string
	// Kinds are the entity kinds with a repartition topic (nil →
	// DefaultKinds). A key of another kind is counted and dropped.
	Kinds []event.EntityKind
	// Detectors returns a fresh detector list; it is called once for the
	// re-keying stage and once per partition engine.
	Detectors func() []engine.Detector
	// Lateness is the engine's allowed lateness (0 → 5 minutes).
	Lateness time.Duration
	// Idleness is how long, by the input records' timestamps, an input
	// partition may send nothing before it stops holding the others'
	// event time back (0 → engine.DefaultIdleness; at least 2×TickEvery).
	Idleness time.Duration
	// MaxOriginLag is how far an input partition may be behind the leading
	// one and still hold the others back (0 → engine.DefaultMaxOriginLag).
	MaxOriginLag time.Duration
	// Enrich, if set, completes every event as it is decoded, before it
	// is routed and before detectors see it (GeoIP country and AS, as the
	// single-process pipeline does). It must be deterministic: the
	// re-keying stage and each detection partition decode and enrich
	// their own copy of the event, and must agree.
	Enrich func(*event.Event)
	// TickEvery: whenever the input's watermark has moved this much since
	// the last tick, every repartition partition gets a tick record with
	// it, so timers of partitions that receive no events fire on time
	// (0 → 1 minute of event time).
	TickEvery time.Duration
	// Store keeps the partition checkpoints (required).
	Store *store.Store
	// CheckpointEvery is the number of records of a partition between two
	// checkpoints (0 → 10000).
	CheckpointEvery int
	// ID names this worker; its re-keying producer's transactional id is
	// <group>-rekey-<ID>. A replacement for a crashed worker should reuse
	// its ID, so its first transaction fences and aborts the dead one's
	// (otherwise the dead transaction blocks read_committed readers until
	// the transaction timeout). "" → host name and process id.
	ID string
	// Logger (nil → discard).
	Logger *slog.Logger
	// ClientOpts are added to every Kafka client (TLS, SASL, …).
	ClientOpts []kgo.Opt

	// Alerts, if set, runs the alert stage (group <group>-alert) on the
	// findings topic: one alert.Stage per findings partition, built with
	// these options (their Sinks and Registerer are not used). Findings
	// are keyed by entity, so each entity's risk and open alerts live on
	// one worker. Alerts are written with the stage's state and offset in
	// one store transaction (store.SaveAlertsWithCheckpoint).
	Alerts *alert.Options
	// AlertSinks hear every alert change once it is stored. After a crash
	// the successor may repeat changes made since the last checkpoint (the
	// same alerts, with the same ids): sinks must be idempotent.
	AlertSinks []alert.Sink
	// AlertFlush is how long alert changes may wait before they are
	// stored with a checkpoint (0 → 1 second).
	AlertFlush time.Duration
	// MarkEvery: a detection partition sends a watermark mark to every
	// findings partition whenever its watermark crosses a multiple of it
	// (0 → 5 minutes); alerts close at most this late in event time.
	MarkEvery time.Duration

	// Ledger, if set, records the access ledger (internal/ledger) in the
	// store: the re-keying stage also routes activity by each ledger
	// dimension that has a repartition topic (principal, key, source,
	// network, country), and each detection partition of such a topic
	// runs that dimension's ledger detector. A partition's ledger deltas
	// are stored before its checkpoint (the checkpoint waits for them), so
	// a successor that replays from the checkpoint skips what is stored
	// and re-adds at most what the OR-merge already holds. Record ids that
	// are not small integers are numbered by the store
	// (store.AssignLedgerDict), so every worker agrees on their numbers.
	Ledger bool
	// LedgerFlushEvery is how far (event time) a partition's ledger moves
	// between two hand-offs to its writer besides checkpoints (0 → the
	// ledger's default, 10 minutes).
	LedgerFlushEvery time.Duration
}

func (o *Options) defaults() error {
	if len(o.Brokers) == 0 || o.Topic == "" || o.Group == "" {
		return errors.New("kafka: brokers, topic and group are required")
	}
	if o.Store == nil || o.Detectors == nil {
		return errors.New("kafka: a store and detectors are required")
	}
	if o.Prefix == "" {
		o.Prefix = o.Topic
	}
	if o.Kinds == nil {
		o.Kinds = DefaultKinds
	}
	if o.Lateness == 0 {
		o.Lateness = 5 * time.Minute
	}
	if o.TickEvery <= 0 {
		o.TickEvery = time.Minute
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 10000
	}
	if o.AlertFlush <= 0 {
		o.AlertFlush = time.Second
	}
	if o.MarkEvery <= 0 {
		o.MarkEvery = 5 * time.Minute
	}
	if o.ID == "" {
		h, _ := os.Hostname()
		o.ID = h + "-" + strconv.Itoa(os.Getpid())
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// RepartitionTopic names the repartition topic of kind.
func RepartitionTopic(prefix string, kind event.EntityKind) string {
	return prefix + "-by-" + string(kind)
}

// FindingsTopic names the findings topic.
func FindingsTopic(prefix string) string { return prefix + "-findings" }

// Topics lists the topics a worker with opts writes: the repartition
// topics, then the findings topic.
func Topics(prefix string, kinds []event.EntityKind) []string {
	var ts []string
	for _, k := range kinds {
		ts = append(ts, RepartitionTopic(prefix, k))
	}
	return append(ts, FindingsTopic(prefix))
}

// EnsureTopics creates the repartition and findings topics that do not
// exist yet, with partitions partitions and the given replication factor
// (-1: the brokers' default). Existing topics are left alone: a
// repartition topic's partition count must never change, since it decides
// which partition holds an entity's state.
func EnsureTopics(ctx context.Context, brokers []string, prefix string, kinds []event.EntityKind, partitions int32, replication int16, opts ...kgo.Opt) error {
	if kinds == nil {
		kinds = DefaultKinds
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	res, err := adm.CreateTopics(ctx, partitions, replication, nil, Topics(prefix, kinds)...)
	if err != nil {
		return fmt.Errorf("kafka: create topics: %w", err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil && !strings.Contains(r.Err.Error(), "TOPIC_ALREADY_EXISTS") {
			return fmt.Errorf("kafka: create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// partitionCounts reads the partition count of every repartition topic
// and of the findings topic.
func partitionCounts(ctx context.Context, o *Options) (map[event.EntityKind]int32, int32, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...)}, o.ClientOpts...)...)
	if err != nil {
		return nil, 0, fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	names := Topics(o.Prefix, o.Kinds)
	td, err := kadm.NewClient(cl).ListTopics(ctx, names...)
	if err != nil {
		return nil, 0, fmt.Errorf("kafka: list topics: %w", err)
	}
	count := func(name string) (int32, error) {
		t, ok := td[name]
		if !ok || t.Err != nil || len(t.Partitions) == 0 {
			return 0, fmt.Errorf("kafka: topic %s is missing (create it, see docs/scale-out.md)", name)
		}
		return int32(len(t.Partitions)), nil
	}
	counts := map[event.EntityKind]int32{}
	for _, k := range o.Kinds {
		if counts[k], err = count(RepartitionTopic(o.Prefix, k)); err != nil {
			return nil, 0, err
		}
	}
	nf, err := count(FindingsTopic(o.Prefix))
	if err != nil {
		return nil, 0, err
	}
	return counts, nf, nil
}

// Worker is one member of a haechi cluster: it runs both stages.
type Worker struct {
	opts   Options
	counts map[event.EntityKind]int32
	nf     int32              // partitions of the findings topic
	kinds  []event.EntityKind // sorted
	stop   chan struct{}      // closed by Shutdown
	dict   *ledger.Dict       // Options.Ledger: shared by the worker's partitions
	// ledgerSink is where the partitions' ledgers merge (nil: the store);
	// tests slow it down.
	ledgerSink ledger.Sink
	// inOrder: immediate alerts wait for ordered processing (not raised
	// ahead); benchmarks compare.
	inOrder bool
	// polled hears the records of each poll of the detection stage
	// (tests).
	polled func(records int)
	// handedOff hears each hand-off of engine messages to a detection
	// partition's engine (tests).
	handedOff func(messages int)
}

// New validates opts and returns a worker; Run starts it.
func New(opts Options) (*Worker, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	kinds := slices.Clone(opts.Kinds)
	slices.Sort(kinds)
	w := &Worker{opts: opts, kinds: slices.Compact(kinds), stop: make(chan struct{})}
	if opts.Ledger {
		w.dict = ledger.NewSharedDict(opts.Store)
	}
	return w, nil
}

// ledgerDimension returns the ledger dimension recorded on the
// repartition topic of kind, if the ledger is on and kind has one.
func (w *Worker) ledgerDimension(kind event.EntityKind) (ledger.Dimension, bool) {
	if !w.opts.Ledger {
		return "", false
	}
	return ledger.OfEntity(kind)
}

// rekeyDetectors returns the configured detectors and, for the re-keying
// stage, a key-only ledger detector per ledger dimension with a topic.
func (w *Worker) rekeyDetectors() []engine.Detector {
	dets := w.opts.Detectors()
	for _, k := range w.kinds {
		if dim, ok := w.ledgerDimension(k); ok {
			dets = append(dets, ledger.KeyDetector(dim))
		}
	}
	return dets
}

// Run runs the worker until ctx ends or Shutdown is called. Cancelling ctx
// is a crash as far as state goes: nothing is checkpointed beyond the
// periodic checkpoints (the successor replays from them). Shutdown stops
// gracefully: every owned partition is checkpointed first.
func (w *Worker) Run(ctx context.Context) error {
	counts, nf, err := partitionCounts(ctx, &w.opts)
	if err != nil {
		return err
	}
	w.counts, w.nf = counts, nf
	stages := []func(context.Context) error{w.runRekey, w.runDetect}
	if w.opts.Alerts != nil {
		stages = append(stages, w.runAlerts)
	}
	errs := make(chan error, len(stages))
	for _, run := range stages {
		go func() { errs <- run(ctx) }()
	}
	var all []error
	for range stages {
		all = append(all, <-errs)
	}
	err = errors.Join(all...)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Shutdown asks Run to stop gracefully (checkpoint every owned partition,
// leave the groups). It returns at once; Run returns when done.
func (w *Worker) Shutdown() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
}

func (w *Worker) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	return append(append([]kgo.Opt{kgo.SeedBrokers(w.opts.Brokers...)}, w.opts.ClientOpts...), extra...)
}
