package eval

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input/cloudtrail"
	"github.com/haechi-sec/haechi/internal/respond"
)

// Containment is one containment action the response playbooks would
// deliver: from Time on (until Until, when the action expires — a
// block_source does), the target's access is stopped.
type Containment struct {
	Time   time.Time
	Until  time.Time // zero: does not expire
	Kind   string
	Target event.EntityKey
}

// Containments plans the response to alerts at event time — the way
// `serve` in enforce mode would, guardrails included (protected entities
// and rate limits send actions to approval, which does not contain) — and
// returns the containment actions that would be delivered. Receivers are
// not contacted: in a scorecard every containment kind counts as
// delivered. With cfg.Mode other than enforce it returns nothing.
func Containments(cfg respond.Config, alerts []event.Alert) ([]Containment, error) {
	if cfg.Mode != respond.ModeEnforce {
		return nil, nil
	}
	// Every kind gets a receiver, so nothing is skipped for want of one.
	cfg.Receivers = map[string]respond.Receiver{}
	for _, k := range []string{respond.KindRevokeKey, respond.KindRevokeToken, respond.KindBlockSource, respond.KindDisableIdentity, respond.KindNotify} {
		cfg.Receivers[k] = respond.Receiver{URL: "http://scorecard.invalid/" + k}
	}
	cfg.Secret, cfg.SecretEnv = "scorecard", ""
	p, err := respond.NewPlanner(cfg)
	if err != nil {
		return nil, err
	}
	sorted := slices.Clone(alerts)
	slices.SortStableFunc(sorted, func(a, b event.Alert) int { return a.Time.Compare(b.Time) })
	var out []Containment
	for _, a := range sorted {
		for _, act := range p.Plan(a) {
			if !respond.IsContainment(act.Kind) || act.State != "planned" {
				continue
			}
			c, ok := ContainmentOf(act.Kind, act.Target, act.CreatedAt)
			if !ok {
				continue
			}
			var pl respond.Payload
			if json.Unmarshal(act.Payload, &pl) == nil && pl.ExpirySeconds > 0 {
				c.Until = c.Time.Add(time.Duration(pl.ExpirySeconds) * time.Second)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// ContainmentOf is the containment an action of kind on target delivers
// at t (in force for good); ok is false for kinds that contain nothing
// (notify).
func ContainmentOf(kind, target string, t time.Time) (Containment, bool) {
	ek, ok := map[string]event.EntityKind{
		respond.KindRevokeKey: event.EntitySigningKey, respond.KindRevokeToken: event.EntityToken,
		respond.KindBlockSource: event.EntitySource, respond.KindDisableIdentity: event.EntityPrincipal,
	}[kind]
	if !ok || target == "" {
		return Containment{}, false
	}
	return Containment{Time: t, Kind: kind, Target: event.EntityKey{Kind: ek, ID: target}}, true
}

// Gate is the simulated company's gateway under haechi's containment, the
// way a real one enforces it: a request signed by a revoked key, carrying
// a revoked token, made by a disabled identity or coming from a blocked
// address, prefix or AS ("AS64500") fails from the containment's time on
// and returns nothing. It decides from what the request carries, never
// from the ground truth, so a containment stops an attacker only when it
// covers what the attacker actually uses next (blocking one of a botnet's
// addresses leaves the others reading).
//
// Only API requests and token mints (gateway.access, auth.token) pass the
// gateway, and cloud API calls (aws.cloudtrail) pass the provider's IAM,
// which enforces the same containments on them: revoking a role session's
// temporary credentials (AWS's "revoke active sessions") refuses every
// call signed with them, and a deny on aws:SourceIp blocks an address or
// prefix. A Gate is not safe for concurrent use.
type Gate struct {
	by       map[event.EntityKey][]Containment // exact targets
	prefixes []gatePrefix
	as       map[uint32][]Containment
}

type gatePrefix struct {
	p netip.Prefix
	c Containment
}

// NewGate returns a gate enforcing cs.
func NewGate(cs []Containment) *Gate {
	g := &Gate{by: map[event.EntityKey][]Containment{}, as: map[uint32][]Containment{}}
	for _, c := range cs {
		g.Add(c)
	}
	return g
}

// Add enforces one more containment.
func (g *Gate) Add(c Containment) {
	if c.Target.Kind == event.EntitySource {
		if p, err := netip.ParsePrefix(c.Target.ID); err == nil {
			g.prefixes = append(g.prefixes, gatePrefix{p.Masked(), c})
			return
		}
		if n, ok := strings.CutPrefix(c.Target.ID, "AS"); ok {
			if asn, err := strconv.ParseUint(n, 10, 32); err == nil {
				g.as[uint32(asn)] = append(g.as[uint32(asn)], c)
				return
			}
		}
		if a, err := netip.ParseAddr(c.Target.ID); err == nil {
			c.Target.ID = a.Unmap().WithZone("").String()
		}
	}
	g.by[c.Target] = append(g.by[c.Target], c)
}

// Refuse returns the containment that refuses ev — the earliest one in
// force at ev's time that covers ev's key, token, principal or source —
// and whether there is one. A containment is in force strictly after its
// Time (the requests of that instant, the one that raised the alert among
// them, were already answered) and before its Until.
func (g *Gate) Refuse(ev *event.Event) (Containment, bool) {
	if ev.Dataset != event.DatasetGateway && ev.Dataset != event.DatasetToken && ev.Dataset != cloudtrail.Dataset {
		return Containment{}, false
	}
	var best Containment
	found := false
	consider := func(cs []Containment) {
		for _, c := range cs {
			if !ev.Time.After(c.Time) || (!c.Until.IsZero() && !ev.Time.Before(c.Until)) {
				continue
			}
			if !found || c.Time.Before(best.Time) {
				best, found = c, true
			}
		}
	}
	if ev.Token.KeyID != "" {
		consider(g.by[event.EntityKey{Kind: event.EntitySigningKey, ID: ev.Token.KeyID}])
	}
	if ev.Token.ID != "" {
		consider(g.by[event.EntityKey{Kind: event.EntityToken, ID: ev.Token.ID}])
	}
	if ev.User.ID != "" {
		consider(g.by[event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}])
	}
	if ip := ev.Source.IP.Unmap(); ip.IsValid() {
		consider(g.by[event.EntityKey{Kind: event.EntitySource, ID: ip.String()}])
		for _, p := range g.prefixes {
			if p.p.Contains(ip) {
				consider([]Containment{p.c})
			}
		}
		if ev.Source.ASN != 0 {
			consider(g.as[ev.Source.ASN])
		}
	}
	return best, found
}

// Apply rewrites ev as the gateway answers a refused request: a 401 that
// returned no records.
func Apply(ev *event.Event) {
	ev.Outcome = event.OutcomeFailure
	ev.HTTP.StatusCode = http.StatusUnauthorized
	ev.HTTP.BodyBytes = 0
	ev.Records = event.Records{}
}
