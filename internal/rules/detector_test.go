package rules_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/rules"
)

// ev renders one contract event at minute m after 2025-06-25T00:00Z.
func ev(m float64, user, ip string, ids ...string) string {
	t := time.Date(2025, 6, 25, 0, 0, 0, 0, time.UTC).Add(time.Duration(m * float64(time.Minute)))
	s := fmt.Sprintf(`{"@timestamp":%q,"event":{"dataset":"gateway.access","action":"read"},"user":{"id":%q}`, t.Format(time.RFC3339Nano), user)
	if ip != "" {
		s += fmt.Sprintf(`,"source":{"ip":%q}`, ip)
	}
	if len(ids) > 0 {
		s += `,"records":{"type":"customer","ids":["` + strings.Join(ids, `","`) + `"]}`
	}
	return s + "}\n"
}

func loadSet(t testing.TB, src string) *rules.Set {
	t.Helper()
	rs, err := rules.ParseFile("t.yml", []byte(src), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set := &rules.Set{}
	for _, r := range rs {
		if err := set.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return set
}

func findings(t testing.TB, set *rules.Set, events ...string) []event.Finding {
	t.Helper()
	return detecttest.Findings(t, strings.NewReader(strings.Join(events, "")), 3, rules.Detectors(rules.NewHolder(set))...)
}

func TestAggregate(t *testing.T) {
	const count = `id: c
title: C
severity: medium
entity: source
condition: "true"
aggregate: {function: count, window: 10m, threshold: 3}
`
	const distinct = `id: d
title: D
severity: critical
condition: size(records.ids) > 0
aggregate: {function: count_distinct, field: records.ids, window: 1h, threshold: 4}
`
	for _, tc := range []struct {
		name   string
		rule   string
		events []string
		want   []string // "entity@minute"
	}{
		{"count-fires-at-threshold", count, []string{ev(0, "a", "192.0.2.1"), ev(1, "b", "192.0.2.1"), ev(2, "c", "192.0.2.1")}, []string{"192.0.2.1@2"}},
		{"count-per-entity", count, []string{ev(0, "a", "192.0.2.1"), ev(1, "a", "192.0.2.2"), ev(2, "a", "192.0.2.1")}, nil},
		{"count-window-slides", count, []string{ev(0, "a", "192.0.2.1"), ev(6, "a", "192.0.2.1"), ev(11, "a", "192.0.2.1"), ev(12, "a", "192.0.2.1")}, []string{"192.0.2.1@12"}},
		{"count-rearms-after-window", count, []string{
			ev(0, "a", "192.0.2.1"), ev(0, "a", "192.0.2.1"), ev(0, "a", "192.0.2.1"), // fires
			ev(1, "a", "192.0.2.1"), ev(2, "a", "192.0.2.1"), ev(3, "a", "192.0.2.1"), // suppressed
			ev(10, "a", "192.0.2.1"), ev(11, "a", "192.0.2.1"), ev(12, "a", "192.0.2.1"), // fires again
		}, []string{"192.0.2.1@0", "192.0.2.1@12"}},
		{"count-out-of-order-within-window", count, []string{ev(5, "a", "192.0.2.1"), ev(1, "a", "192.0.2.1"), ev(3, "a", "192.0.2.1")}, []string{"192.0.2.1@3"}},
		{"count-too-old-not-counted", count, []string{ev(20, "a", "192.0.2.1"), ev(1, "a", "192.0.2.1"), ev(21, "a", "192.0.2.1")}, nil},
		{"distinct-counts-list-elements", distinct, []string{ev(0, "e:1", "", "1", "2"), ev(5, "e:1", "", "2", "3"), ev(9, "e:1", "", "3"), ev(10, "e:1", "", "4")}, []string{"e:1@10"}},
		{"distinct-repeats-do-not-count", distinct, []string{ev(0, "e:1", "", "1", "2"), ev(5, "e:1", "", "1", "2"), ev(9, "e:1", "", "2", "3")}, nil},
		{"distinct-window-expires", distinct, []string{ev(0, "e:1", "", "1", "2"), ev(61, "e:1", "", "3", "4")}, nil},
		{"distinct-one-big-event", distinct, []string{ev(0, "e:1", "", "1", "2", "3", "4", "5", "6")}, []string{"e:1@0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := findings(t, loadSet(t, tc.rule), tc.events...)
			var gs []string
			base := time.Date(2025, 6, 25, 0, 0, 0, 0, time.UTC)
			for _, f := range got {
				gs = append(gs, fmt.Sprintf("%s@%d", f.Entity.ID, int(f.Time.Sub(base).Minutes())))
			}
			if fmt.Sprint(gs) != fmt.Sprint(tc.want) {
				t.Errorf("findings %v, want %v", gs, tc.want)
			}
		})
	}
}

func TestFindingShape(t *testing.T) {
	set := loadSet(t, `id: d
title: Distinct records
severity: critical
tags: [attack.collection]
condition: size(records.ids) > 0
aggregate: {function: count_distinct, field: records.ids, window: 1h, threshold: 3}
`)
	got := findings(t, set, ev(0, "e:1", "198.51.100.9", "1"), ev(1, "e:1", "198.51.100.9", "2"), ev(2, "e:1", "198.51.100.9", "3"))
	if len(got) != 1 {
		t.Fatalf("findings %+v", got)
	}
	f := got[0]
	if f.Detector != "rule:d" || f.Kind != "d" || f.Title != "Distinct records" || f.Score != 90 ||
		f.Severity != event.SeverityCritical || !f.Immediate || f.Entity != (event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"}) {
		t.Errorf("finding %+v", f)
	}
	if len(f.Evidence) != 3 || f.Evidence[0] != "events.ndjson:1" {
		t.Errorf("evidence %v", f.Evidence)
	}
	for _, s := range []string{"Rule d (Distinct records)", "principal e:1", "3 distinct records.ids within 1h (threshold 3)", "from 198.51.100.9"} {
		if !strings.Contains(f.Explanation, s) {
			t.Errorf("explanation %q lacks %q", f.Explanation, s)
		}
	}
}

func TestEntityKinds(t *testing.T) {
	line := `{"@timestamp":"2025-06-25T00:00:00Z","event":{"dataset":"gateway.access","action":"read"},"user":{"id":"m:1"},"source":{"ip":"192.0.2.1"},"token":{"id":"tk-1","key_id":"k-1"}}` + "\n"
	for _, tc := range []struct{ entity, want string }{
		{"principal", "principal:m:1"}, {"source", "source:192.0.2.1"}, {"token", "token:tk-1"}, {"key", "key:k-1"},
	} {
		set := loadSet(t, "id: r\ntitle: R\nseverity: low\nentity: "+tc.entity+"\ncondition: \"true\"\n")
		got := findings(t, set, line)
		if len(got) != 1 || got[0].Entity.String() != tc.want {
			t.Errorf("%s: %+v", tc.entity, got)
		}
	}
}

func TestRuntimeErrorsCounted(t *testing.T) {
	set := loadSet(t, "id: r\ntitle: R\nseverity: low\ncondition: records.ids[3] == \"x\"\n")
	got := findings(t, set, ev(0, "e:1", "", "1"), ev(1, "e:1", "", "1", "2", "3", "x"))
	if len(got) != 1 {
		t.Errorf("findings %+v", got)
	}
	r := set.Rules[0]
	if r.Errors() != 1 || !strings.Contains(r.LastError(), "index") || set.ErrorCounts()["r"] != 1 {
		t.Errorf("errors %d %q", r.Errors(), r.LastError())
	}
}

type panicky struct{}

func (panicky) Match(*event.Event) (bool, error) { panic("boom") }

func TestPanickingConditionIsAnError(t *testing.T) {
	set := &rules.Set{}
	r := &rules.Rule{ID: "p", Title: "P", Severity: "low", Cond: panicky{}}
	if err := set.Add(r); err != nil {
		t.Fatal(err)
	}
	if got := findings(t, set, ev(0, "e:1", "")); len(got) != 0 || r.Errors() != 1 {
		t.Errorf("findings %v errors %d", got, r.Errors())
	}
}

func TestDisabledRulesDoNotRun(t *testing.T) {
	set := loadSet(t, "id: r\ntitle: R\nseverity: low\nenabled: false\ncondition: \"true\"\n")
	if got := findings(t, set, ev(0, "e:1", "")); len(got) != 0 {
		t.Errorf("findings %v", got)
	}
}
