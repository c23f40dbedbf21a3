package respond

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/alertfmt"
	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// Action is one planned response action, as stored in the outbox.
type Action = store.Action

// Action states (see store).
const (
	StatePlanned         = store.ActionPlanned
	StatePendingApproval = store.ActionPendingApproval
	StateDelivering      = store.ActionDelivering
	StateDelivered       = store.ActionDelivered
	StateFailed          = store.ActionFailed
	StateDead            = store.ActionDead
	StateRejected        = store.ActionRejected
	StateSkipped         = store.ActionSkipped
	StateDryRun          = store.ActionDryRun
)

// ReasonNoReceiver is the Reason of an action skipped for want of a receiver.
const ReasonNoReceiver = "no receiver configured"

// AlertSummary is the part of the alert an action carries.
type AlertSummary struct {
	ID          string          `json:"id"`
	Time        time.Time       `json:"time"`
	Entity      event.EntityKey `json:"entity"`
	Severity    event.Severity  `json:"severity"`
	Score       float64         `json:"score"`
	Title       string          `json:"title"`
	Detector    string          `json:"detector"`
	Explanation string          `json:"explanation"`
}

// Payload is stored with each action (Action.Payload) and rendered into
// its webhook.
type Payload struct {
	Mode  Mode         `json:"mode"`
	Alert AlertSummary `json:"alert,omitzero"` // none on an incident notice
	// block_source: how long the block lasts, and how many blocks of the
	// same target preceded it (each doubles the expiry).
	Expiry        string `json:"expiry,omitempty"`
	ExpirySeconds int64  `json:"expiry_seconds,omitempty"`
	Repeat        int    `json:"repeat,omitempty"`
	// disable_identity: revoke the identity's sessions too (always true).
	RevokeSessions bool `json:"revoke_sessions,omitempty"`
	// Drill marks an action planned for a drill's alert (serve's
	// continuous drills, docs/drills.md): containment is never delivered
	// for it, and a receiver that gets a notice must not act on it.
	Drill bool `json:"drill,omitempty"`
	// Incident is an incident event's notice (kind "incident"): the event
	// (opened, grew, state_changed), the incident and its detail.
	Incident *IncidentNotice `json:"incident,omitempty"`
	// Change is what an export reports happened to its alert: created,
	// updated or closed (alertfmt.Change).
	Change string `json:"change,omitempty"`
	// Full is the whole alert, carried by an export and by an action
	// whose receiver renders ECS or OCSF (Receiver.Format).
	Full *event.Alert `json:"full,omitempty"`
}

// marshal returns pl as JSON; when the whole alert cannot be rendered (a
// finding without a valid severity), without it, so the action still
// carries its summary.
func (pl Payload) marshal() []byte {
	b, err := json.Marshal(pl)
	if err != nil && pl.Full != nil {
		pl.Full = nil
		b, err = json.Marshal(pl)
	}
	if err != nil {
		return nil
	}
	return b
}

// KindIncident is the kind of an incident event's notice; it is delivered
// to the receiver named "incident".
const KindIncident = "incident"

// IncidentNotice is the incident part of an incident event's webhook.
type IncidentNotice struct {
	Event    string          `json:"event"` // opened, grew, state_changed
	Incident json.RawMessage `json:"incident"`
	Detail   json.RawMessage `json:"detail,omitempty"`
}

// ActionID is the idempotency key of an action: a hash of the alert id,
// the action kind and the target.
func ActionID(alertID, kind, target string) string {
	h := sha256.Sum256([]byte(alertID + "\x00" + kind + "\x00" + target))
	return hex.EncodeToString(h[:16])
}

// Planner turns alerts into actions. It is not safe for concurrent use
// (the Responder calls it from its one writer goroutine).
//
// The rate limit and the block escalation count are held in memory; after
// a restart Restore rebuilds them from the outbox.
type Planner struct {
	// drill says whether an alert is a drill's (SetDrill).
	drill      func(event.Alert) bool
	cfg        Config
	mode       Mode
	minSev     []event.Severity
	principals map[string]bool
	keys       map[string]bool
	networks   []netip.Prefix

	// window holds, per kind, the event times of actions planned
	// automatically, for the sliding-hour rate limit.
	window map[string][]time.Time
	// seen maps action ids already planned to their event time, so a
	// re-planned alert (Updated, replay) neither counts twice nor
	// changes its decision.
	seen   map[string]time.Time
	latest time.Time
	// heldRefused marks the ids of seen actions held for approval on
	// refused presentations only (revoke_key, block_source): a re-planned
	// alert with a served forgery acts at once.
	heldRefused map[string]bool
	// blocks counts block_source actions per target.
	blocks map[string]int
	// ended holds, per principal, the sessions (tokens) a revoke_token of
	// its own alert ended automatically, and from when.
	ended map[string]map[string]time.Time
	// exported holds the alerts exported to the sinks, and when: a later
	// export of one reports an update.
	exported map[string]time.Time
	// local holds the action kinds haechi executes itself (SetLocal).
	local map[string]bool
}

// NewPlanner validates cfg and returns a planner for it.
func NewPlanner(cfg Config) (*Planner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Planner{
		cfg: cfg, mode: cfg.mode(),
		principals: set(cfg.Protected.Principals), keys: set(cfg.Protected.Keys),
		window: map[string][]time.Time{}, seen: map[string]time.Time{}, heldRefused: map[string]bool{}, blocks: map[string]int{},
		ended: map[string]map[string]time.Time{}, exported: map[string]time.Time{},
	}
	for _, pb := range cfg.Playbooks {
		var s event.Severity
		if pb.Match.MinSeverity != "" {
			s, _ = event.ParseSeverity(pb.Match.MinSeverity)
		}
		p.minSev = append(p.minSev, s)
	}
	for _, n := range cfg.Protected.Networks {
		pf, _ := parseNetwork(n)
		p.networks = append(p.networks, pf)
	}
	return p, nil
}

// RestoreFrom rebuilds the planner's memory from the outbox after a
// restart (see Restore).
func (p *Planner) RestoreFrom(ctx context.Context, st *store.Store) (int, error) {
	span := max(orDefault(p.maxBlockExpiry(), DefaultMaxBlockExpiry), 2*time.Hour)
	acts, err := st.RecentActions(ctx, span)
	if err != nil {
		return 0, err
	}
	p.Restore(acts)
	return len(acts), nil
}

// Restore rebuilds the planner's memory from actions already in the
// outbox, oldest first: their ids are not planned again; actions that
// passed the guardrails (not pending approval, not rejected) count against
// the rate limits in their hour; and every earlier block_source of a
// target keeps its block escalating.
func (p *Planner) Restore(acts []store.Action) {
	for _, a := range acts {
		p.seen[a.ID] = a.CreatedAt
		if a.CreatedAt.After(p.latest) {
			p.latest = a.CreatedAt
		}
		if a.Kind == KindBlockSource {
			p.blocks[a.Target]++
		}
		if a.Kind == KindExport {
			p.exported[a.AlertID] = a.CreatedAt
			continue
		}
		if a.State == store.ActionPendingApproval || a.State == store.ActionRejected {
			continue
		}
		if a.Kind == KindRevokeToken {
			var pl Payload
			if json.Unmarshal(a.Payload, &pl) == nil && pl.Alert.Entity.Kind == event.EntityPrincipal {
				p.endSession(pl.Alert.Entity.ID, a.Target, a.CreatedAt)
			}
		}
		if _, limited := p.cfg.RateLimits[a.Kind]; limited {
			ts := p.window[a.Kind]
			i := sort.Search(len(ts), func(i int) bool { return ts[i].After(a.CreatedAt) })
			p.window[a.Kind] = slices.Insert(ts, i, a.CreatedAt)
		}
	}
	p.prune()
}

// maxBlockExpiry is the longest max_expiry of any block_source action.
func (p *Planner) maxBlockExpiry() Duration {
	var m Duration
	for _, pb := range p.cfg.Playbooks {
		for _, a := range pb.Actions {
			if a.Kind == KindBlockSource {
				m = max(m, a.MaxExpiry)
			}
		}
	}
	return m
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// DrillReceiver is the name of the drills' own receiver (serve's
// drills.receiver, added to Config.Receivers under this name): when it is
// configured, every action planned for a drill's alert names it instead of
// its playbook's receiver, so drill notices go to a receiver of their own.
// The name is reserved: respond.receivers may not define it.
const DrillReceiver = "drills"

// SetDrill tells the planner which alerts are drills' (serve's drill
// runner knows its runs' entities). A drill's alert is planned by the same
// playbooks and guardrails, but its containment is always dry-run whatever
// the mode, it counts against no rate limit, and every payload says
// "drill": true. Call it before the first Plan.
func (p *Planner) SetDrill(f func(event.Alert) bool) { p.drill = f }

// SetLocal names the action kinds haechi executes itself, receiver or
// not: serve's dispatcher applies revoke_token and revoke_key to the
// inline check's mint registry (DispatcherOptions.Revoker). An action of
// such a kind whose receiver is not configured is planned as if it had
// one — the mode, the guardrails and approval apply as usual — instead of
// skipped, so the dispatcher executes it locally. Call it before the
// first Plan.
func (p *Planner) SetLocal(kinds ...string) {
	p.local = map[string]bool{}
	for _, k := range kinds {
		p.local[k] = true
	}
}

// Plan returns the actions the playbooks call for on a, with guardrails
// applied: mode off → none; dry-run → containment is dry_run; no receiver
// (and not a kind haechi executes itself, SetLocal) → skipped; protected entity or rate limit exceeded → pending_approval;
// otherwise planned. Actions already planned by this planner (same id) are
// not returned again.
func (p *Planner) Plan(a event.Alert) []Action {
	if p.mode == ModeOff {
		return nil
	}
	if a.Time.After(p.latest) {
		p.latest = a.Time
		p.prune()
	}
	var out []Action
	for i, pb := range p.cfg.Playbooks {
		if !p.matches(i, &pb, &a) {
			continue
		}
		for _, spec := range pb.Actions {
			for _, tg := range targetsAt(spec.Kind, &a) {
				id := ActionID(a.ID, spec.Kind, tg.id)
				if _, ok := p.seen[id]; ok {
					if served := servedAt(spec.Kind, tg.id, &a); p.heldRefused[id] && !served.IsZero() {
						// It waited for approval on refused presentations
						// only; a forgery served since joined the alert:
						// the forger is past the check, so act now, as
						// an action of its own (the held one stays to
						// decide). Without this, a forger could open the
						// alert with a refused junk token and keep its
						// containment waiting on a person.
						if id = ActionID(a.ID+"\x00served", spec.Kind, tg.id); !p.seen[id].IsZero() {
							continue
						}
						if served.After(tg.at) {
							tg.at = served
						}
						if spec.Kind == KindBlockSource {
							p.blocks[tg.id]-- // the same block as the held one, not a repeat
						}
						p.seen[id] = tg.at
						out = append(out, p.plan(a, pb.Name, spec, id, tg))
						continue
					}
					if spec.Kind != KindDisableIdentity || p.returned(tg.id).IsZero() {
						continue
					}
					// Its disable waited for approval; the principal
					// has since come back with a new session after
					// its sessions were ended: disable it now, as an
					// action of its own (the held one stays to decide).
					if id = ActionID(a.ID+"\x00returned", spec.Kind, tg.id); !p.seen[id].IsZero() {
						continue
					}
					if back := p.returned(tg.id); back.After(tg.at) {
						tg.at = back
					}
				}
				p.seen[id] = tg.at
				out = append(out, p.plan(a, pb.Name, spec, id, tg))
			}
		}
	}
	return out
}

// MaxRelatedTargets bounds how many related sources one alert's
// block_source contains (the first named by its findings).
const MaxRelatedTargets = 16

// MaxRelatedTokens bounds how many related tokens one alert's
// revoke_token revokes (a campaign's alert names the token of each of its
// successful logins; revoking a token only ends a session, and the rate
// limit still applies).
const MaxRelatedTokens = 1024

// target is what an action acts on and from when: the alert's time for
// its own entity, else the time of the earliest finding naming it (a
// finding that joins an alert later names its targets then, not at the
// alert's start). network marks a block of a whole network (an AS or a
// prefix wider than one address) and hosting that a finding about it
// tagged it a hosting network (TagHostingNetwork).
type target struct {
	id      string
	at      time.Time
	network bool
	hosting bool
}

// TagHostingNetwork is the finding tag that marks its network entity as a
// hosting network (a data centre, where no customer lives): a block of the
// whole network is then delivered without approval.
const TagHostingNetwork = "haechi.network.hosting"

// targets returns what an action of kind acts on for alert a (targetsAt
// without the times).
func targets(kind string, a *event.Alert) []string {
	ts := targetsAt(kind, a)
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.id
	}
	return out
}

// targetsAt returns what an action of kind acts on for alert a: the
// alert's entity when the kind applies to it; otherwise, for block_source
// and revoke_token, the source addresses and tokens its findings name as
// related (a forged-token alert is about the signing key, but the servers
// using the forged tokens are the sources to block; a takeover alert is
// about the principal, but the session it used is the token to revoke; a
// credential-stuffing campaign's alert is about a network, and the tokens
// minted to its sources are to revoke), up to MaxRelatedTargets sources
// and MaxRelatedTokens tokens. A block_source of a network's alert blocks
// the network and the sources its findings name.
func targetsAt(kind string, a *event.Alert) []target {
	if t := targetFor(kind, a.Entity); t != "" {
		tg := target{id: t, at: a.Time}
		if kind == KindBlockSource {
			tg.network = isNetworkTarget(a.Entity)
			tg.hosting = slices.ContainsFunc(a.Findings, func(f event.Finding) bool {
				return f.Entity == a.Entity && slices.Contains(f.Tags, TagHostingNetwork)
			})
		}
		if !tg.network {
			return []target{tg}
		}
		// A network's alert also blocks the sources its findings name:
		// when the network's block waits for approval, they are what
		// stops the campaign meanwhile.
		return append([]target{tg}, related(kind, a, MaxRelatedTargets)...)
	}
	limit := MaxRelatedTargets
	switch kind {
	case KindBlockSource:
	case KindRevokeToken:
		limit = MaxRelatedTokens
	default:
		return nil
	}
	out := related(kind, a, limit)
	if kind == KindRevokeToken && a.Entity.Kind == event.EntityPrincipal {
		out = ownTokens(a, out, limit)
	}
	return out
}

// ownTokens adds to out (up to limit) the tokens the alert's principal
// itself used in the evidence its findings cite — successful activity
// whose actor is the principal — each from the earliest finding citing
// it. Ending those sessions is the reversible containment of an
// identity: the person (or the workload) signs in again, an attacker
// holding only the session is locked out. Tokens other principals used
// from the same source are never among them (a shared address holds
// many people's sessions).
func ownTokens(a *event.Alert, out []target, limit int) []target {
	for _, f := range a.Findings {
		at := f.Time
		if at.Before(a.Time) || at.IsZero() {
			at = a.Time
		}
		for _, c := range f.Cited {
			if !c.Success || c.Token == "" || c.Principal != a.Entity.ID {
				continue
			}
			if i := slices.IndexFunc(out, func(t target) bool { return t.id == c.Token }); i >= 0 {
				if at.Before(out[i].at) {
					out[i].at = at
				}
				continue
			}
			if len(out) == limit {
				continue
			}
			out = append(out, target{id: c.Token, at: at})
		}
	}
	return out
}

// related returns the targets of kind a's findings name as related, up to
// limit, each at the time of the earliest finding naming it.
func related(kind string, a *event.Alert, limit int) []target {
	var out []target
	idx := map[string]int{}
	for _, f := range a.Findings {
		at := f.Time
		if at.Before(a.Time) || at.IsZero() {
			at = a.Time
		}
		for _, r := range f.Related {
			t := targetFor(kind, r)
			if t == "" {
				continue
			}
			if i, ok := idx[t]; ok {
				if at.Before(out[i].at) {
					out[i].at = at
				}
				continue
			}
			if len(out) == limit {
				continue
			}
			idx[t] = len(out)
			out = append(out, target{id: t, at: at, network: isNetworkTarget(r)})
		}
	}
	return out
}

// isNetworkTarget reports whether blocking e blocks a whole network: an
// entity of kind network (an AS or a prefix), or a source given as a
// prefix wider than one address.
func isNetworkTarget(e event.EntityKey) bool {
	if e.Kind == "network" {
		return true
	}
	if pf, err := netip.ParsePrefix(e.ID); err == nil {
		return pf.Bits() < pf.Addr().BitLen()
	}
	return false
}

func (p *Planner) plan(a event.Alert, playbook string, spec ActionSpec, id string, tg target) Action {
	target := tg.id
	recv := spec.Receiver
	if recv == "" {
		recv = spec.Kind
	}
	act := Action{
		ID: id, Kind: spec.Kind, Target: target, AlertID: a.ID, Playbook: playbook,
		Receiver: recv, CreatedAt: tg.at,
	}
	drill := p.drill != nil && p.drill(a)
	if _, ok := p.cfg.Receivers[DrillReceiver]; drill && ok {
		// Every action of a drill's alert goes to the drills' own
		// receiver when one is configured (drills.receiver).
		recv = DrillReceiver
		act.Receiver = recv
	}
	pl := Payload{Mode: p.mode, Drill: drill, Alert: AlertSummary{
		ID: a.ID, Time: a.Time, Entity: a.Entity, Severity: a.Severity, Score: a.Score,
		Title: a.Title, Detector: a.Detector, Explanation: a.Explanation,
	}}
	switch spec.Kind {
	case KindBlockSource:
		n := p.blocks[target]
		p.blocks[target] = n + 1
		exp := orDefault(spec.Expiry, DefaultBlockExpiry)
		maxExp := orDefault(spec.MaxExpiry, DefaultMaxBlockExpiry)
		for range n {
			if exp >= maxExp {
				break
			}
			exp *= 2
		}
		exp = min(exp, maxExp)
		pl.Expiry, pl.ExpirySeconds, pl.Repeat = Duration(exp).String(), int64(exp/time.Second), n
	case KindDisableIdentity:
		pl.RevokeSessions = true
	}
	if r, ok := p.cfg.Receivers[recv]; ok && (r.Format == alertfmt.FormatECS || r.Format == alertfmt.FormatOCSF) {
		pl.Full = &a
	}
	act.Payload = pl.marshal()

	guard, hold := "", store.Hold("")
	if IsContainment(spec.Kind) {
		if guard = p.protected(spec.Kind, target, &a); guard != "" {
			hold = store.HoldProtected
		} else if spec.Kind == KindBlockSource && tg.network && !tg.hosting {
			// A whole consumer network (a carrier, a residential ISP, a
			// company's egress) holds customers as well as the campaign:
			// blocking it is a person's decision. A hosting network is
			// blocked at once.
			guard, hold = "network-wide block of "+target+", not a hosting network", store.HoldProtected
		} else if spec.Kind == KindRevokeKey && spec.RefusedOnly != RefusedContain && refusedOnly(target, &a) {
			// The inline check reads a token's key id before anything
			// checks its signature: anyone can present a junk token
			// naming a live key and be refused. Revoking the key on that
			// alone would refuse every genuine token it signed; the
			// refused tokens exposed nothing, and the forged token's
			// revocation goes ahead meanwhile.
			guard = "only refused presentations name key " + target + ": the inline check refused them before any signature check, so they do not show the key is in anyone's hands"
			p.heldRefused[id] = true
		} else if spec.Kind == KindBlockSource && spec.RefusedOnly != RefusedContain && refusedOnlySource(target, &a) {
			// Every forged token the source presented was refused: it
			// exposed nothing, and the check refuses its next ones
			// without a block. One address is often many people (a
			// carrier's NAT, a company's egress), so a day-long block
			// on that alone is a person's decision. A served forgery
			// from it (fail-open, grace, a gateway without the check)
			// blocks it at once.
			guard = "only refused presentations come from " + target + ": the inline check refused every forged token it presented, so it exposed nothing, and the address may be shared (a carrier's NAT, a company's egress)"
			p.heldRefused[id] = true
		} else if spec.Kind == KindDisableIdentity && !decisive(target, &a) && p.returned(target).IsZero() {
			// Disabling an employee, a service or a partner stops all
			// its work and is slow to undo; on risk built from
			// behaviour (volume, hours, peers, networks) it is a
			// person's decision. Ending its sessions and blocking the
			// sources its findings name go ahead meanwhile.
			guard = "behavioural evidence only about " + target + " (no immediate finding such as activity after termination)"
		}
	}
	if guard == "" && !drill {
		guard = p.rateLimited(spec.Kind, tg.at)
	}
	if spec.Kind == KindRevokeToken && guard == "" && a.Entity.Kind == event.EntityPrincipal && !drill {
		p.endSession(a.Entity.ID, target, tg.at)
	}
	_, hasRecv := p.cfg.Receivers[recv]
	hasRecv = hasRecv || p.local[spec.Kind]
	switch {
	case drill && IsContainment(spec.Kind):
		act.State, act.Reason = StateDryRun, "drill: containment of a drill's entity is never delivered"
		if guard != "" {
			act.Reason += "; would need approval: " + guard
		}
	case p.mode == ModeDryRun && IsContainment(spec.Kind):
		act.State, act.Reason = StateDryRun, "dry-run mode"
		if guard != "" {
			act.Reason += "; would need approval: " + guard
		}
	case !hasRecv:
		act.State, act.Reason = StateSkipped, ReasonNoReceiver+" ("+recv+")"
		if guard != "" {
			act.Reason += "; would need approval: " + guard
		}
	case guard != "" && !IsContainment(spec.Kind):
		act.State, act.Reason = StateSkipped, guard
	case guard != "":
		act.State, act.Reason, act.Hold = StatePendingApproval, guard, hold
	default:
		act.State = StatePlanned
	}
	return act
}

// Exports returns the exports of a to the configured sinks (one per sink,
// kind KindExport, target the alert id), whatever the mode: a is new, or
// changed since its last export (state, findings, severity or latest
// time), and was not suppressed (the caller does not export a suppressed
// alert). A closed or withdrawn alert's export reports it closed; an
// alert exported before reports an update. The id hashes the alert's id,
// the sink and that change, so a replay or a re-plan after a restart
// plans the same exports and the outbox keeps one of each.
func (p *Planner) Exports(a event.Alert) []Action {
	if len(p.cfg.Sinks) == 0 {
		return nil
	}
	change := alertfmt.Created
	if _, ok := p.exported[a.ID]; ok {
		change = alertfmt.Updated
	}
	if a.State == "closed" || a.State == event.AlertWithdrawn {
		change = alertfmt.Closed
	}
	at := a.Time
	if a.LastTime.After(at) {
		at = a.LastTime
	}
	version := fmt.Sprintf("%s\x00%d\x00%s\x00%d", a.State, a.FindingCount, a.Severity, a.LastTime.UnixNano())
	pl := Payload{Mode: p.mode, Change: string(change), Full: &a, Alert: AlertSummary{
		ID: a.ID, Time: a.Time, Entity: a.Entity, Severity: a.Severity, Score: a.Score,
		Title: a.Title, Detector: a.Detector, Explanation: a.Explanation,
	}}
	payload := pl.marshal()
	var out []Action
	for _, name := range slices.Sorted(maps.Keys(p.cfg.Sinks)) {
		id := ActionID(a.ID, KindExport, name+"\x00"+version)
		if _, ok := p.seen[id]; ok {
			continue
		}
		p.seen[id] = at
		out = append(out, Action{ID: id, Kind: KindExport, Target: a.ID, AlertID: a.ID, Playbook: "sinks",
			Receiver: name, CreatedAt: at, State: StatePlanned, Payload: payload})
	}
	if len(out) > 0 {
		p.exported[a.ID] = at
	}
	return out
}

// rateLimited counts an automatic action of kind at t and returns a reason
// when it exceeds the kind's limit (the action is then not counted).
func (p *Planner) rateLimited(kind string, t time.Time) string {
	limit, ok := p.cfg.RateLimits[kind]
	if !ok {
		return ""
	}
	ts := p.window[kind]
	n := 0
	for _, x := range ts {
		if x.After(t.Add(-time.Hour)) && !x.After(t) {
			n++
		}
	}
	if n >= limit {
		return fmt.Sprintf("rate limit: %d %s actions in the hour before %s (limit %d/h)",
			n, kind, t.UTC().Format(time.RFC3339), limit)
	}
	i := sort.Search(len(ts), func(i int) bool { return ts[i].After(t) })
	p.window[kind] = slices.Insert(ts, i, t)
	return ""
}

// protected returns why containing target waits for approval: it is a
// protected entity, or — for disable_identity — a privileged principal
// (a finding of a holds Privileged about it): disabling an administrator
// can lock out those who would answer the alert, so it is a person's
// decision, while ending its session and blocking the source are not.
func (p *Planner) protected(kind, target string, a *event.Alert) string {
	switch kind {
	case KindDisableIdentity:
		if p.principals[target] {
			return "protected principal " + target
		}
		if slices.ContainsFunc(a.Findings, func(f event.Finding) bool {
			return f.Privileged && f.Entity.Kind == event.EntityPrincipal && f.Entity.ID == target
		}) {
			return "privileged principal " + target
		}

	case KindRevokeKey:
		if p.keys[target] {
			return "protected key " + target
		}
	case KindBlockSource:
		pf, err := parseNetwork(target)
		if err != nil {
			return ""
		}
		for _, n := range p.networks {
			if n.Overlaps(pf) {
				return "protected network " + n.String()
			}
		}
	}
	return ""
}

// refusedOnly reports whether every token_provenance finding of a that
// calls signing key kid's tokens forged (never minted, retired key,
// unknown key) rests only on requests the inline check refused
// (token.TagRefusedOnly), and there is at least one. Other detectors'
// findings about the key (its posture) do not count either way.
func refusedOnly(kid string, a *event.Alert) bool {
	n := 0
	for _, f := range a.Findings {
		if f.Entity.Kind != event.EntitySigningKey || f.Entity.ID != kid || f.Withdraws != 0 || f.Detector != token.Name ||
			(f.Kind != token.KindNeverMinted && f.Kind != token.KindKeyRetired && f.Kind != token.KindUnknownKey) {
			continue
		}
		if !slices.Contains(f.Tags, token.TagRefusedOnly) {
			return false
		}
		n++
	}
	return n > 0
}

// refusedOnlySource reports whether every finding of a that names source
// src (as its entity or related) is a token_provenance forged-token
// finding (never minted, retired key, unknown key) resting only on
// requests the inline check refused (token.TagRefusedOnly), and there is
// at least one. Any other finding naming the source — a forgery from it
// that was served, another detector's — is evidence beyond refusals.
func refusedOnlySource(src string, a *event.Alert) bool {
	n := 0
	for _, f := range a.Findings {
		if f.Withdraws != 0 || (targetFor(KindBlockSource, f.Entity) != src &&
			!slices.ContainsFunc(f.Related, func(r event.EntityKey) bool { return targetFor(KindBlockSource, r) == src })) {
			continue
		}
		if f.Detector != token.Name || (f.Kind != token.KindNeverMinted && f.Kind != token.KindKeyRetired && f.Kind != token.KindUnknownKey) ||
			!slices.Contains(f.Tags, token.TagRefusedOnly) {
			return false
		}
		n++
	}
	return n > 0
}

// servedAt is the time of the earliest finding of a that takes an action
// of kind (revoke_key or block_source) on target beyond refused
// presentations, as refusedOnly and refusedOnlySource judge it: for a
// key, a forged-token finding about it without TagRefusedOnly; for a
// source, any finding naming it without that tag. Zero: none (the
// action still rests on refused presentations only, or on nothing).
func servedAt(kind, target string, a *event.Alert) time.Time {
	var at time.Time
	for _, f := range a.Findings {
		if f.Withdraws != 0 || slices.Contains(f.Tags, token.TagRefusedOnly) {
			continue
		}
		if kind == KindRevokeKey {
			if f.Entity.Kind != event.EntitySigningKey || f.Entity.ID != target || f.Detector != token.Name ||
				(f.Kind != token.KindNeverMinted && f.Kind != token.KindKeyRetired && f.Kind != token.KindUnknownKey) {
				continue
			}
		} else if targetFor(kind, f.Entity) != target && !slices.ContainsFunc(f.Related, func(r event.EntityKey) bool { return targetFor(kind, r) == target }) {
			continue
		}
		if at.IsZero() || f.Time.Before(at) {
			at = f.Time
		}
	}
	return at
}

// endSession records that principal's session token was ended at t.
func (p *Planner) endSession(principal, token string, t time.Time) {
	m := p.ended[principal]
	if m == nil {
		m = map[string]time.Time{}
		p.ended[principal] = m
	}
	if old, ok := m[token]; !ok || t.Before(old) {
		m[token] = t
	}
}

// returned returns when principal came back after its sessions were
// ended: the time a later session of it was ended, after an earlier one
// had been — the principal signed in again and went on with what its
// behavioural alert was about. Zero when it has not (one session ended,
// or several ended at once).
func (p *Planner) returned(principal string) time.Time {
	var first, back time.Time
	for _, t := range p.ended[principal] {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	for _, t := range p.ended[principal] {
		if t.After(first) && (back.IsZero() || t.Before(back)) {
			back = t
		}
	}
	return back
}

// decisive reports whether alert a holds an immediate (high-confidence)
// finding about the principal target — activity after its termination,
// for one — which disables it without waiting for a person.
func decisive(target string, a *event.Alert) bool {
	return slices.ContainsFunc(a.Findings, func(f event.Finding) bool {
		return f.Immediate && f.Entity.Kind == event.EntityPrincipal && f.Entity.ID == target
	})
}

// prune drops rate-limit and dedup state older than two hours before the
// latest alert.
func (p *Planner) prune() {
	cut := p.latest.Add(-2 * time.Hour)
	for k, ts := range p.window {
		i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(cut) })
		if i > 0 {
			p.window[k] = slices.Delete(ts, 0, i)
		}
	}
	if len(p.ended) > 1<<14 {
		for pr, m := range p.ended {
			if !slices.ContainsFunc(slices.Collect(maps.Values(m)), func(t time.Time) bool { return t.After(cut.Add(-DefaultMaxBlockExpiry)) }) {
				delete(p.ended, pr)
			}
		}
	}
	if len(p.exported) > 1<<16 {
		for id, t := range p.exported {
			if t.Before(cut) {
				delete(p.exported, id)
			}
		}
	}
	if len(p.seen) > 1<<16 {
		for id, t := range p.seen {
			if t.Before(cut) {
				delete(p.seen, id)
				delete(p.heldRefused, id)
			}
		}
	}
}

func (p *Planner) matches(i int, pb *Playbook, a *event.Alert) bool {
	m := &pb.Match
	if p.minSev[i] != 0 && a.Severity < p.minSev[i] {
		return false
	}
	// An alert is about an entity and may gather findings of several
	// detectors: a playbook for a detector matches when any of them is.
	if len(m.Detectors) > 0 && !matchAny(m.Detectors, a.Detector) &&
		!slices.ContainsFunc(a.Findings, func(f event.Finding) bool { return matchAny(m.Detectors, f.Detector) }) {
		return false
	}
	if len(m.EntityKinds) > 0 && !slices.Contains(m.EntityKinds, string(a.Entity.Kind)) {
		return false
	}
	if len(m.Kinds) > 0 && !slices.ContainsFunc(a.Findings, func(f event.Finding) bool { return matchAny(m.Kinds, f.Kind) }) {
		return false
	}
	if len(m.Tags) > 0 && !slices.ContainsFunc(a.Findings, func(f event.Finding) bool {
		return slices.ContainsFunc(f.Tags, func(t string) bool { return matchAny(m.Tags, t) })
	}) {
		return false
	}
	return true
}

// matchAny reports whether v equals a pattern, or starts with one that
// ends in "*".
func matchAny(patterns []string, v string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(v, prefix) {
				return true
			}
		} else if p == v {
			return true
		}
	}
	return false
}

// targetFor returns what an action of kind acts on for an alert about
// entity, "" when the kind does not apply to it.
func targetFor(kind string, e event.EntityKey) string {
	if e.ID == "" {
		return ""
	}
	switch kind {
	case KindRevokeKey:
		if e.Kind == event.EntitySigningKey {
			return e.ID
		}
	case KindRevokeToken:
		if e.Kind == event.EntityToken {
			return e.ID
		}
	case KindBlockSource:
		if e.Kind == event.EntitySource || e.Kind == "network" {
			return e.ID
		}
	case KindDisableIdentity:
		if e.Kind == event.EntityPrincipal && !IsRoleSession(e.ID) {
			return e.ID
		}
	case KindNotify:
		return e.String()
	}
	return ""
}

// IsRoleSession reports whether principal is a cloud role session — an
// AWS assumed-role ARN (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION,
// as CloudTrail's userIdentity.arn names it). A role session is not an
// identity one disables: it is temporary credentials the role handed out
// (to an instance, a task, a person's SSO sign-in), and disabling "it"
// would mean changing the role every holder of it uses. It is contained by
// revoking its credentials (revoke_token of the access keys it used; for
// AWS, a receiver denies the role's sessions issued before now,
// aws:TokenIssueTime), which disable_identity is therefore never planned
// for.
func IsRoleSession(principal string) bool {
	return strings.HasPrefix(principal, "arn:") && strings.Contains(principal, ":assumed-role/")
}

// Explain says why no action of kind would be planned for alert a: the
// mode is off, no playbook has such an action, a playbook that has one
// matches but a names nothing for it to act on, or none that has one
// matches a (which criterion fails, for those meant for a's detectors; the
// others named together). "" when a playbook would plan it. It reads only
// the configuration, so it is safe to call from any goroutine (serve's
// drills name the cause of a missing action with it).
func (p *Planner) Explain(a event.Alert, kind string) string {
	if p.mode == ModeOff {
		return "respond.mode is off: no action is planned"
	}
	var without, noTarget, near, other []string
	for i := range p.cfg.Playbooks {
		pb := &p.cfg.Playbooks[i]
		if !slices.ContainsFunc(pb.Actions, func(s ActionSpec) bool { return s.Kind == kind }) {
			if p.matches(i, pb, &a) {
				var kinds []string
				for _, s := range pb.Actions {
					kinds = append(kinds, s.Kind)
				}
				without = append(without, fmt.Sprintf("%s (%s)", pb.Name, strings.Join(kinds, ", ")))
			}
			continue
		}
		miss, forDetectors := p.mismatch(i, pb, &a)
		switch {
		case miss == "" && len(targetsAt(kind, &a)) > 0:
			return ""
		case miss == "":
			noTarget = append(noTarget, pb.Name)
		case forDetectors:
			near = append(near, fmt.Sprintf("playbook %s (which has %s) does not match the alert: %s", pb.Name, kind, miss))
		default:
			other = append(other, pb.Name)
		}
	}
	var why []string
	if len(without) > 0 {
		why = append(why, fmt.Sprintf("the playbooks matching the alert have no %s action: %s", kind, strings.Join(without, "; ")))
	}
	switch {
	case len(noTarget) > 0:
		return strings.Join(append(why, fmt.Sprintf("playbook %s matches, but alert %s (about %s) names nothing %s acts on",
			strings.Join(noTarget, ", "), a.ID, a.Entity, kind)), "; ")
	case len(near)+len(other) == 0:
		return strings.Join(append(why, fmt.Sprintf("no playbook in respond.playbooks has a %s action", kind)), "; ")
	}
	why = append(why, near...)
	if len(other) > 0 {
		why = append(why, fmt.Sprintf("the playbooks with %s (%s) are for other detectors than the alert's (%s)",
			kind, strings.Join(other, ", "), strings.Join(alertDetectors(&a), ", ")))
	}
	return strings.Join(why, "; ")
}

// alertDetectors lists the detectors of a's findings (its own first).
func alertDetectors(a *event.Alert) []string {
	var out []string
	if a.Detector != "" {
		out = append(out, a.Detector)
	}
	for _, f := range a.Findings {
		if !slices.Contains(out, f.Detector) {
			out = append(out, f.Detector)
		}
	}
	return out
}

// mismatch says which criterion of playbook i (pb) alert a fails, as
// matches judges it ("" when it matches), and whether pb's detectors
// criterion holds for a (the playbook is meant for a's detectors).
func (p *Planner) mismatch(i int, pb *Playbook, a *event.Alert) (string, bool) {
	m := &pb.Match
	forDetectors := len(m.Detectors) == 0 || matchAny(m.Detectors, a.Detector) ||
		slices.ContainsFunc(a.Findings, func(f event.Finding) bool { return matchAny(m.Detectors, f.Detector) })
	if p.matches(i, pb, a) {
		return "", true
	}
	var kinds []string
	for _, f := range a.Findings {
		if !slices.Contains(kinds, f.Kind) {
			kinds = append(kinds, f.Kind)
		}
	}
	switch {
	case !forDetectors:
		return fmt.Sprintf("detectors %s, it wants %s", strings.Join(alertDetectors(a), ", "), strings.Join(m.Detectors, ", ")), false
	case p.minSev[i] != 0 && a.Severity < p.minSev[i]:
		return fmt.Sprintf("severity %s below its min_severity %s", a.Severity, m.MinSeverity), true
	case len(m.EntityKinds) > 0 && !slices.Contains(m.EntityKinds, string(a.Entity.Kind)):
		return fmt.Sprintf("entity kind %s, it wants %s", a.Entity.Kind, strings.Join(m.EntityKinds, ", ")), true
	case len(m.Kinds) > 0 && !slices.ContainsFunc(a.Findings, func(f event.Finding) bool { return matchAny(m.Kinds, f.Kind) }):
		return fmt.Sprintf("finding kinds %s, it wants %s", strings.Join(kinds, ", "), strings.Join(m.Kinds, ", ")), true
	}
	return fmt.Sprintf("no finding has a tag of %s", strings.Join(m.Tags, ", ")), true
}
