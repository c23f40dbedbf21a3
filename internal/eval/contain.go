package eval

import (
	"slices"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/respond"
)

// Containment is one containment action the response playbooks would
// deliver: from its time on, the target's access is stopped.
type Containment struct {
	Time   time.Time
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
			kind, ok := map[string]event.EntityKind{
				respond.KindRevokeKey: event.EntitySigningKey, respond.KindRevokeToken: event.EntityToken,
				respond.KindBlockSource: event.EntitySource, respond.KindDisableIdentity: event.EntityPrincipal,
			}[act.Kind]
			if ok {
				out = append(out, Containment{Time: act.CreatedAt, Kind: act.Kind, Target: event.EntityKey{Kind: kind, ID: act.Target}})
			}
		}
	}
	return out, nil
}
