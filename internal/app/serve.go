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
	"github.com/haechi-sec/haechi/internal/enrich"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ingest"
	"github.com/haechi-sec/haechi/internal/input"
	"github.com/haechi-sec/haechi/internal/kafka"
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
	if cfg.Kafka.Enabled() && cfg.Detectors.TerminatedIdentity.RosterFile != "" {
		return errors.New("cluster mode: the roster snapshot file is not read; produce it to the input topic (kafka.topic) instead")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The output side — store, audit witness, ledger, response, alert
	// writer, checkpoints — as one lifecycle (Build); serve adds access
	// control, the pipeline and durable ingest on top, so Close stops
	// ingest first and the store last.
	var durable atomic.Uint64 // the ledger's last stored mark (spool offset)
	svc, err := Build(ctx, BuildOptions{Config: cfg, Mode: ModeLive, Logger: log, Registerer: reg,
		OnDurable: func(m uint64) { durable.Store(m) }})
	if err != nil {
		return err
	}
	svc.Start(ctx)
	// A start that fails stops everything at once (the graceful stop
	// below has run Close already when serving ended normally).
	defer func() {
		if cerr := svc.Abort(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	st := svc.Store
	// The spool (opened below, once the pipeline exists) closes after the
	// pipeline and access control, as the last of serve's own parts.
	var ing *ingest.Ingester
	svc.Add("spool", nil, func(context.Context) error {
		if ing == nil {
			return nil
		}
		return ing.Close()
	})
	var authn *auth.Authenticator
	if !opts.InsecureNoAuth {
		authn = auth.New(auth.Options{Store: st, Secure: opts.TLSCert != "", Logger: log})
		// Refused-login summaries are written before the store closes.
		svc.Add("access control", nil, func(context.Context) error { authn.Close(); return nil })
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

	cluster := cfg.Kafka.Enabled()
	if cluster {
		if st.Backend() == "sqlite" {
			log.Warn("cluster mode with the embedded SQLite store: only this one worker can use it; give every worker of the group the same store.dsn (PostgreSQL)")
		}
	}
	logRaised := alert.SinkFunc(func(c alert.Change, a event.Alert) {
		if c == alert.Raised {
			log.Warn("alert raised", "id", a.ID, "severity", a.Severity.String(), "entity", a.Entity.String(), "title", a.Title)
		}
	})
	var (
		p      *Pipeline
		rulesH *rules.Holder
	)
	if cluster {
		// One worker of a Kafka cluster: events come from the topic, alerts
		// go to the store from the alert stage (docs/scale-out.md).
		// GeoIP enrichment, as the single-process pipeline has it; closed
		// once the worker has stopped.
		geo, err := openGeo(cfg, log, reg)
		if err != nil {
			return err
		}
		svc.Add("geoip", nil, func(context.Context) error { return geo.Close() })
		worker, h, err := newClusterWorker(cfg, opts.CanaryIDs, st, svc.Suppressions, []alert.Sink{svc.Responder, hub, logRaised}, geo, log)
		if err != nil {
			return err
		}
		rulesH = h
		// Only a cluster worker ends on its own (an error: topics
		// missing, brokers unreachable): svc.Failed.
		var stopping atomic.Bool
		svc.Add("cluster worker", func(ctx context.Context) error {
			if err := worker.Run(context.WithoutCancel(ctx)); err != nil || stopping.Load() {
				return err
			}
			return errors.New("stopped")
		}, func(context.Context) error { stopping.Store(true); worker.Shutdown(); return nil })
	} else {
		po := svc.PipelineOptions(opts.CanaryIDs, hub, logRaised)
		po.InputName = func(i uint32) string { return "req-" + strconv.FormatUint(uint64(i), 10) }
		po.Registerer = reg
		if p, err = NewPipeline(po); err != nil {
			return err
		}
		// The pipeline runs on its own context: Close closes it explicitly
		// after ingest has stopped, so everything admitted is processed,
		// and the checkpoint saver (stopped after it) still saves the last
		// checkpoint handed over.
		svc.Add("pipeline", func(ctx context.Context) error { return p.Run(context.WithoutCancel(ctx)) },
			func(context.Context) error { p.Close(); return nil })
		rulesH = p.Rules()
	}

	if f := cfg.Detectors.TerminatedIdentity.RosterFile; f != "" && cfg.Detectors.TerminatedIdentity.Enabled && p != nil {
		if err := LoadSnapshot(ctx, p, f, 0, log); err != nil {
			return err
		}
	}

	formats, err := input.New(cfg.InputOptions())
	if err != nil {
		return err
	}
	// Durable ingest: requests go to the spool, the consumer feeds the
	// pipeline from it (first replaying what the spool retains).
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
			CheckpointEvery: checkpointEvery(cfg, svc.Restore),
			RestoredThrough: restoredThrough(svc.Restore, p),
			IdempotencyTTL:  cfg.Ingest.IdempotencyTTL.D(),
			MaxKeysPerScope: cfg.Ingest.IdempotencyMaxKeys,
			Durable:         durable.Load,
			Inputs:          formats,
			Logger:          log,
			Registerer:      reg,
		})
		if err != nil {
			return err
		}
		// At stop the consumer first takes what was acknowledged (it is on
		// disk either way: a restart replays it), within the stop's time,
		// unless it has stopped already.
		consumed := make(chan struct{})
		svc.Add("spool consumer", func(ctx context.Context) error { defer close(consumed); return ing.Run(ctx, p) },
			func(ctx context.Context) error {
				for ing.Pending() > 0 && ctx.Err() == nil {
					select {
					case <-consumed:
						return nil
					case <-time.After(20 * time.Millisecond):
					}
				}
				return nil
			})
		log.Info("spool", "dir", dir, "max_bytes", sc.MaxBytes, "pending", ing.Pending())
		for _, f := range cfg.Inputs.Files {
			t := &ingest.Tailer{File: ingest.TailFile{Path: f.Path, Format: f.Format}, In: ing, Log: log,
				StateDir: filepath.Join(cfg.DataDir, "tail")}
			go t.Run(ctx) // stops as soon as shutdown begins
		}
	} else {
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
		OnApprove:           svc.Dispatcher.Wake,
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
		Regimes:             cfg.Report.Regimes, OnApprove: svc.Dispatcher.Wake, Logger: log})
	if err != nil {
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
			return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
	}
	if opts.InsecureNoAuth {
		if err := checkLoopback(ln.Addr()); err != nil {
			ln.Close()
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
		case <-svc.Failed():
			// A part that ends on its own: a cluster worker (topics
			// missing, brokers unreachable), the spool consumer on a
			// read error.
			serveErr = svc.Err()
			break loop
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
	// Ingest, then the pipeline, the checkpoint saver, the alert writer,
	// the response (containment planned as the last alerts closed is sent
	// within at most 10 s; the next start delivers the rest), access
	// control, the audit witness and the store, in that order.
	if err := svc.Close(shutCtx); err != nil && serveErr == nil {
		serveErr = err
	}
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
func newClusterWorker(cfg config.Config, canaryIDs []string, st *store.Store, sup alert.Suppressor, sinks []alert.Sink, geo *enrich.Geo, log *slog.Logger) (*kafka.Worker, *rules.Holder, error) {
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
		Enrich:          geo.Enrich,
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
