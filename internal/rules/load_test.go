package rules_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/haechi-sec/haechi/internal/rules"
)

func TestLoadShapes(t *testing.T) {
	fsys := fstest.MapFS{
		"r/one.yml": {Data: []byte("id: one\ntitle: One\nseverity: low\ncondition: \"true\"\n")},
		"r/list.yaml": {Data: []byte("- id: two\n  title: Two\n  severity: medium\n  entity: source\n  condition: \"true\"\n" +
			"- id: three\n  title: Three\n  severity: high\n  condition: \"true\"\n")},
		"r/sub/docs.yml": {Data: []byte("id: four\ntitle: Four\nseverity: critical\ncondition: \"true\"\n---\nid: five\ntitle: Five\nseverity: low\ncondition: \"true\"\n---\n")},
		"r/readme.md":    {Data: []byte("not a rule")},
		"r/.hidden.yml":  {Data: []byte("garbage: [")},
	}
	set, err := rules.LoadFS(fsys, "r", rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range set.Rules {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "three,two,one,four,five" && strings.Join(ids, ",") != "two,three,one,four,five" {
		t.Errorf("ids %v", ids)
	}
	r := set.Rule("two")
	if r.File != "r/list.yaml" || r.Line != 1 || r.Score != 50 || r.Entity != "source" {
		t.Errorf("rule two %+v", r)
	}
	if r := set.Rule("three"); r.Line != 6 || r.Entity != "principal" || r.Score != 70 {
		t.Errorf("rule three %+v", r)
	}
	if r := set.Rule("five"); r.Line != 6 {
		t.Errorf("rule five at line %d", r.Line)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"yaml-syntax", "id: [\n", []string{"x.yml:1:"}},
		{"not-a-rule", "42\n", []string{"x.yml:1:1: want a rule"}},
		{"missing-fields", "description: nothing\n", []string{"x.yml:1:1: rule: id is required", "title is required", `severity ""`, "condition is required"}},
		{"bad-id", "id: Bad Id\ntitle: T\nseverity: low\ncondition: \"true\"\n", []string{`x.yml:1:5: id "Bad Id"`}},
		{"bad-entity", "id: a\ntitle: T\nseverity: low\nentity: user\ncondition: \"true\"\n", []string{`x.yml:4:9: a: entity "user"`}},
		{"unknown-field", "id: a\ntitle: T\nseverity: low\nconditon: \"true\"\n", []string{`x.yml:4:1: unknown field "conditon"`}},
		{"bad-window", "id: a\ntitle: T\nseverity: low\ncondition: \"true\"\naggregate: {function: count, window: soon, threshold: 2}\n", []string{`x.yml:5:12: a: aggregate: window "soon"`}},
		{"bad-func", "id: a\ntitle: T\nseverity: low\ncondition: \"true\"\naggregate: {function: sum, window: 1m, threshold: 2}\n", []string{`function "sum"`}},
		{"test-without-expect", "id: a\ntitle: T\nseverity: low\ncondition: \"true\"\ntests:\n  - name: t\n    events: []\n", []string{"x.yml:6: a/t: expect.findings is required"}},
		{"test-unknown-list", "id: a\ntitle: T\nseverity: low\ncondition: \"true\"\ntests:\n  - name: t\n    lists: {nope: [x]}\n    expect: {findings: 0}\n", []string{`a/t: lists: list "nope" is not configured`}},
		{"block-condition", "id: a\ntitle: T\nseverity: low\ncondition: |\n  user.id == \"x\" &&\n    nosuch\n", []string{"x.yml:6:5: a: condition: undeclared reference to 'nosuch'"}},
		{"duplicate-id", "- id: a\n  title: T\n  severity: low\n  condition: \"true\"\n- id: a\n  title: T\n  severity: low\n  condition: \"true\"\n", []string{`x.yml:5:1: duplicate rule id "a" (first defined at x.yml:1)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rules.LoadFS(fstest.MapFS{"x.yml": {Data: []byte(tc.src)}}, ".", rules.Options{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadDirJoinsAllProblems(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yml"), []byte("id: a\ntitle: A\nseverity: nope\ncondition: \"true\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte("id: b\ntitle: B\nseverity: low\ncondition: x\n"), 0o644)
	_, err := rules.LoadDir(dir, rules.Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "a.yml")+":3:11:") || !strings.Contains(err.Error(), filepath.Join(dir, "b.yml")+":4:12:") {
		t.Errorf("error %v", err)
	}
	set, err := rules.LoadDir("pack", rules.Options{})
	if err != nil || len(set.Rules) == 0 {
		t.Errorf("LoadDir(pack): %v", err)
	}
	one, err := rules.LoadDir(filepath.Join("pack", "customer-admin-action.yml"), rules.Options{})
	if err != nil || len(one.Rules) != 1 || one.Rules[0].File != filepath.Join("pack", "customer-admin-action.yml") {
		t.Errorf("LoadDir(file): %v %+v", err, one)
	}
}

func TestMergeAndAdd(t *testing.T) {
	a := loadSet(t, "id: a\ntitle: A\nseverity: low\ncondition: \"true\"\n")
	b := loadSet(t, "id: b\ntitle: B\nseverity: low\ncondition: \"true\"\n")
	m, err := rules.Merge(a, b, nil)
	if err != nil || len(m.Rules) != 2 {
		t.Fatalf("merge: %v", err)
	}
	if _, err := rules.Merge(a, m); err == nil || !strings.Contains(err.Error(), `duplicate rule id "a"`) {
		t.Errorf("duplicate merge: %v", err)
	}
	for _, bad := range []*rules.Rule{
		{ID: "x", Title: "X", Severity: "low"},
		{ID: "x", Title: "X", Severity: "urgent", Cond: panicky{}},
		{ID: "x", Title: "X", Severity: "low", Cond: panicky{}, Entity: "record"},
		{ID: "x", Title: "X", Severity: "low", Cond: panicky{}, Agg: &rules.Aggregate{Func: "count_distinct", Window: 1}},
	} {
		if err := (&rules.Set{}).Add(bad); err == nil {
			t.Errorf("Add(%+v) accepted", bad)
		}
	}
}

func TestPackListsConfigured(t *testing.T) {
	set, err := rules.Pack(rules.Options{Lists: map[string][]string{"corporate_networks": {"10.0.0.0/8"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := set.Rule("admin-export-outside-corporate-network")
	out := decodeOne(t, `{"@timestamp":"2025-06-25T10:07:30Z","event":{"dataset":"gateway.access","action":"admin.customer.export"},"user":{"id":"e:1042"},"source":{"ip":"103.152.112.40"}}`)
	in := decodeOne(t, `{"@timestamp":"2025-06-25T10:07:30Z","event":{"dataset":"gateway.access","action":"admin.customer.export"},"user":{"id":"e:1042"},"source":{"ip":"10.1.2.3"}}`)
	if ok, err := r.Cond.Match(out); !ok || err != nil {
		t.Errorf("outside: %v %v", ok, err)
	}
	if ok, err := r.Cond.Match(in); ok || err != nil {
		t.Errorf("inside: %v %v", ok, err)
	}
	if _, err := rules.Pack(rules.Options{Lists: map[string][]string{"Bad-Name": nil}}); err == nil {
		t.Error("bad list name accepted")
	}
}

func TestLint(t *testing.T) {
	set := loadSet(t, `- id: quiet
  title: Q
  severity: low
  tags: [attack.t1530, attack.exfiltration, attack.nonsense, Bad Tag]
  condition: 1 > 2
  aggregate: {function: count, field: user.id, window: 200h, threshold: 1}
- id: tz
  title: TZ
  description: ok
  severity: low
  condition: timestamp.getHours() > 20
  tests:
    - {name: p, events: [], expect: {findings: 1}}
`)
	var got []string
	for _, p := range rules.Lint(set) {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, w := range []string{
		"t.yml:1: quiet: no description", `tag "attack.nonsense"`, `tag "Bad Tag"`, "condition is always false",
		"count ignores field", "threshold 1", "window 200h0m0s", "quiet: no tests",
		"t.yml:7: tz: getHours() without a time zone", "tz: no test expects no finding",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("lint lacks %q:\n%s", w, all)
		}
	}
	if strings.Contains(all, `tag "attack.t1530"`) || strings.Contains(all, `tag "attack.exfiltration"`) {
		t.Errorf("valid tags reported:\n%s", all)
	}
}
