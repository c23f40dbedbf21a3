package respond

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/event"
)

// SetLocal: a revocation haechi executes itself (the mint registry) is
// planned without a receiver — through the same guardrails — while every
// other kind without a receiver is still skipped.
func TestPlanLocalKinds(t *testing.T) {
	forged := func(id, key string) event.Alert {
		kk := event.EntityKey{Kind: event.EntitySigningKey, ID: key}
		return event.Alert{ID: id, Time: t0, Entity: kk, Severity: event.SeverityCritical, Score: 95,
			Title: "forged token", Detector: token.Name, State: event.AlertOpen,
			Findings: []event.Finding{{Detector: token.Name, Kind: token.KindNeverMinted, Entity: kk, Time: t0,
				Related: []event.EntityKey{{Kind: event.EntityToken, ID: "tok-forged"}, {Kind: event.EntitySource, ID: "203.0.113.7"}}}}}
	}
	for _, c := range []struct {
		name      string
		mode      Mode
		local     bool
		protected string // a protected key
		want      map[string]string
	}{
		{"enforce, no local receiver", ModeEnforce, false, "",
			map[string]string{KindRevokeKey: StateSkipped, KindRevokeToken: StateSkipped, KindBlockSource: StateSkipped}},
		{"enforce, the registry as receiver", ModeEnforce, true, "",
			map[string]string{KindRevokeKey: StatePlanned, KindRevokeToken: StatePlanned, KindBlockSource: StateSkipped}},
		{"a protected key still waits for approval", ModeEnforce, true, "k1",
			map[string]string{KindRevokeKey: StatePendingApproval, KindRevokeToken: StatePlanned, KindBlockSource: StateSkipped}},
		{"dry-run stays dry-run", ModeDryRun, true, "",
			map[string]string{KindRevokeKey: StateDryRun, KindRevokeToken: StateDryRun, KindBlockSource: StateDryRun}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Mode = c.mode
			if c.protected != "" {
				cfg.Protected.Keys = []string{c.protected}
			}
			p, err := NewPlanner(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if c.local {
				p.SetLocal(KindRevokeToken, KindRevokeKey)
			}
			got := map[string]string{}
			for _, a := range p.Plan(forged("a1", "k1")) {
				got[a.Kind] = a.State
			}
			for kind, want := range c.want {
				if got[kind] != want {
					t.Errorf("%s: %q, want %q (all: %v)", kind, got[kind], want, got)
				}
			}
		})
	}
}
