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
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/console"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/drill"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/enrich"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/extauthz"
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
	// MetricsReady is called with the base URL of metrics_listen once it
	// serves (not called without one).
	MetricsReady func(baseURL string)
	// Version is haechi's version (BuildOptions.Version).
	Version string
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
	// Sinks are told of every alert change too, after the store writer,
	// the response and the console, on the alert stage's goroutine (the
	// contract of alert.Sink: a sink that does slow work hands it off). A
	// benchmark or an embedding program observes alerts as they are
	// raised this way.
	Sinks []alert.Sink
	// Simulated, when set, says the events are simulated and how (the
	// demo's "14 simulated days played in 2m0s"): the console then
	// measures the regulators' clocks in simulated time and says so
	// (console.Options.Simulated).
	Simulated string
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
	cfg.Respond = cfg.RespondConfig() // with drills.receiver
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return errors.New("TLS needs both --tls-cert and --tls-key")
	}
	if cfg.Kafka.Enabled() && cfg.Detectors.TerminatedIdentity.RosterFile != "" {
		return errors.New("cluster mode: the roster snapshot file is not read; produce it to the input topic (kafka.topic) instead")
	}
	s := &server{opts: opts, cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The output side — store, audit witness, ledger, response, alert
	// writer, checkpoints — as one lifecycle (Build); serve adds access
	// control, the pipeline and durable ingest on top, so Close stops
	// ingest first and the store last.
	s.svc, err = Build(ctx, BuildOptions{Config: cfg, Mode: ModeLive, Logger: log, Registerer: s.reg, Version: opts.Version,
		OnDurable: func(m uint64) { s.durable.Store(m) }})
	if err != nil {
		return err
	}
	s.svc.Start(ctx)
	// A start that fails stops everything at once (the graceful stop
	// below has run Close already when serving ended normally).
	defer func() {
		if cerr := s.svc.Abort(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	// The spool (opened below, once the pipeline exists) closes after the
	// pipeline and access control, as the last of serve's own parts.
	s.svc.Add("spool", nil, func(context.Context) error {
		if s.ing == nil {
			return nil
		}
		return s.ing.Close()
	})
	if err := s.accessControl(ctx); err != nil {
		return err
	}
	s.drills()
	if err := s.detection(ctx); err != nil {
		return err
	}
	if err := s.ingest(ctx); err != nil {
		return err
	}

	// Rules reload on SIGHUP or when their files change; the previous set
	// stays active when the new one does not load.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloader := &RuleReloader{Config: cfg.Rules, Holder: s.rules, Log: log,
		Audit: func(kind string, detail map[string]any) {
			if err := s.svc.Store.AppendAudit(context.WithoutCancel(ctx), time.Now(), kind, "", detail); err != nil {
				log.Error("audit", "kind", kind, "err", err)
			}
		}}
	reloadCtx, stopReload := context.WithCancel(ctx)
	defer stopReload()
	go reloader.Run(reloadCtx, hup, 5*time.Second)

	if s.svc.Mints != nil && s.p != nil {
		direct := func(ctx context.Context, evs []event.Event) error {
			return s.p.SubmitFrom(ctx, "verify", time.Now(), evs)
		}
		submit := direct
		if s.ing != nil {
			// Through the spool, as any ingested event: durable before
			// the pipeline sees it, so a crash loses no refusal; when the
			// spool cannot take them, straight to the pipeline.
			submit = func(ctx context.Context, evs []event.Event) error {
				body, err := refusalLines(evs)
				if err == nil {
					_, err = s.ing.Append(ctx, api.Stored{Scope: ingest.VerifyScope, Body: body})
				}
				if err == nil {
					return nil
				}
				log.Warn("inline check: refusals not stored in the spool; submitted to the pipeline directly", "refusals", len(evs), "err", err)
				return direct(ctx, evs)
			}
		}
		s.refused = newRefusals(submit, s.svc.Store.AppendAudit, log)
		// Added before the HTTP server stops (stops run in reverse), so
		// the last refusals are flushed while the pipeline still runs.
		s.svc.Add("inline check refusals", func(ctx context.Context) error { s.refused.Run(ctx); return nil }, nil)
	}
	srv, httpDone, err := s.serveHTTP()
	if err != nil {
		return err
	}
	metricsSrv, metricsDone, err := s.serveMetrics()
	if err != nil {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(shut)
		cancel()
		return err
	}
	if err := s.serveExtAuthz(); err != nil {
		_ = srv.Close()
		if metricsSrv != nil {
			_ = metricsSrv.Close()
		}
		return err
	}
	if s.drill != nil && cfg.Drills.Enabled {
		go s.drill.Schedule(ctx, cfg.Drills.Every.D(), cfg.Drills.Jitter.D())
	}

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
		case err := <-metricsDone:
			serveErr = fmt.Errorf("metrics server: %w", err)
			break loop
		case <-s.svc.Failed():
			// A part that ends on its own: a cluster worker (topics
			// missing, brokers unreachable), the spool consumer on a
			// read error.
			serveErr = s.svc.Err()
			break loop
		case t := <-tick.C:
			s.advanceEventTime(t)
		}
	}

	log.Info("shutting down: draining ingest, pipeline and store")
	if s.drill != nil {
		// Drills in flight are cut short and stored interrupted while
		// the store is open; the API's run requests answer at once.
		s.drill.Stop()
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	// Shutdown neither sees the check streams nor waits for the
	// functions it starts (RegisterOnShutdown): wait for the streams
	// here, so their last refusals reach the flusher before it stops.
	if s.closeStreams != nil {
		streamCtx, cancelStreams := context.WithTimeout(shutCtx, 10*time.Second)
		if err := s.closeStreams(streamCtx); err != nil {
			log.Error("check streams shutdown", "err", err)
		}
		cancelStreams()
	}
	if metricsSrv != nil {
		if err := metricsSrv.Shutdown(shutCtx); err != nil {
			log.Error("metrics shutdown", "err", err)
		}
	}
	// Ingest, then the pipeline, the checkpoint saver, the alert writer,
	// the response (containment planned as the last alerts closed is sent
	// within at most 10 s; the next start delivers the rest), access
	// control, the audit witness and the store, in that order.
	if err := s.svc.Close(shutCtx); err != nil && serveErr == nil {
		serveErr = err
	}
	log.Info("stopped")
	return serveErr
}

// server is one Serve's state, shared by the steps that assemble it.
type server struct {
	opts  ServeOptions
	cfg   config.Config
	log   *slog.Logger
	reg   *prometheus.Registry
	svc   *Service
	authn *auth.Authenticator // nil: --insecure-no-auth
	hub   *console.Hub
	// p is the pipeline (nil in cluster mode); rules the running rule set.
	p     *Pipeline
	rules *rules.Holder
	// ing is durable ingest (nil without the spool or in cluster mode);
	// formats reads request bodies.
	ing     *ingest.Ingester
	formats *input.Inputs
	// drill runs the drills (nil: none, cluster mode or no spool);
	// streams notes the datasets the deployment's feeds carry.
	drill   *drill.Runner
	streams *streamsSeen
	durable atomic.Uint64 // the ledger's last stored mark (spool offset)
	inputs  atomic.Uint32
	// refused turns the inline check's refusals into events and audit
	// entries (nil without a registry or a pipeline).
	refused *refusals
	// closeStreams ends the API's check streams and waits for them
	// (api.Server.CloseStreams); nil before serveHTTP.
	closeStreams func(context.Context) error
}

// accessControl sets up tokens and sessions (not under --insecure-no-auth),
// creating and announcing an admin token on the first start.
func (s *server) accessControl(ctx context.Context) error {
	if s.opts.InsecureNoAuth {
		return nil
	}
	st := s.svc.Store
	// A gateway's verify token is asked about at every check: believed
	// for a second after the store vouched for it, and for 30 s while the
	// store does not answer, as long as its open check streams are kept
	// (docs/verify.md).
	s.authn = auth.New(auth.Options{Store: st, Secure: s.opts.TLSCert != "", Logger: s.log, CacheTTL: time.Second,
		StaleGrace: auth.DefaultStaleGrace})
	// Refused-login summaries are written before the store closes.
	s.svc.Add("access control", nil, func(context.Context) error { s.authn.Close(); return nil })
	tok, t, err := auth.EnsureAdmin(ctx, st, time.Now())
	if err != nil {
		return fmt.Errorf("access control: %w", err)
	}
	if tok != "" {
		out := s.opts.Announce
		if out == nil {
			out = os.Stderr
		}
		fmt.Fprintf(out, "\nhaechi: no API token existed, so an admin token was created (%s). It is shown this once — store it now:\n\n    %s\n\n"+
			"Use it as \"Authorization: Bearer <token>\" or to log in to the console; create narrower tokens with\n"+
			"\"haechi tokens create --role ingest|analyst|admin\" and revoke this one with \"haechi tokens revoke %s\".\n\n", t.ID, tok, t.ID)
	}
	return nil
}

// detection builds the pipeline — or, in cluster mode, the Kafka worker —
// on the service's output side and adds it to the lifecycle, then feeds it
// the roster snapshot file if one is configured.
func (s *server) detection(ctx context.Context) error {
	s.hub = console.NewHub()
	if s.drill != nil {
		s.hub.SetDrill(s.drill.IsDrill)
	}

	cluster := s.cfg.Kafka.Enabled()
	if cluster {
		if s.svc.Store.Backend() == "sqlite" {
			s.log.Warn("cluster mode with the embedded SQLite store: only this one worker can use it; give every worker of the group the same store.dsn (PostgreSQL)")
		}
	}
	logRaised := alert.SinkFunc(func(c alert.Change, a event.Alert) {
		if c == alert.Raised {
			s.log.Warn("alert raised", "id", a.ID, "severity", a.Severity.String(), "entity", a.Entity.String(), "title", a.Title)
		}
	})
	if cluster {
		// One worker of a Kafka cluster: events come from the topic, alerts
		// go to the store from the alert stage (docs/scale-out.md).
		// GeoIP enrichment, as the single-process pipeline has it; closed
		// once the worker has stopped.
		geo, err := openGeo(s.cfg, s.log, s.reg)
		if err != nil {
			return err
		}
		s.svc.Add("geoip", nil, func(context.Context) error { return geo.Close() })
		worker, h, err := newClusterWorker(s.cfg, s.opts.CanaryIDs, s.svc.Store, s.svc.Suppressions, append([]alert.Sink{s.svc.Responder, s.hub, logRaised}, s.opts.Sinks...), geo, s.log)
		if err != nil {
			return err
		}
		s.rules = h
		// Only a cluster worker ends on its own (an error: topics
		// missing, brokers unreachable): Service.Failed.
		var stopping atomic.Bool
		s.svc.Add("cluster worker", func(ctx context.Context) error {
			if err := worker.Run(context.WithoutCancel(ctx)); err != nil || stopping.Load() {
				return err
			}
			return errors.New("stopped")
		}, func(context.Context) error { stopping.Store(true); worker.Shutdown(); return nil })
	} else {
		sinks := append([]alert.Sink{s.hub, logRaised}, s.opts.Sinks...)
		if s.drill != nil {
			sinks = append(sinks, s.drill)
		}
		po := s.svc.PipelineOptions(s.opts.CanaryIDs, sinks...)
		po.InputName = func(i uint32) string { return "req-" + strconv.FormatUint(uint64(i), 10) }
		po.Registerer = s.reg
		p, err := NewPipeline(po)
		if err != nil {
			return err
		}
		s.p = p
		// The pipeline runs on its own context: Close closes it explicitly
		// after ingest has stopped, so everything admitted is processed,
		// and the checkpoint saver (stopped after it) still saves the last
		// checkpoint handed over.
		s.svc.Add("pipeline", func(ctx context.Context) error { return s.p.Run(context.WithoutCancel(ctx)) },
			func(context.Context) error { s.p.Close(); return nil })
		s.rules = s.p.Rules()
	}

	if f := s.cfg.Detectors.TerminatedIdentity.RosterFile; f != "" && s.cfg.Detectors.TerminatedIdentity.Enabled && s.p != nil {
		if err := LoadSnapshot(ctx, s.p, f, 0, s.log); err != nil {
			return err
		}
	}
	return nil
}

// ingest opens durable ingest — the spool, its consumer feeding the
// pipeline (first replaying what the spool retains) and the file tailers —
// unless the spool is off or events come from Kafka.
func (s *server) ingest(ctx context.Context) error {
	formats, err := input.New(s.cfg.InputOptions())
	if err != nil {
		return err
	}
	s.formats = formats
	cluster := s.cfg.Kafka.Enabled()
	// Durable ingest: requests go to the spool, the consumer feeds the
	// pipeline from it (first replaying what the spool retains).
	if sc := s.cfg.Spool; sc.Enabled && !cluster {
		dir := sc.Dir
		if dir == "" {
			dir = filepath.Join(s.cfg.DataDir, "spool")
		}
		s.ing, err = ingest.Open(ingest.Options{
			Spool: spool.Options{Dir: dir, MaxBytes: sc.MaxBytes, SegmentBytes: sc.SegmentBytes,
				SyncDelay: sc.SyncDelay.D(), Logger: s.log},
			RetainBytes:     sc.RetainBytes,
			MaxLag:          sc.MaxLag.D(),
			CheckpointEvery: checkpointEvery(s.cfg, s.svc.Restore),
			RestoredThrough: restoredThrough(s.svc.Restore, s.p),
			IdempotencyTTL:  s.cfg.Ingest.IdempotencyTTL.D(),
			MaxKeysPerScope: s.cfg.Ingest.IdempotencyMaxKeys,
			Durable:         s.durable.Load,
			Inputs:          s.formats,
			Logger:          s.log,
			Registerer:      s.reg,
		})
		if err != nil {
			return err
		}
		// At stop the consumer first takes what was acknowledged (it is on
		// disk either way: a restart replays it), within the stop's time,
		// unless it has stopped already.
		consumed := make(chan struct{})
		var feed ingest.Pipeline = s.p
		if s.streams != nil {
			s.streams.Pipeline = s.p
			feed = s.streams
		}
		s.svc.Add("spool consumer", func(ctx context.Context) error { defer close(consumed); return s.ing.Run(ctx, feed) },
			func(ctx context.Context) error {
				for s.ing.Pending() > 0 && ctx.Err() == nil {
					select {
					case <-consumed:
						return nil
					case <-time.After(20 * time.Millisecond):
					}
				}
				return nil
			})
		s.log.Info("spool", "dir", dir, "max_bytes", sc.MaxBytes, "pending", s.ing.Pending())
		for _, f := range s.cfg.Inputs.Files {
			t := &ingest.Tailer{File: ingest.TailFile{Path: f.Path, Format: f.Format}, In: s.ing, Log: s.log,
				StateDir: filepath.Join(s.cfg.DataDir, "tail")}
			go t.Run(ctx) // stops as soon as shutdown begins
		}
	} else {
		if cluster {
			s.log.Info("cluster mode: events are consumed from Kafka; the HTTP ingest API refuses them", "topic", s.cfg.Kafka.Topic)
		} else {
			s.log.Warn("spool disabled: acknowledged events live only in memory until processed")
		}
	}
	return nil
}

// serveHTTP starts the API and the console on the configured listener and
// says where (ServeOptions.Ready); httpDone receives the server's end.
func (s *server) serveHTTP() (srv *http.Server, httpDone chan error, err error) {
	apiOpts := api.Options{
		Ingest: func(evs []event.Event) error {
			if s.p == nil {
				return fmt.Errorf("cluster mode: produce events to Kafka topic %s, not to this API", s.cfg.Kafka.Topic)
			}
			// Without the spool the caller's token is not known here: one
			// origin for every request.
			err := s.p.TrySubmit("http", evs)
			switch {
			case errors.Is(err, engine.ErrFull):
				return api.ErrBusy
			case errors.Is(err, engine.ErrClosed):
				return api.ErrStopping
			}
			return err
		},
		NextInput:           func() uint32 { return s.inputs.Add(1) },
		Alerts:              s.svc.Store,
		Scope:               s.svc.Store,
		Actions:             s.svc.Store,
		Triage:              s.svc.Store,
		Incidents:           s.svc.Store,
		Findings:            s.svc.Store,
		FeedbackSuppression: s.cfg.Alerts.FalsePositiveSuppression.D(),
		OnApprove:           s.svc.Dispatcher.Wake,
		MaxBodyBytes:        s.cfg.Ingest.MaxBodyBytes,
		MaxLineBytes:        s.cfg.Ingest.MaxLineBytes,
		MaxFuture:           s.cfg.Ingest.MaxFuture.D(),
		Inputs:              s.formats,
		Gatherer:            s.reg,
		Registerer:          s.reg,
		Logger:              s.log,
		Auth:                s.authn,
		Audit:               s.svc.Store.AppendAudit,
	}
	if reg := s.svc.Mints; reg != nil {
		apiOpts.Verify = api.VerifyOptions{Registry: reg, Rate: s.cfg.Verify.Rate, Burst: s.cfg.Verify.Burst, IngestMayMint: s.cfg.Verify.IngestMayMint}
		if s.p != nil {
			apiOpts.Verify.Locate = s.p.Locate
		}
		if s.refused != nil {
			apiOpts.Verify.OnRefuse = s.refused.Record
		}
	}
	if s.ing != nil {
		apiOpts.Spool = s.ing.Append
		apiOpts.Health = s.ing.Health
		apiOpts.Admit = s.ing.Admit
	}
	apiSrv := api.New(apiOpts)
	cons, err := console.New(console.Options{Store: s.svc.Store, Auth: s.authn, Hub: s.hub, Gatherer: s.reg, DataDir: s.cfg.DataDir,
		FeedbackSuppression: s.cfg.Alerts.FalsePositiveSuppression.D(),
		Regimes:             s.cfg.Report.Regimes, OnApprove: s.svc.Dispatcher.Wake, Logger: s.log, Simulated: s.opts.Simulated,
		Drills: s.drillStatuses(), DrillFindings: s.drillFindings()})
	if err != nil {
		return nil, nil, err
	}
	cons.Register(apiSrv)
	s.registerDrills(apiSrv)
	srv = &http.Server{
		Handler:           apiSrv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	ln := s.opts.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
		}
	}
	if s.opts.InsecureNoAuth {
		if err := checkLoopback(ln.Addr()); err != nil {
			ln.Close()
			return nil, nil, err
		}
		s.log.Warn("INSECURE: access control is off (--insecure-no-auth): anyone who can connect to this loopback address reads alerts and customer-data scope")
		// Other sites in the user's browser are not "anyone who can
		// connect": refuse rebound Host names and cross-site posts.
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		srv.Handler = auth.LoopbackOnly(apiSrv, port, s.opts.TLSCert != "")
	}
	// Live streams end at shutdown, or Shutdown would wait for them.
	srv.RegisterOnShutdown(cons.Close)
	// Check streams are upgraded connections, which Shutdown does not
	// see: they answer the checks they have read and close. Shutdown
	// does not wait for this either: the shutdown waits for them
	// (s.closeStreams) before it stops the refusals' flusher, so a
	// refusal a stream answers last is still audited.
	s.closeStreams = apiSrv.CloseStreams
	srv.RegisterOnShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := apiSrv.CloseStreams(ctx); err != nil {
			s.log.Warn("shutdown", "err", err)
		}
	})
	base := "http://" + ln.Addr().String()
	httpDone = make(chan error, 1)
	if s.opts.TLSCert != "" {
		base = "https://" + ln.Addr().String()
		go func() { httpDone <- srv.ServeTLS(ln, s.opts.TLSCert, s.opts.TLSKey) }()
	} else {
		go func() { httpDone <- srv.Serve(ln) }()
	}
	s.log.Info("haechi serving", "url", base, "data_dir", s.cfg.DataDir, "store", s.svc.Store.Path())
	if s.opts.Ready != nil {
		s.opts.Ready(base)
	}
	return srv, httpDone, nil
}

// serveMetrics starts the scrapers' listener (metrics_listen): GET
// /metrics only, without a token. It returns a nil server and a nil
// channel (never ready) when none is configured.
func (s *server) serveMetrics() (*http.Server, chan error, error) {
	if s.cfg.MetricsListen == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics_listen on %s: %w", s.cfg.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	s.log.Info("metrics for scrapers, without a token", "url", "http://"+ln.Addr().String()+"/metrics")
	if s.opts.MetricsReady != nil {
		s.opts.MetricsReady("http://" + ln.Addr().String())
	}
	return srv, done, nil
}

// advanceEventTime is serve's live event time. Events drive it, each
// origin (ingest token, tailed file) its own — see package engine. The wall
// clock only moves the engine's arrival clock (engine.Engine.Tick), and
// only while ingest is caught up — every request accepted so far has been
// handed to the pipeline — so an origin whose requests still wait in the
// spool never looks idle. Origins that have sent nothing for the idleness
// stop holding the others back and, once none is active, advance with the
// wall clock, each at its own distance to it (a producer catching up keeps
// its pace); before the first event nothing moves, so a backlog posted to a
// fresh server is not late. In cluster mode the input's watermark drives
// time.
func (s *server) advanceEventTime(t time.Time) {
	if s.p == nil || (s.ing != nil && s.ing.Pending() > 0) {
		return
	}
	s.p.Engine.Tick(t)
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

// FindingStoreSink is a finding sink that queues every scored finding on
// w for the store's risk index.
func FindingStoreSink(w *store.Writer, log *slog.Logger) alert.FindingSink {
	return alert.FindingSinkFunc(func(sc alert.Scored) {
		if err := w.PutFinding(context.Background(), ScoredFinding(sc)); err != nil {
			log.Error("store finding", "detector", sc.Finding.Detector, "entity", sc.Finding.Entity.String(), "err", err)
		}
	})
}

// ScoredFinding is sc as the store keeps it (with its FindingID).
func ScoredFinding(sc alert.Scored) store.ScoredFinding {
	sf := store.ScoredFinding{Finding: sc.Finding, Risk: sc.Risk, Threshold: sc.Threshold, Alert: sc.Alert, Suppressed: sc.Suppressed}
	sf.ID = store.FindingID(&sf.Finding)
	return sf
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
		Idleness:        cfg.Engine.Idleness.D(),
		MaxOriginLag:    cfg.Engine.MaxOriginLag.D(),
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

// serveExtAuthz serves the Envoy ext_authz gRPC service on
// verify.grpc_listen, when set and the mint registry exists.
func (s *server) serveExtAuthz() error {
	addr := s.cfg.Verify.GRPCListen
	if addr == "" || s.svc.Mints == nil {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("verify.grpc_listen: %w", err)
	}
	g := grpc.NewServer()
	eo := extauthz.Options{Registry: s.svc.Mints, Rate: s.cfg.Verify.Rate, Burst: s.cfg.Verify.Burst, ExposeVerdict: s.cfg.Verify.ExposeVerdict}
	if s.p != nil {
		eo.Locate = s.p.Locate
	}
	if s.refused != nil {
		eo.OnRefuse = s.refused.Record
	}
	extauthz.New(eo).Register(g)
	s.log.Info("envoy ext_authz: serving envoy.service.auth.v3.Authorization", "addr", l.Addr().String())
	s.svc.Add("ext_authz", func(context.Context) error { return g.Serve(l) }, func(ctx context.Context) error {
		done := make(chan struct{})
		go func() { g.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			g.Stop()
		}
		return nil
	})
	return nil
}
