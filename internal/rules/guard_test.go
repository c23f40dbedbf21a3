package rules

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
)

// The guard never changes a verdict: whenever it rejects an event, the
// full condition is false too, and when it decides the whole condition
// (exact) its verdict is CEL's; and it recognises the simple tests.
func TestGuardIsSound(t *testing.T) {
	c, err := newCompiler(Options{})
	if err != nil {
		t.Fatal(err)
	}
	conds := []struct {
		src   string
		tests int
		exact bool
	}{
		{`event.dataset == "gateway.access" && !user.id.startsWith("m:") && size(records.ids) > 0`, 2, false},
		{`"gateway.access" == event.dataset || user.id == "x"`, 2, true},
		{`user.id != "" && event.action.contains("export") && user_agent.original.endsWith("curl")`, 3, true},
		{`event.dataset in ["auth.login", "gateway.access"] && !(records.type in ["customer"])`, 2, true},
		{`!!user.id.startsWith("s:") && source.ip != "10.0.0.1"`, 1, false},
		{`http.response.status_code == 404 && url.path.startsWith("/api/")`, 2, true},
		{`size(user.roles) > 0`, 0, false},
		{`(user.id.startsWith("s:") || "service" in user.roles) && user_agent.original.startsWith("Mozilla/")`, 3, true},
		{`http.response.status_code == 401 || http.response.status_code == 403 || (event.dataset == "auth.login" && event.outcome == "failure")`, 4, true},
		{`user.id == "a" || size(records.ids) > 3`, 0, false},
		{`!(http.response.status_code in [401, 403]) && !("admin" in user.roles)`, 2, true},
		{`user.id == "" && event.outcome != "success"`, 2, true},
		{`user_agent.original.lowerAscii().contains("curl") || user_agent.original.lowerAscii().startsWith("mozilla/") || url.path.lowerAscii().endsWith("/x")`, 3, true},
		{`!user_agent.original.lowerAscii().contains("CURL") && user_agent.original.lowerAscii().contains("é")`, 1, false},
		// cel.bind: its body's tests on fields hold for the whole; a test
		// on the bound variable decides nothing.
		{`user.id.startsWith("m:") && cel.bind(me, user.id.substring(2), (records.type == "customer" && records.ids.exists(id, id != me)) || (records.type == "address" && cel.bind(mine, "a:" + me + ":", records.ids.exists(id, !id.startsWith(mine)))))`, 3, false},
		{`cel.bind(x, user.id, x == "m:1" && event.dataset == "gateway.access")`, 1, false},
		{`cel.bind(x, user.id, x == "m:1" || event.dataset == "gateway.access")`, 0, false},
		{`cel.bind(x, records.type, cel.bind(y, x + "s", y == "customers" && records.type == "customer"))`, 1, false},
		// A bound name shadows a field of that name: user.id below is the
		// bound map's, not the event's.
		{`cel.bind(user, {"id": "m:1"}, user.id == "m:1") && event.dataset == "auth.login"`, 1, false},
		{`cel.bind(records, {"type": "x"}, records.type == "x" || event.action == "export")`, 0, false},
		// .user.id is the event's field even where user is bound; the
		// guard need not see it, but must not take the bound user for it.
		{`cel.bind(user, {"id": "x"}, .user.id == "m:1" && user.id == "x")`, 0, false},
		// cel.bind's initialiser runs only when the body reads the
		// variable: one that would fail does not keep the body's tests
		// from holding for the whole.
		{`cel.bind(me, user.id.substring(9), event.dataset == "gateway.access" && records.type == "customer")`, 2, false},
	}
	events := []event.Event{
		{},
		{Dataset: "gateway.access", Action: "member.export", User: event.User{ID: "m:1"}, Records: event.Records{Type: "customer", IDs: []string{"1"}}},
		{Dataset: "gateway.access", Action: "x", User: event.User{ID: "e:1"}, UserAgent: "curl", Records: event.Records{IDs: []string{"1"}}},
		{Dataset: "auth.login", User: event.User{ID: "s:svc"}, Source: event.Source{IP: netip.MustParseAddr("10.0.0.2")}},
		{Dataset: "gateway.access", URLPath: "/api/v2/X", HTTP: event.HTTP{StatusCode: 404}, User: event.User{ID: "x"}, UserAgent: "Éclair CuRL"},
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
		if cc.exact != tc.exact {
			t.Errorf("%s: exact %v, want %v", tc.src, cc.exact, tc.exact)
		}
		full := *cc
		full.guard, full.exact = nil, false
		for i := range events {
			ok, err := full.Match(&events[i])
			if err != nil {
				t.Fatalf("%s: %v", tc.src, err)
			}
			if ok && !cc.guard.pass(&events[i]) {
				t.Errorf("%s: guard rejects event %d, which matches", tc.src, i)
			}
			if cc.exact && !ok && cc.guard.pass(&events[i]) {
				t.Errorf("%s: exact guard passes event %d, which does not match", tc.src, i)
			}
		}
	}
}

// A condition whose worst case exceeds CostLimit is accounted only on
// events too large for its unaccounted program: on small events both
// programs give the same verdict, and a large event is still stopped at
// the limit.
func TestCostAccountingBySize(t *testing.T) {
	c, err := newCompiler(Options{})
	if err != nil {
		t.Fatal(err)
	}
	cc, issues := c.compile(`records.ids.exists(a, records.ids.exists(b, a + b == user.id))`)
	if len(issues) > 0 {
		t.Fatal(issues)
	}
	if !cc.tracked || cc.fast == nil || cc.fastMax < minFastSize {
		t.Fatalf("tracked %v, fast program %v up to %d bytes", cc.tracked, cc.fast != nil, cc.fastMax)
	}
	act := newActivation(c.names)
	small := []event.Event{
		{User: event.User{ID: "12"}, Records: event.Records{IDs: []string{"1", "2"}}},
		{User: event.User{ID: "13"}, Records: event.Records{IDs: []string{"1", "2"}}},
		{User: event.User{ID: "x"}},
	}
	slow := *cc
	slow.fast = nil
	for i := range small {
		act.reset(&small[i])
		if act.size() > cc.fastMax {
			t.Fatalf("event %d: size %d over %d", i, act.size(), cc.fastMax)
		}
		got, err1 := cc.eval(act)
		want, err2 := slow.eval(act)
		if got != want || err1 != nil || err2 != nil {
			t.Errorf("event %d: %v, %v with the fast program; %v, %v accounted", i, got, err1, want, err2)
		}
	}
	// 400 ids of 200 bytes: 160,000 concatenations of 400 bytes, over
	// the limit; far smaller than the decoder's largest event.
	ids := make([]string, 400)
	for i := range ids {
		ids[i] = strconv.Itoa(i) + strings.Repeat("x", 200)
	}
	big := event.Event{User: event.User{ID: "none"}, Records: event.Records{IDs: ids}}
	act.reset(&big)
	if act.size() <= cc.fastMax {
		t.Fatalf("big event's size %d within %d", act.size(), cc.fastMax)
	}
	if _, err := cc.eval(act); err == nil || !strings.Contains(err.Error(), "cost") {
		t.Errorf("big event: error %v, want the cost limit", err)
	}
}
