// Package alertfmt renders haechi's alerts in the formats SIEMs read: the
// Elastic Common Schema (ECS) and OCSF's Detection Finding (class 2004),
// each with the MITRE ATT&CK techniques of the alert's findings
// (ThreatOf). It is pure: the same alert and options give the same bytes,
// so replay, webhooks and sinks agree and golden tests pin the output.
package alertfmt

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/haechi-sec/haechi/internal/event"
)

// Formats a caller can ask for.
const (
	FormatHaechi = "haechi" // haechi's own JSON (event.Alert; webhooks: the action body)
	FormatECS    = "ecs"
	FormatOCSF   = "ocsf"
)

// Change is what happened to the alert the document reports.
type Change string

const (
	Created Change = "created"
	Updated Change = "updated"
	Closed  Change = "closed"
)

// Options shape a document. The zero value is valid.
type Options struct {
	// Version is haechi's version (observer.version, metadata.product.version).
	Version string
	// Change: what happened to the alert (zero → Created; an alert whose
	// state is withdrawn or closed is reported as Closed regardless).
	Change Change
	// Action, when set, is rendered under haechi.action (ECS) or
	// unmapped.haechi.action (OCSF): the response action a webhook in
	// these formats delivers.
	Action any
}

func (o Options) change(a *event.Alert) Change {
	if a.State == event.AlertWithdrawn || a.State == "closed" {
		return Closed
	}
	if o.Change == "" {
		return Created
	}
	return o.Change
}

// entities are the entities an alert names: its own, those its findings
// relate, and who acted from where in the evidence they cite, each list in
// the order first met.
type entities struct {
	principals, sources, tokens, keys, networks, agents []string
	asn                                                 map[string]uint32 // source → AS number, when cited
}

func add(list *[]string, v string) {
	if v != "" && !slices.Contains(*list, v) {
		*list = append(*list, v)
	}
}

func (e *entities) key(k event.EntityKey) {
	switch k.Kind {
	case event.EntityPrincipal:
		add(&e.principals, k.ID)
	case event.EntitySource:
		add(&e.sources, k.ID)
	case event.EntityToken:
		add(&e.tokens, k.ID)
	case event.EntitySigningKey:
		add(&e.keys, k.ID)
	case "network":
		add(&e.networks, k.ID)
	}
}

func entitiesOf(a *event.Alert) entities {
	e := entities{asn: map[string]uint32{}}
	e.key(a.Entity)
	for i := range a.Findings {
		f := &a.Findings[i]
		e.key(f.Entity)
		for _, r := range f.Related {
			e.key(r)
		}
		for _, c := range f.Cited {
			add(&e.principals, c.Principal)
			add(&e.sources, c.Source)
			add(&e.tokens, c.Token)
			add(&e.keys, c.Key)
			add(&e.agents, c.UserAgent)
			if c.Source != "" && c.ASN != 0 {
				e.asn[c.Source] = c.ASN
			}
		}
	}
	// Sources are addresses; a prefix (a network's block) is a network.
	kept := e.sources[:0]
	for _, s := range e.sources {
		if _, err := netip.ParseAddr(s); err == nil {
			kept = append(kept, s)
		} else {
			add(&e.networks, s)
		}
	}
	e.sources = kept
	return e
}

// one returns the alert's own entity of kind k when it is of that kind,
// else the only entity of the list, else "".
func one(a *event.Alert, k event.EntityKind, list []string) string {
	if a.Entity.Kind == k {
		return a.Entity.ID
	}
	if len(list) == 1 {
		return list[0]
	}
	return ""
}

// findingKinds lists the alert's finding kinds, in order first met.
func findingKinds(a *event.Alert) []string {
	var out []string
	for i := range a.Findings {
		add(&out, a.Findings[i].Kind)
	}
	return out
}

// tags lists the findings' tags, in order first met.
func tags(a *event.Alert) []string {
	var out []string
	for i := range a.Findings {
		for _, t := range a.Findings[i].Tags {
			add(&out, t)
		}
	}
	return out
}

// ruleID is the detector for haechi's own detectors and the rule's name
// for a rule ("rule:NAME" → "NAME").
func ruleID(detector string) string {
	if r, ok := strings.CutPrefix(detector, "rule:"); ok {
		return r
	}
	return detector
}

// asNumber parses "AS64500" (a network entity naming an AS).
func asNumber(s string) (uint32, bool) {
	rest, ok := strings.CutPrefix(strings.ToUpper(s), "AS")
	if !ok {
		return 0, false
	}
	var n uint32
	if _, err := fmt.Sscanf(rest, "%d", &n); err != nil || fmt.Sprint(n) != rest {
		return 0, false
	}
	return n, true
}
