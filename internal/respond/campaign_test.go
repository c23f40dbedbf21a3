package respond

import (
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/stuffing"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestPlanCampaign: a credential-stuffing campaign's alert (about a
// network) blocks the network at once only when a finding tags it a
// hosting network — a carrier's or an ISP's waits for approval — blocks
// the sources it names, and revokes the tokens its follow-up findings name
// from the time each was named, not from the alert's start.
func TestPlanCampaign(t *testing.T) {
	const hosting = "haechi.network.hosting" // TestHostingTag
	t0 := time.Date(2025, 6, 5, 18, 0, 0, 0, time.UTC)
	campaign := func(id, network string, tags ...string) event.Alert {
		a := mkAlert(id, "network", network, "login_campaign", event.SeverityCritical, t0)
		a.Findings[0].Kind = "login_failure_campaign"
		a.Findings[0].Tags = tags
		a.Findings[0].Related = []event.EntityKey{{Kind: event.EntitySource, ID: "106.101.7.1"}, {Kind: event.EntitySource, ID: "106.101.8.2"}}
		a.Findings = append(a.Findings, event.Finding{Detector: "login_campaign", Kind: "login_failure_campaign", Entity: a.Entity,
			Time: t0.Add(40 * time.Minute), Tags: tags,
			Related: []event.EntityKey{{Kind: event.EntitySource, ID: "106.101.7.1"}, {Kind: event.EntityToken, ID: "tk-bot-1"}}})
		return a
	}
	type want struct {
		state string
		at    time.Time
	}
	cases := []struct {
		name  string
		alert event.Alert
		want  map[string]want // kind:target → state, time
	}{
		{
			name:  "domestic carrier: network block waits for approval",
			alert: campaign("c1", "AS17858"),
			want: map[string]want{
				"block_source:AS17858":     {StatePendingApproval, t0},
				"block_source:106.101.7.1": {StatePlanned, t0},
				"block_source:106.101.8.2": {StatePlanned, t0},
				"revoke_token:tk-bot-1":    {StatePlanned, t0.Add(40 * time.Minute)},
				"notify:network:AS17858":   {StatePlanned, t0},
			},
		},
		{
			name:  "hosting network: blocked at once",
			alert: campaign("c2", "AS20473", hosting),
			want: map[string]want{
				"block_source:AS20473":     {StatePlanned, t0},
				"block_source:106.101.7.1": {StatePlanned, t0},
				"block_source:106.101.8.2": {StatePlanned, t0},
				"revoke_token:tk-bot-1":    {StatePlanned, t0.Add(40 * time.Minute)},
				"notify:network:AS20473":   {StatePlanned, t0},
			},
		},
		{
			name:  "a prefix cohort of a consumer network waits for approval too",
			alert: campaign("c3", "2001:db8:1::/64"),
			want: map[string]want{
				"block_source:2001:db8:1::/64":   {StatePendingApproval, t0},
				"block_source:106.101.7.1":       {StatePlanned, t0},
				"block_source:106.101.8.2":       {StatePlanned, t0},
				"revoke_token:tk-bot-1":          {StatePlanned, t0.Add(40 * time.Minute)},
				"notify:network:2001:db8:1::/64": {StatePlanned, t0},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlanner(testConfig("http://127.0.0.1:1"))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]want{}
			for _, act := range p.Plan(tc.alert) {
				k := act.Kind + ":" + act.Target
				if _, dup := got[k]; dup {
					t.Errorf("%s planned twice", k)
				}
				got[k] = want{act.State, act.CreatedAt}
				if act.State == StatePendingApproval && !strings.Contains(act.Reason, "network-wide block") {
					t.Errorf("%s: reason %q", k, act.Reason)
				}
			}
			for k, w := range tc.want {
				if g, ok := got[k]; !ok || g.state != w.state || !g.at.Equal(w.at) {
					t.Errorf("%s: got %+v (planned %v), want %+v", k, g, ok, w)
				}
			}
			for k := range got {
				if _, ok := tc.want[k]; !ok {
					t.Errorf("unexpected action %s", k)
				}
			}
		})
	}
}

// TestHostingTag: the tag the planner reads is the one login_campaign
// writes.
func TestHostingTag(t *testing.T) {
	if TagHostingNetwork != stuffing.TagHosting {
		t.Fatalf("respond's hosting tag %q is not login_campaign's %q", TagHostingNetwork, stuffing.TagHosting)
	}
}
