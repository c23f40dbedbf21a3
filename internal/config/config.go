// Package config is haechi's one way of reading its configuration:
// defaults, then a strict YAML file over them, then Validate.
//
// Contract:
//   - Default returns the complete default configuration, and it validates.
//     An empty file (or one holding only comments, or a lone null) yields
//     exactly Default().
//   - A file sets only the keys it names; everything else keeps its default.
//     A key present with a null value (`window:` with nothing after it)
//     also keeps its default.
//   - Decoding is strict: an unknown key, a second YAML document, a value of
//     the wrong type (a list where a number belongs, 1.5 or "10" for an
//     integer, yes for a boolean) or a bad duration is an error naming the
//     file, line and column: "haechi.yml:3:3: engine.queue_sise: unknown
//     key (want shards, queue_size, allowed_lateness)". Decoding stops at
//     the first such error. Anchors, aliases and merge keys (<<) work; YAML
//     tags (!!str) are rejected; a string field given a number that would
//     not survive as written (007, 0x1F, 1.50) must be quoted.
//   - Validate then reports every remaining problem at once as a
//     *ValidationError, one "path: problem" entry each, paths spelled as in
//     the file (engine.queue_size, detectors.canary.records[2]).
//   - Load and Parse return either a Config that passed Validate or an
//     error; never a partly decoded Config.
//   - Durations are strings with a unit, Go's plus "d" for days: see
//     Duration.
//   - File paths (data_dir, roster_file, records_file) are used as written;
//     relative ones are relative to the process's working directory, not to
//     the config file. Validate does no I/O; CanaryRecordIDs reads
//     records_file.
//
// Every key, its default and its meaning are in the commented example
// haechi.example.yaml at the module's root; tests keep it complete, its
// values equal to Default(), and testdata/good/full.yml equal to it.
package config

import (
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	_ "time/tzdata" // privileged_identity.time_zone must load on hosts without a zoneinfo database

	"github.com/haechi-sec/haechi/internal/drill"
	"github.com/haechi-sec/haechi/internal/input"
	"github.com/haechi-sec/haechi/internal/report"
	"github.com/haechi-sec/haechi/internal/respond"
	"os"
	"time"
)

// Config is the whole haechi configuration.
type Config struct {
	// DataDir holds haechi's state (stores, checkpoints).
	DataDir string `yaml:"data_dir"`
	// Store selects the store: SQLite in DataDir, or PostgreSQL.
	Store Store `yaml:"store"`
	// Audit protects the audit log: the audit key and the witness.
	Audit Audit `yaml:"audit"`
	// Listen is the HTTP listen address, host:port.
	Listen string `yaml:"listen"`
	// MetricsListen, when set, is a second listen address, host:port,
	// that serves only GET /metrics and without a token, for scrapers
	// (the /metrics of Listen still asks for one). Empty: none.
	MetricsListen string `yaml:"metrics_listen"`

	Log       Log       `yaml:"log"`
	Engine    Engine    `yaml:"engine"`
	Ingest    Ingest    `yaml:"ingest"`
	Spool     Spool     `yaml:"spool"`
	Inputs    Inputs    `yaml:"inputs"`
	Rules     Rules     `yaml:"rules"`
	Alerts    Alerts    `yaml:"alerts"`
	GeoIP     GeoIP     `yaml:"geoip"`
	Detectors Detectors `yaml:"detectors"`
	// Respond is automatic response: playbooks, guardrails, receivers
	// (see package respond).
	Respond respond.Config `yaml:"respond"`
	// Report configures incident reports.
	Report Report `yaml:"report"`
	// Kafka, when brokers are set, makes serve one worker of a cluster
	// consuming a Kafka topic instead of the HTTP ingest pipeline
	// (docs/scale-out.md).
	Kafka Kafka `yaml:"kafka"`
	// Verify configures the inline token check (docs/verify.md).
	Verify Verify `yaml:"verify"`
	// Drills are serve's continuous drills (docs/drills.md).
	Drills Drills `yaml:"drills"`
}

// Verify configures the mint registry and the inline check's routes.
type Verify struct {
	Enabled bool `yaml:"enabled"`
	// Rate (checks per second, per calling API token) and Burst limit
	// the check routes; beyond them a check is answered 429.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// RequireUser refuses (user_missing) a check that presents no user
	// (no sub in the JWT, no X-Token-User) for a token whose mint named
	// one. false (the default): such a check is judged without the user.
	RequireUser bool `yaml:"require_user"`
	// IngestMayMint lets ingest tokens register mints through
	// POST /v1/tokens/minted, with a deprecation warning, and through the
	// auth.token events they post (true, the default for this release);
	// false refuses them at the endpoint (403) and registers no mint from
	// the token.issued events they post (detection still gets them): only
	// mint and admin tokens may, and serve's own inputs.
	IngestMayMint bool `yaml:"ingest_may_mint"`
	// GraceSkew allows an unknown token claiming an issue time within it
	// of now (its mint may be in flight), at most GracePerSource tokens
	// per key and source and GracePerKey per key in any GraceSkew; each
	// is re-checked when its grace ends (0: no grace).
	GraceSkew      Duration `yaml:"grace_skew"`
	GracePerSource int      `yaml:"grace_per_source"`
	GracePerKey    int      `yaml:"grace_per_key"`
	// GRPCListen, host:port, serves the Envoy ext_authz gRPC service
	// (plaintext, unauthenticated: loopback or a trusted mesh only);
	// empty: not served.
	GRPCListen string `yaml:"grpc_listen"`
	// ExposeVerdict adds the verdict to the refusal Envoy sends the client
	// (x-haechi-verdict on ext_authz's denied response). For debugging
	// only: it tells a token thief what to change. false: the client
	// sees only the status; the verdict is in Envoy's dynamic metadata
	// and haechi's audit log (verify_refused).
	ExposeVerdict bool `yaml:"expose_verdict"`
}

// Kafka configures cluster mode (internal/kafka).
type Kafka struct {
	// Brokers are the seed brokers, host:port; empty: no cluster mode.
	Brokers []string `yaml:"brokers"`
	// Topic is the input topic of contract NDJSON events.
	Topic string `yaml:"topic"`
	// Group prefixes the consumer groups (<group>-rekey, -detect, -alert),
	// the transactional ids and the checkpoints in the store.
	Group string `yaml:"group"`
	// Prefix names the topics the workers write (<prefix>-by-<kind>,
	// <prefix>-findings); empty: the topic's name.
	Prefix string `yaml:"prefix"`
	// ID names this worker; a replacement for a crashed worker should
	// reuse its ID. Empty: host name and process id.
	ID string `yaml:"id"`
	// CheckpointEvery is the number of records of a partition between two
	// checkpoints of its state.
	CheckpointEvery int `yaml:"checkpoint_every"`
}

// Enabled reports whether cluster mode is configured.
func (k Kafka) Enabled() bool { return len(k.Brokers) > 0 }

// Report configures incident reports (haechi report).
type Report struct {
	// Regimes are the regulators' notification clocks, counted from the
	// moment of awareness. Replacing the list replaces the defaults.
	Regimes []report.Regime `yaml:"regimes"`
}

// GeoIP points at MaxMind-format databases used to fill source.geo and
// source.as on events that do not carry them. haechi never downloads them.
type GeoIP struct {
	// CountryDB is a country (or city) database; empty means none.
	CountryDB string `yaml:"country_db"`
	// ASNDB is an autonomous-system database; empty means none.
	ASNDB string `yaml:"asn_db"`
}

// Log configures the process logger.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Engine configures the detection engine (see package engine).
type Engine struct {
	// Shards is the number of shard goroutines; 0 means GOMAXPROCS.
	Shards int `yaml:"shards"`
	// QueueSize bounds the events admitted but not yet processed. Each
	// costs about a kilobyte while in flight (the event and its batch
	// slot): the default, 16,384, keeps 16 batches of 1,024 ahead of the
	// shards.
	QueueSize int `yaml:"queue_size"`
	// MemoryLimit is the Go runtime's soft memory limit for the process,
	// a size such as 448MiB or 1GiB (runtime/debug.SetMemoryLimit): the
	// collector runs more often as the heap nears it, so resident memory
	// levels off near it instead of at twice the live heap. Empty: none
	// (a GOMEMLIMIT environment variable still applies, and wins over
	// this). Leave room below a container's limit for memory outside the
	// Go heap (SQLite's page cache, thread stacks).
	MemoryLimit string `yaml:"memory_limit"`
	// AllowedLateness is how far behind the input's event time an event
	// may arrive before it is marked late. The input's event time is the
	// minimum over its active origins (each file, ingest token, tailed
	// file) of their newest event time.
	AllowedLateness Duration `yaml:"allowed_lateness"`
	// Idleness is how long an origin (an ingest token's shipper, a tailed
	// file) may send nothing before it stops holding the others' event
	// time back; once every origin is idle, serve advances their event time
	// with the wall clock, each at its own distance to it.
	Idleness Duration `yaml:"idleness"`
	// MaxOriginLag is how far an origin may be behind the leading one and
	// still hold its event time back; further behind (a broken clock, a
	// hostile shipper, a backfill days old) its events are marked late,
	// so no origin can stall detection.
	MaxOriginLag Duration `yaml:"max_origin_lag"`
	// CheckpointEvery is how often serve stores a checkpoint of the
	// detectors' learnt state (baselines, profiles), so a restart does not
	// go back to a cold start; 0 turns checkpoints off. Needs the spool.
	CheckpointEvery Duration `yaml:"checkpoint_every"`
}

// Ingest bounds what producers may send.
type Ingest struct {
	// MaxBodyBytes caps one HTTP request body.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxLineBytes caps one NDJSON line (one event).
	MaxLineBytes int `yaml:"max_line_bytes"`
	// MaxFuture rejects (serve) a line dated more than this ahead of the
	// server's clock; 0 accepts any time. One event dated years ahead
	// would otherwise move event time past everything after it.
	MaxFuture Duration `yaml:"max_future"`
	// IdempotencyTTL is how long serve keeps an Idempotency-Key (per API
	// token, with its body's hash) after its request was accepted: within
	// it a retry is answered without being stored again and the key with
	// another body is refused (422). Positive.
	IdempotencyTTL Duration `yaml:"idempotency_ttl"`
	// IdempotencyMaxKeys caps the keys serve holds per API token (about
	// 200 bytes each): past it the token's oldest keys are forgotten
	// before their TTL, so a token holder cannot grow memory without
	// bound. A forgotten key can only let a retry be stored twice.
	// Positive.
	IdempotencyMaxKeys int `yaml:"idempotency_max_keys"`
}

// Rules configures detection rules as code (docs/rules.md, docs/sigma.md).
type Rules struct {
	// Pack enables the rule pack shipped with haechi.
	Pack bool `yaml:"pack"`
	// Dirs are directories (or files) of YAML rules with CEL conditions.
	Dirs []string `yaml:"dirs"`
	// SigmaDirs are directories of Sigma rules; rules using what haechi
	// does not support are reported (start-up log, `haechi rules lint
	// --sigma`) and not loaded.
	SigmaDirs []string `yaml:"sigma_dirs"`
	// Lists are named lists rules refer to as lists.NAME, e.g.
	// corporate_networks (CIDRs).
	Lists map[string][]string `yaml:"lists"`
}

// Inputs configures the log formats other than the event contract
// (docs/inputs.md): route templates for web access logs, named JSON
// mappings, and how nginx logs name users.
type Inputs struct {
	// Routes turn request paths into record touches, first match wins.
	Routes []input.Route `yaml:"routes"`
	// Mappings are declarative mappings of other JSON logs, read as
	// format "mapping:NAME".
	Mappings map[string]input.Mapping `yaml:"mappings"`
	Nginx    InputsNginx              `yaml:"nginx"`
	// Files are log files serve follows (rotation included), each read in
	// its format through the spool; needs spool.enabled.
	Files []InputFile `yaml:"files"`
}

// InputFile is one followed log file.
type InputFile struct {
	Path   string `yaml:"path"`
	Format string `yaml:"format"` // "" → ecs
}

// InputsNginx configures the nginx and nginx-json formats.
type InputsNginx struct {
	// Dataset and Action of the events ("" → gateway.access, http.request).
	Dataset string `yaml:"dataset"`
	Action  string `yaml:"action"`
	// UserField is the nginx-json key naming the user ("" → remote_user).
	UserField string `yaml:"user_field"`
	// UserPrefix is prepended to user ids (e.g. "m:" for customers).
	UserPrefix string `yaml:"user_prefix"`
	// TokenField is the nginx-json key holding the access token id.
	TokenField string `yaml:"token_field"`
}

// InputOptions returns the input package's options for c.
func (c *Config) InputOptions() input.Options {
	n := c.Inputs.Nginx
	return input.Options{
		MaxLine:  c.Ingest.MaxLineBytes,
		Routes:   c.Inputs.Routes,
		Mappings: c.Inputs.Mappings,
		Nginx: input.NginxOptions{Dataset: n.Dataset, Action: n.Action, UserField: n.UserField,
			UserPrefix: n.UserPrefix, TokenField: n.TokenField},
	}
}

// Spool configures serve's durable ingest (docs/spool.md): every accepted
// request is stored on disk before it is acknowledged.
type Spool struct {
	// Enabled turns durable ingest on (serve; replay reads files and needs
	// none). Off, an acknowledged request lives only in memory until it is
	// processed.
	Enabled bool `yaml:"enabled"`
	// Dir holds the spool ("" → <data_dir>/spool).
	Dir string `yaml:"dir"`
	// MaxBytes bounds the spool; when full, ingest answers 429.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which a segment file rolls.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// RetainBytes is how much processed history is kept for a warm restart
	// (replayed to rebuild detector state); beyond it the oldest processed
	// segments are deleted.
	RetainBytes int64 `yaml:"retain_bytes"`
	// SyncDelay waits this long before an fsync to group more requests
	// into it (0: fsync as soon as the previous one finishes).
	SyncDelay Duration `yaml:"sync_delay"`
	// MaxLag answers 429 while the oldest stored request has waited longer
	// than this for the pipeline (0: only a full spool does): clients slow
	// down before detection falls minutes behind.
	MaxLag Duration `yaml:"max_lag"`
}

// Alerts configures how findings become alerts.
type Alerts struct {
	// Window is the period over which repeated findings fold into one
	// alert: it stays open until Window passes without a new finding.
	Window Duration `yaml:"window"`
	// MaxSpan caps how long one alert collects findings from its first
	// (never less than Window).
	MaxSpan Duration `yaml:"max_span"`
	// RiskThreshold is the entity risk at which findings raise an alert
	// (default 90: two independent medium findings, or a strong one with
	// context; immediate findings alert regardless). RiskHalfLife is how
	// fast risk decays (default 24h). RepeatCap bounds one detector's
	// contribution to an entity's risk to that multiple of its strongest
	// finding (default 1: a repeating signal never stacks into an alert).
	RiskThreshold float64  `yaml:"risk_threshold"`
	RiskHalfLife  Duration `yaml:"risk_half_life"`
	RepeatCap     float64  `yaml:"repeat_cap"`
	// PrivilegedMultiplier weighs an entity's risk while a finding about
	// a privileged principal holds some of it (entity criticality; default
	// 1.5, 1 turns it off).
	PrivilegedMultiplier float64 `yaml:"privileged_multiplier"`
	// FalsePositiveSuppression is how long an analyst's false_positive
	// verdict suppresses the alert's entity's findings of the kinds it
	// held (they add no risk meanwhile); 0 → a verdict suppresses nothing.
	FalsePositiveSuppression Duration `yaml:"false_positive_suppression"`
	// Ordered processes findings in event-time order once the watermark
	// has passed them by the allowed lateness, so the alerts depend only
	// on the set of findings, not on their arrival order (alert.Options).
	// Cluster mode always does; set it on a single process to reproduce a
	// cluster's alerts exactly. It delays alerts by the allowed lateness.
	Ordered bool `yaml:"ordered"`
	// FindingsRetention is how long the store keeps scored findings (the
	// risk index of every finding, alerting or not: `haechi findings`,
	// GET /v1/findings), by event time before the newest one; default 30
	// days.
	FindingsRetention Duration `yaml:"findings_retention"`
}

// Detectors holds per-detector settings.
type Detectors struct {
	TerminatedIdentity TerminatedIdentity `yaml:"terminated_identity"`
	Canary             Canary             `yaml:"canary"`
	TokenProvenance    TokenProvenance    `yaml:"token_provenance"`
	TokenBinding       TokenBinding       `yaml:"token_binding"`
	KeyPosture         KeyPosture         `yaml:"key_posture"`
	ScriptedClient     ScriptedClient     `yaml:"scripted_client"`
	SourceFanout       SourceFanout       `yaml:"source_fanout"`
	LoginCampaign      LoginCampaign      `yaml:"login_campaign"`
	PrincipalGeo       PrincipalGeo       `yaml:"principal_geo"`
	IdentityLifecycle  IdentityLifecycle  `yaml:"identity_lifecycle"`
	CredentialNetwork  CredentialNetwork  `yaml:"credential_network"`
	CloudCredential    CloudCredential    `yaml:"cloud_credential"`
	RecordVolume       RecordVolume       `yaml:"record_volume"`
	OffHours           OffHours           `yaml:"off_hours"`
	PeerRoute          PeerRoute          `yaml:"peer_route"`
	Behaviour          Behaviour          `yaml:"behaviour"`
	PrivilegedIdentity PrivilegedIdentity `yaml:"privileged_identity"`
}

// PrivilegedIdentity configures the detector of privileged identities'
// takeover evidence (docs/detectors.md#privileged_identity).
type PrivilegedIdentity struct {
	Enabled bool `yaml:"enabled"`
	// Roles are the privileged roles: names, case-insensitive, with "*" at
	// either end matching any prefix or suffix ("*-admin").
	Roles []string `yaml:"roles"`
	// SensitiveActions are the sensitive actions (bulk export, role
	// change): path.Match patterns on event.action, case-insensitive.
	SensitiveActions []string `yaml:"sensitive_actions"`
	// TimeZone is the company's IANA time zone; WorkStart and WorkEnd
	// ("HH:MM") its working hours on WorkDays (mon … sun) there. "auto"
	// (the default) learns the working hours from the privileged roles'
	// own activity by hour of day instead, and ignores WorkStart, WorkEnd
	// and WorkDays.
	TimeZone  string   `yaml:"time_zone"`
	WorkStart string   `yaml:"work_start"`
	WorkEnd   string   `yaml:"work_end"`
	WorkDays  []string `yaml:"work_days"`
	// Idle is the silence after which a privileged identity's activity is
	// a finding; FirstAfter how long haechi must have watched before an
	// identity's first activity is one.
	Idle       Duration `yaml:"idle"`
	FirstAfter Duration `yaml:"first_after"`
	// ExportFloor and ExportFactor set the bulk-export bar: a day's records
	// of sensitive actions ≥ max(floor, factor × max(own busiest day,
	// role peers' 99th percentile)).
	ExportFloor  float64 `yaml:"export_floor"`
	ExportFactor float64 `yaml:"export_factor"`
}

// DefaultPrivilegedRoles and DefaultSensitiveActions are the
// privileged_identity detector's defaults (the same as its package's,
// which config may not import; app's tests hold them equal).
var (
	DefaultPrivilegedRoles  = []string{"admin", "administrator", "*-admin", "admin-*", "superuser", "super-admin", "root", "owner", "dba", "security-admin", "iam-admin"}
	DefaultSensitiveActions = []string{"*export*", "*download*", "*dump*", "*role.grant*", "*role.assign*", "*role.change*", "*role.update*", "*roles.*", "*permission.grant*"}
)

// TimeZoneAuto is privileged_identity.time_zone's value that learns the
// company's working hours from its privileged roles' activity.
const TimeZoneAuto = "auto"

// WorkClock parses an "HH:MM" time of day.
func WorkClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("want HH:MM, got %q", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Weekday parses a day name (mon … sun, or in full), case-insensitive.
func Weekday(s string) (time.Weekday, error) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		n := d.String()
		if strings.EqualFold(s, n) || strings.EqualFold(s, n[:3]) {
			return d, nil
		}
	}
	return 0, fmt.Errorf("want a day (mon … sun), got %q", s)
}

// Behaviour configures the detector of hourly behaviour against the
// identity's own history and its role's peers, its multivariate model
// and the long-window (slow-and-low) comparison.
type Behaviour struct {
	Enabled bool `yaml:"enabled"`
	// Model enables the Half-Space Trees model over the hourly vectors
	// (behaviour_multivariate findings).
	Model bool `yaml:"model"`
	// Factor is how many times the larger of the identity's own and its
	// peers' 99th percentile an hourly count must reach.
	Factor float64 `yaml:"factor"`
	// LongFactor is how many times its peers' 90th percentile the distinct
	// records of a long window must reach.
	LongFactor float64 `yaml:"long_factor"`
	// LongFloor is the fewest distinct records in a long window that can
	// be flagged.
	LongFloor int `yaml:"long_floor"`
	// HalfLife is the decay of the own and peer baselines.
	HalfLife Duration `yaml:"half_life"`
	// CorporateNetworks are the corporate network as CIDRs ("10.0.0.0/8")
	// and AS numbers ("AS64500"); records read from outside it lower
	// slow_exfiltration's bar. Empty: rules.lists.corporate_networks.
	CorporateNetworks []string `yaml:"corporate_networks"`
}

// OffHours configures the detector for staff, service and partner
// identities acting at hours when neither they nor their role normally do.
type OffHours struct {
	Enabled bool `yaml:"enabled"`
	// MaxShare is the share of activity (0–1) at an hour of day below which
	// that hour is unusual for the identity and for its role.
	MaxShare float64 `yaml:"max_share"`
}

// PeerRoute configures the detector for staff, service and partner
// identities reading personal data through routes their role's peers do
// not use.
type PeerRoute struct {
	Enabled bool `yaml:"enabled"`
	// MaxShare is the share (0–1) of the role's record reads below which a
	// route is uncommon for the role.
	MaxShare float64 `yaml:"max_share"`
	// MinPeers is how many other identities of the role using a route (in
	// the last 30 days) make it common.
	MinPeers int `yaml:"min_peers"`
	// OwnDays is on how many days an identity must have used a route for
	// it to be the identity's own habit.
	OwnDays int `yaml:"own_days"`
}

// RecordVolume configures the detector for staff, service and partner
// identities reading far more records than they and their role's peers
// do, or walking sequential ids.
type RecordVolume struct {
	Enabled bool `yaml:"enabled"`
	// Window is the counting window.
	Window Duration `yaml:"window"`
	// Floor is the fewest distinct records per identity and window that
	// can be flagged, whatever the baseline.
	Floor int `yaml:"floor"`
	// Factor multiplies the baseline (the identity's busiest past window or
	// its role's 99th percentile, whichever is higher).
	Factor float64 `yaml:"factor"`
	// EnumFloor is the fewest numbered records in a window for a
	// sequential-walk finding.
	EnumFloor int `yaml:"enum_floor"`
}

// IdentityLifecycle configures the detector for staff and service
// identities used in ways their life cycle does not explain.
type IdentityLifecycle struct {
	Enabled bool `yaml:"enabled"`
	// Dormancy is the silence after which activity is a finding.
	Dormancy Duration `yaml:"dormancy"`
}

// CredentialNetwork configures the detector for a credential (an access
// key, API key or session id in token.id, outside the gateway) used from a
// network it has never been used from.
type CredentialNetwork struct {
	Enabled bool `yaml:"enabled"`
	// Idle is how long an unused credential is remembered.
	Idle Duration `yaml:"idle"`
}

// CloudCredential configures the detector for a cloud workload's
// temporary credentials (an EC2 instance's or ECS task's role session,
// ASIA… keys) used outside the provider's networks or from a network other
// than the workload's (GuardDuty's InstanceCredentialExfiltration).
type CloudCredential struct {
	Enabled bool `yaml:"enabled"`
	// ProviderRanges is the path of the provider's published address
	// ranges: AWS's ip-ranges.json as downloaded from
	// https://ip-ranges.amazonaws.com/ip-ranges.json, or lines of
	// "PREFIX REGION". Empty uses the copy embedded in haechi (its date is
	// in every explanation); AWS adds prefixes weekly, so production
	// configures a file refreshed by cron.
	ProviderRanges string `yaml:"provider_ranges"`
	// ProviderASNs are the provider's autonomous systems, judged when
	// events carry source.as.number (GeoIP ASN enrichment): an address of
	// one of them is inside even when the ranges file is older than it.
	ProviderASNs []int64 `yaml:"provider_asns"`
	// Idle is how long an unused role session is remembered.
	Idle Duration `yaml:"idle"`
}

// DefaultProviderASNs are AWS's main autonomous systems: AS16509
// (AMAZON-02) and AS14618 (AMAZON-AES).
var DefaultProviderASNs = []int64{16509, 14618}

// PrincipalGeo configures the detector for where principals act from:
// customers on hosting networks or in new countries, staff abroad.
type PrincipalGeo struct {
	Enabled bool `yaml:"enabled"`
	// HostingMarkers are case-insensitive substrings of AS organisation
	// names that mark cloud, VPS and hosting providers.
	HostingMarkers []string `yaml:"hosting_markers"`
	// MaxSpeedKmh is the fastest plausible travel between two located
	// events of one principal; faster is impossible travel.
	MaxSpeedKmh float64 `yaml:"max_speed_kmh"`
	// LocationErrorKm is the geolocation error allowed at each end.
	LocationErrorKm float64 `yaml:"location_error_km"`
	// MinTravelKm is the shortest distance judged at all.
	MinTravelKm float64 `yaml:"min_travel_km"`
}

// DefaultHostingMarkers mark cloud, VPS and hosting providers by AS
// organisation name.
var DefaultHostingMarkers = []string{
	"hosting", "host", "cloud", "data center", "datacenter", "data centre", "vps", "server",
	"amazon", "aws", "google llc", "microsoft", "digitalocean", "linode", "akamai", "ovh",
	"hetzner", "contabo", "the constant company", "vultr", "choopa", "leaseweb", "m247",
	"alibaba", "tencent", "oracle", "scaleway", "online s.a.s", "colocrossing", "psychz",
}

// SourceFanout configures the detector for one source address acting as
// many principals.
type SourceFanout struct {
	Enabled bool `yaml:"enabled"`
	// Window is the counting window.
	Window Duration `yaml:"window"`
	// Floor is the fewest distinct principals per address and window that
	// can be flagged, whatever the baseline.
	Floor int `yaml:"floor"`
	// Factor multiplies the baseline (the address's own past maximum or its
	// network's 99th percentile, whichever is higher).
	Factor float64 `yaml:"factor"`
	// FailFloor is the fewest distinct principals with failed logins from
	// one address in a window (with at least half its logins failing) that
	// is flagged as trying passwords across accounts.
	FailFloor int `yaml:"fail_floor"`
	// NetFloor is the fewest distinct principals per network (AS or
	// prefix) and window that can be flagged as rotation across the
	// network's addresses.
	NetFloor int `yaml:"net_floor"`
	// Warmup is the history a network present at start-up needs before it
	// is judged as a whole.
	Warmup Duration `yaml:"warmup"`
}

// LoginCampaign configures the detector of credential-stuffing campaigns
// spread over many sources of one network: failed logins their accounts'
// owners never recover, per network and window, against the network's own
// past peak.
type LoginCampaign struct {
	Enabled bool `yaml:"enabled"`
	// Window is the counting window.
	Window Duration `yaml:"window"`
	// Recovery is how long after a failed login its account's successful
	// login still recovers it.
	Recovery Duration `yaml:"recovery"`
	// Floor is the fewest distinct accounts with unrecovered failures per
	// network and window that can be flagged.
	Floor int `yaml:"floor"`
	// Factor multiplies the network's past peak.
	Factor float64 `yaml:"factor"`
	// MinSources is the fewest distinct source addresses the unrecovered
	// failures must come from.
	MinSources int `yaml:"min_sources"`
	// Warmup is the history a network present at start-up needs before it
	// is judged.
	Warmup Duration `yaml:"warmup"`
}

// TokenProvenance configures the detector that checks every token used on
// the gateway was minted, by a live key, within policy.
type TokenProvenance struct {
	Enabled bool `yaml:"enabled"`
	// MaxLifetime is the longest token lifetime policy allows; a minted or
	// claimed lifetime beyond it is a finding, and minted tokens are
	// remembered at most this long.
	MaxLifetime Duration `yaml:"max_lifetime"`
	// ClockSkew tolerates issuers' and gateways' clocks disagreeing: an
	// issue time up to this far after the use is not "in the future".
	ClockSkew Duration `yaml:"clock_skew"`
	// MintSkew is how far the token issuer's stream (auth.token) must have
	// moved past a used token's issue time (or its first use, if earlier)
	// with no mint of it before the token is never minted — without
	// waiting for the engine's allowed lateness. It absorbs the issuer's
	// logging delay and its stream's disorder. When the issuer's stream is
	// behind or silent, the verdict waits for the allowed lateness.
	MintSkew Duration `yaml:"mint_skew"`
}

// TokenBinding configures the detector for a live token used where it was
// never bound: from another country, from a hosting network when bound to
// a consumer one, or from two networks at once (session or token hijack).
// It uses principal_geo.hosting_markers to tell hosting networks, and
// token_provenance.max_lifetime and clock_skew to tell live tokens.
type TokenBinding struct {
	Enabled bool `yaml:"enabled"`
	// SwitchWindow and SwitchCount define "two networks at once": that
	// many changes of network between a token's uses (in event time), each
	// within SwitchWindow of the first, are more than one client does.
	SwitchWindow Duration `yaml:"switch_window"`
	SwitchCount  int      `yaml:"switch_count"`
}

// KeyPosture configures the detector for signing keys that should no
// longer be active.
type KeyPosture struct {
	Enabled bool `yaml:"enabled"`
	// RotationAge is the age past which an active key is a finding.
	RotationAge Duration `yaml:"rotation_age"`
	// Reraise is how often a finding is raised again while the key stays
	// active.
	Reraise Duration `yaml:"reraise"`
}

// ScriptedClient configures the detector for scripted HTTP clients on
// customer traffic.
type ScriptedClient struct {
	Enabled bool `yaml:"enabled"`
	// UserAgents mark a scripted client: case-insensitive prefixes of
	// user_agent.original, or, written with a leading "*", substrings.
	UserAgents []string `yaml:"user_agents"`
}

// DefaultScriptedUserAgents is the maintained list of user-agent markers
// of HTTP libraries and headless tools: the libraries' default user agents
// start with their names, so an app that names itself first and the
// library after ("ExampleShop/8.4 (Android 14) okhttp/4.12") does not
// match; headless browsers hide inside browser-like strings and match
// anywhere ("*").
var DefaultScriptedUserAgents = []string{
	"python-requests", "python-urllib", "python-httpx", "aiohttp", "scrapy",
	"curl/", "wget/", "go-http-client", "okhttp", "java/", "apache-httpclient",
	"node-fetch", "axios/", "libwww-perl", "*headlesschrome", "*phantomjs", "postmanruntime",
}

// TerminatedIdentity configures the detector for activity by identities
// that have left.
type TerminatedIdentity struct {
	Enabled bool `yaml:"enabled"`
	// Grace is how long after termination activity is still tolerated.
	Grace Duration `yaml:"grace"`
	// RosterFile lists terminated identities; empty means none.
	RosterFile string `yaml:"roster_file"`
}

// Canary configures the detector for access to canary (honeytoken) records.
type Canary struct {
	Enabled bool `yaml:"enabled"`
	// Records are canary record ids, in addition to RecordsFile.
	Records []string `yaml:"records"`
	// RecordsFile holds one record id per line; blank lines and # comments
	// are ignored. Empty means none.
	RecordsFile string `yaml:"records_file"`
}

// Default returns the default configuration. It passes Validate.
func Default() Config {
	return Config{
		DataDir: "./haechi-data",
		Store:   Store{LedgerEngine: "sqlite", LedgerDictCache: 131072, LedgerDictFilter: "4MiB"},
		Audit:   defaultAudit(),
		Listen:  "127.0.0.1:8470",
		Log:     Log{Level: "info", Format: "text"},
		Engine: Engine{
			Shards:          0,
			QueueSize:       16384,
			AllowedLateness: Duration(5 * time.Minute),
			Idleness:        Duration(30 * time.Second),
			MaxOriginLag:    Duration(time.Hour),
			CheckpointEvery: Duration(5 * time.Minute),
		},
		Kafka:  Kafka{Group: "haechi", CheckpointEvery: 10000},
		Verify: Verify{Enabled: true, Rate: 100_000, Burst: 10_000, GracePerSource: 2, GracePerKey: 100, IngestMayMint: true},
		Drills: defaultDrills(),
		Ingest: Ingest{
			MaxBodyBytes:       16 << 20,
			MaxLineBytes:       1 << 20,
			MaxFuture:          Duration(time.Hour),
			IdempotencyTTL:     Duration(24 * time.Hour),
			IdempotencyMaxKeys: 1_000_000,
		},
		Spool: Spool{
			Enabled:      true,
			MaxBytes:     1 << 30,
			SegmentBytes: 64 << 20,
			RetainBytes:  512 << 20,
			MaxLag:       Duration(30 * time.Second),
		},
		Rules:   Rules{Pack: true, Lists: map[string][]string{"corporate_networks": {}}},
		Respond: respond.DefaultConfig(),
		Report:  Report{Regimes: report.DefaultRegimes()},
		Alerts: Alerts{Window: Duration(time.Hour), MaxSpan: Duration(24 * time.Hour), RiskThreshold: 90, RiskHalfLife: Duration(24 * time.Hour), RepeatCap: 1, PrivilegedMultiplier: 1.5,
			FalsePositiveSuppression: Duration(30 * 24 * time.Hour), FindingsRetention: Duration(30 * 24 * time.Hour)},
		Detectors: Detectors{
			TerminatedIdentity: TerminatedIdentity{Enabled: true},
			Canary:             Canary{Enabled: true},
			TokenProvenance: TokenProvenance{
				Enabled:     true,
				MaxLifetime: Duration(24 * time.Hour),
				ClockSkew:   Duration(5 * time.Minute),
				MintSkew:    Duration(30 * time.Second),
			},
			TokenBinding: TokenBinding{Enabled: true, SwitchWindow: Duration(time.Minute), SwitchCount: 4},
			KeyPosture: KeyPosture{
				Enabled:     true,
				RotationAge: Duration(365 * 24 * time.Hour),
				Reraise:     Duration(24 * time.Hour),
			},
			ScriptedClient: ScriptedClient{
				Enabled:    true,
				UserAgents: append([]string(nil), DefaultScriptedUserAgents...),
			},
			OffHours:  OffHours{Enabled: true, MaxShare: 0.02},
			PeerRoute: PeerRoute{Enabled: true, MaxShare: 0.005, MinPeers: 3, OwnDays: 3},
			Behaviour: Behaviour{Enabled: true, Model: true, Factor: 3, LongFactor: 4, LongFloor: 500, HalfLife: Duration(14 * 24 * time.Hour)},
			RecordVolume: RecordVolume{
				Enabled:   true,
				Window:    Duration(time.Hour),
				Floor:     100,
				Factor:    4,
				EnumFloor: 50,
			},
			IdentityLifecycle: IdentityLifecycle{
				Enabled:  true,
				Dormancy: Duration(90 * 24 * time.Hour),
			},
			CredentialNetwork: CredentialNetwork{
				Enabled: true,
				Idle:    Duration(14 * 24 * time.Hour),
			},
			CloudCredential: CloudCredential{
				Enabled:      true,
				ProviderASNs: append([]int64(nil), DefaultProviderASNs...),
				Idle:         Duration(7 * 24 * time.Hour),
			},
			PrincipalGeo: PrincipalGeo{
				Enabled:         true,
				HostingMarkers:  append([]string(nil), DefaultHostingMarkers...),
				MaxSpeedKmh:     1000,
				LocationErrorKm: 100,
				MinTravelKm:     500,
			},
			PrivilegedIdentity: PrivilegedIdentity{
				Enabled:          true,
				Roles:            append([]string(nil), DefaultPrivilegedRoles...),
				SensitiveActions: append([]string(nil), DefaultSensitiveActions...),
				TimeZone:         TimeZoneAuto,
				WorkStart:        "08:00",
				WorkEnd:          "20:00",
				WorkDays:         []string{"mon", "tue", "wed", "thu", "fri"},
				Idle:             Duration(30 * 24 * time.Hour),
				FirstAfter:       Duration(7 * 24 * time.Hour),
				ExportFloor:      100,
				ExportFactor:     4,
			},
			SourceFanout: SourceFanout{
				Enabled:   true,
				Window:    Duration(time.Hour),
				Floor:     20,
				Factor:    4,
				FailFloor: 5,
				NetFloor:  100,
				Warmup:    Duration(24 * time.Hour),
			},
			LoginCampaign: LoginCampaign{
				Enabled:    true,
				Window:     Duration(time.Hour),
				Recovery:   Duration(15 * time.Minute),
				Floor:      20,
				Factor:     4,
				MinSources: 3,
				Warmup:     Duration(24 * time.Hour),
			},
		},
	}
}

// Load reads the YAML file at path over Default() and validates the result.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load on bytes; name (usually the file path) prefixes errors.
func Parse(data []byte, name string) (Config, error) {
	cfg := Default()
	if err := decode(data, name, &cfg); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// Drills configures serve's continuous drills (internal/drill,
// docs/drills.md).
type Drills struct {
	// Enabled runs the drills on a schedule; on demand they run either way
	// (haechi drill run, POST /v1/drills/{name}/run).
	Enabled bool `yaml:"enabled"`
	// Every is the period between two rounds of every drill, each round
	// delayed by a random part of Jitter.
	Every  Duration `yaml:"every"`
	Jitter Duration `yaml:"jitter"`
	// List is the drills; replacing it replaces the shipped set.
	List []Drill `yaml:"list"`
	// Receiver, when its url is set, receives every action planned for a
	// drill's alert (its notices; containment stays dry-run) instead of
	// the playbooks' receivers: respond.receivers gets it under the
	// reserved name "drills" (respond.DrillReceiver). Empty: drill
	// notices go to the notify receiver, marked "drill": true.
	Receiver respond.Receiver `yaml:"receiver"`
}

// RespondConfig is the response configuration serve runs with: Respond,
// with drills.receiver added as respond.DrillReceiver when set.
func (c Config) RespondConfig() respond.Config {
	rc := c.Respond
	if c.Drills.Receiver.URL == "" {
		return rc
	}
	rc.Receivers = maps.Clone(rc.Receivers)
	if rc.Receivers == nil {
		rc.Receivers = map[string]respond.Receiver{}
	}
	rc.Receivers[respond.DrillReceiver] = c.Drills.Receiver
	return rc
}

// Drill is one drill and its expectation.
type Drill struct {
	Name string `yaml:"name"`
	// Kind is forged_token, token_hijack, canary_read,
	// terminated_identity, source_fanout or cloud_credential.
	Kind string `yaml:"kind"`
	// Detectors must each contribute to an alert about the drill's
	// entity, one of its findings of a kind of Kinds (none: any kind),
	// within Within of injection (wall time).
	Detectors []string `yaml:"detectors"`
	Kinds     []string `yaml:"kinds"`
	// Actions must each be planned by the playbooks for those alerts
	// (kinds of respond.ActionKinds); a drill's containment is always
	// dry-run, which counts, an action skipped for want of a receiver
	// does not.
	Actions []string `yaml:"actions"`
	Within  Duration `yaml:"within"`
}

// Definitions returns the drills as package drill defines them.
func (d Drills) Definitions() []drill.Definition {
	out := make([]drill.Definition, len(d.List))
	for i, x := range d.List {
		out[i] = drill.Definition{Name: x.Name, Kind: drill.Kind(x.Kind), Expect: drill.Expectation{
			Detectors: append([]string(nil), x.Detectors...), Kinds: append([]string(nil), x.Kinds...),
			Actions: append([]string(nil), x.Actions...), Within: x.Within.D()}}
	}
	return out
}

func defaultDrills() Drills {
	d := Drills{Enabled: true, Every: Duration(time.Hour), Jitter: Duration(10 * time.Minute)}
	for _, x := range drill.Defaults() {
		d.List = append(d.List, Drill{Name: x.Name, Kind: string(x.Kind), Detectors: x.Expect.Detectors, Kinds: x.Expect.Kinds,
			Actions: x.Expect.Actions, Within: Duration(x.Expect.Within)})
	}
	return d
}

// MemoryLimitBytes parses MemoryLimit: a whole number of bytes, or with a
// unit B, KiB, MiB, GiB (powers of 1,024) or KB, MB, GB (of 1,000); 0
// when empty.
func (e Engine) MemoryLimitBytes() (int64, error) {
	if strings.TrimSpace(e.MemoryLimit) == "" {
		return 0, nil
	}
	return parseSize(e.MemoryLimit)
}

// parseSize parses a positive size: a whole number of bytes, or with a
// unit B, KiB, MiB, GiB (powers of 1,024) or KB, MB, GB (of 1,000).
func parseSize(size string) (int64, error) {
	s := strings.TrimSpace(size)
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(s[len(num):])
	mult := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("want a positive size such as 448MiB or 1GiB, got %q", size)
	}
	return n * mult, nil
}
