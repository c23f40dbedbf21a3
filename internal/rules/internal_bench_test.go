package rules

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

// BenchmarkShardEval measures a condition as a shard evaluates it: one
// reused activation, fields resolved per event.
func BenchmarkShardEval(b *testing.B) {
	var ev event.Event
	line := `{"@timestamp":"2025-06-25T17:30:00Z","event":{"dataset":"gateway.access","action":"admin.customer.export"},"user":{"id":"e:2210","roles":["cs-agent"]},"source":{"ip":"203.0.113.7"},"http":{"response":{"status_code":503}},"records":{"type":"customer","ids":["1","2","3"]}}`
	if err := decode.NewDecoder().Decode([]byte(line), &ev); err != nil {
		b.Fatal(err)
	}
	comp, err := newCompiler(Options{Lists: map[string][]string{"corporate_networks": {"10.0.0.0/8"}}})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, cond string }{
		{"simple", `event.dataset == "gateway.access" && http.response.status_code >= 500`},
		{"roles", `event.dataset == "gateway.access" && "cs-agent" in user.roles && records.type == "customer"`},
		{"complex", `event.action.contains("export") && !user.id.startsWith("m:") && size(records.ids) >= 3 && ` +
			`(timestamp.getHours("Asia/Seoul") < 8 || timestamp.getHours("Asia/Seoul") >= 20) && !cidr(source.ip, lists.corporate_networks)`},
		// The shipped customer-reads-other-customer, on a customer reading
		// their own profile (the event most customer traffic is).
		{"bind-own", `user.id.startsWith("e:") && size(records.ids) > 0 && cel.bind(me, user.id.substring(2), ` +
			`(records.type == "customer" && records.ids.exists(id, id != me)) || ` +
			`(records.type == "address" && cel.bind(mine, "a:" + me + ":", records.ids.exists(id, !id.startsWith(mine)))))`},
	} {
		cc, issues := comp.compile(bc.cond)
		if len(issues) > 0 {
			b.Fatal(issues)
		}
		a := newActivation(comp.names)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.reset(&ev)
				if _, err := cc.eval(a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
