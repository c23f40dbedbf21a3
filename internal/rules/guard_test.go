package rules

import (
	"net/netip"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
)

// The guard never changes a verdict: whenever it rejects an event, the
// full condition is false too; and it recognises the simple tests.
func TestGuardIsSound(t *testing.T) {
	c, err := newCompiler(Options{})
	if err != nil {
		t.Fatal(err)
	}
	conds := []struct {
		src   string
		tests int
	}{
		{`event.dataset == "gateway.access" && !user.id.startsWith("m:") && size(records.ids) > 0`, 2},
		{`"gateway.access" == event.dataset || user.id == "x"`, 2},
		{`user.id != "" && event.action.contains("export") && user_agent.original.endsWith("curl")`, 3},
		{`event.dataset in ["auth.login", "gateway.access"] && !(records.type in ["customer"])`, 2},
		{`!!user.id.startsWith("s:") && source.ip != "10.0.0.1"`, 1},
		{`http.response.status_code == 404 && url.path.startsWith("/api/")`, 2},
		{`size(user.roles) > 0`, 0},
		{`(user.id.startsWith("s:") || "service" in user.roles) && user_agent.original.startsWith("Mozilla/")`, 3},
		{`http.response.status_code == 401 || http.response.status_code == 403 || (event.dataset == "auth.login" && event.outcome == "failure")`, 4},
		{`user.id == "a" || size(records.ids) > 3`, 0},
		{`!(http.response.status_code in [401, 403]) && !("admin" in user.roles)`, 2},
	}
	events := []event.Event{
		{},
		{Dataset: "gateway.access", Action: "member.export", User: event.User{ID: "m:1"}, Records: event.Records{Type: "customer", IDs: []string{"1"}}},
		{Dataset: "gateway.access", Action: "x", User: event.User{ID: "e:1"}, UserAgent: "curl", Records: event.Records{IDs: []string{"1"}}},
		{Dataset: "auth.login", User: event.User{ID: "s:svc"}, Source: event.Source{IP: netip.MustParseAddr("10.0.0.2")}},
		{Dataset: "gateway.access", URLPath: "/api/v2/x", HTTP: event.HTTP{StatusCode: 404}, User: event.User{ID: "x"}},
		{Dataset: "gateway.access", Action: "export", User: event.User{ID: "e:2"}, UserAgent: "python curl", Records: event.Records{Type: "address"}},
		{Dataset: "auth.login", Outcome: event.OutcomeFailure, User: event.User{ID: "a", Roles: []string{"service"}}, UserAgent: "Mozilla/5.0", HTTP: event.HTTP{StatusCode: 403}},
		{Dataset: "gateway.access", User: event.User{ID: "s:x", Roles: []string{"admin"}}, UserAgent: "Mozilla/5.0", HTTP: event.HTTP{StatusCode: 401}, Records: event.Records{IDs: []string{"1", "2", "3", "4"}}},
	}
	for _, tc := range conds {
		cc, issues := c.compile(tc.src)
		if len(issues) > 0 {
			t.Fatalf("%s: %v", tc.src, issues)
		}
		if n := cc.guard.size(); n != tc.tests {
			t.Errorf("%s: guard of %d tests, want %d", tc.src, n, tc.tests)
		}
		full := *cc
		full.guard = nil
		for i := range events {
			ok, err := full.Match(&events[i])
			if err != nil {
				t.Fatalf("%s: %v", tc.src, err)
			}
			if ok && !cc.guard.pass(&events[i]) {
				t.Errorf("%s: guard rejects event %d, which matches", tc.src, i)
			}
		}
	}
}
