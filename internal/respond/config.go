// Package respond contains unauthorized access on its own, with guardrails.
//
// Playbooks (Config.Playbooks) match alerts on severity, detector, finding
// kind and entity kind and name actions: revoke_key, revoke_token,
// block_source, disable_identity and notify. A Planner turns an alert into
// actions whose ID is a deterministic idempotency key (alert id, kind,
// target), applying the guardrails at plan time: the global mode (off,
// dry-run, enforce), protected principals, keys and networks (→ approval),
// and per-kind rate limits over a sliding hour of event time (→ approval).
//
// A Responder (an alert.Sink) plans off the pipeline goroutine and writes
// the actions to the store's outbox; every state change is appended to a
// hash-chained audit log in the same transaction. A Dispatcher delivers
// due actions as signed HTTP webhooks, retrying with exponential backoff
// and jitter until the receiver answers 2xx or the action is older than
// MaxAge (then dead). Delivery is at least once; the Idempotency-Key
// header (the action id) lets receivers apply each action exactly once,
// including across a restart or a crash mid-delivery.
package respond

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/haechi-sec/haechi/internal/alertfmt"
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
	"github.com/haechi-sec/haechi/internal/event"
	siem "github.com/haechi-sec/haechi/internal/sink"
)

// Mode is the global response mode.
type Mode string

// Modes.
const (
	ModeOff     Mode = "off"     // plan nothing
	ModeDryRun  Mode = "dry-run" // plan and audit containment, never deliver it (notify still delivers)
	ModeEnforce Mode = "enforce" // deliver
)

// Action kinds.
const (
	KindRevokeKey       = "revoke_key"
	KindRevokeToken     = "revoke_token"
	KindBlockSource     = "block_source"
	KindDisableIdentity = "disable_identity"
	KindNotify          = "notify"
)

// ActionKinds lists every action kind.
var ActionKinds = []string{KindRevokeKey, KindRevokeToken, KindBlockSource, KindDisableIdentity, KindNotify}

// KindExport is the kind of an alert's delivery to a sink (Config.Sinks):
// one per sink and alert change (raised, grown, closed, withdrawn). It is
// planned whatever the mode, never held for approval and never rate
// limited: it tells, it does not contain.
const KindExport = "export"

// IsContainment reports whether kind changes something (everything but
// notify, an alert's export and an incident's notice).
func IsContainment(kind string) bool {
	return kind != KindNotify && kind != KindExport && kind != KindIncident
}

// Receiver types.
const (
	ReceiverWebhook = "webhook" // generic JSON webhook (default)
	ReceiverSlack   = "slack"   // Slack-compatible incoming webhook: {"text": …}
)

// Duration is a time.Duration written as a string with a unit: Go's units
// plus "d" (24 hours), e.g. "90s", "1h", "7d".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String renders whole days as "Nd", anything else in Go's notation.
func (d Duration) String() string {
	td := time.Duration(d)
	if td != 0 && td%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	}
	return td.String()
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if n, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(f * float64(24*time.Hour))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 90s, 1h, 7d)", s)
	}
	*d = Duration(v)
	return nil
}

// Config is the `respond` section of haechi.yaml.
type Config struct {
	// Mode: off, dry-run (default) or enforce.
	Mode Mode `yaml:"mode" json:"mode"`
	// Secret is the HMAC-SHA256 key webhooks are signed with; SecretEnv
	// names an environment variable holding it instead. One is required
	// once a receiver is configured.
	Secret    string `yaml:"secret" json:"-"`
	SecretEnv string `yaml:"secret_env" json:"secret_env,omitempty"`
	// Receivers by name. An action is delivered to the receiver its
	// playbook names, else to the receiver named after its kind
	// ("revoke_key", "notify", …). With no receiver an action is recorded
	// as skipped ("no receiver configured").
	Receivers map[string]Receiver `yaml:"receivers" json:"receivers,omitempty"`
	// Sinks by name: every alert, as it is raised, grows, closes or is
	// withdrawn, is delivered to each sink through the outbox (an action
	// of kind export), with the outbox's retries and backoff
	// (docs/sinks.md). A sink's name must not be a receiver's.
	Sinks map[string]SinkConfig `yaml:"sinks" json:"sinks,omitempty"`
	// Playbooks, all of which are applied to every alert, in order.
	Playbooks []Playbook `yaml:"playbooks" json:"playbooks"`
	// Protected entities are never contained automatically: their
	// containment actions wait for approval.
	Protected Protected `yaml:"protected" json:"protected"`
	// RateLimits caps automatic actions per kind per hour of event time;
	// beyond it actions wait for approval (notify: skipped). A kind not
	// listed is unlimited; 0 sends every action of the kind to approval.
	RateLimits map[string]int `yaml:"rate_limits" json:"rate_limits"`
	// MaxAge is how long delivery is retried before the action is dead
	// (0 → 24h).
	MaxAge Duration `yaml:"max_age" json:"max_age"`
	// Lease is how long a delivery attempt owns an action; an action whose
	// process died mid-delivery is delivered again after it (0 → 2m). It
	// must exceed every receiver's timeout, or a slow delivery is tried
	// twice at once.
	Lease Duration `yaml:"lease" json:"lease"`
	// Retry backoff: the first retry waits about InitialBackoff, doubling
	// up to MaxBackoff, with jitter (0 → 1s and 5m).
	InitialBackoff Duration `yaml:"initial_backoff" json:"initial_backoff"`
	MaxBackoff     Duration `yaml:"max_backoff" json:"max_backoff"`
}

// Receiver is one webhook endpoint.
type Receiver struct {
	Type    string            `yaml:"type" json:"type,omitempty"` // webhook (default) or slack
	URL     string            `yaml:"url" json:"url"`
	Method  string            `yaml:"method" json:"method,omitempty"` // default POST
	Headers map[string]string `yaml:"headers" json:"-"`
	// BodyTemplate is a text/template over TemplateData producing the
	// request body; empty → the default JSON body (webhook) or
	// {"text": …} (slack). The func `json` renders a value as JSON.
	BodyTemplate string   `yaml:"body_template" json:"body_template,omitempty"`
	Timeout      Duration `yaml:"timeout" json:"timeout,omitempty"` // per request, 0 → 10s
	// AllowPrivate lets deliveries connect to loopback, private (RFC 1918,
	// fc00::/7), link-local (cloud metadata), shared (100.64.0.0/10),
	// unspecified, multicast and reserved addresses. Off by default: the
	// address every connection goes to is checked after name resolution,
	// so a receiver name that resolves (or is rebound) to an internal
	// address is refused; Validate refuses a literal one (or localhost) in
	// URL. Set it for a receiver that is an internal service.
	AllowPrivate bool `yaml:"allow_private" json:"allow_private,omitempty"`
	// Format of the body (webhook type only): haechi (default, the
	// action body), ecs or ocsf — the action's alert as an ECS document
	// or an OCSF Detection Finding, with the action under haechi.action
	// (ECS) or unmapped.haechi.action (OCSF). Incident notices keep the
	// haechi body. Not with body_template.
	Format string `yaml:"format" json:"format,omitempty"`
}

// Sink types.
const (
	SinkElasticsearch = "elasticsearch" // Elasticsearch or OpenSearch _bulk
	SinkSplunk        = "splunk"        // Splunk HTTP Event Collector
	SinkSyslog        = "syslog"        // RFC 5424 over TCP (octet counting), TLS or UDP
)

// SinkConfig is one SIEM sink (docs/sinks.md).
type SinkConfig struct {
	Type string `yaml:"type" json:"type"`
	// Format of each document: ecs (default) or ocsf; haechi sends the
	// alert's own JSON.
	Format string `yaml:"format" json:"format,omitempty"`
	// URL: the base URL of Elasticsearch/OpenSearch or of Splunk's HEC
	// (https://splunk:8088).
	URL string `yaml:"url" json:"url,omitempty"`
	// Index: elasticsearch, the index or data stream (default
	// haechi-alerts); splunk, the index (default: the token's).
	Index string `yaml:"index" json:"index,omitempty"`
	// elasticsearch: APIKeyEnv names the variable holding an API key
	// (Authorization: ApiKey), or Username and PasswordEnv basic auth.
	APIKeyEnv   string `yaml:"api_key_env" json:"api_key_env,omitempty"`
	Username    string `yaml:"username" json:"username,omitempty"`
	PasswordEnv string `yaml:"password_env" json:"password_env,omitempty"`
	// splunk: TokenEnv names the variable holding the HEC token
	// (required); Sourcetype defaults to haechi:alert:<format>.
	TokenEnv   string `yaml:"token_env" json:"token_env,omitempty"`
	Sourcetype string `yaml:"sourcetype" json:"sourcetype,omitempty"`
	// syslog: Address host:port, Network tcp (default) or udp, TLS over
	// tcp, Facility (default auth).
	Address  string `yaml:"address" json:"address,omitempty"`
	Network  string `yaml:"network" json:"network,omitempty"`
	TLS      bool   `yaml:"tls" json:"tls,omitempty"`
	Facility string `yaml:"facility" json:"facility,omitempty"`
	// CAFile: PEM certificates to trust besides the system's (https or
	// tls).
	CAFile  string   `yaml:"ca_file" json:"ca_file,omitempty"`
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"` // per batch, 0 → 10s
	// AllowPrivate: as Receiver.AllowPrivate (a SIEM is often internal:
	// set it for one).
	AllowPrivate bool `yaml:"allow_private" json:"allow_private,omitempty"`
}

// Playbook maps matching alerts to actions.
type Playbook struct {
	Name    string       `yaml:"name" json:"name"`
	Match   Match        `yaml:"match" json:"match"`
	Actions []ActionSpec `yaml:"actions" json:"actions"`
}

// Match selects alerts. Every non-empty criterion must hold; a list holds
// when any of its entries matches. Entries of detectors, kinds and tags
// ending in "*" match by prefix ("rule:*" matches every rule,
// "attack.t15*" every ATT&CK collection technique id starting so).
type Match struct {
	MinSeverity string   `yaml:"min_severity" json:"min_severity,omitempty"` // low … critical
	Detectors   []string `yaml:"detectors" json:"detectors,omitempty"`       // alert detector
	Kinds       []string `yaml:"kinds" json:"kinds,omitempty"`               // any finding's kind
	Tags        []string `yaml:"tags" json:"tags,omitempty"`                 // any finding's tag
	EntityKinds []string `yaml:"entity_kinds" json:"entity_kinds,omitempty"` // alert entity kind
}

// ActionSpec is one action of a playbook. An action whose kind does not
// apply to the alert's entity (disable_identity on a source) is not
// planned.
type ActionSpec struct {
	Kind     string `yaml:"kind" json:"kind"`
	Receiver string `yaml:"receiver" json:"receiver,omitempty"`
	// Expiry of a block_source (0 → 24h); each repeated block of the same
	// target doubles it, up to MaxExpiry (0 → 30d).
	Expiry    Duration `yaml:"expiry" json:"expiry,omitempty"`
	MaxExpiry Duration `yaml:"max_expiry" json:"max_expiry,omitempty"`
	// RefusedOnly is what a revoke_key or block_source does when the
	// forged-token evidence behind its target rests only on presentations
	// the inline check refused (token.TagRefusedOnly): RefusedApprove
	// (the default, "") waits for a person's approval, RefusedContain acts
	// at once as for served forgeries. Once a forged token of the key (from
	// the source) was served, it acts at once either way.
	RefusedOnly string `yaml:"refused_only" json:"refused_only,omitempty"`
}

// Values of ActionSpec.RefusedOnly.
const (
	RefusedApprove = "approve"
	RefusedContain = "contain"
)

// Protected lists entities never contained automatically.
type Protected struct {
	Principals []string `yaml:"principals" json:"principals,omitempty"`
	Keys       []string `yaml:"keys" json:"keys,omitempty"`
	Networks   []string `yaml:"networks" json:"networks,omitempty"` // CIDR or address
}

// Defaults.
const (
	DefaultMaxAge         = 24 * time.Hour
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultLease          = 2 * time.Minute
	DefaultBlockExpiry    = 24 * time.Hour
	DefaultMaxBlockExpiry = 30 * 24 * time.Hour
	DefaultTimeout        = 10 * time.Second
)

// behavioural detectors: notify, contain only at critical risk.
var behavioural = []string{
	fanout.Name, scripted.Name, volume.Name, offhours.Name, peerroute.Name, behaviour.Name,
	lifecycle.Name, geo.Name, keyposture.Name, credential.Name, privileged.Name, stuffing.Name,
}

// DefaultConfig returns the shipped configuration: dry-run, no receivers
// (so every action is planned and audited but skipped or dry_run), and the
// default playbooks.
func DefaultConfig() Config {
	return Config{
		Mode: ModeDryRun,
		Playbooks: []Playbook{
			{
				Name: "forged_token",
				Match: Match{Detectors: []string{token.Name},
					Kinds: []string{token.KindNeverMinted, token.KindKeyRetired, token.KindUnknownKey}},
				Actions: []ActionSpec{{Kind: KindRevokeKey}, {Kind: KindRevokeToken}, {Kind: KindBlockSource}, {Kind: KindNotify}},
			},
			{
				// A live token used where it was never bound: revoke it and
				// block the source that used it (the finding's related).
				Name:    "token_hijack",
				Match:   Match{Detectors: []string{binding.Name}},
				Actions: []ActionSpec{{Kind: KindRevokeToken}, {Kind: KindBlockSource}, {Kind: KindNotify}},
			},
			{
				Name:    "terminated_identity",
				Match:   Match{Detectors: []string{terminated.Name}},
				Actions: []ActionSpec{{Kind: KindDisableIdentity}, {Kind: KindNotify}},
			},
			{
				Name:    "canary_read",
				Match:   Match{Detectors: []string{canary.Name}},
				Actions: []ActionSpec{{Kind: KindBlockSource}, {Kind: KindNotify}},
			},
			{
				// A workload's role credentials used away from it: revoke
				// the access key (for AWS, a receiver denies the role's
				// sessions issued before now, aws:TokenIssueTime) and block
				// where it was used from.
				Name:    "cloud_credential",
				Match:   Match{Detectors: []string{cloudcred.Name}},
				Actions: []ActionSpec{{Kind: KindRevokeToken}, {Kind: KindBlockSource}, {Kind: KindNotify}},
			},
			{
				// A privileged identity's takeover evidence: end the
				// session its findings name and block where it came from
				// (both reversible, automatic); disabling the
				// administrator waits for approval (a privileged
				// principal, see Planner).
				Name:    "privileged_takeover",
				Match:   Match{Detectors: []string{privileged.Name}},
				Actions: []ActionSpec{{Kind: KindRevokeToken}, {Kind: KindBlockSource}, {Kind: KindDisableIdentity}},
			},
			{
				// A credential-stuffing campaign (a network's unrecovered
				// failed logins): revoke the tokens minted to its sources
				// (the taken-over accounts' sessions) and block its
				// sources and its network — the network at once only when
				// it is a hosting network; a carrier's or an ISP's waits
				// for approval (Planner).
				Name:    "login_campaign",
				Match:   Match{Detectors: []string{stuffing.Name}, Kinds: []string{stuffing.Kind}},
				Actions: []ActionSpec{{Kind: KindRevokeToken}, {Kind: KindBlockSource}},
			},
			{
				Name:    "behavioural_notify",
				Match:   Match{Detectors: behavioural},
				Actions: []ActionSpec{{Kind: KindNotify}},
			},
			{
				// Critical behavioural risk: end the sessions the
				// principal used in the evidence and block the sources
				// the findings name (reversible, automatic); disabling
				// the identity waits for approval unless an immediate
				// finding about it came with the behaviour (Planner).
				Name:    "behavioural_contain",
				Match:   Match{Detectors: behavioural, MinSeverity: "critical"},
				Actions: []ActionSpec{{Kind: KindRevokeToken}, {Kind: KindBlockSource}, {Kind: KindDisableIdentity}},
			},
			{
				Name:    "rules_notify",
				Match:   Match{Detectors: []string{"rule:*"}},
				Actions: []ActionSpec{{Kind: KindNotify}},
			},
			{
				// A rule author opts a critical rule into containment with
				// the tag haechi.contain.
				Name:    "rules_contain",
				Match:   Match{Detectors: []string{"rule:*"}, MinSeverity: "critical", Tags: []string{"haechi.contain"}},
				Actions: []ActionSpec{{Kind: KindRevokeToken}, {Kind: KindBlockSource}, {Kind: KindDisableIdentity}},
			},
		},
		RateLimits: map[string]int{
			KindDisableIdentity: 20,
			KindRevokeKey:       5,
			KindRevokeToken:     100,
			KindBlockSource:     100,
		},
		MaxAge:         Duration(DefaultMaxAge),
		Lease:          Duration(DefaultLease),
		InitialBackoff: Duration(DefaultInitialBackoff),
		MaxBackoff:     Duration(DefaultMaxBackoff),
	}
}

// ValidationError lists every problem Validate found as "path: problem",
// paths relative to the respond section.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	return "invalid respond config:\n  " + strings.Join(e.Problems, "\n  ")
}

// Validate checks c and returns a *ValidationError listing every problem.
func (c *Config) Validate() error {
	var p []string
	c.Check(func(path, format string, args ...any) { p = append(p, path+": "+fmt.Sprintf(format, args...)) })
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

// Check reports every problem with c to add: the path of the setting,
// relative to the respond section and spelled as in the YAML file, and a
// message in fmt's notation. The config package checks every section of
// haechi.yaml this way, so it reports these under "respond.".
func (c *Config) Check(add func(path, format string, args ...any)) {
	switch c.Mode {
	case "", ModeOff, ModeDryRun, ModeEnforce:
	default:
		add("mode", "unknown mode %q (want off, dry-run or enforce)", c.Mode)
	}
	if c.Secret != "" && c.SecretEnv != "" {
		add("secret", "set secret or secret_env, not both")
	}
	if len(c.Receivers) > 0 && c.Secret == "" && c.SecretEnv == "" {
		add("secret", "required (or secret_env) when receivers are configured: webhooks are signed")
	}
	for name, r := range c.Receivers {
		path := "receivers." + name
		if name == "" {
			add(path, "empty receiver name")
		}
		switch r.Type {
		case "", ReceiverWebhook, ReceiverSlack:
		default:
			add(path+".type", "unknown type %q (want webhook or slack)", r.Type)
		}
		if !strings.HasPrefix(r.URL, "http://") && !strings.HasPrefix(r.URL, "https://") {
			add(path+".url", "must be an http:// or https:// URL, got %q", r.URL)
		} else if kind, ok := literalNonPublic(r.URL); ok && !r.AllowPrivate {
			add(path+".url", "%s is a %s address; set allow_private: true to deliver to it", r.URL, kind)
		}
		if lease := orDefault(c.Lease, DefaultLease); orDefault(r.Timeout, 10*time.Second) >= lease {
			add(path+".timeout", "must be shorter than lease (%s), got %s", Duration(lease), Duration(orDefault(r.Timeout, 10*time.Second)))
		}
		if r.Method != "" && strings.ToUpper(r.Method) != r.Method {
			add(path+".method", "must be upper case, got %q", r.Method)
		}
		if r.BodyTemplate != "" {
			if _, err := parseTemplate(name, r.BodyTemplate); err != nil {
				add(path+".body_template", "%v", err)
			}
		}
		if r.Timeout < 0 {
			add(path+".timeout", "must not be negative")
		}
		switch r.Format {
		case "", alertfmt.FormatHaechi:
		case alertfmt.FormatECS, alertfmt.FormatOCSF:
			if r.BodyTemplate != "" {
				add(path+".format", "%s and body_template exclude each other", r.Format)
			}
			if r.Type == ReceiverSlack {
				add(path+".format", "a slack receiver takes {\"text\": …}, not %s", r.Format)
			}
		default:
			add(path+".format", "unknown format %q (want haechi, ecs or ocsf)", r.Format)
		}
	}
	for name, sk := range c.Sinks {
		sk.check("sinks."+name, add)
		if _, ok := c.Receivers[name]; ok {
			add("sinks."+name, "a receiver has this name too; sinks and receivers need distinct names")
		}
		if orDefault(sk.Timeout, DefaultTimeout) >= orDefault(c.Lease, DefaultLease) {
			add("sinks."+name+".timeout", "must be shorter than lease (%s)", Duration(orDefault(c.Lease, DefaultLease)))
		}
	}
	names := map[string]bool{}
	for i, pb := range c.Playbooks {
		path := fmt.Sprintf("playbooks[%d]", i)
		if pb.Name == "" {
			add(path+".name", "required")
		} else if names[pb.Name] {
			add(path+".name", "duplicate playbook %q", pb.Name)
		}
		names[pb.Name] = true
		if pb.Match.MinSeverity != "" {
			if _, err := event.ParseSeverity(pb.Match.MinSeverity); err != nil {
				add(path+".match.min_severity", "%v", err)
			}
		}
		for j, ek := range pb.Match.EntityKinds {
			if ek == "" {
				add(fmt.Sprintf("%s.match.entity_kinds[%d]", path, j), "empty")
			}
		}
		for name, list := range map[string][]string{"detectors": pb.Match.Detectors, "kinds": pb.Match.Kinds, "tags": pb.Match.Tags} {
			for j, v := range list {
				if strings.TrimSpace(v) == "" || v == "*" {
					add(fmt.Sprintf("%s.match.%s[%d]", path, name, j), "empty pattern (omit the list to match everything)")
				}
			}
		}
		if len(pb.Actions) == 0 {
			add(path+".actions", "at least one action required")
		}
		for j, a := range pb.Actions {
			apath := fmt.Sprintf("%s.actions[%d]", path, j)
			if !validKind(a.Kind) {
				add(apath+".kind", "unknown action kind %q (want %s)", a.Kind, strings.Join(ActionKinds, ", "))
			}
			if a.Receiver != "" {
				if _, ok := c.Receivers[a.Receiver]; !ok {
					add(apath+".receiver", "no receiver named %q", a.Receiver)
				}
			}
			if a.Expiry < 0 || a.MaxExpiry < 0 {
				add(apath+".expiry", "must not be negative")
			}
			if (a.Expiry != 0 || a.MaxExpiry != 0) && a.Kind != KindBlockSource {
				add(apath+".expiry", "only block_source actions expire")
			}
			switch {
			case a.RefusedOnly != "" && a.RefusedOnly != RefusedApprove && a.RefusedOnly != RefusedContain:
				add(apath+".refused_only", "unknown value %q (want %s or %s)", a.RefusedOnly, RefusedApprove, RefusedContain)
			case a.RefusedOnly != "" && a.Kind != KindRevokeKey && a.Kind != KindBlockSource:
				add(apath+".refused_only", "only revoke_key and block_source actions wait on refused-only evidence")
			}
		}
	}
	for i, s := range c.Protected.Networks {
		if _, err := parseNetwork(s); err != nil {
			add(fmt.Sprintf("protected.networks[%d]", i), "%v", err)
		}
	}
	for k, n := range c.RateLimits {
		if !validKind(k) {
			add("rate_limits."+k, "unknown action kind")
		}
		if n < 0 {
			add("rate_limits."+k, "must not be negative")
		}
	}
	if c.MaxAge < 0 {
		add("max_age", "must not be negative")
	}
	if c.InitialBackoff < 0 || c.MaxBackoff < 0 {
		add("initial_backoff", "backoffs must not be negative")
	}
}

func (s *SinkConfig) check(path string, add func(path, format string, args ...any)) {
	switch s.Format {
	case "", alertfmt.FormatECS, alertfmt.FormatOCSF, alertfmt.FormatHaechi:
	default:
		add(path+".format", "unknown format %q (want ecs, ocsf or haechi)", s.Format)
	}
	if s.Timeout < 0 {
		add(path+".timeout", "must not be negative")
	}
	httpURL := func() {
		u, err := url.Parse(s.URL)
		switch {
		case !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://"):
			add(path+".url", "must be an http:// or https:// URL, got %q", s.URL)
		case err != nil:
			add(path+".url", "not a URL")
		case u.User != nil:
			// Never echoed: the message would show the password.
			add(path+".url", "holds credentials; name the environment variables holding them instead (api_key_env, username and password_env, token_env)")
		case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s.URL, "?") || strings.HasSuffix(s.URL, "#"):
			add(path+".url", "must be the base URL, without a query or fragment: the sink appends its API path (/_bulk, /services/collector/event)")
		default:
			if kind, ok := literalNonPublic(s.URL); ok && !s.AllowPrivate {
				add(path+".url", "%s is a %s address; set allow_private: true to deliver to it", s.URL, kind)
			}
		}
	}
	notFor := func(field, v string) {
		if v != "" {
			add(path+"."+field, "not a setting of a %s sink", s.Type)
		}
	}
	// A credential sent over plain http:// can be read by anyone on the
	// path; only a loopback collector (a local agent) may take it so.
	clearCredential := func(field string) {
		if !strings.HasPrefix(strings.ToLower(s.URL), "http://") {
			return
		}
		if kind, ok := literalNonPublic(s.URL); ok && kind == "loopback" {
			return
		}
		add(path+".url", "http:// would send %s in clear text; use https:// (a loopback collector may take http://)", field)
	}
	switch s.Type {
	case SinkElasticsearch:
		httpURL()
		switch {
		case s.APIKeyEnv != "":
			clearCredential("the API key (api_key_env)")
		case s.PasswordEnv != "":
			clearCredential("the password (password_env)")
		}
		if s.APIKeyEnv != "" && (s.Username != "" || s.PasswordEnv != "") {
			add(path+".api_key_env", "set api_key_env or username and password_env, not both")
		}
		if (s.Username == "") != (s.PasswordEnv == "") {
			add(path+".username", "username and password_env go together")
		}
		notFor("token_env", s.TokenEnv)
		notFor("address", s.Address)
	case SinkSplunk:
		httpURL()
		if s.TokenEnv == "" {
			add(path+".token_env", "required: the environment variable holding the HEC token")
		} else {
			clearCredential("the HEC token (token_env)")
		}
		notFor("api_key_env", s.APIKeyEnv)
		notFor("address", s.Address)
	case SinkSyslog:
		host, port, err := net.SplitHostPort(s.Address)
		if err != nil || port == "" || host == "" {
			add(path+".address", "want host:port, got %q", s.Address)
		} else if kind, ok := literalNonPublic("tcp://" + s.Address); ok && !s.AllowPrivate {
			add(path+".address", "%s is a %s address; set allow_private: true to deliver to it", s.Address, kind)
		}
		switch s.Network {
		case "", "tcp":
		case "udp":
			if s.TLS {
				add(path+".tls", "TLS runs over tcp, not udp")
			}
		default:
			add(path+".network", "unknown network %q (want tcp or udp)", s.Network)
		}
		if s.Facility != "" {
			if _, ok := siem.Facility(s.Facility); !ok {
				add(path+".facility", "unknown facility %q (want auth, authpriv, local0 … local7, …)", s.Facility)
			}
		}
		notFor("url", s.URL)
	case "":
		add(path+".type", "required (elasticsearch, splunk or syslog)")
	default:
		add(path+".type", "unknown type %q (want elasticsearch, splunk or syslog)", s.Type)
	}
}

// ResolveSecret returns the signing key: Secret, or the environment
// variable SecretEnv names (an error if that is empty). Nil when neither is
// set.
func (c *Config) ResolveSecret() ([]byte, error) {
	if c.SecretEnv != "" {
		v := os.Getenv(c.SecretEnv)
		if v == "" {
			return nil, fmt.Errorf("respond: environment variable %s (secret_env) is empty", c.SecretEnv)
		}
		return []byte(v), nil
	}
	if c.Secret != "" {
		return []byte(c.Secret), nil
	}
	return nil, nil
}

func (c *Config) mode() Mode {
	if c.Mode == "" {
		return ModeDryRun
	}
	return c.Mode
}

func orDefault(d Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d.D()
}

func validKind(k string) bool {
	for _, v := range ActionKinds {
		if v == k {
			return true
		}
	}
	return false
}

func parseNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("want a CIDR network or an address, got " + strconv.Quote(s))
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func parseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Funcs(template.FuncMap{"json": jsonString}).Option("missingkey=error").Parse(text)
}
