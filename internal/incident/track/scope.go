package track

import (
	"slices"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/store"
)

// ScopePad widens the days over which an incident's scope counts the
// attacker's own instruments (its sources and networks, forged tokens)
// and the credentials restricted to them: an attack's reads may start
// before its first finding (a detector decides on a count, a window or a
// mint deadline) and go on after its last, and a day is the ledger's
// grain. It is not applied to an entity counted whole that has a
// legitimate owner (an accused principal with no instrument named): there
// the padding would add the owner's own reads.
const ScopePad = 24 * time.Hour

// Finding kinds the scope rule reads (named here, not imported: stages do
// not import each other; docs/detectors.md lists them).
var (
	// postureKinds accuse no access: a key whose custodian left or whose
	// rotation is overdue, a token minted with too long a life. They make
	// an incident but say nobody read anything.
	postureKinds = []string{"key_custodian_terminated", "key_rotation_overdue", "token_lifetime_exceeds_policy"}
	// forgedKinds say the token of the cited event was never genuine:
	// every use of it is the forger's.
	forgedKinds = []string{"token_never_minted", "token_key_retired", "token_unknown_key", "token_issued_in_future"}
	// ownerlessKinds say the finding's entity has no legitimate use from
	// the finding on: a key outside the inventory or past its retirement,
	// an identity after its termination, a token past its expiry.
	ownerlessKinds = []string{"token_key_retired", "token_unknown_key", "activity_after_termination", "token_used_after_expiry"}
)

// Why texts of scope terms and left-out entities.
const (
	WhyAttackerSource = "attacker's address or network: every read from it in the incident's days"
	WhyForgedToken    = "forged token: every read with it" // #nosec G101 -- a sentence, not a credential
	WhyOwnerless      = "no legitimate use from its first finding on: every read by it"
	WhyWithin         = "accused credential or principal, within the attacker's instruments"
	WhyNamed          = "named by a finding or its evidence, maybe its owner's too: on the days it is named"
	WhyWhole          = "accused, no attacker instrument named: every read by it on the days it is accused"
	WhyPosture        = "posture finding only (no access accused): every read by it on the incident's days"
	LeftVictim        = "implicated, not accused (a customer impersonated, a stolen credential's owner): its own reads are not the attack's"
	LeftCredential    = "credential seen in evidence, not accused (the key that signs every customer's token): its other reads are not the attack's" // #nosec G101 -- a sentence, not a credential
	LeftShared        = "shared address (a hub): its other users' reads are not the attack's"
	LeftInstrument    = "evidence source or token: used only to narrow accused entities"
	LeftNetwork       = "network (an AS or a prefix): it holds other customers; counted through the attacker's addresses in it"
)

// accusal is what the incident accuses one entity of.
type accusal struct {
	first, last time.Time
	subject     bool // a finding is about it
	related     bool // a finding names it in Related (the use's source, the token)
	ownerless   bool
	forged      bool
	evidence    bool // a cited event of a finding names it
}

func (a *accusal) at(t time.Time) {
	if a.first.IsZero() || t.Before(a.first) {
		a.first = t
	}
	if t.After(a.last) {
		a.last = t
	}
}

// ScopeRule derives an incident's exact scope (docs/scope.md,
// "Incidents") from its alerts (those of g.AlertIDs; others are ignored)
// and the facts of the events they cite (nil: Related only).
//
// The scope is the union of the ledger over the entities the incident
// accuses, never over those it only implicates:
//
//   - the attacker's addresses and networks — the subject of an access
//     finding, or the source a finding names in Related (the use's
//     address) — each over the days it is accused, padded by ScopePad;
//     a shared address (a hub) is never counted whole;
//   - forged tokens (the token of an event a forged-token finding cites)
//     over the incident's days, padded;
//   - keys and tokens with no legitimate use from their first finding on
//     (a key outside the inventory or past retirement, a token past
//     expiry), from that finding to the incident's end, padded after;
//   - every other accused key, token and principal (a hijacked token, a
//     live key forging tokens, a service account pulling in bulk, an
//     insider, a terminated or taken-over account) within the attacker's
//     instruments: the addresses above (padded), forged tokens, and —
//     only on the days they are named, for they may be the owner's too —
//     tokens findings name in Related and the sources and tokens of the
//     events findings cite when they name no source. With no instrument
//     named, it counts whole on the days it is accused (its alerts'
//     spans), unpadded. A finding that contributed to an alert before it
//     was raised accuses from the alert's time.
//
// Networks (an AS, a /24) hold other customers: they count only through
// the attacker's addresses in them.
//
// Principals a finding only names (a workload whose key was stolen),
// principals, keys and tokens only seen in cited events (the customer a
// forged token impersonated, the production key that signed a hijacked
// token) and hubs are left out and listed in LeftOut. An incident whose
// findings are all posture findings (key posture) accuses no access: its
// scope is its subjects' reads on its days, labelled so.
func ScopeRule(g incident.Incident, alerts map[string]*event.Alert, facts incident.Facts) *store.IncidentScope {
	hubs := map[event.EntityKey]bool{}
	for _, n := range g.Graph.Nodes {
		if n.Hub {
			hubs[n.Entity] = true
		}
	}
	acc := map[event.EntityKey]*accusal{}
	var order []event.EntityKey
	get := func(e event.EntityKey) *accusal {
		a := acc[e]
		if a == nil {
			a = &accusal{}
			acc[e] = a
			order = append(order, e)
		}
		return a
	}
	var start, end time.Time // of the access findings
	var posture []event.EntityKey
	for _, id := range g.AlertIDs {
		al := alerts[id]
		if al == nil {
			continue
		}
		withdrawn := map[event.FindingID]bool{}
		for fi := range al.Findings {
			if w := al.Findings[fi].Withdraws; w != 0 {
				withdrawn[w] = true
			}
		}
		for fi := range al.Findings {
			f := &al.Findings[fi]
			if f.Withdraws != 0 || (len(withdrawn) > 0 && withdrawn[f.ID()]) || f.Entity.IsZero() {
				continue
			}
			if slices.Contains(postureKinds, f.Kind) {
				if !slices.Contains(posture, f.Entity) {
					posture = append(posture, f.Entity)
				}
				continue
			}
			// A finding that contributed to an alert before it was raised
			// (risk adds findings up) accuses from the alert on.
			t := f.Time
			if t.Before(al.Time) {
				t = al.Time
			}
			if start.IsZero() || t.Before(start) {
				start = t
			}
			if t.After(end) {
				end = t
			}
			s := get(f.Entity)
			s.subject = true
			s.at(t)
			s.ownerless = s.ownerless || slices.Contains(ownerlessKinds, f.Kind)
			namesSource := false
			for _, r := range f.Related {
				if r.Kind == event.EntityPrincipal || r.Kind == event.EntityRecord || r.IsZero() {
					continue // a principal a finding names is implicated (left out below)
				}
				ra := get(r)
				ra.related = true
				ra.at(t)
				namesSource = namesSource || r.Kind == event.EntitySource
			}
			if facts == nil {
				continue
			}
			forged := slices.Contains(forgedKinds, f.Kind)
			for _, ref := range f.Evidence {
				ef, ok := facts.Event(ref)
				if !ok {
					continue
				}
				if ef.Token != "" {
					tok := event.EntityKey{Kind: event.EntityToken, ID: ef.Token}
					if forged {
						ta := get(tok)
						ta.forged = true
						ta.at(t)
					} else if !namesSource && tok != f.Entity {
						ta := get(tok)
						ta.evidence = true
						ta.at(t)
					}
				}
				if ef.Source != "" && !namesSource {
					sa := get(event.EntityKey{Kind: event.EntitySource, ID: ef.Source})
					sa.evidence = true
					sa.at(t)
				}
			}
		}
	}
	// An alert's span ends its subject's accused days (and the incident's).
	for _, id := range g.AlertIDs {
		al := alerts[id]
		if al == nil || start.IsZero() {
			continue
		}
		if a := acc[al.Entity]; a != nil && a.subject && al.LastTime.After(a.last) {
			a.last = al.LastTime
			if al.LastTime.After(end) {
				end = al.LastTime
			}
		}
	}
	rule := &store.IncidentScope{Terms: []store.ScopeTerm{}}
	if start.IsZero() {
		// Posture only: no access accused.
		for _, e := range posture {
			rule.Terms = append(rule.Terms, store.ScopeTerm{Entity: e, From: g.Start, To: g.End, Why: WhyPosture})
		}
		rule.LeftOut = leftOut(g, rule, hubs)
		return rule
	}
	from, to := start.Add(-ScopePad), end.Add(ScopePad)
	// Instruments: what accused credentials are restricted to.
	var within []store.ScopeTerm
	for _, e := range order {
		a := acc[e]
		switch {
		case e.Kind == event.EntitySource && (a.subject || a.related) && !hubs[e]:
			within = append(within, store.ScopeTerm{Entity: e, From: a.first.Add(-ScopePad), To: a.last.Add(ScopePad), Why: WhyAttackerSource})
		case e.Kind == event.EntityToken && a.forged:
			within = append(within, store.ScopeTerm{Entity: e, From: from, To: to, Why: WhyForgedToken})
		case (e.Kind == event.EntitySource || e.Kind == event.EntityToken) && !a.subject:
			// Named in Related, or only cited: maybe its owner's too (an
			// office address, the account's own session), so only the
			// days it is named on.
			within = append(within, store.ScopeTerm{Entity: e, From: a.first, To: a.last, Why: WhyNamed})
		}
	}
	for _, e := range order {
		a := acc[e]
		switch {
		case e.Kind == incidentNetwork:
			// A network (an AS, a /24) holds its other customers: it counts
			// through the attacker's addresses in it.
		case e.Kind == event.EntitySource:
			if (a.subject || a.related) && !hubs[e] {
				rule.Terms = append(rule.Terms, store.ScopeTerm{Entity: e, From: a.first.Add(-ScopePad), To: a.last.Add(ScopePad), Why: WhyAttackerSource})
			}
		case a.forged:
			rule.Terms = append(rule.Terms, store.ScopeTerm{Entity: e, From: from, To: to, Why: WhyForgedToken})
		case a.subject && a.ownerless && e.Kind != event.EntityPrincipal:
			rule.Terms = append(rule.Terms, store.ScopeTerm{Entity: e, From: a.first, To: to, Why: WhyOwnerless})
		case a.subject && e.Kind != event.EntityRecord:
			var w []store.ScopeTerm
			for _, x := range within {
				if x.Entity != e {
					w = append(w, x)
				}
			}
			if len(w) > 0 {
				rule.Terms = append(rule.Terms, store.ScopeTerm{Entity: e, From: from, To: to, Within: w, Why: WhyWithin})
			} else {
				rule.Terms = append(rule.Terms, store.ScopeTerm{Entity: e, From: a.first, To: a.last, Why: WhyWhole})
			}
		}
	}
	rule.LeftOut = leftOut(g, rule, hubs)
	return rule
}

// incidentNetwork is the entity kind of a network (an AS or a prefix),
// as the ledger and the campaign detectors name it.
const incidentNetwork event.EntityKind = "network"

// leftOut lists the graph's entities the rule does not count, and why.
func leftOut(g incident.Incident, rule *store.IncidentScope, hubs map[event.EntityKey]bool) []store.ScopeLeftOut {
	in := map[event.EntityKey]bool{}
	for _, t := range rule.Terms {
		in[t.Entity] = true
	}
	var out []store.ScopeLeftOut
	for _, n := range g.Graph.Nodes {
		e := n.Entity
		if in[e] || e.Kind == event.EntityRecord {
			continue
		}
		why := LeftInstrument
		switch {
		case hubs[e]:
			why = LeftShared
		case e.Kind == incidentNetwork:
			why = LeftNetwork
		case e.Kind == event.EntityPrincipal:
			why = LeftVictim
		case e.Kind == event.EntitySigningKey:
			why = LeftCredential
		case e.Kind == event.EntityToken && !inWithin(rule, e):
			why = LeftCredential
		}
		out = append(out, store.ScopeLeftOut{Entity: e, Why: why})
	}
	return out
}

func inWithin(rule *store.IncidentScope, e event.EntityKey) bool {
	for _, t := range rule.Terms {
		for _, w := range t.Within {
			if w.Entity == e {
				return true
			}
		}
	}
	return false
}

// ScopeEntities returns the entities a scope rule counts, each once: its
// terms' and their Within's, in order.
func ScopeEntities(rule *store.IncidentScope) []event.EntityKey {
	out := []event.EntityKey{}
	seen := map[event.EntityKey]bool{}
	add := func(e event.EntityKey) {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	for _, t := range rule.Terms {
		add(t.Entity)
	}
	for _, t := range rule.Terms {
		for _, w := range t.Within {
			add(w.Entity)
		}
	}
	return out
}
