package respond

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// Explain names why a kind of action would not be planned for an alert —
// no playbook has it, one does not match (and on which criterion), or one
// matches and the alert names nothing to act on — and nothing when it
// would be planned.
func TestPlannerExplain(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	forged := mkAlert("a1", event.EntitySigningKey, "k1", token.Name, event.SeverityCritical, at)
	forged.Findings[0].Kind = token.KindNeverMinted
	noKey := func(c Config) Config {
		c.Playbooks = append([]Playbook(nil), c.Playbooks...)
		for i := range c.Playbooks {
			if c.Playbooks[i].Name == "forged_token" {
				c.Playbooks[i].Actions = []ActionSpec{{Kind: KindNotify}}
			}
		}
		return c
	}
	wrongKind := func(c Config) Config {
		c.Playbooks = append([]Playbook(nil), c.Playbooks...)
		for i := range c.Playbooks {
			if c.Playbooks[i].Name == "forged_token" {
				pb := c.Playbooks[i]
				pb.Match.Kinds = []string{token.KindKeyRetired}
				c.Playbooks[i] = pb
			}
		}
		return c
	}
	off := func(c Config) Config { c.Mode = ModeOff; return c }
	for _, c := range []struct {
		name string
		cfg  func(Config) Config
		a    event.Alert
		kind string
		want string
	}{
		{"planned", func(c Config) Config { return c }, forged, KindRevokeKey, ""},
		{"action removed from its playbook", noKey, forged, KindRevokeKey,
			"the playbooks matching the alert have no revoke_key action: forged_token (notify); no playbook in respond.playbooks has a revoke_key action"},
		{"playbook no longer matches", wrongKind, forged, KindRevokeKey,
			"playbook forged_token (which has revoke_key) does not match the alert: finding kinds token_never_minted, it wants token_key_retired"},
		{"playbooks for other detectors", func(c Config) Config { return c }, forged, KindDisableIdentity,
			"the playbooks with disable_identity (terminated_identity, privileged_takeover, behavioural_contain, rules_contain) are for other detectors than the alert's (token_provenance)"},
		{"mode off", off, forged, KindRevokeKey, "respond.mode is off"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewPlanner(c.cfg(DefaultConfig()))
			if err != nil {
				t.Fatal(err)
			}
			got := p.Explain(c.a, c.kind)
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Errorf("Explain = %q, want %q", got, c.want)
			}
			// Explain agrees with Plan.
			planned := false
			for _, act := range p.Plan(c.a) {
				planned = planned || act.Kind == c.kind
			}
			if planned != (got == "") {
				t.Errorf("Plan planned %s: %v, but Explain says %q", c.kind, planned, got)
			}
		})
	}
	// A matching playbook whose action has no target in the alert.
	p, err := NewPlanner(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Explain(forged, KindBlockSource); got != "playbook forged_token matches, but alert a1 (about key:k1) names nothing block_source acts on" {
		t.Errorf("Explain(block_source) = %q", got)
	}
}

// The responder tells OnPlanned what it planned for each alert once it is
// written, and that a suppressed alert was not planned.
func TestResponderOnPlanned(t *testing.T) {
	st := openStore(t, t.TempDir())
	h := start(t, st, DefaultConfig(), time.Minute)
	var mu sync.Mutex
	heard := map[string][]string{}
	h.resp.OnPlanned(func(a event.Alert, acts []Action, suppressed string) {
		mu.Lock()
		defer mu.Unlock()
		heard[a.ID] = nil
		for _, x := range acts {
			heard[a.ID] = append(heard[a.ID], x.Kind+":"+x.State)
		}
		if got, err := st.ListActions(t.Context(), store.ActionQuery{AlertID: a.ID}); err != nil || len(got) != len(acts) {
			t.Errorf("told before the actions were written: %d stored, %d told, %v", len(got), len(acts), err)
		}
	})
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	h.send(t, mkAlert("t1", event.EntityPrincipal, "u1", "terminated_identity", event.SeverityCritical, at),
		mkAlert("x1", event.EntityPrincipal, "u2", "nobody", event.SeverityLow, at))
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(heard["t1"], ","); got != "disable_identity:dry_run,notify:skipped" {
		t.Errorf("t1: %q", got)
	}
	if got, ok := heard["x1"]; !ok || len(got) != 0 {
		t.Errorf("x1 (no playbook): heard %v, %v", got, ok)
	}
}
