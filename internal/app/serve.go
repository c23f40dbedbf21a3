package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/console"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ingest"
	"github.com/haechi-sec/haechi/internal/input"
	"github.com/haechi-sec/haechi/internal/kafka"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/rules"
	"github.com/haechi-sec/haechi/internal/spool"
	"github.com/haechi-sec/haechi/internal/store"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	Config    config.Config
	CanaryIDs []string
	// Listener to serve on (nil → listen on Config.Listen).
	Listener net.Listener
	// Ready is called with the base URL once the API accepts requests.
	Ready  func(baseURL string)
	Logger *slog.Logger
	// TLSCert and TLSKey (PEM files) serve HTTPS; session cookies are
	// then Secure.
	TLSCert, TLSKey string
	// InsecureNoAuth serves the API and console to anyone without a token.
	// Refused unless the listener is on a loopback address; requests must
	// then name a loopback host and port, and state-changing ones come
	// from the same origin (auth.LoopbackOnly).
	InsecureNoAuth bool
	// Announce receives the admin token created on first start, printed
	// once (nil → os.Stderr).
	Announce io.Writer
}

// checkLoopback refuses --insecure-no-auth on an address others can reach.
func checkLoopback(addr net.Addr) error {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("--insecure-no-auth serves customer-data scope to anyone who connects, so it is only allowed on a loopback address (127.0.0.1, ::1); %s is not one", addr)
	}
	return nil
}

// Serve runs the live service until ctx ends: the pipeline, the store
// writer and the HTTP API. On shutdown it stops accepting requests, lets
// in-flight ones finish, drains the engine, closes every alert window and
// flushes the store before returning.
func Serve(ctx context.Context, opts ServeOptions) (err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return errors.New("TLS needs both --tls-cert and --tls-key")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	auditKey, keyFrom, err := AuditKey(cfg, true)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.StoreTarget(), store.Options{Logger: log, AuditKey: auditKey})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	// The audit witness signs the log's head until every audited write is
	// done: stopped by the deferred call below, which runs before the
	// store closes, so a graceful stop witnesses the final head.
	runWitness, err := startAudit(ctx, cfg, st, auditKey, keyFrom, log)
	if err != nil {
		return err
	}
	if runWitness != nil {
		witnessCtx, stopWitness := context.WithCancel(context.WithoutCancel(ctx))
		witnessDone := make(chan struct{})
		go func() { defer close(witnessDone); runWitness(witnessCtx) }()
		defer func() { stopWitness(); <-witnessDone }()
	}
	var authn *auth.Authenticator
	if !opts.InsecureNoAuth {
		authn = auth.New(auth.Options{Store: st, Secure: opts.TLSCert != "", Logger: log})
		defer authn.Close() // refused-login summaries, before the store closes
		tok, t, err := auth.EnsureAdmin(ctx, st, time.Now())
		if err != nil {
			return fmt.Errorf("access control: %w", err)
		}
		if tok != "" {
			out := opts.Announce
			if out == nil {
				out = os.Stderr
			}
			fmt.Fprintf(out, "\nhaechi: no API token existed, so an admin token was created (%s). It is shown this once — store it now:\n\n    %s\n\n"+
				"Use it as \"Authorization: Bearer <token>\" or to log in to the console; create narrower tokens with\n"+
				"\"haechi tokens create --role ingest|analyst|admin\" and revoke this one with \"haechi tokens revoke %s\".\n\n", t.ID, tok, t.ID)
		}
	}
	hub := console.NewHub()
	w := store.NewWriter(st, store.WriterOptions{Logger: log})
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	writerDone := make(chan error, 1)
	go func() { writerDone <- w.Run(writerCtx) }()

	cluster := cfg.Kafka.Enabled()
	if cluster {
		if st.Backend() == "sqlite" {
			log.Warn("cluster mode with the embedded SQLite store: only this one worker can use it; give every worker of the group the same store.dsn (PostgreSQL)")
		}
		if cfg.Detectors.TerminatedIdentity.RosterFile != "" {
			return errors.New("cluster mode: the roster snapshot file is not read; produce it to the input topic (kafka.topic) instead")
		}
	}
	var durable atomic.Uint64 // the ledger's last stored mark (spool offset)
	var led *ledger.Ledger
	if !cluster { // a cluster's detection partitions run their own ledgers (kafka.Options.Ledger)
		led, err = ledger.Open(ctx, st, ledger.Options{Logger: log, OnDurable: func(m uint64) { durable.Store(m) }})
		if err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
	}
	// Response: alerts → planned actions (outbox, audit) → signed webhooks.
	planner, err := respond.NewPlanner(cfg.Respond)
	if err != nil {
		return fmt.Errorf("respond: %w", err)
	}
	if n, err := planner.RestoreFrom(ctx, st); err != nil {
		return fmt.Errorf("respond: restore rate limits and escalation from the outbox: %w", err)
	} else if n > 0 {
		log.Info("respond: resumed rate limits and block escalation from the outbox", "actions", n)
	}
	dispatcher, err := respond.NewDispatcher(st, cfg.Respond, respond.DispatcherOptions{Logger: log, Lease: cfg.Respond.Lease.D()})
	if err != nil {
		return fmt.Errorf("respond: %w", err)
	}
	suppressions := respond.NewSuppressions(st)
	responder := respond.NewResponder(st, planner, respond.ResponderOptions{OnWritten: dispatcher.Wake, Logger: log,
		Suppressions: suppressions})
	respCtx, stopResp := context.WithCancel(context.WithoutCancel(ctx))
	defer stopResp()
	respDone := make(chan struct{}, 2)
	go func() { _ = responder.Run(respCtx); respDone <- struct{}{} }()
	go func() { _ = dispatcher.Run(respCtx); respDone <- struct{}{} }()
	log.Info("respond", "mode", cfg.Respond.Mode, "receivers", len(cfg.Respond.Receivers))
	// Checkpoints of the detectors' learnt state (baselines, profiles) are
	// taken at spool offsets, so they need the spool.
	var (
		restore *Checkpoint
		saver   *checkpointSaver
	)
	if cfg.Spool.Enabled && cfg.Engine.CheckpointEvery > 0 && !cluster {
		restore = loadCheckpoint(ctx, st, log)
		saver = newCheckpointSaver(st, log, reg, func(ctx context.Context) error {
			return errors.Join(w.Flush(ctx), responder.Flush(ctx))
		})
	}
	onCheckpoint := func(Checkpoint) {}
	if saver != nil {
		onCheckpoint = saver.Offer
	}
	logRaised := alert.SinkFunc(func(c alert.Change, a event.Alert) {
		if c == alert.Raised {
			log.Warn("alert raised", "id", a.ID, "severity", a.Severity.String(), "entity", a.Entity.String(), "title", a.Title)
		}
	})
	var (
		p      *Pipeline
		worker *kafka.Worker
		rulesH *rules.Holder
	)
	pipeDone := make(chan error, 1)
	// closePipe stops admission; pipeDone reports when everything is done.
	closePipe := func() {
		if p != nil {
			p.Close()
		} else {
			worker.Shutdown()
		}
	}
	if cluster {
		// One worker of a Kafka cluster: events come from the topic, alerts
		// go to the store from the alert stage (docs/scale-out.md).
		worker, rulesH, err = newClusterWorker(cfg, opts.CanaryIDs, st, suppressions, []alert.Sink{responder, hub, logRaised}, log)
		if err != nil {
			return err
		}
		go func() { pipeDone <- worker.Run(context.WithoutCancel(ctx)) }()
	} else {
		p, err = NewPipeline(PipelineOptions{
			Restore:      restore,
			OnCheckpoint: onCheckpoint,
			Suppressor:   suppressions,
			Ledger:       led,
			Config:       cfg,
			CanaryIDs:    opts.CanaryIDs,
			Sinks:        []alert.Sink{StoreSink(w, log), responder, hub, logRaised},
			InputName:    func(i uint32) string { return "req-" + strconv.FormatUint(uint64(i), 10) },
			Logger:       log,
			Registerer:   reg,
		})
		if err != nil {
			return err
		}
		// The pipeline runs on its own context: shutdown closes it explicitly
		// after ingest has stopped, so everything admitted is processed.
		saverCtx, stopSaver := context.WithCancel(context.WithoutCancel(ctx))
		saverDone := make(chan struct{})
		if saver != nil {
			go func() { saver.Run(saverCtx); close(saverDone) }()
		} else {
			close(saverDone)
		}
		go func() {
			err := p.Run(context.WithoutCancel(ctx))
			stopSaver() // the last checkpoint handed over is still saved
			<-saverDone
			pipeDone <- err
		}()
		rulesH = p.Rules()
	}

	if f := cfg.Detectors.TerminatedIdentity.RosterFile; f != "" && cfg.Detectors.TerminatedIdentity.Enabled && p != nil {
		if err := LoadSnapshot(ctx, p, f, 0, log); err != nil {
			closePipe()
			<-pipeDone
			return err
		}
	}

	formats, err := input.New(cfg.InputOptions())
	if err != nil {
		closePipe()
		<-pipeDone
		return err
	}
	// Durable ingest: requests go to the spool, the consumer feeds the
	// pipeline from it (first replaying what the spool retains).
	var ing *ingest.Ingester
	consumerDone := make(chan error, 1)
	stopConsumer := func() {}
	if sc := cfg.Spool; sc.Enabled && !cluster {
		dir := sc.Dir
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, "spool")
		}
		ing, err = ingest.Open(ingest.Options{
			Spool: spool.Options{Dir: dir, MaxBytes: sc.MaxBytes, SegmentBytes: sc.SegmentBytes,
				SyncDelay: sc.SyncDelay.D(), Logger: log},
			RetainBytes:     sc.RetainBytes,
			MaxLag:          sc.MaxLag.D(),
			CheckpointEvery: checkpointEvery(cfg, restore),
			RestoredThrough: restoredThrough(restore, p),
			IdempotencyTTL:  cfg.Ingest.IdempotencyTTL.D(),
			MaxKeysPerScope: cfg.Ingest.IdempotencyMaxKeys,
			Durable:         durable.Load,
			Inputs:          formats,
			Logger:          log,
			Registerer:      reg,
		})
		if err != nil {
			closePipe()
			<-pipeDone
			return err
		}
		defer ing.Close()
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stopConsumer = cancel
		defer cancel()
		go func() { consumerDone <- ing.Run(cctx, p) }()
		log.Info("spool", "dir", dir, "max_bytes", sc.MaxBytes, "pending", ing.Pending())
		for _, f := range cfg.Inputs.Files {
			t := &ingest.Tailer{File: ingest.TailFile{Path: f.Path, Format: f.Format}, In: ing, Log: log,
				StateDir: filepath.Join(cfg.DataDir, "tail")}
			go t.Run(ctx) // stops as soon as shutdown begins
		}
	} else {
		close(consumerDone)
		if cluster {
			log.Info("cluster mode: events are consumed from Kafka; the HTTP ingest API refuses them", "topic", cfg.Kafka.Topic)
		} else {
			log.Warn("spool disabled: acknowledged events live only in memory until processed")
		}
	}

	// Rules reload on SIGHUP or when their files change; the previous set
	// stays active when the new one does not load.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloader := &RuleReloader{Config: cfg.Rules, Holder: rulesH, Log: log,
		Audit: func(kind string, detail map[string]any) {
			if err := st.AppendAudit(context.WithoutCancel(ctx), time.Now(), kind, "", detail); err != nil {
				log.Error("audit", "kind", kind, "err", err)
			}
		}}
	reloadCtx, stopReload := context.WithCancel(ctx)
	defer stopReload()
	go reloader.Run(reloadCtx, hup, 5*time.Second)

	var inputs atomic.Uint32
	var lastIngest atomic.Int64 // wall clock of the last ingest request
	apiOpts := api.Options{
		Ingest: func(evs []event.Event) error {
			if p == nil {
				return fmt.Errorf("cluster mode: produce events to Kafka topic %s, not to this API", cfg.Kafka.Topic)
			}
			lastIngest.Store(time.Now().UnixNano())
			err := p.TrySubmit(evs)
			switch {
			case errors.Is(err, engine.ErrFull):
				return api.ErrBusy
			case errors.Is(err, engine.ErrClosed):
				return api.ErrStopping
			}
			return err
		},
		NextInput:           func() uint32 { return inputs.Add(1) },
		Alerts:              st,
		Scope:               st,
		Actions:             st,
		Triage:              st,
		FeedbackSuppression: cfg.Alerts.FalsePositiveSuppression.D(),
		OnApprove:           dispatcher.Wake,
		MaxBodyBytes:        cfg.Ingest.MaxBodyBytes,
		MaxLineBytes:        cfg.Ingest.MaxLineBytes,
		MaxFuture:           cfg.Ingest.MaxFuture.D(),
		Inputs:              formats,
		Gatherer:            reg,
		Registerer:          reg,
		Logger:              log,
		Auth:                authn,
		Audit:               st.AppendAudit,
	}
	if ing != nil {
		apiOpts.Spool = ing.Append
		apiOpts.Health = ing.Health
		apiOpts.Admit = ing.Admit
	}
	apiSrv := api.New(apiOpts)
	cons, err := console.New(console.Options{Store: st, Auth: authn, Hub: hub, Gatherer: reg, DataDir: cfg.DataDir,
		FeedbackSuppression: cfg.Alerts.FalsePositiveSuppression.D(),
		Regimes:             cfg.Report.Regimes, OnApprove: dispatcher.Wake, Logger: log})
	if err != nil {
		closePipe()
		<-pipeDone
		return err
	}
	cons.Register(apiSrv)
	srv := &http.Server{
		Handler:           apiSrv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	ln := opts.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Listen)
		if err != nil {
			closePipe()
			<-pipeDone
			return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
	}
	if opts.InsecureNoAuth {
		if err := checkLoopback(ln.Addr()); err != nil {
			ln.Close()
			closePipe()
			<-pipeDone
			return err
		}
		log.Warn("INSECURE: access control is off (--insecure-no-auth): anyone who can connect to this loopback address reads alerts and customer-data scope")
		// Other sites in the user's browser are not "anyone who can
		// connect": refuse rebound Host names and cross-site posts.
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		srv.Handler = auth.LoopbackOnly(apiSrv, port, opts.TLSCert != "")
	}
	// Live streams end at shutdown, or Shutdown would wait for them.
	srv.RegisterOnShutdown(cons.Close)
	base := "http://" + ln.Addr().String()
	httpDone := make(chan error, 1)
	if opts.TLSCert != "" {
		base = "https://" + ln.Addr().String()
		go func() { httpDone <- srv.ServeTLS(ln, opts.TLSCert, opts.TLSKey) }()
	} else {
		go func() { httpDone <- srv.Serve(ln) }()
	}
	log.Info("haechi serving", "url", base, "data_dir", cfg.DataDir, "store", st.Path())
	if opts.Ready != nil {
		opts.Ready(base)
	}

	// Live event time: while events arrive, they drive the watermark; once
	// ingest has been quiet for a moment, the watermark follows the wall
	// clock (minus the allowed lateness) so windows close and timers fire.
	// Advancing from the wall clock during ingest would break event time
	// for events that are legitimately behind it (a producer catching up,
	// the demo playing a past fortnight): every mint would look expired.
	lateness := cfg.Engine.AllowedLateness.D()
	const quiet = 2 * time.Second
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-httpDone:
			serveErr = fmt.Errorf("http server: %w", err)
			break loop
		case err := <-pipeDone:
			// Only a cluster worker ends on its own (an error: topics
			// missing, brokers unreachable).
			pipeDone = nil
			if err == nil {
				err = errors.New("cluster worker stopped")
			}
			serveErr = err
			break loop
		case err := <-consumerDone:
			if err != nil {
				serveErr = err
				break loop
			}
			consumerDone = nil
		case t := <-tick.C:
			if p == nil {
				continue // cluster mode: the input's watermark drives time
			}
			last := time.Unix(0, lastIngest.Load())
			if ing != nil {
				last = ing.LastSubmit()
				if ing.Pending() > 0 {
					continue // the pipeline is catching up: event time leads
				}
			}
			if t.Sub(last) >= quiet {
				p.Engine.AdvanceTo(t.Add(-lateness).UTC())
			}
		}
	}

	log.Info("shutting down: draining ingest, pipeline and store")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	if ing != nil {
		// Let the consumer take what was acknowledged (it is on disk either
		// way: a restart replays it).
		for ing.Pending() > 0 && shutCtx.Err() == nil && consumerDone != nil {
			time.Sleep(20 * time.Millisecond)
		}
		stopConsumer()
		if consumerDone != nil {
			if err := <-consumerDone; err != nil && serveErr == nil {
				serveErr = err
			}
		}
	}
	if pipeDone != nil {
		closePipe()
		if err := <-pipeDone; err != nil && serveErr == nil {
			serveErr = err
		}
	}
	if err := w.Close(); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("flush store: %w", err)
	}
	if err := responder.Close(); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("respond: %w", err)
	}
	// Containment planned as the last alerts closed is sent now, within
	// the shutdown's time (at most 10 s); what is left is delivered by the
	// next start.
	drainCtx, cancelDrain := context.WithTimeout(shutCtx, 10*time.Second)
	if err := dispatcher.Drain(drainCtx); err != nil {
		log.Warn("respond: stopping before every due action was tried; the next start delivers them", "err", err)
	}
	cancelDrain()
	if err := dispatcher.Close(); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("respond: %w", err)
	}
	stopResp()
	<-respDone
	<-respDone
	stopWriter()
	<-writerDone
	log.Info("stopped")
	return serveErr
}

// StoreSink writes raised, updated and closed alerts through the store's
// batching writer (off the pipeline's hot path).
func StoreSink(w *store.Writer, log *slog.Logger) alert.Sink {
	return alert.SinkFunc(func(c alert.Change, a event.Alert) {
		if err := w.Put(context.Background(), a); err != nil {
			log.Error("store alert", "id", a.ID, "err", err)
		}
	})
}

// LoadSnapshot feeds a roster (or key inventory) snapshot file — contract
// NDJSON — through the pipeline before other input, so the detectors learn
// it by the same code path as streamed roster events. Rejected lines are
// logged; a file that cannot be read is an error.
func LoadSnapshot(ctx context.Context, p *Pipeline, path string, input uint32, log *slog.Logger) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("roster snapshot: %w", err)
	}
	defer f.Close()
	st, err := Feed(ctx, p, f, input, 0, func(le *decode.LineError) {
		log.Warn("roster snapshot: line rejected", "file", path, "line", le.Line, "reason", le.Reason)
	})
	if err != nil {
		return fmt.Errorf("roster snapshot %s: %w", path, err)
	}
	log.Info("roster snapshot loaded", "file", path, "events", st.Events, "rejected", st.Rejected)
	return nil
}

// newClusterWorker builds the Kafka worker of cluster mode: the configured
// detectors and rules (the returned holder reloads them), and the alert
// stage writing to st and telling sinks.
func newClusterWorker(cfg config.Config, canaryIDs []string, st *store.Store, sup alert.Suppressor, sinks []alert.Sink, log *slog.Logger) (*kafka.Worker, *rules.Holder, error) {
	rs, err := LoadRules(cfg.Rules)
	if err != nil {
		return nil, nil, fmt.Errorf("rules: %w", err)
	}
	ReportSkipped(log, rs.Skipped)
	h := rules.NewHolder(rs.Set)
	ao := AlertOptions(cfg)
	ao.Suppressor, ao.Logger = sup, log
	k := cfg.Kafka
	w, err := kafka.New(kafka.Options{
		Brokers: k.Brokers, Topic: k.Topic, Group: k.Group, Prefix: k.Prefix, ID: k.ID,
		Detectors:       func() []engine.Detector { return append(Detectors(cfg, canaryIDs), rules.Detectors(h)...) },
		Lateness:        cfg.Engine.AllowedLateness.D(),
		Store:           st,
		CheckpointEvery: k.CheckpointEvery,
		Alerts:          &ao,
		AlertSinks:      sinks,
		Ledger:          true,
		Logger:          log,
	})
	if err != nil {
		return nil, nil, err
	}
	log.Info("cluster mode", "brokers", k.Brokers, "topic", k.Topic, "group", k.Group, "store", st.Backend())
	return w, h, nil
}
