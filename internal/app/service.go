package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident/track"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

// Mode says what a Service is built for; it picks how often the access
// ledger is written, whether response actions are planned and delivered,
// and whether detector checkpoints are kept.
type Mode int

const (
	// ModeLive is serve: the ledger is written every few seconds of wall
	// time (ledger defaults), response actions are planned, recorded and
	// delivered to the receivers, and detector checkpoints are stored when
	// the spool is on.
	ModeLive Mode = iota
	// ModeReplay is replay over files: the ledger is written every six
	// hours of event time (or 4 MiB of touches), far fewer rewrites of busy
	// rows; response actions are planned and recorded (outbox and audit
	// log, so `actions` and `report` show what would have been done), never
	// delivered.
	ModeReplay
	// ModeScore is eval: the ledger is written once a simulated day (or 8
	// MiB); no response is planned, since eval enforces the containments
	// it computes itself (eval.Gate).
	ModeScore
)

func (m Mode) String() string {
	switch m {
	case ModeLive:
		return "live"
	case ModeReplay:
		return "replay"
	case ModeScore:
		return "score"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// BuildOptions configure Build.
type BuildOptions struct {
	Config    config.Config
	Mode      Mode
	CanaryIDs []string
	// NoStore builds no output side at all (replay --no-store): alerts go
	// only to the caller's sinks.
	NoStore bool
	// OnDurable receives the ledger's durable marks (ModeLive: spool
	// retention follows them).
	OnDurable  func(mark uint64)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Version is haechi's version, written into the ECS and OCSF
	// documents webhooks and sinks deliver ("" → omitted).
	Version string
}

// Service is the output side every entry point shares — the store, the
// alert writer, the access ledger, the response (planner, responder and,
// live, the dispatcher), analysts' suppressions and detector checkpoints —
// built once by Build and run as one ordered lifecycle: parts start in the
// order Build adds them and Close stops them in reverse, so a part stops
// only after everything that feeds it has. Fields are nil where the mode
// or options leave a part out.
type Service struct {
	Mode   Mode
	Config config.Config
	Store  *store.Store
	// Writer stores alerts off the pipeline's goroutine; StoreSink feeds it.
	Writer *store.Writer
	// Ledger is handed to the pipeline (PipelineOptions), which runs and
	// closes it.
	Ledger       *ledger.Ledger
	Planner      *respond.Planner
	Responder    *respond.Responder
	Dispatcher   *respond.Dispatcher
	Suppressions *respond.Suppressions
	// drill says which alerts are drills' (KeepDrillsApart); nil: none.
	// drillFindings gets their findings instead of the store.
	drill         func(event.Alert) bool
	drillFindings alert.FindingSink
	// Restore is the detector checkpoint a live pipeline starts from (nil:
	// none, or checkpoints are off).
	Restore *Checkpoint
	saver   *checkpointSaver
	// Mints is the mint registry the pipeline fills and the API's inline
	// check reads (live, verify.enabled, not cluster mode; nil otherwise).
	// It is restored with the detectors' checkpoint when one is.
	Mints *mint.Registry
	// mintsFrom says which origins' mints Mints registers
	// (PipelineOptions.MintsFrom); nil: all (verify.ingest_may_mint).
	mintsFrom func(origin string) bool

	log     *slog.Logger
	parts   []*part
	started bool
	base    context.Context // Start's context, without its cancellation
	// failed is closed with the first error a part's run returns before
	// Close stops it; Err then reports it.
	failed   chan struct{}
	failOnce sync.Once
	err      atomic.Pointer[error]
	closed   bool
}

// part is one piece of a Service's lifecycle. run, if set, runs on its own
// goroutine from Start until its context is cancelled; stop, if set, is
// called by Close before that context is cancelled (a flush, a drain).
type part struct {
	name     string
	run      func(ctx context.Context) error
	stop     func(ctx context.Context) error
	cancel   context.CancelFunc
	done     chan struct{}
	err      error // run's, once done is closed
	stopping atomic.Bool
}

// Build opens and assembles the output side for opts.Mode. On error every
// part already built is closed again. Nothing runs until Start.
func Build(ctx context.Context, opts BuildOptions) (_ *Service, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	s := &Service{Mode: opts.Mode, Config: cfg, log: log, failed: make(chan struct{})}
	if err := applyMemoryLimit(cfg, log); err != nil {
		return nil, configError{err}
	}
	if opts.NoStore {
		return s, nil
	}
	defer func() {
		if err != nil {
			_ = s.Close(context.WithoutCancel(ctx))
		}
	}()
	live := opts.Mode == ModeLive
	// Only serve creates the audit key; every other entry point uses an
	// existing one (app.AuditKey).
	key, keyFrom, err := AuditKey(cfg, live)
	if err != nil {
		return nil, configError{err}
	}
	// Every alert saved is assigned to an incident in the same transaction
	// (internal/incident/track), whichever entry point saves it.
	st, err := store.Open(ctx, cfg.StoreTarget(), store.Options{Logger: log, AuditKey: key, LedgerEngine: cfg.Store.LedgerEngine,
		Incidents: track.New(track.Options{}), IncidentNotice: incidentNotice(cfg.Respond.Mode)})
	if err != nil {
		return nil, openStoreError{err}
	}
	s.Store = st
	s.add(&part{name: "store", stop: func(context.Context) error { return st.Close() }})
	// The risk index keeps findings for alerts.findings_retention: pruned
	// hourly while running and once more at the stop, after the writer
	// (added later, so stopped earlier) has stored the last findings.
	retention := cfg.Alerts.FindingsRetention.D()
	s.add(&part{name: "findings retention",
		run: func(ctx context.Context) error {
			t := time.NewTicker(time.Hour)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					if _, err := PruneFindings(ctx, st, retention); err != nil && ctx.Err() == nil {
						log.Warn("findings retention", "err", err)
					}
				}
			}
		},
		stop: func(ctx context.Context) error {
			if _, err := PruneFindings(context.WithoutCancel(ctx), st, retention); err != nil {
				log.Warn("findings retention", "err", err)
			}
			return nil
		}})
	if live {
		// The audit witness signs the log's head until every audited
		// write is done: it stops right before the store closes, so a
		// graceful stop witnesses the final head.
		runWitness, err := startAudit(ctx, cfg, st, key, keyFrom, log)
		if err != nil {
			return nil, err
		}
		if runWitness != nil {
			s.add(&part{name: "audit witness", run: func(ctx context.Context) error { runWitness(ctx); return nil }})
		}
	}

	lo := ledger.Options{Logger: log, OnDurable: opts.OnDurable}
	if opts.Registerer != nil {
		flush := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "haechi_ledger_flush_seconds",
			Help:    "Time the store took to merge one batch of ledger rows.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		})
		if err := opts.Registerer.Register(flush); err != nil {
			return nil, fmt.Errorf("ledger: register metrics: %w", err)
		}
		lo.OnFlush = func(took time.Duration, _ int) { flush.Observe(took.Seconds()) }
	}
	switch opts.Mode {
	case ModeReplay:
		lo.FlushEvery, lo.MaxDirty = 6*time.Hour, 4<<20
	case ModeScore:
		lo.FlushEvery, lo.MaxDirty = 24*time.Hour, 8<<20
	}
	filter, err := cfg.Store.LedgerDictFilterBytes()
	if err != nil {
		return nil, fmt.Errorf("store.ledger_dict_filter: %w", err)
	}
	lo.Dict = ledger.DictOptions{CacheEntries: cfg.Store.LedgerDictCache, FilterBytes: int(filter)}
	if !(live && cfg.Kafka.Enabled()) { // a cluster's detection partitions run their own ledgers
		if s.Ledger, err = ledger.Open(ctx, st, lo); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
	}

	// The mint registry is made before the response, whose dispatcher
	// applies revocations to it; it is restored and swept below.
	if live && cfg.Verify.Enabled && !cfg.Kafka.Enabled() {
		tp := cfg.Detectors.TokenProvenance
		v := cfg.Verify
		s.Mints = mint.New(mint.Options{MaxLifetime: tp.MaxLifetime.D(), ClockSkew: tp.ClockSkew.D(),
			Grace: mint.Grace{Skew: v.GraceSkew.D(), PerSource: v.GracePerSource, PerKey: v.GracePerKey}, RequireUser: v.RequireUser})
		if !v.IngestMayMint {
			s.mintsFrom = newMintOrigins(st.ListTokens, log).mayMint
		}
	}
	if opts.Mode != ModeScore {
		if err := s.buildResponse(ctx, opts); err != nil {
			return nil, err
		}
	}
	// The alert writer is added after the response, so it stops first: it
	// stores what the pipeline raised before the response parts stop.
	w := store.NewWriter(st, store.WriterOptions{Logger: log})
	s.Writer = w
	s.add(&part{name: "alert writer", run: w.Run, stop: func(context.Context) error {
		if err := w.Close(); err != nil {
			return fmt.Errorf("store alerts: %w", err)
		}
		return nil
	}})
	// Checkpoints of the detectors' learnt state (baselines, profiles) are
	// taken at spool offsets, so they need the spool; a cluster's
	// detection partitions keep their own. The saver stops before the
	// writer and the responder, whose queues it flushes before it stores a
	// checkpoint, and after the pipeline that offers them (added later).
	if live && cfg.Spool.Enabled && cfg.Engine.CheckpointEvery > 0 && !cfg.Kafka.Enabled() {
		s.Restore = loadCheckpoint(ctx, st, log)
		saver := newCheckpointSaver(st, log, opts.Registerer, s.Flush)
		s.saver = saver
		s.add(&part{name: "checkpoint saver", run: func(ctx context.Context) error { saver.Run(ctx); return nil }})
	}
	if s.Mints != nil {
		if s.Restore != nil {
			restoreMints(ctx, st, log, s.Restore.Mark, s.Mints)
		}
		s.add(&part{name: "mint registry sweep", run: func(ctx context.Context) error { sweepMints(ctx, s.Mints, log); return nil }})
	}
	return s, nil
}

// buildResponse adds the response parts: alerts → planned actions
// (outbox, audit) → signed webhooks (live only).
func (s *Service) buildResponse(ctx context.Context, opts BuildOptions) (err error) {
	cfg, st, log := s.Config, s.Store, s.log
	if s.Planner, err = respond.NewPlanner(cfg.Respond); err != nil {
		return configError{fmt.Errorf("respond: %w", err)}
	}
	if opts.Mode == ModeLive && s.Mints != nil {
		// The dispatcher revokes in the mint registry itself (below), so
		// a revocation needs no receiver to take effect in the inline
		// check (docs/verify.md).
		s.Planner.SetLocal(respond.KindRevokeToken, respond.KindRevokeKey)
	}
	if n, err := s.Planner.RestoreFrom(ctx, st); err != nil {
		return fmt.Errorf("respond: restore rate limits and escalation from the outbox: %w", err)
	} else if n > 0 && opts.Mode == ModeLive {
		log.Info("respond: resumed rate limits and block escalation from the outbox", "actions", n)
	}
	s.Suppressions = respond.NewSuppressions(st)
	ro := respond.ResponderOptions{Logger: log, Suppressions: s.Suppressions}
	if opts.Mode == ModeLive {
		do := respond.DispatcherOptions{Logger: log, Lease: cfg.Respond.Lease.D(), Registerer: opts.Registerer, Version: opts.Version}
		if s.Mints != nil {
			// Executed revoke_token / revoke_key actions take effect in
			// the inline check at once (docs/verify.md).
			do.Revoker = s.Mints
		}
		d, err := respond.NewDispatcher(st, cfg.Respond, do)
		if err != nil {
			return fmt.Errorf("respond: %w", err)
		}
		s.Dispatcher = d
		ro.OnWritten = d.Wake
		// Containment planned as the last alerts closed is sent at stop,
		// within at most 10 s; what is left is delivered by the next start.
		// An aborted stop (Close with a done ctx: a start that failed)
		// sends nothing: the next start delivers what is due.
		s.add(&part{name: "dispatcher", run: d.Run, stop: func(ctx context.Context) error {
			if ctx.Err() == nil {
				dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := d.Drain(dctx); err != nil {
					log.Warn("respond: stopping before every due action was tried; the next start delivers them", "err", err)
				}
			}
			if err := d.Close(); err != nil {
				return fmt.Errorf("respond: %w", err)
			}
			return nil
		}})
	}
	r := respond.NewResponder(st, s.Planner, ro)
	s.Responder = r
	s.add(&part{name: "responder", run: r.Run, stop: func(context.Context) error {
		if err := r.Close(); err != nil {
			return fmt.Errorf("respond: %w", err)
		}
		return nil
	}})
	if opts.Mode == ModeLive {
		log.Info("respond", "mode", cfg.Respond.Mode, "receivers", len(cfg.Respond.Receivers))
	}
	return nil
}

// add appends p to the lifecycle.
func (s *Service) add(p *part) { s.parts = append(s.parts, p) }

// Add appends a part of the caller's to the lifecycle, after the parts
// added so far (so it stops before them): run, if set, runs from Start
// (or at once, when the service has started) until Close; stop, if set, is
// called by Close before run's context is cancelled, and Close waits for
// run to return. Either may be nil.
func (s *Service) Add(name string, run, stop func(ctx context.Context) error) {
	s.add(&part{name: name, run: run, stop: stop})
	if s.started {
		s.start(s.parts[len(s.parts)-1])
	}
}

// Start runs every part that runs, in order. Each runs until Close stops
// it, on a context of its own that ctx's cancellation does not reach: a
// stop is always Close's, in order, so nothing is cut off mid-flush.
func (s *Service) Start(ctx context.Context) {
	s.started, s.base = true, context.WithoutCancel(ctx)
	for _, p := range s.parts {
		s.start(p)
	}
}

func (s *Service) start(p *part) {
	if p.run == nil || p.done != nil {
		return
	}
	pctx, cancel := context.WithCancel(s.base)
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		p.err = p.run(pctx)
		if p.err != nil && !p.stopping.Load() {
			s.fail(fmt.Errorf("%s: %w", p.name, p.err))
		}
	}()
}

func (s *Service) fail(err error) {
	s.failOnce.Do(func() {
		s.err.Store(&err)
		close(s.failed)
	})
}

// Failed is closed when a part's run returns with an error before Close
// stopped it (Err says which): the caller should then Close.
func (s *Service) Failed() <-chan struct{} { return s.failed }

// Err is the first error a part's run returned on its own, or nil.
func (s *Service) Err() error {
	if e := s.err.Load(); e != nil {
		return *e
	}
	return nil
}

// Close stops the parts in the reverse of the order they were added:
// each part's stop (a flush, a drain), then its run is cancelled and
// waited for. It returns the first error — a stop's, or a run's other than
// its context's cancellation — and stops every part whatever happens.
// ctx bounds the stops that wait for work to finish (the dispatcher's
// drain, a consumer's backlog); with ctx already done, Close aborts: what
// is held is flushed, nothing more is waited for or sent (Abort).
// Close is idempotent.
func (s *Service) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	var first error
	for i := len(s.parts) - 1; i >= 0; i-- {
		p := s.parts[i]
		p.stopping.Store(true)
		if p.stop != nil {
			if err := p.stop(ctx); err != nil && first == nil {
				first = err
			}
		}
		if p.cancel != nil {
			p.cancel()
			<-p.done
			if p.err != nil && !errors.Is(p.err, context.Canceled) && first == nil {
				first = fmt.Errorf("%s: %w", p.name, p.err)
			}
		}
	}
	return first
}

// Abort is Close after a start that failed: parts are stopped and flushed,
// but no backlog is worked off and no due action is delivered.
func (s *Service) Abort() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Close(ctx)
}

// PruneFindings deletes the stored findings older than retention before
// the newest stored finding (event time, so a replay of old logs keeps its
// last retention's worth) and returns how many it deleted.
func PruneFindings(ctx context.Context, st *store.Store, retention time.Duration) (int64, error) {
	latest, err := st.LatestFindingTime(ctx)
	if err != nil || latest.IsZero() || retention <= 0 {
		return 0, err
	}
	return st.PruneFindings(ctx, latest.Add(-retention))
}

// FindingSinks are the service's own finding sinks: the store writer's
// risk index (none without a store).
func (s *Service) FindingSinks() []alert.FindingSink {
	if s.Writer == nil {
		return nil
	}
	fs := FindingStoreSink(s.Writer, s.log)
	if isDrill, inner, kept := s.drill, fs, s.drillFindings; isDrill != nil {
		fs = alert.FindingSinkFunc(func(sc alert.Scored) {
			switch {
			case !isDrill(event.Alert{Entity: sc.Finding.Entity, Findings: []event.Finding{sc.Finding}}):
				inner.Finding(sc)
			case kept != nil:
				kept.Finding(sc)
			}
		})
	}
	return []alert.FindingSink{fs}
}

// KeepDrillsApart tells the service which alerts are drills' (serve's
// drill runner, docs/drills.md): the store's sinks (Sinks, FindingSinks)
// then leave their alerts and findings out — the drill's findings go to
// findings instead (nil: nowhere), and the run keeps them with its
// verdict — and the planner plans their actions as drills
// (respond.Planner.SetDrill). Call it before PipelineOptions.
func (s *Service) KeepDrillsApart(isDrill func(event.Alert) bool, findings alert.FindingSink) {
	s.drill, s.drillFindings = isDrill, findings
	if s.Planner != nil {
		s.Planner.SetDrill(isDrill)
	}
}

// Sinks are the service's own alert sinks, in the order alerts should
// reach them: the store writer, then the responder (nil parts left out).
func (s *Service) Sinks() []alert.Sink {
	var sinks []alert.Sink
	if s.Writer != nil {
		ss := StoreSink(s.Writer, s.log)
		if isDrill, inner := s.drill, ss; isDrill != nil {
			ss = alert.SinkFunc(func(c alert.Change, a event.Alert) {
				if !isDrill(a) {
					inner.Alert(c, a)
				}
			})
		}
		sinks = append(sinks, ss)
	}
	if s.Responder != nil {
		sinks = append(sinks, s.Responder)
	}
	return sinks
}

// PipelineOptions are options for a pipeline feeding this service: the
// configuration, the canary ids, the service's sinks followed by extra,
// its ledger and its suppressions. The caller adds what is its own
// (InputName, Restore, OnCheckpoint, Registerer).
func (s *Service) PipelineOptions(canaryIDs []string, extra ...alert.Sink) PipelineOptions {
	po := PipelineOptions{
		Config:    s.Config,
		CanaryIDs: canaryIDs,
		Sinks:     append(s.Sinks(), extra...),
		// Every scored finding goes to the risk index.
		FindingSinks: s.FindingSinks(),
		Ledger:       s.Ledger,
		Logger:       s.log,
	}
	// Analysts' suppressions take the risk out of findings live only:
	// replay and eval score the stream as it is. (Replay's responder
	// still consults them before planning.)
	if s.Suppressions != nil && s.Mode == ModeLive {
		po.Suppressor = s.Suppressions
	}
	if s.saver != nil {
		po.Restore, po.OnCheckpoint = s.Restore, s.saver.Offer
	}
	po.Mints, po.MintsFrom = s.Mints, s.mintsFrom
	return po
}

// ErrOpenStore matches (errors.Is) a Build error opening the store.
var ErrOpenStore = errors.New("cannot open the store")

type openStoreError struct{ error }

func (e openStoreError) Unwrap() error        { return e.error }
func (e openStoreError) Is(target error) bool { return target == ErrOpenStore }

// ErrConfig matches (errors.Is) a Build error caused by the configuration.
var ErrConfig = errors.New("invalid configuration")

type configError struct{ error }

func (e configError) Unwrap() error        { return e.error }
func (e configError) Is(target error) bool { return target == ErrConfig }

// errNoStore is returned for a part asked of a service built without one.
var errNoStore = errors.New("built without a store")

// Flush returns once every alert handed to the service's sinks before the
// call is stored (the writer's and the responder's queues).
func (s *Service) Flush(ctx context.Context) error {
	if s.Writer == nil {
		return errNoStore
	}
	err := s.Writer.Flush(ctx)
	if s.Responder != nil {
		err = errors.Join(err, s.Responder.Flush(ctx))
	}
	return err
}

// applyMemoryLimit sets the Go runtime's soft memory limit from
// engine.memory_limit, unless the environment's GOMEMLIMIT already set it
// (the operator's word wins) or none is configured.
func applyMemoryLimit(cfg config.Config, log *slog.Logger) error {
	n, err := cfg.Engine.MemoryLimitBytes()
	if err != nil {
		return fmt.Errorf("engine.memory_limit: %w", err)
	}
	if n == 0 {
		return nil
	}
	if env := os.Getenv("GOMEMLIMIT"); env != "" && env != "off" {
		log.Info("memory limit: GOMEMLIMIT from the environment wins over engine.memory_limit", "GOMEMLIMIT", env, "memory_limit", cfg.Engine.MemoryLimit)
		return nil
	}
	debug.SetMemoryLimit(n)
	return nil
}
