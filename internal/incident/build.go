package incident

import (
	"fmt"
	"slices"
	"strings"

	"github.com/haechi-sec/haechi/internal/event"
)

// attacks names attack classes by the finding kinds that reveal them, most
// specific first: an incident is named after the first class any finding
// of its strongest alerts (those of its maximum severity) shows. The kinds
// are the detectors' (docs/detectors.md); a kind not listed names no
// class, and the incident then takes its strongest alert's title.
var attacks = []struct {
	name  string
	kinds []string
}{
	{"Canary record read", []string{"canary_record_access"}},
	{"Forged tokens", []string{"token_never_minted", "token_unknown_key", "token_key_retired", "token_issued_in_future"}},
	{"Departed insider", []string{"activity_after_termination", "dormant_identity_active"}},
	{"Privileged account takeover", []string{"privileged_first_activity", "privileged_new_country", "privileged_off_hours", "privileged_bulk_export"}},
	{"Token hijack", []string{"token_binding_country", "token_binding_hosting", "token_binding_concurrent", "token_binding_client", "token_multi_location", "token_used_after_expiry"}},
	{"Stolen cloud credential", []string{"cloud_credential_outside_provider", "cloud_credential_other_network", "credential_new_network"}},
	{"Credential stuffing", []string{"login_failure_fanout", "login_failure_campaign"}},
	{"Scraping from many principals", []string{"source_fanout", "network_fanout"}},
	{"Bulk data export", []string{"record_volume", "record_enumeration", "slow_exfiltration", "behaviour_anomaly", "behaviour_multivariate"}},
	{"Service account misuse", []string{"workload_new_network", "service_interactive_client"}},
	{"Unusual data access", []string{"uncommon_route"}},
	{"Key posture", []string{"key_custodian_terminated", "key_rotation_overdue"}},
	{"Access from a new network", []string{"hosting_network", "scripted_client", "new_country", "new_network", "impossible_travel", "staff_outside_country"}},
}

// build makes the incident of the items idx (ascending: by time, then ID).
func build(items []*item, idx []int, hubs map[event.EntityKey]bool, opts Options) Incident {
	founder := items[idx[0]].a
	in := Incident{
		ID:       IDFor(founder.ID),
		State:    StateOpen,
		Founder:  founder.Entity,
		Start:    founder.Time,
		End:      items[idx[0]].end,
		AlertIDs: make([]string, 0, len(idx)),
		Timeline: make([]Entry, 0, len(idx)),
	}
	for _, i := range idx {
		it := items[i]
		a := it.a
		in.AlertIDs = append(in.AlertIDs, a.ID)
		in.Timeline = append(in.Timeline, Entry{Time: a.Time, AlertID: a.ID, Detector: a.Detector, Kind: it.kind,
			Entity: a.Entity, Severity: a.Severity, Title: a.Title})
		in.Severity = max(in.Severity, a.Severity)
		if it.end.After(in.End) {
			in.End = it.end
		}
	}
	in.Graph = graph(items, idx, hubs, opts.MaxGraphNodes)
	in.Attack, in.Title = title(items, idx, &in)
	return in
}

// title names the attack from the strongest alerts and the founding
// entity, with the incident's size.
func title(items []*item, idx []int, in *Incident) (attack, t string) {
	kinds := map[string]bool{}
	var strongest *event.Alert
	for _, i := range idx {
		a := items[i].a
		if a.Severity != in.Severity {
			continue
		}
		if strongest == nil || a.Score > strongest.Score {
			strongest = a
		}
		for fi := range a.Findings {
			kinds[a.Findings[fi].Kind] = true
		}
	}
	for _, c := range attacks {
		if slices.ContainsFunc(c.kinds, func(k string) bool { return kinds[k] }) {
			attack = c.name
			break
		}
	}
	if attack == "" {
		attack = strongest.Title
	}
	// The founding entity: the incident's most alerted-about key, else
	// token, else principal, else source — the credential an attack rides
	// on names it better than the first bot address.
	counts := map[event.EntityKey]int{}
	for _, i := range idx {
		counts[items[i].a.Entity]++
	}
	name := in.Founder
	for _, kind := range []event.EntityKind{event.EntitySigningKey, event.EntityToken, event.EntityPrincipal, event.EntitySource} {
		best, n := event.EntityKey{}, 0
		for _, e := range sortedKeys(counts, compareEntity) {
			if e.Kind == kind && counts[e] > n {
				best, n = e, counts[e]
			}
		}
		if n > 0 {
			name = best
			break
		}
	}
	var size []string
	for _, kind := range []event.EntityKind{event.EntitySigningKey, event.EntityToken, event.EntityPrincipal, event.EntitySource} {
		n := 0
		for e := range counts {
			if e.Kind == kind && e != name {
				n++
			}
		}
		if n > 0 {
			size = append(size, plural(n, "other "+string(kind), "other "+string(kind)+"s"))
		}
	}
	size = append(size, plural(len(idx), "alert", "alerts"))
	return attack, fmt.Sprintf("%s: %s %s (%s)", attack, name.Kind, name.ID, strings.Join(size, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// kindRank orders the graph: keys, tokens, sources, principals, records.
func kindRank(k event.EntityKind) int {
	switch k {
	case event.EntitySigningKey:
		return 0
	case event.EntityToken:
		return 1
	case event.EntitySource:
		return 2
	case event.EntityPrincipal:
		return 3
	}
	return 4
}

// graph builds the entity graph of the items idx, capped at maxNodes:
// entities the alerts are about come first, then the rest in order of
// first appearance on the timeline.
func graph(items []*item, idx []int, hubs map[event.EntityKey]bool, maxNodes int) Graph {
	alerts := map[event.EntityKey]int{}
	var order []event.EntityKey
	seen := map[event.EntityKey]bool{}
	note := func(e event.EntityKey) {
		if !e.IsZero() && !seen[e] {
			seen[e] = true
			order = append(order, e)
		}
	}
	for _, i := range idx {
		alerts[items[i].a.Entity]++
		note(items[i].a.Entity)
	}
	for _, i := range idx {
		for _, l := range items[i].links {
			note(l.ent)
		}
		for _, e := range items[i].edges {
			note(e.From)
			note(e.To)
		}
	}
	g := Graph{Nodes: []Node{}, Edges: []Edge{}}
	kept := order
	if len(kept) > maxNodes {
		kept, g.Omitted = kept[:maxNodes], len(kept)-maxNodes
	}
	in := map[event.EntityKey]bool{}
	for _, e := range kept {
		in[e] = true
		g.Nodes = append(g.Nodes, Node{Entity: e, Alerts: alerts[e], Hub: hubs[e]})
	}
	slices.SortStableFunc(g.Nodes, func(x, y Node) int { return kindRank(x.Entity.Kind) - kindRank(y.Entity.Kind) })
	edges := map[Edge]bool{}
	for _, i := range idx {
		for _, e := range items[i].edges {
			if in[e.From] && in[e.To] && !edges[e] && len(g.Edges) < 4*maxNodes {
				edges[e] = true
				g.Edges = append(g.Edges, e)
			}
		}
	}
	return g
}
