package incident

import (
	"slices"
	"strings"

	"github.com/haechi-sec/haechi/internal/event"
)

// campaignKeys returns the campaign keys of an alert about a source
// address or a network (none for another subject): its behaviour
// (behaviourOf its detector and the kind of its strongest finding) with each AS, user-agent family and
// victim of its cited events. Group chains the alerts sharing a key in
// time (package doc, "Campaigns").
func campaignKeys(it *item) []string {
	if it.a.Entity.Kind != event.EntitySource && it.a.Entity.Kind != entityNetwork {
		return nil
	}
	behaviour := behaviourOf(it.a.Detector, it.kind)
	keys := make([]string, 0, len(it.asns)+len(it.uas)+len(it.victims))
	for _, n := range it.asns {
		keys = append(keys, behaviour+"\x00as\x00"+uitoa(n))
	}
	for _, u := range it.uas {
		keys = append(keys, behaviour+"\x00ua\x00"+u)
	}
	for _, v := range it.victims {
		keys = append(keys, behaviour+"\x00victim\x00"+v)
	}
	return keys
}

// JoinKeys returns the keys through which Group could join a to another
// alert, each sorted and once. named are the entities a names (its
// subject, its findings' entities and related entities), its campaign
// keys and its stolen-token campaign keys; cited are the signing keys, tokens and successful principals of
// the events it cites (as facts knows them) that it does not name. Two
// alerts Group joins directly share a key, and a cited key joins only
// through an alert naming it (evidence links only to an accused entity);
// the converse need not hold (Group also weighs time, hubs and
// accusation). A store that keeps incidents as alerts arrive finds the
// incidents a new alert may join by these keys — its named keys against
// every stored key, its cited keys against stored named keys — then lets
// Group decide over those incidents' alerts, so the rules stay in one
// place. A withdrawn alert has none.
func JoinKeys(a event.Alert, facts Facts) (named, cited []string) {
	if a.State == event.AlertWithdrawn {
		return nil, nil
	}
	it := &item{a: &a, end: alertEnd(&a)}
	// Every credential or principal the evidence names counts as accused
	// here: the keys must cover any alert that may later accuse it.
	accused := map[event.EntityKey]bool{a.Entity: true}
	if facts != nil {
		for fi := range a.Findings {
			for _, ref := range a.Findings[fi].Evidence {
				ef, ok := facts.Event(ref)
				if !ok {
					continue
				}
				accused[event.EntityKey{Kind: event.EntitySigningKey, ID: ef.Key}] = true
				accused[event.EntityKey{Kind: event.EntityToken, ID: ef.Token}] = true
				accused[event.EntityKey{Kind: event.EntityPrincipal, ID: ef.Principal}] = true
			}
		}
	}
	derive(it, facts, accused, nil)
	for _, l := range it.links {
		if l.how == byEvidence {
			cited = append(cited, EntityJoinKey(l.ent))
		} else {
			named = append(named, EntityJoinKey(l.ent))
		}
	}
	named = append(named, campaignKeys(it)...)
	for _, k := range it.tokenCampaign {
		named = append(named, tokenCampaignPrefix+k)
	}
	slices.Sort(named)
	slices.Sort(cited)
	return slices.Compact(named), slices.Compact(cited)
}

// tokenCampaignPrefix begins the named join keys of stolen-token campaigns.
const tokenCampaignPrefix = "token-campaign\x00"

// MayJoinTokenCampaign reports whether a has a finding that can give it a
// stolen-token campaign key (TokenCampaignJoinKeys), without facts.
func MayJoinTokenCampaign(a event.Alert) bool {
	if a.State == event.AlertWithdrawn {
		return false
	}
	return slices.ContainsFunc(a.Findings, func(f event.Finding) bool {
		return f.Withdraws == 0 && (f.Kind == kindTokenHosting || f.Kind == kindTokenClient)
	})
}

// TokenCampaignJoinKeys returns the stolen-token campaign keys among a's
// named join keys (JoinKeys). Whether an alert joins a campaign through
// one key depends on the campaign's activity through its others (package
// doc), so a store that regroups a neighbourhood must also load the
// alerts sharing these keys with any alert of it, and their incidents,
// until no more come.
func TokenCampaignJoinKeys(a event.Alert, facts Facts) []string {
	if !MayJoinTokenCampaign(a) {
		return nil
	}
	named, _ := JoinKeys(a, facts)
	return slices.DeleteFunc(named, func(k string) bool { return !strings.HasPrefix(k, tokenCampaignPrefix) })
}

// EntityJoinKey is the join key (JoinKeys) of an entity.
func EntityJoinKey(e event.EntityKey) string {
	return "entity\x00" + string(e.Kind) + "\x00" + e.ID
}
