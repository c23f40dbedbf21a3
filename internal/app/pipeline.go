// Package app is the composition root: it builds haechi's pipeline —
// engine, detectors, alert stage and the sinks alerts go to — from
// configuration, and the output side every entry point shares (Build: the
// store, ledger, response, alert writer and checkpoints, for a Mode), and
// owns their lifecycle. Stages import each other only in the direction
// internal/layout's test allows; app wires them, and only cli, demo and
// eval import app. Replay, eval, serve and demo all run this one pipeline
// on this one output side.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/clock"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/behaviour"
	"github.com/haechi-sec/haechi/internal/detect/binding"
	"github.com/haechi-sec/haechi/internal/detect/canary"
	"github.com/haechi-sec/haechi/internal/detect/cloudcred"
	"github.com/haechi-sec/haechi/internal/detect/credential"
	"github.com/haechi-sec/haechi/internal/detect/fanout"
	"github.com/haechi-sec/haechi/internal/detect/geo"
	"github.com/haechi-sec/haechi/internal/detect/keyposture"
	"github.com/haechi-sec/haechi/internal/detect/lifecycle"
	"github.com/haechi-sec/haechi/internal/detect/offhours"
	"github.com/haechi-sec/haechi/internal/detect/peerroute"
	"github.com/haechi-sec/haechi/internal/detect/privileged"
	"github.com/haechi-sec/haechi/internal/detect/scripted"
	"github.com/haechi-sec/haechi/internal/detect/stuffing"
	"github.com/haechi-sec/haechi/internal/detect/terminated"
	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/detect/volume"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/enrich"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/rules"
)

// PipelineOptions configure NewPipeline.
type PipelineOptions struct {
	Config config.Config
	// CanaryIDs are the canary record ids (config plus flags, merged by the
	// caller).
	CanaryIDs []string
	// Sinks receive alert changes on the pipeline's alert goroutine.
	Sinks []alert.Sink
	// FindingSinks hear every finding the alert stage scores, on the same
	// goroutine (alert.Options.FindingSinks).
	FindingSinks []alert.FindingSink
	// InputName names an input index for evidence references.
	InputName func(uint32) string
	// Ledger, if set, records which records every principal, key, source,
	// network and country touched; Run runs and closes it.
	Ledger *ledger.Ledger
	// LedgerOnly runs no detectors and no rules, only the ledger (eval's
	// second pass, which records what the stream exposed with the response
	// in force); it needs Ledger.
	LedgerOnly bool
	// Rules holds the running rule set (nil → NewPipeline loads the
	// configured rules; a load error is returned).
	Rules *rules.Holder
	// Suppressor, if set, tells the alert stage which findings analysts
	// have suppressed (they add no risk).
	Suppressor alert.Suppressor
	// Restore is a checkpoint to start the detectors from (nil → cold).
	// Its shard count must equal the engine's; otherwise it is ignored
	// (logged) and the detectors start cold.
	Restore *Checkpoint
	// OnCheckpoint receives each checkpoint assembled from the shards'
	// answers to Engine.Checkpoint, on the pipeline's output goroutine; it
	// must hand slow work off.
	OnCheckpoint func(Checkpoint)
	// Mints, if set, is the mint registry: it observes every admitted
	// batch (after enrichment, in admission order) and its snapshot
	// travels with each checkpoint (Checkpoint.Mints).
	Mints *mint.Registry
	// MintsFrom, if set, says whether the auth.token mints and the
	// keys.inventory events of batches of origin (SubmitFrom) may be
	// observed by Mints; the others' are not. The engine gets every batch
	// whole either way: detection sees the events. nil: every origin's
	// are.
	MintsFrom func(origin string) bool
	Clock     clock.Clock
	// Logger (nil → discard) and Registerer (nil → no metrics).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Pipeline is enrich → engine → detectors → alert stage → sinks.
type Pipeline struct {
	Engine *engine.Engine
	alerts *alert.Stage
	geo    *enrich.Geo
	ledger *ledger.Ledger
	rules  *rules.Holder
	log    *slog.Logger
	// batches recycles event slices the engine has finished with.
	batches sync.Pool

	mu       sync.Mutex
	findings int
	raised   int

	onCheckpoint func(Checkpoint)
	pending      *Checkpoint // being assembled from the shards' outputs
	answered     int         // shards that have answered pending

	mints     *mint.Registry
	mintsFrom func(origin string) bool
	// mintSnaps holds the registry's snapshot taken at each mark asked for
	// (Checkpoint) until collect attaches it; guarded by mu.
	mintSnaps map[uint64][]byte
}

// Checkpoint is the learnt state of the detectors that implement
// engine.Snapshotter, as of a mark (the spool offset of the last record
// handed to the engine before it): per detector, one snapshot per shard.
type Checkpoint struct {
	Mark   uint64
	Shards int
	Parts  map[string][][]byte
	// Alerts is the alert stage's state at the same point: open alerts
	// and every entity's risk (alert.Stage.Snapshot).
	Alerts []byte
	// Mints is the mint registry's snapshot at the same point (nil: no
	// registry); stored in its own row (mint.Registry.Snapshot).
	Mints []byte
}

// Size is the checkpoint's size in bytes.
func (c *Checkpoint) Size() int {
	n := 0
	for _, ps := range c.Parts {
		for _, p := range ps {
			n += len(p)
		}
	}
	return n
}

// collect folds a shard's snapshot into the checkpoint being assembled
// and hands the checkpoint on once every shard has answered.
func (p *Pipeline) collect(out engine.Output) {
	s := out.Snapshot
	if p.pending == nil || p.pending.Mark != s.Mark {
		p.pending = &Checkpoint{Mark: s.Mark, Shards: out.Shards, Parts: map[string][][]byte{}}
		p.answered = 0
	}
	p.answered++
	for _, part := range s.Parts {
		ps := p.pending.Parts[part.Detector]
		if ps == nil {
			ps = make([][]byte, out.Shards)
			p.pending.Parts[part.Detector] = ps
		}
		ps[out.Shard] = part.Data
	}
	if p.answered < out.Shards {
		return // a shard has not answered yet
	}
	// The engine's outputs are merged round-robin and every shard answers
	// the checkpoint at the same message, so the shards' answers arrive
	// together: the alert stage has now seen exactly the findings of the
	// events before the mark.
	b, err := p.alerts.Snapshot()
	if err != nil {
		p.log.Error("checkpoint: alert stage", "err", err)
		p.pending = nil
		return
	}
	p.pending.Alerts = b
	p.mu.Lock()
	p.pending.Mints = p.mintSnaps[p.pending.Mark]
	for m := range p.mintSnaps {
		if m <= p.pending.Mark {
			delete(p.mintSnaps, m)
		}
	}
	p.mu.Unlock()
	cp := *p.pending
	p.pending = nil
	if p.onCheckpoint != nil {
		p.onCheckpoint(cp)
	}
}

// Detectors builds the explicit, ordered list of detectors the
// configuration enables. Adding a detector means adding it here.
func Detectors(cfg config.Config, canaryIDs []string) []engine.Detector {
	var ds []engine.Detector
	if cfg.Detectors.TerminatedIdentity.Enabled {
		pfx, asns := corporateNetworks(cfg)
		ds = append(ds, terminated.New(terminated.Options{Grace: cfg.Detectors.TerminatedIdentity.Grace.D(), CorporatePrefixes: pfx, CorporateASNs: asns}))
	}
	if cfg.Detectors.Canary.Enabled && len(canaryIDs) > 0 {
		ds = append(ds, canary.New(canaryIDs))
	}
	if tp := cfg.Detectors.TokenProvenance; tp.Enabled {
		ds = append(ds, token.New(token.Options{
			MaxLifetime: tp.MaxLifetime.D(),
			ClockSkew:   tp.ClockSkew.D(),
			Lateness:    cfg.Engine.AllowedLateness.D(),
			MintSkew:    tp.MintSkew.D(),
		}))
	}
	if tb := cfg.Detectors.TokenBinding; tb.Enabled {
		ds = append(ds, binding.New(binding.Options{
			HostingMarkers: cfg.Detectors.PrincipalGeo.HostingMarkers,
			MaxLifetime:    cfg.Detectors.TokenProvenance.MaxLifetime.D(),
			ClockSkew:      cfg.Detectors.TokenProvenance.ClockSkew.D(),
			SwitchWindow:   tb.SwitchWindow.D(),
			SwitchCount:    tb.SwitchCount,
		}))
	}
	if kp := cfg.Detectors.KeyPosture; kp.Enabled {
		ds = append(ds, keyposture.New(keyposture.Options{RotationAge: kp.RotationAge.D(), Reraise: kp.Reraise.D()}))
	}
	if sc := cfg.Detectors.ScriptedClient; sc.Enabled && len(sc.UserAgents) > 0 {
		ds = append(ds, scripted.New(scripted.Options{UserAgents: sc.UserAgents}))
	}
	if oh := cfg.Detectors.OffHours; oh.Enabled {
		ds = append(ds, offhours.New(offhours.Options{MaxShare: oh.MaxShare}))
	}
	if pr := cfg.Detectors.PeerRoute; pr.Enabled {
		ds = append(ds, peerroute.New(peerroute.Options{MaxShare: pr.MaxShare, MinPeers: pr.MinPeers, OwnDays: pr.OwnDays}))
	}
	if b := cfg.Detectors.Behaviour; b.Enabled {
		pfx, asns := corporateNetworks(cfg)
		ds = append(ds, behaviour.New(behaviour.Options{Model: b.Model, Factor: b.Factor, LongFactor: b.LongFactor, LongFloor: b.LongFloor,
			HalfLifeInDays: b.HalfLife.D().Hours() / 24, CorporatePrefixes: pfx, CorporateASNs: asns}))
	}
	if rv := cfg.Detectors.RecordVolume; rv.Enabled {
		ds = append(ds, volume.New(volume.Options{Window: rv.Window.D(), Floor: rv.Floor, Factor: rv.Factor, EnumFloor: rv.EnumFloor}))
	}
	if il := cfg.Detectors.IdentityLifecycle; il.Enabled {
		ds = append(ds, lifecycle.New(lifecycle.Options{Dormancy: il.Dormancy.D()}))
	}
	if pi := cfg.Detectors.PrivilegedIdentity; pi.Enabled {
		ds = append(ds, privileged.New(privilegedOptions(pi)))
	}
	if cn := cfg.Detectors.CredentialNetwork; cn.Enabled {
		ds = append(ds, credential.New(credential.Options{Idle: cn.Idle.D()}))
	}
	if cc := cfg.Detectors.CloudCredential; cc.Enabled {
		// NewPipeline has refused a ranges file that does not load; one
		// that stopped loading since leaves the AS numbers to judge.
		ranges, _ := CloudRanges(cfg)
		asns := make([]uint32, 0, len(cc.ProviderASNs))
		for _, a := range cc.ProviderASNs {
			asns = append(asns, uint32(a)) // #nosec G115 -- Validate keeps AS numbers in 1..2³²-1
		}
		ds = append(ds, cloudcred.New(cloudcred.Options{Ranges: ranges, ProviderASNs: asns, Idle: cc.Idle.D()}))
	}
	if pg := cfg.Detectors.PrincipalGeo; pg.Enabled {
		ds = append(ds, geo.New(geo.Options{
			HostingMarkers: pg.HostingMarkers,
			MaxSpeed:       pg.MaxSpeedKmh,
			LocationError:  noneIsNegative(pg.LocationErrorKm),
			MinTravel:      pg.MinTravelKm,
		}))
	}
	if sf := cfg.Detectors.SourceFanout; sf.Enabled {
		ds = append(ds, fanout.New(fanout.Options{
			Window: sf.Window.D(), Floor: sf.Floor, Factor: sf.Factor, FailFloor: sf.FailFloor,
			NetFloor: sf.NetFloor, Warmup: sf.Warmup.D(),
		}))
	}
	if lc := cfg.Detectors.LoginCampaign; lc.Enabled {
		ds = append(ds, stuffing.New(stuffing.Options{
			Window: lc.Window.D(), Recovery: lc.Recovery.D(), Floor: lc.Floor, Factor: lc.Factor,
			MinSources: lc.MinSources, Warmup: lc.Warmup.D(),
			HostingMarkers: cfg.Detectors.PrincipalGeo.HostingMarkers,
		}))
	}
	return ds
}

// CloudRanges loads the provider ranges of the cloud_credential detector:
// the configured file, or the copy embedded in haechi when none is named.
func CloudRanges(cfg config.Config) (*cloudcred.Ranges, error) {
	if p := cfg.Detectors.CloudCredential.ProviderRanges; p != "" {
		return cloudcred.LoadRanges(p)
	}
	return cloudcred.DefaultRanges()
}

// AlertOptions are the alert stage's options from the configuration
// (without suppressor, sinks, logger and metrics).
func AlertOptions(cfg config.Config) alert.Options {
	return alert.Options{
		Window:        cfg.Alerts.Window.D(),
		MaxSpan:       cfg.Alerts.MaxSpan.D(),
		Lateness:      cfg.Engine.AllowedLateness.D(),
		RiskThreshold: cfg.Alerts.RiskThreshold,
		RiskHalfLife:  cfg.Alerts.RiskHalfLife.D(),
		RepeatCap:     cfg.Alerts.RepeatCap,
		// Entity criticality: findings about privileged principals.
		PrivilegedMultiplier: cfg.Alerts.PrivilegedMultiplier,
		Ordered:              cfg.Alerts.Ordered,
	}
}

// privilegedOptions are the privileged_identity detector's options from a
// validated configuration (a bad time zone, clock or day cannot reach
// here; should one, the detector's default stands).
func privilegedOptions(pi config.PrivilegedIdentity) privileged.Options {
	o := privileged.Options{
		Roles: pi.Roles, SensitiveActions: pi.SensitiveActions,
		Idle: pi.Idle.D(), FirstAfter: pi.FirstAfter.D(),
		ExportFloor: pi.ExportFloor, ExportFactor: pi.ExportFactor,
	}
	if pi.TimeZone == config.TimeZoneAuto {
		return o // working hours learnt from the roles' activity
	}
	if loc, err := time.LoadLocation(pi.TimeZone); err == nil {
		o.Location = loc
	}
	start, err1 := config.WorkClock(pi.WorkStart)
	end, err2 := config.WorkClock(pi.WorkEnd)
	if err1 == nil && err2 == nil {
		o.WorkStart, o.WorkEnd = start, end
	}
	for _, w := range pi.WorkDays {
		if d, err := config.Weekday(w); err == nil {
			o.WorkDays = append(o.WorkDays, d)
		}
	}
	return o
}

// noneIsNegative maps a configured 0 ("no allowance") to the negative
// value detector options use for it (their 0 means "the default").
func noneIsNegative(v float64) float64 {
	if v == 0 {
		return -1
	}
	return v
}

// NewPipeline builds the pipeline; Run starts it. It opens the GeoIP
// databases the configuration names (Run closes them).
func NewPipeline(opts PipelineOptions) (*Pipeline, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	if cfg.Detectors.CloudCredential.Enabled && !opts.LedgerOnly {
		r, err := CloudRanges(cfg)
		if err != nil {
			return nil, fmt.Errorf("detectors.cloud_credential.provider_ranges: %w", err)
		}
		opts.Logger.Debug("cloud_credential: provider ranges", "source", r.Source(), "prefixes", r.Len())
	}
	geo, err := openGeo(cfg, opts.Logger, opts.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{geo: geo, log: opts.Logger}
	p.batches.New = func() any { return make([]event.Event, 0, batchSize) }
	if opts.Rules == nil {
		rs, err := LoadRules(cfg.Rules)
		if err != nil {
			geo.Close()
			return nil, fmt.Errorf("rules: %w", err)
		}
		ReportSkipped(opts.Logger, rs.Skipped)
		opts.Rules = rules.NewHolder(rs.Set)
	}
	p.rules = opts.Rules
	var dets []engine.Detector
	if !opts.LedgerOnly {
		dets = Detectors(cfg, opts.CanaryIDs)
		if opts.Registerer != nil {
			opts.Registerer.MustRegister(newRuleCollector(opts.Rules))
		}
		// Always present, so a reload can add rules to an empty set.
		dets = append(dets, rules.Detectors(opts.Rules)...)
		if n := len(opts.Rules.Load().Rules); n > 0 {
			opts.Logger.Info("rules loaded", "rules", n)
		}
	} else if opts.Ledger == nil {
		geo.Close()
		return nil, errors.New("pipeline: LedgerOnly without a ledger")
	}
	if opts.Ledger != nil {
		dets = append(dets, opts.Ledger.Detectors()...)
	}
	p.ledger = opts.Ledger
	var (
		restore       map[string][][]byte
		restoreAlerts []byte
	)
	if cp := opts.Restore; cp != nil {
		shards := cfg.Engine.Shards
		if shards <= 0 {
			shards = runtime.GOMAXPROCS(0)
		}
		if cp.Shards == shards {
			restore = cp.Parts
			opts.Logger.Info("detectors: starting from the checkpoint", "mark", cp.Mark, "bytes", cp.Size())
			restoreAlerts = cp.Alerts
		} else {
			opts.Logger.Warn("detectors: the checkpoint was taken with another shard count; starting cold", "checkpoint_shards", cp.Shards, "shards", shards)
		}
	}
	p.onCheckpoint = opts.OnCheckpoint
	p.mints, p.mintsFrom, p.mintSnaps = opts.Mints, opts.MintsFrom, map[uint64][]byte{}
	eng, err := engine.New(engine.Options{
		Restore: restore,
		Release: func(evs []event.Event) {
			if cap(evs) == batchSize {
				clear(evs) // drop references before the slice waits in the pool
				//lint:ignore SA6002 batches travel by value (NewBatch, Submit, the engine's Release), so a pool of *[]event.Event would allocate the same slice header here; one per 1,024 events
				p.batches.Put(evs[:0])
			}
		},
		Detectors:    dets,
		Shards:       cfg.Engine.Shards,
		QueueSize:    cfg.Engine.QueueSize,
		Lateness:     cfg.Engine.AllowedLateness.D(),
		Idleness:     cfg.Engine.Idleness.D(),
		MaxOriginLag: cfg.Engine.MaxOriginLag.D(),
		InputName:    opts.InputName,
		Clock:        opts.Clock,
		Logger:       opts.Logger,
		Registerer:   opts.Registerer,
	})
	if err != nil {
		geo.Close()
		return nil, err
	}
	ao := AlertOptions(cfg)
	ao.Suppressor, ao.Sinks, ao.Logger, ao.Registerer = opts.Suppressor, opts.Sinks, opts.Logger, opts.Registerer
	ao.FindingSinks = opts.FindingSinks
	st, err := alert.New(ao)
	if err != nil {
		geo.Close()
		return nil, err
	}
	if restoreAlerts != nil {
		if err := st.Restore(restoreAlerts); err != nil {
			// The detectors resume, the risk they had added up does not.
			opts.Logger.Error("checkpoint: the alert stage starts empty", "err", err)
		}
	}
	p.Engine, p.alerts = eng, st
	return p, nil
}

// openGeo opens the configured GeoIP databases (none configured: a Geo
// that enriches nothing), saying what detectors will rely on.
func openGeo(cfg config.Config, log *slog.Logger, reg prometheus.Registerer) (*enrich.Geo, error) {
	geo, err := enrich.OpenGeo(enrich.GeoOptions{CountryDB: cfg.GeoIP.CountryDB, ASNDB: cfg.GeoIP.ASNDB})
	if err != nil {
		return nil, err
	}
	country, asn := geo.Enabled()
	if !country || !asn {
		log.Info("geoip: no MaxMind database for country or AS configured; detectors use what events carry in source.geo and source.as",
			"country_db", country, "asn_db", asn)
	}
	if country && !geo.Located() {
		log.Info("geoip: the country database has no locations (not a city database); impossible travel uses only source.geo.location from the events")
	}
	if reg != nil {
		registerGeoMetrics(reg, geo)
	}
	return geo, nil
}

func registerGeoMetrics(reg prometheus.Registerer, geo *enrich.Geo) {
	country, asn := geo.Enabled()
	enabled := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "haechi_geoip_database_loaded",
		Help: "1 when a MaxMind-format database of that kind is loaded; 0 means geo/AS come only from the events.",
	}, []string{"kind"})
	b := map[bool]float64{true: 1}
	enabled.WithLabelValues("country").Set(b[country])
	enabled.WithLabelValues("asn").Set(b[asn])
	enabled.WithLabelValues("location").Set(b[geo.Located()])
	reg.MustRegister(enabled,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "haechi_geoip_lookups_total",
			Help: "Addresses looked up in the GeoIP databases (cache hits included).",
		}, func() float64 { l, _, _ := geo.Stats(); return float64(l) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "haechi_geoip_cache_hits_total",
			Help: "GeoIP lookups answered from the cache.",
		}, func() float64 { _, h, _ := geo.Stats(); return float64(h) }),
	)
}

// Rules returns the holder of the running rule set (for reloads).
func (p *Pipeline) Rules() *rules.Holder { return p.rules }

// corporateNetworks is the company's network: behaviour.corporate_networks,
// else the rules list corporate_networks. Validated with the
// configuration; a rules list that does not parse (the rules report it)
// leaves the network unknown.
func corporateNetworks(cfg config.Config) ([]netip.Prefix, []uint32) {
	nets := cfg.Detectors.Behaviour.CorporateNetworks
	if len(nets) == 0 {
		nets = cfg.Rules.Lists["corporate_networks"]
	}
	pfx, asns, err := behaviour.ParseNetworks(nets)
	if err != nil {
		return nil, nil
	}
	return pfx, asns
}

// ReportSkipped logs each Sigma rule that was not loaded and why.
func ReportSkipped(log *slog.Logger, skipped []error) {
	for _, err := range skipped {
		log.Warn("sigma rule not loaded", "err", err)
	}
	if len(skipped) > 0 {
		log.Warn("some Sigma rules were not loaded; `haechi rules lint --sigma DIR` lists them", "skipped", len(skipped))
	}
}

// NewBatch returns an empty event slice of capacity batchSize, recycled
// from batches the engine has finished with when possible. Submit takes
// ownership of it.
func (p *Pipeline) NewBatch() []event.Event { return p.batches.Get().([]event.Event) }

// Submit enriches a batch and admits it, waiting while the engine is full.
// Its origin is "" and it has no arrival time (see SubmitFrom).
func (p *Pipeline) Submit(ctx context.Context, evs []event.Event) error {
	return p.SubmitFrom(ctx, "", time.Time{}, evs)
}

// SubmitFrom is Submit for a batch of the named origin (a file, an ingest
// token, a tailed file) that arrived at arrived (zero: the input has no
// arrival clock); see engine.Batch.
func (p *Pipeline) SubmitFrom(ctx context.Context, origin string, arrived time.Time, evs []event.Event) error {
	p.geo.EnrichBatch(evs)
	if p.ledger != nil {
		p.ledger.Number(evs) // once here, not once per ledger dimension
	}
	if p.mints != nil {
		p.observeMints(origin, evs)
	}
	return p.Engine.Submit(ctx, engine.Batch{Events: evs, Received: time.Now(), Origin: origin, Arrived: arrived})
}

// observeMints folds a batch of origin into the mint registry: whole when
// its mints may be registered (PipelineOptions.MintsFrom), else its key
// inventory only.
func (p *Pipeline) observeMints(origin string, evs []event.Event) {
	if p.mintsFrom != nil && (hasDataset(evs, event.DatasetToken) || hasDataset(evs, event.DatasetKeys)) && !p.mintsFrom(origin) {
		// Neither its mints nor its key inventory: an inventory can
		// turn unknown_key on for every unlisted key, or retire a key
		// for good (the earliest retirement wins).
		return
	}
	p.mints.ObserveBatch(evs)
}

// hasDataset reports whether an event of evs is of dataset d.
func hasDataset(evs []event.Event, d string) bool {
	for i := range evs {
		if evs[i].Dataset == d {
			return true
		}
	}
	return false
}

// EndOrigin says the origin has delivered everything (engine.Engine.EndOrigin).
func (p *Pipeline) EndOrigin(ctx context.Context, origin string) error {
	return p.Engine.EndOrigin(ctx, origin)
}

// Mark passes the mark m through the engine (engine.Engine.Mark); with
// NewBatch, Submit and Checkpoint it is the ingest.Pipeline the durable
// ingest consumer feeds.
func (p *Pipeline) Mark(ctx context.Context, m uint64) error { return p.Engine.Mark(ctx, m) }

// Checkpoint asks the engine for a checkpoint at the mark m
// (engine.Engine.Checkpoint).
//
// With a mint registry, its snapshot is taken now: every batch before the
// mark has been observed and none after it (the durable consumer submits
// and asks from one goroutine); mints the API registered directly may be
// in it too, which a replay adds again harmlessly.
func (p *Pipeline) Checkpoint(ctx context.Context, m uint64) error {
	if p.mints != nil {
		b := p.mints.Snapshot()
		p.mu.Lock()
		p.mintSnaps[m] = b
		p.mu.Unlock()
	}
	return p.Engine.Checkpoint(ctx, m)
}

// Locate returns the country the GeoIP databases give ip ("" unknown).
func (p *Pipeline) Locate(ip netip.Addr) string {
	ev := event.Event{Source: event.Source{IP: ip}}
	p.geo.Enrich(&ev)
	return ev.Source.Country
}

// TrySubmit enriches a batch of the named origin, which arrived now, and
// admits it only if there is room now (engine.ErrFull otherwise; the
// caller keeps the batch).
func (p *Pipeline) TrySubmit(origin string, evs []event.Event) error {
	p.geo.EnrichBatch(evs)
	if p.ledger != nil {
		p.ledger.Number(evs)
	}
	if p.mints != nil {
		// Observed even when the engine then refuses the batch: the
		// caller retries it, and observing is idempotent.
		p.observeMints(origin, evs)
	}
	now := time.Now()
	return p.Engine.TrySubmit(engine.Batch{Events: evs, Received: now, Origin: origin, Arrived: now})
}

// Close stops admission; Run returns once everything admitted has been
// processed and every alert has been closed and handed to the sinks.
func (p *Pipeline) Close() { p.Engine.Close() }

// Counts returns the findings processed and alerts raised so far.
func (p *Pipeline) Counts() (findings, alerts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.findings, p.raised
}

// Run runs the engine and the alert stage until the engine is closed (or
// ctx is cancelled, which closes it) and drained.
func (p *Pipeline) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- p.Engine.Run(ctx) }()
	var ledgerDone chan error
	if p.ledger != nil {
		ledgerDone = make(chan error, 1)
		go func() { ledgerDone <- p.ledger.Run(context.WithoutCancel(ctx)) }()
	}

	wms := make([]time.Time, p.Engine.Shards())
	var finals int
	for out := range p.Engine.Output() {
		p.alerts.Process(out.Findings)
		if out.Snapshot != nil {
			p.collect(out)
		}
		wms[out.Shard] = out.Watermark
		if out.Final {
			finals++
		}
		low := wms[0]
		for _, w := range wms[1:] {
			if w.Before(low) {
				low = w
			}
		}
		if !low.IsZero() {
			p.alerts.Advance(low)
		}
		p.mu.Lock()
		p.findings, p.raised = p.alerts.Findings(), p.alerts.Raised()
		p.mu.Unlock()
	}
	p.alerts.Flush()
	err := <-errc
	if p.ledger != nil {
		// Every shard has handed over its last bitmaps (EndOfTime): drain.
		if lerr := p.ledger.Close(); lerr != nil && err == nil {
			err = fmt.Errorf("ledger: %w", lerr)
		}
		<-ledgerDone
	}
	if cerr := p.geo.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil && finals != len(wms) {
		err = fmt.Errorf("pipeline: %d of %d shards finished", finals, len(wms))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
