package config

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/input"
	"github.com/haechi-sec/haechi/internal/report"
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

// addFunc records one problem: the path of the offending setting, spelled
// as in the YAML file, and a message. Every section reports its problems
// through one — relative to the section, which under prefixes with the
// section's key — respond's section (respond.Config.Check) included.
type addFunc = func(path, format string, args ...any)

// under returns an addFunc that prefixes every path with prefix.
func under(add addFunc, prefix string) addFunc {
	return func(path, format string, args ...any) { add(prefix+path, format, args...) }
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
	c.Store.check(under(add, "store."))
	c.Audit.check(under(add, "audit."))
	if msg := checkListen(c.Listen); msg != "" {
		add("listen", "%s", msg)
	}
	if c.MetricsListen != "" {
		if msg := checkListen(c.MetricsListen); msg != "" {
			add("metrics_listen", "%s", msg)
		} else if c.MetricsListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			add("metrics_listen", "must differ from listen (%s)", c.Listen)
		}
	}
	c.Kafka.check(under(add, "kafka."))
	if c.Kafka.Enabled() && c.Store.LedgerEngine == "pebble" {
		add("store.ledger_engine", "pebble has one writer; cluster workers share the ledger in the store (want sqlite, with a PostgreSQL dsn)")
	}
	c.Log.check(under(add, "log."))
	c.Engine.check(under(add, "engine."))
	c.checkIntake(add)
	c.checkAlerts(add)
	c.Detectors.check(under(add, "detectors."))
	c.Report.check(under(add, "report."))
	// drills.receiver is checked as the receiver it becomes
	// (respond.receivers.drills).
	if _, ok := c.Respond.Receivers[respond.DrillReceiver]; ok {
		add("respond.receivers."+respond.DrillReceiver, "the name is reserved for drills.receiver")
	}
	rc := c.RespondConfig()
	rc.Check(under(add, "respond."))
	c.Drills.check(under(add, "drills."))
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

func (d Drills) check(add addFunc) {
	if d.Enabled && d.Every.D() <= 0 {
		add("every", "must be positive while drills are enabled")
	}
	if d.Jitter.D() < 0 {
		add("jitter", "must not be negative")
	}
	names := map[string]bool{}
	for i, def := range d.Definitions() {
		path := fmt.Sprintf("list[%d]", i)
		if err := def.Validate(); err != nil {
			add(path, "%v", err)
		}
		if names[def.Name] {
			add(path+".name", "%q is defined twice", def.Name)
		}
		for j, a := range def.Expect.Actions {
			if !slices.Contains(respond.ActionKinds, a) {
				add(fmt.Sprintf("%s.actions[%d]", path, j), "unknown action kind %q (want %s)", a, strings.Join(respond.ActionKinds, ", "))
			}
		}
		names[def.Name] = true
	}
}

func (k Kafka) check(add addFunc) {
	if !k.Enabled() {
		if k.Topic != "" || k.Prefix != "" {
			add("brokers", "required when kafka.topic or kafka.prefix is set (cluster mode needs the seed brokers)")
		}
		return
	}
	for i, b := range k.Brokers {
		if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
			add(fmt.Sprintf("brokers[%d]", i), "want host:port, got %q", b)
		}
	}
	if strings.TrimSpace(k.Topic) == "" {
		add("topic", "required with kafka.brokers (the input topic of contract NDJSON events)")
	}
	if strings.TrimSpace(k.Group) == "" || strings.Contains(k.Group, "/") {
		add("group", "must be non-empty without \"/\", got %q", k.Group)
	}
	if k.CheckpointEvery < 1 {
		add("checkpoint_every", "must be at least 1, got %d", k.CheckpointEvery)
	}
}

func (l Log) check(add addFunc) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		add("level", "unknown level %q (want debug, info, warn or error)", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		add("format", "unknown format %q (want text or json)", l.Format)
	}
}

// check covers the engine section but checkpoint_every, which checkAlerts
// reports (after the alert windows, where it has always been listed).
func (e Engine) check(add addFunc) {
	if e.Shards < 0 {
		add("shards", "must not be negative (0 means one per CPU), got %d", e.Shards)
	}
	if e.QueueSize < 1 {
		add("queue_size", "must be at least 1, got %d", e.QueueSize)
	}
	if _, err := e.MemoryLimitBytes(); err != nil {
		add("memory_limit", "%v", err)
	}
	if e.AllowedLateness <= 0 {
		add("allowed_lateness", "must be positive (use e.g. 1s for input that is strictly in order), got %s", e.AllowedLateness)
	}
	if e.MaxOriginLag <= 0 {
		add("max_origin_lag", "must be positive (e.g. 1h; below allowed_lateness it counts as allowed_lateness), got %s", e.MaxOriginLag)
	}
	if e.Idleness <= 0 {
		add("idleness", "must be positive (e.g. 30s: longer than your shippers' flush interval), got %s", e.Idleness)
	}
}

// checkIntake checks the spool, inputs and ingest sections, which depend
// on each other (paths are absolute).
func (c *Config) checkIntake(add addFunc) {
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
	c.Ingest.check(under(add, "ingest."))
	if c.Verify.Rate <= 0 {
		add("verify.rate", "must be positive, got %v", c.Verify.Rate)
	}
	if c.Verify.Burst <= 0 {
		add("verify.burst", "must be positive, got %d", c.Verify.Burst)
	}
	if c.Verify.GraceSkew < 0 {
		add("verify.grace_skew", "must not be negative, got %s", c.Verify.GraceSkew)
	}
	if c.Verify.GracePerSource <= 0 {
		add("verify.grace_per_source", "must be positive, got %d", c.Verify.GracePerSource)
	}
	if c.Verify.GracePerKey <= 0 {
		add("verify.grace_per_key", "must be positive, got %d", c.Verify.GracePerKey)
	}
}

func (in Ingest) check(add addFunc) {
	if in.MaxFuture < 0 {
		add("max_future", "must not be negative (0 accepts any time), got %s", in.MaxFuture)
	}
	if in.IdempotencyTTL <= 0 {
		add("idempotency_ttl", "must be positive, got %s", in.IdempotencyTTL)
	}
	if in.IdempotencyMaxKeys <= 0 {
		add("idempotency_max_keys", "must be positive, got %d", in.IdempotencyMaxKeys)
	}
	if in.MaxBodyBytes <= 0 {
		add("max_body_bytes", "must be positive, got %d", in.MaxBodyBytes)
	}
	if in.MaxLineBytes <= 0 {
		add("max_line_bytes", "must be positive, got %d", in.MaxLineBytes)
	}
}

// checkAlerts checks the alerts section and engine.checkpoint_every,
// listed between the alert windows and the risk settings (paths are
// absolute).
func (c *Config) checkAlerts(add addFunc) {
	a := c.Alerts
	if a.Window <= 0 {
		add("alerts.window", "must be positive, got %s", a.Window)
	}
	if a.MaxSpan <= 0 {
		add("alerts.max_span", "must be positive, got %s", a.MaxSpan)
	}
	if d := a.FalsePositiveSuppression.D(); d < 0 || d > 90*24*time.Hour {
		add("alerts.false_positive_suppression", "must be between 0 and 90 days, got %s", d)
	}
	if c.Engine.CheckpointEvery < 0 {
		add("engine.checkpoint_every", "must not be negative, got %s", c.Engine.CheckpointEvery)
	}
	if a.RiskThreshold <= 0 || a.RiskThreshold > 1000 {
		add("alerts.risk_threshold", "must be above 0 and at most 1000, got %v", a.RiskThreshold)
	}
	if a.RiskHalfLife.D() < time.Minute {
		add("alerts.risk_half_life", "must be at least 1m, got %s", a.RiskHalfLife.D())
	}
	if a.RepeatCap < 1 || a.RepeatCap > 10 {
		add("alerts.repeat_cap", "must be between 1 and 10, got %v", a.RepeatCap)
	}
	if a.PrivilegedMultiplier < 1 || a.PrivilegedMultiplier > 5 {
		add("alerts.privileged_multiplier", "must be between 1 and 5, got %v", a.PrivilegedMultiplier)
	}
	if d := a.FindingsRetention.D(); d < time.Hour || d > 3*365*24*time.Hour {
		add("alerts.findings_retention", "must be between 1h and 3 years, got %s", d)
	}
}

func (d Detectors) check(add addFunc) {
	if d.TerminatedIdentity.Grace < 0 {
		add("terminated_identity.grace", "must not be negative, got %s", d.TerminatedIdentity.Grace)
	}
	for i, id := range d.Canary.Records {
		if strings.TrimSpace(id) == "" {
			add(fmt.Sprintf("canary.records[%d]", i), "empty record id")
		}
	}
	tp := d.TokenProvenance
	if tp.MaxLifetime <= 0 {
		add("token_provenance.max_lifetime", "must be positive, got %s", tp.MaxLifetime)
	}
	if tp.ClockSkew < 0 {
		add("token_provenance.clock_skew", "must not be negative, got %s", tp.ClockSkew)
	}
	if tp.MintSkew <= 0 {
		add("token_provenance.mint_skew", "must be positive, got %s", tp.MintSkew)
	}
	tb := d.TokenBinding
	if tb.SwitchWindow < Duration(time.Second) || tb.SwitchWindow > Duration(time.Hour) {
		add("token_binding.switch_window", "must be between 1s and 1h, got %s", tb.SwitchWindow)
	}
	if tb.SwitchCount < 2 || tb.SwitchCount > 255 {
		add("token_binding.switch_count", "must be between 2 and 255, got %d", tb.SwitchCount)
	}
	kp := d.KeyPosture
	if kp.RotationAge <= 0 {
		add("key_posture.rotation_age", "must be positive, got %s", kp.RotationAge)
	}
	if kp.Reraise <= 0 {
		add("key_posture.reraise", "must be positive, got %s", kp.Reraise)
	}
	for i, ua := range d.ScriptedClient.UserAgents {
		if strings.TrimSpace(ua) == "" {
			add(fmt.Sprintf("scripted_client.user_agents[%d]", i), "empty user-agent marker")
		}
	}
	pg := d.PrincipalGeo
	for i, m := range pg.HostingMarkers {
		if strings.TrimSpace(m) == "" {
			add(fmt.Sprintf("principal_geo.hosting_markers[%d]", i), "empty marker")
		}
	}
	if pg.MaxSpeedKmh <= 0 {
		add("principal_geo.max_speed_kmh", "must be positive, got %v", pg.MaxSpeedKmh)
	}
	if pg.LocationErrorKm < 0 {
		add("principal_geo.location_error_km", "must not be negative, got %v", pg.LocationErrorKm)
	}
	if pg.MinTravelKm <= 0 {
		add("principal_geo.min_travel_km", "must be positive, got %v", pg.MinTravelKm)
	}
	if idle := d.CredentialNetwork.Idle; idle <= 0 {
		add("credential_network.idle", "must be positive, got %s", idle)
	}
	cc := d.CloudCredential
	if cc.Idle <= 0 {
		add("cloud_credential.idle", "must be positive, got %s", cc.Idle)
	}
	if cc.ProviderRanges != "" && strings.TrimSpace(cc.ProviderRanges) == "" {
		add("cloud_credential.provider_ranges", "blank path (leave it empty for the embedded ranges)")
	}
	for i, a := range cc.ProviderASNs {
		if a < 1 || a > 1<<32-1 {
			add(fmt.Sprintf("cloud_credential.provider_asns[%d]", i), "want an AS number from 1 to 4294967295, got %d", a)
		}
	}
	d.PrivilegedIdentity.check(add)
	if dormancy := d.IdentityLifecycle.Dormancy; dormancy <= 0 {
		add("identity_lifecycle.dormancy", "must be positive, got %s", dormancy)
	}
	if ms := d.OffHours.MaxShare; ms <= 0 || ms >= 1 {
		add("off_hours.max_share", "must be between 0 and 1 (exclusive), got %v", ms)
	}
	pr := d.PeerRoute
	if pr.MaxShare <= 0 || pr.MaxShare >= 1 {
		add("peer_route.max_share", "must be between 0 and 1 (exclusive), got %v", pr.MaxShare)
	}
	if pr.MinPeers < 1 || pr.OwnDays < 1 {
		add("peer_route", "min_peers and own_days must be at least 1, got %d and %d", pr.MinPeers, pr.OwnDays)
	}
	b := d.Behaviour
	if b.Factor < 1 || b.LongFactor < 1 {
		add("behaviour", "factor and long_factor must be at least 1, got %v and %v", b.Factor, b.LongFactor)
	}
	if b.LongFloor < 1 {
		add("behaviour.long_floor", "must be at least 1, got %d", b.LongFloor)
	}
	if b.HalfLife < Duration(time.Hour) {
		add("behaviour.half_life", "must be at least 1h, got %s", b.HalfLife)
	}
	for i, n := range b.CorporateNetworks {
		if !validNetwork(n) {
			add(fmt.Sprintf("behaviour.corporate_networks[%d]", i), "want a CIDR, an address or AS<number>, got %q", n)
		}
	}
	rv := d.RecordVolume
	if rv.Window <= 0 {
		add("record_volume.window", "must be positive, got %s", rv.Window)
	}
	if rv.Floor < 1 {
		add("record_volume.floor", "must be at least 1, got %d", rv.Floor)
	}
	if rv.Factor < 1 {
		add("record_volume.factor", "must be at least 1, got %v", rv.Factor)
	}
	if rv.EnumFloor < 2 {
		add("record_volume.enum_floor", "must be at least 2, got %d", rv.EnumFloor)
	}
	sf := d.SourceFanout
	if sf.Window <= 0 {
		add("source_fanout.window", "must be positive, got %s", sf.Window)
	}
	if sf.Floor < 1 {
		add("source_fanout.floor", "must be at least 1, got %d", sf.Floor)
	}
	if sf.FailFloor < 1 {
		add("source_fanout.fail_floor", "must be at least 1, got %d", sf.FailFloor)
	}
	if sf.NetFloor < 1 {
		add("source_fanout.net_floor", "must be at least 1, got %d", sf.NetFloor)
	}
	if sf.Warmup <= 0 {
		add("source_fanout.warmup", "must be positive, got %s", sf.Warmup)
	}
	if sf.Factor < 1 {
		add("source_fanout.factor", "must be at least 1, got %v", sf.Factor)
	}
	lc := d.LoginCampaign
	if lc.Window <= 0 {
		add("login_campaign.window", "must be positive, got %s", lc.Window)
	}
	if lc.Recovery <= 0 {
		add("login_campaign.recovery", "must be positive, got %s", lc.Recovery)
	}
	if lc.Floor < 1 {
		add("login_campaign.floor", "must be at least 1, got %d", lc.Floor)
	}
	if lc.Factor < 1 {
		add("login_campaign.factor", "must be at least 1, got %v", lc.Factor)
	}
	if lc.MinSources < 1 {
		add("login_campaign.min_sources", "must be at least 1, got %d", lc.MinSources)
	}
	if lc.Warmup <= 0 {
		add("login_campaign.warmup", "must be positive, got %s", lc.Warmup)
	}
}

func (r Report) check(add addFunc) {
	for i, rg := range r.Regimes {
		path := fmt.Sprintf("regimes[%d]", i)
		if strings.TrimSpace(rg.Name) == "" {
			add(path+".name", "must not be empty")
		}
		if (rg.Hours > 0) == (rg.BusinessDays > 0) {
			add(path, "set exactly one of hours and business_days (positive)")
		}
		if rg.Hours < 0 || rg.BusinessDays < 0 || rg.MinSubjects < 0 {
			add(path, "hours, business_days and min_subjects must not be negative")
		}
		switch rg.Basis {
		case "", report.BasisPersonalData, report.BasisMateriality:
		default:
			add(path+".basis", "want %s or %s, got %q", report.BasisPersonalData, report.BasisMateriality, rg.Basis)
		}
	}
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

// validNetwork reports whether n is a CIDR, an address or an AS number
// ("AS64500") — behaviour.ParseNetworks accepts exactly these.
func validNetwork(n string) bool {
	n = strings.TrimSpace(n)
	if num, ok := strings.CutPrefix(strings.ToUpper(n), "AS"); ok {
		v, err := strconv.ParseUint(num, 10, 32)
		return err == nil && v > 0
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(n)
	return err == nil
}

func (p PrivilegedIdentity) check(add addFunc) {
	const at = "privileged_identity."
	if p.Enabled && len(p.Roles) == 0 {
		add(at+"roles", "must name at least one role")
	}
	for i, r := range p.Roles {
		if strings.TrimSpace(strings.Trim(r, "*")) == "" {
			add(fmt.Sprintf(at+"roles[%d]", i), "must name a role, got %q", r)
		}
	}
	for i, a := range p.SensitiveActions {
		if _, err := path.Match(a, ""); err != nil || a == "" {
			add(fmt.Sprintf(at+"sensitive_actions[%d]", i), "must be a path.Match pattern, got %q", a)
		}
	}
	if _, err := time.LoadLocation(p.TimeZone); p.TimeZone != TimeZoneAuto && (err != nil || p.TimeZone == "") {
		add(at+"time_zone", "must be auto or an IANA time zone (Asia/Seoul, UTC), got %q", p.TimeZone)
	}
	start, err1 := WorkClock(p.WorkStart)
	if err1 != nil {
		add(at+"work_start", "%v", err1)
	}
	end, err2 := WorkClock(p.WorkEnd)
	if err2 != nil {
		add(at+"work_end", "%v", err2)
	}
	if err1 == nil && err2 == nil && start >= end {
		add(at+"work_end", "must be after work_start (%s), got %s", p.WorkStart, p.WorkEnd)
	}
	if len(p.WorkDays) == 0 {
		add(at+"work_days", "must name at least one day")
	}
	for i, w := range p.WorkDays {
		if _, err := Weekday(w); err != nil {
			add(fmt.Sprintf(at+"work_days[%d]", i), "%v", err)
		}
	}
	if p.Idle <= 0 {
		add(at+"idle", "must be positive, got %s", p.Idle)
	}
	if p.FirstAfter <= 0 {
		add(at+"first_after", "must be positive, got %s", p.FirstAfter)
	}
	if p.ExportFloor < 1 {
		add(at+"export_floor", "must be at least 1, got %v", p.ExportFloor)
	}
	if p.ExportFactor < 1 {
		add(at+"export_factor", "must be at least 1, got %v", p.ExportFactor)
	}
}
