package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/input"
	"github.com/haechi-sec/haechi/internal/respond"
)

// ValidationError lists every problem Validate found, each as
// "path: problem" with the path spelled as in the YAML file.
type ValidationError struct {
	Problems []string
}

// Error joins the problems: "invalid config: a; b".
func (e *ValidationError) Error() string {
	return "invalid config: " + strings.Join(e.Problems, "; ")
}

// Validate checks c and returns a *ValidationError listing every problem,
// or nil. It does no I/O.
func (c *Config) Validate() error {
	var p []string
	add := func(path, format string, args ...any) {
		p = append(p, path+": "+fmt.Sprintf(format, args...))
	}

	if strings.TrimSpace(c.DataDir) == "" {
		add("data_dir", "must not be empty")
	}
	if msg := c.Store.check(); msg != "" {
		add("store.dsn", "%s", msg)
	}
	c.Audit.check(add)
	if msg := checkListen(c.Listen); msg != "" {
		add("listen", "%s", msg)
	}
	if k := c.Kafka; k.Enabled() {
		for i, b := range k.Brokers {
			if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
				add(fmt.Sprintf("kafka.brokers[%d]", i), "want host:port, got %q", b)
			}
		}
		if strings.TrimSpace(k.Topic) == "" {
			add("kafka.topic", "required with kafka.brokers (the input topic of contract NDJSON events)")
		}
		if strings.TrimSpace(k.Group) == "" || strings.Contains(k.Group, "/") {
			add("kafka.group", "must be non-empty without \"/\", got %q", k.Group)
		}
		if k.CheckpointEvery < 1 {
			add("kafka.checkpoint_every", "must be at least 1, got %d", k.CheckpointEvery)
		}
	} else if k.Topic != "" || k.Prefix != "" {
		add("kafka.brokers", "required when kafka.topic or kafka.prefix is set (cluster mode needs the seed brokers)")
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "unknown level %q (want debug, info, warn or error)", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", "unknown format %q (want text or json)", c.Log.Format)
	}

	if c.Engine.Shards < 0 {
		add("engine.shards", "must not be negative (0 means one per CPU), got %d", c.Engine.Shards)
	}
	if c.Engine.QueueSize < 1 {
		add("engine.queue_size", "must be at least 1, got %d", c.Engine.QueueSize)
	}
	if c.Engine.AllowedLateness <= 0 {
		add("engine.allowed_lateness", "must be positive (use e.g. 1s for input that is strictly in order), got %s", c.Engine.AllowedLateness)
	}

	if sp := c.Spool; sp.Enabled {
		if sp.SegmentBytes < 1<<20 {
			add("spool.segment_bytes", "must be at least 1 MiB (1048576), got %d", sp.SegmentBytes)
		}
		if sp.MaxBytes < 2*sp.SegmentBytes {
			add("spool.max_bytes", "must be at least twice spool.segment_bytes (%d), got %d", 2*sp.SegmentBytes, sp.MaxBytes)
		}
		if sp.RetainBytes < 0 || sp.RetainBytes >= sp.MaxBytes {
			add("spool.retain_bytes", "must be from 0 to less than spool.max_bytes (%d), got %d", sp.MaxBytes, sp.RetainBytes)
		}
		if sp.MaxLag < 0 {
			add("spool.max_lag", "must not be negative (0: no limit), got %s", sp.MaxLag)
		}
		if sp.SyncDelay < 0 {
			add("spool.sync_delay", "must not be negative, got %s", sp.SyncDelay)
		}
		if sp.MaxBytes > 0 && c.Ingest.MaxBodyBytes > sp.SegmentBytes {
			add("ingest.max_body_bytes", "must not exceed spool.segment_bytes (%d), got %d", sp.SegmentBytes, c.Ingest.MaxBodyBytes)
		}
	}
	if in, err := input.New(c.InputOptions()); err != nil {
		add("inputs", "%v", err)
	} else {
		for i, f := range c.Inputs.Files {
			path := fmt.Sprintf("inputs.files[%d]", i)
			if strings.TrimSpace(f.Path) == "" {
				add(path+".path", "required")
			}
			if f.Format != "" && !slices.Contains(in.Formats(), f.Format) {
				add(path+".format", "unknown format %q (want one of %s)", f.Format, strings.Join(in.Formats(), ", "))
			}
		}
		if len(c.Inputs.Files) > 0 && !c.Spool.Enabled {
			add("inputs.files", "following files needs spool.enabled (the read position lives in the spool)")
		}
	}
	if c.Ingest.MaxFuture < 0 {
		add("ingest.max_future", "must not be negative (0 accepts any time), got %s", c.Ingest.MaxFuture)
	}
	if c.Ingest.IdempotencyTTL <= 0 {
		add("ingest.idempotency_ttl", "must be positive, got %s", c.Ingest.IdempotencyTTL)
	}
	if c.Ingest.IdempotencyMaxKeys <= 0 {
		add("ingest.idempotency_max_keys", "must be positive, got %d", c.Ingest.IdempotencyMaxKeys)
	}
	if c.Ingest.MaxBodyBytes <= 0 {
		add("ingest.max_body_bytes", "must be positive, got %d", c.Ingest.MaxBodyBytes)
	}
	if c.Ingest.MaxLineBytes <= 0 {
		add("ingest.max_line_bytes", "must be positive, got %d", c.Ingest.MaxLineBytes)
	}

	if c.Alerts.Window <= 0 {
		add("alerts.window", "must be positive, got %s", c.Alerts.Window)
	}
	if c.Alerts.MaxSpan <= 0 {
		add("alerts.max_span", "must be positive, got %s", c.Alerts.MaxSpan)
	}
	if d := c.Alerts.FalsePositiveSuppression.D(); d < 0 || d > 90*24*time.Hour {
		add("alerts.false_positive_suppression", "must be between 0 and 90 days, got %s", d)
	}
	if c.Engine.CheckpointEvery < 0 {
		add("engine.checkpoint_every", "must not be negative, got %s", c.Engine.CheckpointEvery)
	}
	if c.Alerts.RiskThreshold <= 0 || c.Alerts.RiskThreshold > 1000 {
		add("alerts.risk_threshold", "must be above 0 and at most 1000, got %v", c.Alerts.RiskThreshold)
	}
	if c.Alerts.RiskHalfLife.D() < time.Minute {
		add("alerts.risk_half_life", "must be at least 1m, got %s", c.Alerts.RiskHalfLife.D())
	}
	if c.Alerts.RepeatCap < 1 || c.Alerts.RepeatCap > 10 {
		add("alerts.repeat_cap", "must be between 1 and 10, got %v", c.Alerts.RepeatCap)
	}

	if c.Detectors.TerminatedIdentity.Grace < 0 {
		add("detectors.terminated_identity.grace", "must not be negative, got %s", c.Detectors.TerminatedIdentity.Grace)
	}
	for i, id := range c.Detectors.Canary.Records {
		if strings.TrimSpace(id) == "" {
			add(fmt.Sprintf("detectors.canary.records[%d]", i), "empty record id")
		}
	}
	tp := c.Detectors.TokenProvenance
	if tp.MaxLifetime <= 0 {
		add("detectors.token_provenance.max_lifetime", "must be positive, got %s", tp.MaxLifetime)
	}
	if tp.ClockSkew < 0 {
		add("detectors.token_provenance.clock_skew", "must not be negative, got %s", tp.ClockSkew)
	}
	kp := c.Detectors.KeyPosture
	if kp.RotationAge <= 0 {
		add("detectors.key_posture.rotation_age", "must be positive, got %s", kp.RotationAge)
	}
	if kp.Reraise <= 0 {
		add("detectors.key_posture.reraise", "must be positive, got %s", kp.Reraise)
	}
	for i, ua := range c.Detectors.ScriptedClient.UserAgents {
		if strings.TrimSpace(ua) == "" {
			add(fmt.Sprintf("detectors.scripted_client.user_agents[%d]", i), "empty user-agent marker")
		}
	}
	for i, m := range c.Detectors.PrincipalGeo.HostingMarkers {
		if strings.TrimSpace(m) == "" {
			add(fmt.Sprintf("detectors.principal_geo.hosting_markers[%d]", i), "empty marker")
		}
	}
	if pg := c.Detectors.PrincipalGeo; pg.MaxSpeedKmh <= 0 {
		add("detectors.principal_geo.max_speed_kmh", "must be positive, got %v", pg.MaxSpeedKmh)
	}
	if pg := c.Detectors.PrincipalGeo; pg.LocationErrorKm < 0 {
		add("detectors.principal_geo.location_error_km", "must not be negative, got %v", pg.LocationErrorKm)
	}
	if pg := c.Detectors.PrincipalGeo; pg.MinTravelKm <= 0 {
		add("detectors.principal_geo.min_travel_km", "must be positive, got %v", pg.MinTravelKm)
	}
	if d := c.Detectors.CredentialNetwork.Idle; d <= 0 {
		add("detectors.credential_network.idle", "must be positive, got %s", d)
	}
	if d := c.Detectors.IdentityLifecycle.Dormancy; d <= 0 {
		add("detectors.identity_lifecycle.dormancy", "must be positive, got %s", d)
	}
	if ms := c.Detectors.OffHours.MaxShare; ms <= 0 || ms >= 1 {
		add("detectors.off_hours.max_share", "must be between 0 and 1 (exclusive), got %v", ms)
	}
	if pr := c.Detectors.PeerRoute; pr.MaxShare <= 0 || pr.MaxShare >= 1 {
		add("detectors.peer_route.max_share", "must be between 0 and 1 (exclusive), got %v", pr.MaxShare)
	}
	if pr := c.Detectors.PeerRoute; pr.MinPeers < 1 || pr.OwnDays < 1 {
		add("detectors.peer_route", "min_peers and own_days must be at least 1, got %d and %d", pr.MinPeers, pr.OwnDays)
	}
	if b := c.Detectors.Behaviour; b.Factor < 1 || b.LongFactor < 1 {
		add("detectors.behaviour", "factor and long_factor must be at least 1, got %v and %v", b.Factor, b.LongFactor)
	}
	if b := c.Detectors.Behaviour; b.LongFloor < 1 {
		add("detectors.behaviour.long_floor", "must be at least 1, got %d", b.LongFloor)
	}
	if b := c.Detectors.Behaviour; b.HalfLife < Duration(time.Hour) {
		add("detectors.behaviour.half_life", "must be at least 1h, got %s", b.HalfLife)
	}
	rv := c.Detectors.RecordVolume
	if rv.Window <= 0 {
		add("detectors.record_volume.window", "must be positive, got %s", rv.Window)
	}
	if rv.Floor < 1 {
		add("detectors.record_volume.floor", "must be at least 1, got %d", rv.Floor)
	}
	if rv.Factor < 1 {
		add("detectors.record_volume.factor", "must be at least 1, got %v", rv.Factor)
	}
	if rv.EnumFloor < 2 {
		add("detectors.record_volume.enum_floor", "must be at least 2, got %d", rv.EnumFloor)
	}
	sf := c.Detectors.SourceFanout
	if sf.Window <= 0 {
		add("detectors.source_fanout.window", "must be positive, got %s", sf.Window)
	}
	if sf.Floor < 1 {
		add("detectors.source_fanout.floor", "must be at least 1, got %d", sf.Floor)
	}
	if sf.FailFloor < 1 {
		add("detectors.source_fanout.fail_floor", "must be at least 1, got %d", sf.FailFloor)
	}
	if sf.NetFloor < 1 {
		add("detectors.source_fanout.net_floor", "must be at least 1, got %d", sf.NetFloor)
	}
	if sf.Warmup <= 0 {
		add("detectors.source_fanout.warmup", "must be positive, got %s", sf.Warmup)
	}
	if sf.Factor < 1 {
		add("detectors.source_fanout.factor", "must be at least 1, got %v", sf.Factor)
	}
	for i, rg := range c.Report.Regimes {
		path := fmt.Sprintf("report.regimes[%d]", i)
		if strings.TrimSpace(rg.Name) == "" {
			add(path+".name", "must not be empty")
		}
		if (rg.Hours > 0) == (rg.BusinessDays > 0) {
			add(path, "set exactly one of hours and business_days (positive)")
		}
		if rg.Hours < 0 || rg.BusinessDays < 0 || rg.MinSubjects < 0 {
			add(path, "hours, business_days and min_subjects must not be negative")
		}
	}
	if err := c.Respond.Validate(); err != nil {
		var ve *respond.ValidationError
		if errors.As(err, &ve) {
			for _, prob := range ve.Problems {
				p = append(p, "respond."+prob)
			}
		} else {
			add("respond", "%v", err)
		}
	}

	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

// checkListen returns what is wrong with a host:port listen address, or "".
func checkListen(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("invalid address %q: %v", addr, err)
	}
	if port == "" {
		return fmt.Sprintf("invalid address %q: missing port", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("invalid address %q: port %q is not a number from 0 to 65535", addr, port)
	}
	return ""
}
