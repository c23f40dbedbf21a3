// Package drill is serve's continuous drills: it attacks the deployment it
// runs in with reserved drill identities, keys, tokens and records, through
// the real ingest path, and checks that the expected detection happens in
// time (docs/drills.md).
//
// Contract:
//   - A drill's events are contract NDJSON handed to Options.Inject, which
//     stores them in the spool under the drill scope (ingest.AppendDrill):
//     the consumer marks them event.Event.Drill and feeds them through the
//     same decoder, engine, detectors, alert stage and response as any
//     request. There is no side door into the detectors.
//   - Every id a drill makes up — principal, token, signing key, record —
//     starts with Prefix and carries the run's random id, so no two runs
//     share an entity and no customer's id is ever one; source addresses
//     are in 198.18.0.0/15 (RFC 2544, benchmarking, never routed). Being a
//     drill is provenance (the Drill flag set by ingest), not the id: an
//     attacker who names himself "haechi-drill-…" is treated as anyone.
//   - The Runner is an alert.Sink: it sees every alert change on the alert
//     stage's goroutine and only does a map lookup per alert there.
//   - A run passes when alerts about the run's expected entity carry every
//     expected detector (and finding kind) within the expected wall time
//     after injection; otherwise it fails, naming the expectation and why.
//     A drill whose stream the deployment does not feed (NeedStreams, as
//     Options.Seen answers) is not injected: it "cannot run", which is a
//     result, not a failure.
package drill

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// Prefix starts every id a drill makes up.
const Prefix = "haechi-drill-"

// CanaryRecord is the reserved canary record the canary drill reads; serve
// adds it to the canary detector's records.
const CanaryRecord = Prefix + "canary"

// Kind is what a drill does.
type Kind string

// The kinds of drill.
const (
	// ForgedToken uses a token signed by a drill key that no issuer
	// minted.
	ForgedToken Kind = "forged_token"
	// TokenHijack mints a drill token on one network and uses it from
	// another country's hosting network.
	TokenHijack Kind = "token_hijack"
	// CanaryRead reads the reserved canary record.
	CanaryRead Kind = "canary_read"
	// TerminatedIdentity terminates a drill identity on the roster and has
	// it read a drill record afterwards.
	TerminatedIdentity Kind = "terminated_identity"
	// SourceFanout has one drill address act as FanoutPrincipals drill
	// principals within a minute.
	SourceFanout Kind = "source_fanout"
	// CloudCredential uses a drill EC2 instance's temporary cloud
	// credential (an STS ASIA… key of its role session) from outside the
	// cloud provider.
	CloudCredential Kind = "cloud_credential" // #nosec G101 -- a drill kind's name, not a credential
)

// FanoutPrincipals is how many drill principals the fan-out drill acts
// as from one address: above source_fanout's default floor (20), with
// room for a deployment that raised it a little.
const FanoutPrincipals = 32

// Kinds lists every kind, in the order docs/drills.md describes them.
var Kinds = []Kind{ForgedToken, TokenHijack, CanaryRead, TerminatedIdentity, SourceFanout, CloudCredential}

// Definition is one drill: what it does and what must follow.
type Definition struct {
	Name   string
	Kind   Kind
	Expect Expectation
}

// Expectation is what a drill run must produce.
type Expectation struct {
	// Detectors must each contribute a finding to an alert about the
	// drill's entity.
	Detectors []string
	// Kinds, when set, are the finding kinds that prove detection: one of
	// those findings must be of one of them (a forged token is
	// token_never_minted, or token_unknown_key where a key inventory is
	// fed).
	Kinds []string
	// Actions are the response actions (kinds: revoke_key, revoke_token,
	// block_source, disable_identity, notify) the playbooks must plan for
	// those alerts. A drill's containment is always planned dry-run, which
	// counts; an action skipped (no receiver configured for it, a notice
	// over its rate limit) does not: it would reach no one.
	Actions []string
	// Within is the longest acceptable wall time from injection to the
	// alert carrying everything expected (and its actions planned).
	Within time.Duration
}

// Defaults is the shipped set: one drill per kind with the detection the
// default configuration makes and the containment its default playbooks
// plan for it (respond.DefaultConfig; notices are not expected, as the
// default configuration has no receiver for them). The forged-token alert
// names the key and the source, not the never-minted token, so its
// playbook's revoke_token has nothing to act on; the fan-out drill's alert
// is behavioural, below critical: its playbook only notifies; the canary
// finding names no source, so the canary_read playbook's block_source has
// nothing to act on (docs/drills.md).
func Defaults() []Definition {
	return []Definition{
		{Name: "forged-token", Kind: ForgedToken, Expect: Expectation{Detectors: []string{"token_provenance"}, Kinds: []string{"token_never_minted", "token_unknown_key"},
			Actions: []string{"revoke_key", "block_source"}, Within: 2 * time.Minute}},
		{Name: "token-hijack", Kind: TokenHijack, Expect: Expectation{Detectors: []string{"token_binding"},
			Actions: []string{"revoke_token", "block_source"}, Within: time.Minute}},
		{Name: "canary-read", Kind: CanaryRead, Expect: Expectation{Detectors: []string{"canary_record"}, Kinds: []string{"canary_record_access"}, Within: time.Minute}},
		{Name: "terminated-identity", Kind: TerminatedIdentity, Expect: Expectation{Detectors: []string{"terminated_identity"},
			Actions: []string{"disable_identity"}, Within: time.Minute}},
		{Name: "source-fanout", Kind: SourceFanout, Expect: Expectation{Detectors: []string{"source_fanout"}, Kinds: []string{"source_fanout"}, Within: time.Minute}},
		{Name: "cloud-credential", Kind: CloudCredential, Expect: Expectation{Detectors: []string{"cloud_credential"}, Kinds: []string{"cloud_credential_outside_provider"},
			Actions: []string{"revoke_token", "block_source"}, Within: time.Minute}},
	}
}

// Validate reports a definition's problems.
func (d Definition) Validate() error {
	var errs []string
	if d.Name == "" || strings.ContainsAny(d.Name, " /?#%") {
		errs = append(errs, fmt.Sprintf("name %q: want a non-empty name without spaces or / ? # %%", d.Name))
	}
	known := false
	for _, k := range Kinds {
		known = known || k == d.Kind
	}
	if !known {
		errs = append(errs, fmt.Sprintf("kind %q: want one of %s", d.Kind, kindList()))
	}
	if len(d.Expect.Detectors) == 0 {
		errs = append(errs, "expect.detectors: name at least one detector")
	}
	if d.Expect.Within <= 0 {
		errs = append(errs, "expect.within: must be positive")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// CloudDataset is the dataset of cloud audit events (the cloudtrail
// input's).
const CloudDataset = "aws.cloudtrail"

// NeedStreams are the datasets the deployment's own feeds must carry for a
// drill of kind k to be able to pass, or to mean anything: the forged-token
// verdict waits for the issuer's auth.token stream (docs/detectors.md,
// token_provenance); a fan-out is one address acting as many principals of
// the access stream (gateway.access), and a drill on a deployment without
// one proves nothing about its traffic; a stolen cloud credential shows in
// the cloud's audit log (aws.cloudtrail), which the drill's event imitates.
func NeedStreams(k Kind) []string {
	switch k {
	case ForgedToken:
		return []string{"auth.token"}
	case SourceFanout:
		return []string{"gateway.access"}
	case CloudCredential:
		return []string{CloudDataset}
	}
	return nil
}

// Plan is one run's events and the entity whose alert proves detection.
type Plan struct {
	Run    string          // the run's id: drill name, time, random hex
	Entity event.EntityKey // the entity the expected alert is about
	// Entities are every entity the run makes up — principal, token,
	// signing key, source addresses — the expected one among them: an
	// alert about any of them is the drill's.
	Entities []event.EntityKey
	Body     []byte // contract NDJSON
}

// NewRunID returns a fresh run id for drill name at now.
func NewRunID(name string, now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%s", name, now.UTC().Format("20060102T150405"), hex.EncodeToString(b[:]))
}

// Build returns the events of one run of d at now (event time; serve uses
// the wall clock) with run id run.
func Build(d Definition, run string, now time.Time) (Plan, error) {
	id := func(what string) string { return Prefix + run + "-" + what }
	// One address per run in 198.18.0.0/15, from the run's id.
	h := uint32(2166136261)
	for i := 0; i < len(run); i++ {
		h = (h ^ uint32(run[i])) * 16777619
	}
	addr := func(n byte) netip.Addr {
		return netip.AddrFrom4([4]byte{198, 18 + byte(h>>16)&1, byte(h >> 8), n})
	}
	home := src{IP: addr(1), Country: "KR", ASN: 64512, Org: "haechi drill residential"}
	away := src{IP: addr(2), Country: "NL", ASN: 64513, Org: "haechi drill hosting cloud"}
	user, tok, key, rec := id("user"), id("token"), id("key"), id("record")
	at := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339Nano) }
	var evs []map[string]any
	var ent event.EntityKey
	var extra []event.EntityKey // made-up entities beyond the shared ones
	read := func(t string, s src, withToken bool, records ...string) map[string]any {
		ev := map[string]any{
			"@timestamp": t,
			"event":      map[string]any{"dataset": "gateway.access", "action": "member.profile.read", "outcome": "success", "id": id("ev-" + fmt.Sprint(len(evs)+1))},
			"user":       map[string]any{"id": user},
			"source":     s.json(),
			"user_agent": map[string]any{"original": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"},
			"http":       map[string]any{"request": map[string]any{"method": "GET"}, "response": map[string]any{"status_code": 200}},
			"url":        map[string]any{"path": "/haechi-drill/profile"},
			"records":    map[string]any{"type": "customer", "ids": records, "fields": []string{"name"}},
		}
		if withToken {
			ev["token"] = map[string]any{"id": tok, "key_id": key, "issued_at": at(-2 * time.Second)}
		}
		return ev
	}
	switch d.Kind {
	case ForgedToken:
		// Issued at its use: a token claiming an issue time before
		// haechi's first event is never judged (it may predate watching).
		use := read(at(0), home, true, rec)
		use["token"].(map[string]any)["issued_at"] = at(0)
		evs = append(evs, use)
		ent = event.EntityKey{Kind: event.EntitySigningKey, ID: key}
	case TokenHijack:
		evs = append(evs, map[string]any{
			"@timestamp": at(-2 * time.Second),
			"event":      map[string]any{"dataset": "auth.token", "action": "token.issued", "outcome": "success", "id": id("ev-mint")},
			"user":       map[string]any{"id": user},
			"token":      map[string]any{"id": tok, "key_id": key, "issued_at": at(-2 * time.Second), "expires_at": at(time.Hour)},
			"source":     home.json(),
		})
		evs = append(evs, read(at(-time.Second), home, true, rec), read(at(0), away, true, rec))
		ent = event.EntityKey{Kind: event.EntityToken, ID: tok}
	case CanaryRead:
		evs = append(evs, read(at(0), home, false, CanaryRecord))
		ent = event.EntityKey{Kind: event.EntityPrincipal, ID: user}
	case TerminatedIdentity:
		evs = append(evs, map[string]any{
			"@timestamp": at(-2 * time.Hour),
			"event":      map[string]any{"dataset": "hr.roster", "action": "identity.terminated", "outcome": "success", "id": id("ev-roster")},
			"identity": map[string]any{"id": user, "kind": "employee", "roles": []string{"haechi-drill"}, "status": "terminated",
				"terminated_at": at(-2 * time.Hour), "country": "KR"},
		})
		evs = append(evs, read(at(0), home, false, rec))
		ent = event.EntityKey{Kind: event.EntityPrincipal, ID: user}
	case SourceFanout:
		// One hosting address acting as many principals, each reading
		// its own record, a few milliseconds apart.
		for i := range FanoutPrincipals {
			ev := read(at(time.Duration(i-FanoutPrincipals)*time.Millisecond), away, false, rec)
			p := id(fmt.Sprintf("user-%d", i+1))
			ev["user"] = map[string]any{"id": p}
			extra = append(extra, event.EntityKey{Kind: event.EntityPrincipal, ID: p})
			evs = append(evs, ev)
		}
		ent = event.EntityKey{Kind: event.EntitySource, ID: away.IP.String()}
	case CloudCredential:
		// A cloud audit event: an EC2 instance's role session (session
		// name the instance id) reading an object with its temporary key
		// from a hosting network outside the provider. AWS keys are
		// upper-case base32: "ASIA" and the reserved id cannot be one.
		instance := fmt.Sprintf("i-0%016x", uint64(h)<<32|uint64(h2(run)))
		arn := "arn:aws:sts::000000000000:assumed-role/" + id("role") + "/" + instance
		akey := "ASIA" + id("key")
		evs = append(evs, map[string]any{
			"@timestamp": at(0),
			"event":      map[string]any{"dataset": CloudDataset, "action": "GetObject", "outcome": "success", "provider": "s3.amazonaws.com", "id": id("ev-cloud")},
			"user":       map[string]any{"id": arn, "name": instance, "roles": []string{id("role")}},
			"token":      map[string]any{"id": akey},
			"source":     away.json(),
			"user_agent": map[string]any{"original": "aws-cli/2.17.0 Python/3.12.4 Linux/6.8 exe/x86_64"},
			"records":    map[string]any{"type": "s3_object", "ids": []string{id("bucket") + "/" + rec}},
		})
		ent = event.EntityKey{Kind: event.EntityToken, ID: akey}
		extra = append(extra, event.EntityKey{Kind: event.EntityPrincipal, ID: arn})
	default:
		return Plan{}, fmt.Errorf("drill %s: unknown kind %q", d.Name, d.Kind)
	}
	var b strings.Builder
	for _, ev := range evs {
		line, err := json.Marshal(ev)
		if err != nil {
			return Plan{}, fmt.Errorf("drill %s: %w", d.Name, err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	ents := []event.EntityKey{ent,
		{Kind: event.EntityPrincipal, ID: user}, {Kind: event.EntityToken, ID: tok}, {Kind: event.EntitySigningKey, ID: key},
		{Kind: event.EntitySource, ID: home.IP.String()}, {Kind: event.EntitySource, ID: away.IP.String()}}
	ents = append(ents, extra...)
	return Plan{Run: run, Entity: ent, Entities: ents, Body: []byte(b.String())}, nil
}

// h2 is a second hash of the run id (FNV-1a of it reversed).
func h2(run string) uint32 {
	h := uint32(2166136261)
	for i := len(run) - 1; i >= 0; i-- {
		h = (h ^ uint32(run[i])) * 16777619
	}
	return h
}

type src struct {
	IP      netip.Addr
	Country string
	ASN     uint32
	Org     string
}

func (s src) json() map[string]any {
	return map[string]any{"ip": s.IP.String(), "geo": map[string]any{"country_iso_code": s.Country},
		"as": map[string]any{"number": s.ASN, "organization": map[string]any{"name": s.Org}}}
}

// Status is a run's outcome.
type Status string

// The outcomes.
const (
	Running   Status = "running"
	Passed    Status = "passed"
	Failed    Status = "failed"
	CannotRun Status = "cannot_run"
	// Interrupted: the run was injected, but serve stopped (or the
	// runner was stopped) before its expectation was met or its time ran
	// out. Not a verdict on detection, and not a failure.
	Interrupted Status = "interrupted"
)

// PlannedAction is one action the response planner planned for an alert
// of a run (package respond's Action, which drill does not import).
type PlannedAction struct {
	Alert    string `json:"alert"`
	Kind     string `json:"kind"`
	Target   string `json:"target"`
	Playbook string `json:"playbook"`
	Receiver string `json:"receiver,omitempty"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
}

// StateSkipped is the state of an action the planner skipped (no
// receiver, a guard on a notice): planned, but reaching no one, so it does
// not meet an expected action.
const StateSkipped = "skipped"

// Result is one run's outcome.
type Result struct {
	Drill   string    `json:"drill"`
	Kind    Kind      `json:"kind"`
	Run     string    `json:"run"`
	Started time.Time `json:"started"`
	Status  Status    `json:"status"`
	// Reason says why a run failed or could not run, naming the
	// expectation.
	Reason string `json:"reason,omitempty"`
	// TimeToAlert is the wall time from injection to the alert that met
	// the expectation (passed runs only).
	TimeToAlert time.Duration `json:"time_to_alert_ns,omitempty"`
	// Alerts are the ids of the alerts about the drill's entity.
	Alerts []string        `json:"alerts,omitempty"`
	Entity event.EntityKey `json:"entity"`
	// Actions are those the planner planned for the alerts about the
	// drill's entity, as of the verdict.
	Actions []PlannedAction `json:"actions,omitempty"`
	// AlertDetail is every alert about any entity the run made up (the
	// latest version of each, with its findings) and Findings every
	// scored finding about one, as of the verdict: kept with the run, in
	// no alert or finding list (docs/drills.md).
	AlertDetail []event.Alert   `json:"alert_detail,omitempty"`
	Findings    []event.Finding `json:"findings,omitempty"`
}

// missingActions returns the expected action kinds not planned (in a
// state other than skipped) among acts.
func (e Expectation) missingActions(acts []PlannedAction) []string {
	var miss []string
	for _, k := range e.Actions {
		if !slices.ContainsFunc(acts, func(a PlannedAction) bool { return a.Kind == k && a.State != StateSkipped }) {
			miss = append(miss, k)
		}
	}
	return miss
}

// check compares what alerts carried with the expectation: "" when met,
// else what is missing.
func (e Expectation) check(detectors, kinds map[string]bool) string {
	var miss []string
	for _, d := range e.Detectors {
		if !detectors[d] {
			miss = append(miss, "detector "+d)
		}
	}
	if len(e.Kinds) > 0 && !slices.ContainsFunc(e.Kinds, func(k string) bool { return kinds[k] }) {
		miss = append(miss, "finding kind "+strings.Join(e.Kinds, " or "))
	}
	return strings.Join(miss, ", ")
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
