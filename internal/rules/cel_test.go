package rules_test

import (
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/rules"
)

const sampleEvent = `{"@timestamp":"2025-06-25T17:30:00Z","event":{"dataset":"gateway.access","action":"admin.customer.export","outcome":"success","id":"ev-1"},` +
	`"user":{"id":"e:2210","roles":["cs-agent","exporter"]},"source":{"ip":"203.0.113.7","geo":{"country_iso_code":"VN"},"as":{"number":4766}},` +
	`"user_agent":{"original":"Mozilla/5.0 (X11; Linux x86_64)"},"http":{"request":{"method":"GET"},"response":{"status_code":503,"body":{"bytes":48211}}},` +
	`"url":{"path":"/admin/customers/export"},"records":{"type":"customer","ids":["1","2","3"],"fields":["name","entrance_code"]}}`

func decodeOne(t testing.TB, line string) *event.Event {
	t.Helper()
	var ev event.Event
	if err := decode.NewDecoder().Decode([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	return &ev
}

// condition compiles one condition through the loader.
func condition(t testing.TB, cond string, opts rules.Options) *rules.Rule {
	t.Helper()
	src := "id: t\ntitle: T\nseverity: low\ncondition: '" + strings.ReplaceAll(cond, "'", "''") + "'\n"
	rs, err := rules.ParseFile("t.yml", []byte(src), opts)
	if err != nil {
		t.Fatalf("%s: %v", cond, err)
	}
	return rs[0]
}

func TestConditions(t *testing.T) {
	ev := decodeOne(t, sampleEvent)
	bare := decodeOne(t, `{"@timestamp":"2025-06-25T01:00:00Z","event":{"dataset":"x","action":"y"}}`)
	opts := rules.Options{Lists: map[string][]string{"corporate_networks": {"10.0.0.0/8", "203.0.113.0/24"}, "vip": {"e:2210"}}}
	for _, tc := range []struct {
		cond string
		ev   *event.Event
		want bool
	}{
		{`event.dataset == "gateway.access" && "cs-agent" in user.roles && records.type == "customer"`, ev, true},
		{`source.geo.country_iso_code != "KR"`, ev, true},
		{`http.response.status_code >= 500`, ev, true},
		{`http.response.body.bytes > 40000 && source.as.number == 4766`, ev, true},
		{`source.ip == "203.0.113.7"`, ev, true},
		{`timestamp == timestamp("2025-06-25T17:30:00Z")`, ev, true},
		{`timestamp.getHours("Asia/Seoul") == 2 && timestamp.getHours() == 17`, ev, true},
		{`timestamp.getDayOfWeek("Asia/Seoul") == 4 && timestamp.getHours("+09:00") == 2`, ev, true},
		{`cidr(source.ip, "203.0.113.0/24") && !cidr(source.ip, "10.0.0.0/8")`, ev, true},
		{`cidr(source.ip, lists.corporate_networks)`, ev, true},
		{`cidr(source.ip, ["192.0.2.1", "203.0.113.7"])`, ev, true},
		{`user.id in lists.vip && size(lists.corporate_networks) == 2`, ev, true},
		{`size(records.ids) == 3 && records.ids.exists(i, i == "2")`, ev, true},
		{`"entrance_code" in records.fields && sets.intersects(user.roles, ["exporter"])`, ev, true},
		{`user_agent.original.lowerAscii().contains("linux") && url.path.matches("^/admin/")`, ev, true},
		{`event.action.contains("export") && event.outcome == "success" && event.id == "ev-1"`, ev, true},
		{`present(records.ids) && present(timestamp) && !present(token.id)`, ev, true},
		// absent fields read as zero values
		{`user.id == "" && size(user.roles) == 0 && http.response.status_code == 0 && source.ip == ""`, bare, true},
		{`!present(source.geo.location.lat) && source.geo.location.lat == 0.0`, bare, true},
		{`token.issued_at < timestamp`, bare, true},
		{`cidr(source.ip, lists.corporate_networks)`, bare, false},
		{`"cs-agent" in user.roles`, bare, false},
	} {
		r := condition(t, tc.cond, opts)
		got, err := r.Cond.Match(tc.ev)
		if err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.cond, got, err, tc.want)
		}
	}
}

func TestConditionCompileErrors(t *testing.T) {
	for _, tc := range []struct{ cond, want string }{
		{`user.id == 1`, "no matching overload"},
		{`nosuch == "x"`, "undeclared reference to 'nosuch'"},
		{`user.id`, "want bool"},
		{`lists.nope.size() > 0`, "undeclared reference"},
		{`cidr(source.ip, "10.0.0.0/33")`, "not a network"},
		{`timestamp.getHours("Mars/Olympus") > 1`, "unknown time zone"},
		{`present(user.nope)`, "not a field of the event contract"},
		{`present("user.id")`, "wants a contract field"},
		{`user.id ==`, "Syntax error"},
	} {
		src := "id: t\ntitle: T\nseverity: low\ncondition: '" + strings.ReplaceAll(tc.cond, "'", "''") + "'\n"
		_, err := rules.ParseFile("t.yml", []byte(src), rules.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "t.yml:4:") {
			t.Errorf("%s: error %v, want t.yml:4:…%q", tc.cond, err, tc.want)
		}
	}
	_, err := rules.ParseFile("t.yml", []byte("id: t\ntitle: T\nseverity: low\ncondition: cidr(source.ip, lists.x)\n"),
		rules.Options{Lists: map[string][]string{"x": {"10.0.0.0/8", "oops"}}})
	if err == nil || !strings.Contains(err.Error(), `"oops"`) {
		t.Errorf("bad list entry: %v", err)
	}
}
