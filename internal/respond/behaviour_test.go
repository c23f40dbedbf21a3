package respond

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// behaviouralAlert is a critical record_volume alert about principal p
// whose finding cites three requests: two by p with its session token
// tk-own, one by another principal from the same (shared) address with
// tk-neighbour.
func behaviouralAlert(id, p string) event.Alert {
	a := mkAlert(id, event.EntityPrincipal, p, "record_volume", event.SeverityCritical, t0)
	a.Findings[0].Time = t0.Add(time.Minute)
	a.Findings[0].Cited = []event.Citation{
		{Ref: "e1", Success: true, Principal: p, Token: "tk-own", Source: "203.0.113.7"},
		{Ref: "e2", Success: true, Principal: p, Token: "tk-own", Source: "203.0.113.7"},
		{Ref: "e3", Success: true, Principal: "e:neighbour", Token: "tk-neighbour", Source: "203.0.113.7"},
		{Ref: "e4", Success: false, Principal: p, Token: "tk-failed", Source: "203.0.113.7"},
	}
	return a
}

// TestPlanBehaviouralContainment: on a critical behavioural alert about
// a principal with no immediate finding about it, the default playbooks
// end the sessions the principal itself used in the evidence at once
// (revoke_token, from the finding that cited them) — never a neighbour's
// on the same address, never a failed attempt's — and disabling the
// identity waits for approval (any analyst: not held as protected). An
// immediate finding about the principal (activity after termination)
// disables it at once, as before.
func TestPlanBehaviouralContainment(t *testing.T) {
	cases := []struct {
		name  string
		alert func() event.Alert
		want  map[string]string // kind:target → state
	}{
		{
			name:  "behaviour only: sessions revoked, disable waits",
			alert: func() event.Alert { return behaviouralAlert("b1", "e:1") },
			want: map[string]string{
				"revoke_token:tk-own":       StatePlanned,
				"disable_identity:e:1":      StatePendingApproval,
				"notify:principal:e:1":      StatePlanned,
				"revoke_token:tk-failed":    "",
				"revoke_token:tk-neighbour": "",
			},
		},
		{
			name: "with activity after termination: disabled at once",
			alert: func() event.Alert {
				a := behaviouralAlert("b2", "e:2")
				a.Findings = append(a.Findings, event.Finding{Detector: "terminated_identity", Kind: "activity_after_termination",
					Entity: a.Entity, Time: t0.Add(2 * time.Minute), Immediate: true})
				return a
			},
			want: map[string]string{
				"revoke_token:tk-own":  StatePlanned,
				"disable_identity:e:2": StatePlanned,
			},
		},
		{
			name: "an immediate finding about something else does not decide",
			alert: func() event.Alert {
				a := behaviouralAlert("b3", "e:3")
				a.Findings = append(a.Findings, event.Finding{Detector: "token_binding", Kind: "token_binding_country",
					Entity: event.EntityKey{Kind: event.EntityToken, ID: "tk-own"}, Time: t0, Immediate: true})
				return a
			},
			want: map[string]string{"disable_identity:e:3": StatePendingApproval},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlanner(testConfig("http://127.0.0.1:1"))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Action{}
			for _, act := range p.Plan(tc.alert()) {
				got[act.Kind+":"+act.Target] = act
			}
			for k, state := range tc.want {
				act, ok := got[k]
				if state == "" {
					if ok {
						t.Errorf("%s planned: %+v", k, act)
					}
					continue
				}
				if !ok || act.State != state {
					t.Errorf("%s: %+v, want %s", k, act, state)
				}
			}
			if act, ok := got["revoke_token:tk-own"]; ok && !act.CreatedAt.Equal(t0.Add(time.Minute)) {
				t.Errorf("revoke_token at %v, want the citing finding's time %v", act.CreatedAt, t0.Add(time.Minute))
			}
			for k, act := range got {
				if act.State == StatePendingApproval {
					if act.Hold != "" || !strings.Contains(act.Reason, "behavioural evidence only") {
						t.Errorf("%s: hold %q reason %q, want an analyst's approval for behavioural evidence", k, act.Hold, act.Reason)
					}
				}
			}
		})
	}
}

// TestPlanRoleSession: a cloud role session (an assumed-role ARN) is
// contained by revoking the access keys it used, never by "disabling" it
// — even with an immediate finding; an IAM user (its ARN is an identity)
// still gets a disable_identity.
func TestPlanRoleSession(t *testing.T) {
	const role = "arn:aws:sts::210987654321:assumed-role/order-export-worker/i-029bfc9fec938787a"
	a := mkAlert("r1", event.EntityPrincipal, role, "principal_geo", event.SeverityCritical, t0)
	a.Findings[0].Immediate = true
	a.Findings[0].Cited = []event.Citation{{Ref: "e1", Success: true, Principal: role, Token: "ASIAEXAMPLEKEY000001", Source: "3.35.1.2"}}
	p, err := NewPlanner(testConfig("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	var revoked bool
	for _, act := range p.Plan(a) {
		switch act.Kind {
		case KindDisableIdentity:
			t.Errorf("role session disabled: %+v", act)
		case KindRevokeToken:
			revoked = act.Target == "ASIAEXAMPLEKEY000001" && act.State == StatePlanned
		}
	}
	if !revoked {
		t.Error("the role session's access key was not revoked")
	}
	for id, want := range map[string]bool{
		role:                                 true,
		"arn:aws:iam::210987654321:user/bob": false,
		"e:1":                                false,
		"assumed-role/x":                     false,
	} {
		if got := IsRoleSession(id); got != want {
			t.Errorf("IsRoleSession(%q) = %v, want %v", id, got, want)
		}
	}
	u := mkAlert("u1", event.EntityPrincipal, "arn:aws:iam::210987654321:user/bob", "record_volume", event.SeverityCritical, t0)
	var held bool
	for _, act := range p.Plan(u) {
		held = held || act.Kind == KindDisableIdentity && act.State == StatePendingApproval
	}
	if !held {
		t.Error("IAM user: no disable_identity waiting for approval")
	}
}

// TestPlanReturnAfterSessionsEnded: a principal whose sessions a
// behavioural alert ended, and which comes back with a new session doing
// more of the same (a later finding citing another token of it), is
// disabled at once — an action of its own beside the held one — from the
// time it came back, also after a restart (Restore). The twins are not:
// more findings about the session already ended, and two sessions ended
// at once (a person signed in on two devices).
func TestPlanReturnAfterSessionsEnded(t *testing.T) {
	later := func(a event.Alert, at time.Duration, tokens ...string) event.Alert {
		f := event.Finding{Detector: "record_volume", Kind: "record_volume", Entity: a.Entity, Time: t0.Add(at)}
		for i, tk := range tokens {
			f.Cited = append(f.Cited, event.Citation{Ref: fmt.Sprint("l", at, i), Success: true, Principal: a.Entity.ID, Token: tk})
		}
		a.Findings = append(a.Findings, f)
		return a
	}
	disables := func(acts []Action) (out []Action) {
		for _, act := range acts {
			if act.Kind == KindDisableIdentity {
				out = append(out, act)
			}
		}
		return out
	}
	newPlanner := func() *Planner {
		p, err := NewPlanner(testConfig("http://127.0.0.1:1"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	p := newPlanner()
	first := behaviouralAlert("b1", "e:1")
	acts := p.Plan(first)
	if d := disables(acts); len(d) != 1 || d[0].State != StatePendingApproval {
		t.Fatalf("first alert: disable %+v, want one pending approval", d)
	}
	if d := disables(p.Plan(later(first, time.Hour, "tk-own"))); len(d) != 0 {
		t.Errorf("the same session again: disable %+v, want none", d)
	}
	back := later(first, 24*time.Hour, "tk-next")
	d := disables(p.Plan(back))
	if len(d) != 1 || d[0].State != StatePlanned || !d[0].CreatedAt.Equal(t0.Add(24*time.Hour)) ||
		d[0].ID == ActionID("b1", KindDisableIdentity, "e:1") {
		t.Errorf("back with a new session: disable %+v, want a new one planned at %v", d, t0.Add(24*time.Hour))
	}
	if again := disables(p.Plan(later(back, 25*time.Hour, "tk-third"))); len(again) != 0 {
		t.Errorf("disabled twice: %+v", again)
	}

	// After a restart, the sessions ended before count.
	r := newPlanner()
	r.Restore(acts)
	if d := disables(r.Plan(later(behaviouralAlert("b2", "e:1"), 24*time.Hour, "tk-next"))); len(d) != 1 || d[0].State != StatePlanned {
		t.Errorf("after restore: disable %+v, want planned", d)
	}

	two := newPlanner()
	a := behaviouralAlert("b3", "e:3")
	a.Findings[0].Cited = append(a.Findings[0].Cited, event.Citation{Ref: "e5", Success: true, Principal: "e:3", Token: "tk-phone"})
	if d := disables(two.Plan(a)); len(d) != 1 || d[0].State != StatePendingApproval {
		t.Errorf("two sessions at once: disable %+v, want pending approval", d)
	}
}
