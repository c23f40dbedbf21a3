package app

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input/nginx"
	"github.com/haechi-sec/haechi/internal/rules"
)

// sigmaRule writes a webserver Sigma rule with one selection.
func sigmaRule(id, title, tag, level, selection string) string {
	return "title: " + title + "\nid: " + id + "\ntags:\n    - attack.initial-access\n    - " + tag +
		"\nlogsource:\n    category: webserver\ndetection:\n    selection:\n" + selection + "    condition: selection\nlevel: " + level + "\n"
}

const scannerUA = "Mozilla/5.0 zgrab/0.x sqlmap/1.8"

// One request that matches two overlapping user-agent lists is one line of
// evidence: one finding, of the stronger rule, naming the other, with the
// family as its line. A rule that looks at another part of the request (the
// query) stays an independent finding. Without families the two list rules
// gave two findings on two lines: 70 + 50 of risk from one user agent.
func TestSigmaFamilyOneLineOfEvidence(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ua_recon.yml", sigmaRule("aaaaaaaa-0000-4000-8000-000000000001", "Recon Tool User Agent", "attack.t1190", "medium",
		"        cs-user-agent|contains:\n            - 'zgrab/'\n            - 'Nikto/'\n"))
	write("ua_hacktool.yml", sigmaRule("aaaaaaaa-0000-4000-8000-000000000002", "Hack Tool User Agent", "attack.t1190", "high",
		"        cs-user-agent|contains:\n            - 'sqlmap/'\n            - 'zgrab/'\n"))
	write("query_sqli.yml", sigmaRule("aaaaaaaa-0000-4000-8000-000000000003", "SQLi in Query", "attack.t1190", "high",
		"        cs-uri-query|contains: 'union select'\n"))
	rs, err := LoadRules(config.Rules{SigmaDirs: []string{dir}})
	if err != nil || len(rs.Skipped) > 0 {
		t.Fatalf("load: %v %v", err, rs.Skipped)
	}
	fam := map[string]string{}
	for _, r := range rs.Set.Rules {
		fam[r.ID] = r.Family
	}
	const family = "sigma.family.aaaaaaaa-0000-4000-8000-000000000001"
	if fam["sigma.aaaaaaaa-0000-4000-8000-000000000001"] != family || fam["sigma.aaaaaaaa-0000-4000-8000-000000000002"] != family ||
		fam["sigma.aaaaaaaa-0000-4000-8000-000000000003"] != "" {
		t.Fatalf("families %v", fam)
	}
	req := `{"@timestamp":"2025-06-25T00:00:00Z","event":{"dataset":"gateway.access","action":"product.list"},"source":{"ip":"198.51.100.7"},` +
		`"user_agent":{"original":"` + scannerUA + `"},"http":{"request":{"method":"GET"},"response":{"status_code":200}},"url":{"path":"/p","query":"id=1 UNION SELECT 2"}}` + "\n"
	fs := detecttest.Findings(t, strings.NewReader(req), 2, rules.Detectors(rules.NewHolder(rs.Set))...)
	var got []string
	for _, f := range fs {
		got = append(got, f.Kind+"|"+f.Line)
	}
	slices.Sort(got)
	want := []string{"sigma.aaaaaaaa-0000-4000-8000-000000000002|" + family, "sigma.aaaaaaaa-0000-4000-8000-000000000003|"}
	if !slices.Equal(got, want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
	for _, f := range fs {
		if f.Line == family && (f.Score != 70 || !strings.Contains(f.Explanation, "Also matched, of the same rule family (one line of evidence): sigma.aaaaaaaa-0000-4000-8000-000000000001 (Recon Tool User Agent)")) {
			t.Errorf("family finding %+v", f)
		}
	}
}

// The twin: two user-agent lists that conclude different techniques (a
// scanner vs C2 traffic) are not one family; both findings stand, each on
// its own line.
func TestSigmaFamilyNeedsSharedTechnique(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"a.yml": sigmaRule("bbbbbbbb-0000-4000-8000-000000000001", "Recon Tool User Agent", "attack.t1190", "medium", "        cs-user-agent|contains: 'zgrab/'\n"),
		"b.yml": sigmaRule("bbbbbbbb-0000-4000-8000-000000000002", "C2 User Agent", "attack.t1071.001", "high", "        cs-user-agent|contains: 'zgrab/'\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := LoadRules(config.Rules{SigmaDirs: []string{dir}})
	if err != nil || len(rs.Skipped) > 0 {
		t.Fatalf("load: %v %v", err, rs.Skipped)
	}
	req := `{"@timestamp":"2025-06-25T00:00:00Z","event":{"dataset":"gateway.access","action":"x"},"source":{"ip":"198.51.100.7"},"user_agent":{"original":"` + scannerUA + `"}}` + "\n"
	fs := detecttest.Findings(t, strings.NewReader(req), 2, rules.Detectors(rules.NewHolder(rs.Set))...)
	if len(fs) != 2 || fs[0].Line != "" || fs[1].Line != "" {
		t.Fatalf("findings %+v, want two on their own lines", fs)
	}
}

// A Sigma `related` link makes a family even when the rules differ in shape.
func TestSigmaFamilyRelated(t *testing.T) {
	dir := t.TempDir()
	a := sigmaRule("cccccccc-0000-4000-8000-000000000001", "Old", "attack.t1190", "medium", "        cs-user-agent|contains: 'zgrab/'\n")
	b := strings.Replace(sigmaRule("cccccccc-0000-4000-8000-000000000002", "New", "attack.t1071.001", "high", "        cs-uri-query|contains: 'x'\n"),
		"tags:", "related:\n    - id: cccccccc-0000-4000-8000-000000000001\n      type: derived\ntags:", 1)
	for name, body := range map[string]string{"a.yml": a, "b.yml": b} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := LoadRules(config.Rules{SigmaDirs: []string{dir}})
	if err != nil || len(rs.Skipped) > 0 {
		t.Fatalf("load: %v %v", err, rs.Skipped)
	}
	for _, r := range rs.Set.Rules {
		if r.Family != "sigma.family.cccccccc-0000-4000-8000-000000000001" {
			t.Errorf("%s: family %q", r.ID, r.Family)
		}
	}
}

// A SQL-injection keyword rule in SigmaHQ's shape (webserver, keywords
// 'UNION SELECT' and its encoded forms) catches a query-string injection
// read from real access-log lines; before url.query existed it loaded and
// silently missed it (keywords looked only at the path and user agent).
// The twin: the same words in a path-only request of an ordinary search.
func TestSigmaQueryStringThroughAccessLog(t *testing.T) {
	dir := t.TempDir()
	rule := "title: SQLi keywords\nid: dddddddd-0000-4000-8000-000000000001\nlogsource:\n    category: webserver\ndetection:\n" +
		"    selection:\n        cs-method: GET\n    keywords:\n        - 'UNION SELECT'\n        - 'UNION%20SELECT'\n    condition: selection and keywords\nlevel: high\n"
	if err := os.WriteFile(filepath.Join(dir, "sqli.yml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := LoadRules(config.Rules{SigmaDirs: []string{dir}})
	if err != nil || len(rs.Skipped) > 0 || len(rs.Set.Rules) != 1 {
		t.Fatalf("load: %v %v", err, rs.Skipped)
	}
	if len(rs.Weakened) != 1 || !strings.Contains(rs.Weakened[0], "sqli.yml:8:5: weakened: keyword search") {
		t.Errorf("weakened %q", rs.Weakened)
	}
	p, err := nginx.New(nginx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string
		want bool
	}{
		{`203.0.113.9 - - [24/Jun/2025:09:00:03 +0000] "GET /items?id=1%20UNION%20SELECT%20email%20FROM%20members HTTP/1.1" 200 512 "-" "python-requests/2.32.3"`, true},
		{`203.0.113.9 - - [24/Jun/2025:09:00:03 +0000] "GET /items?id=1 UNION SELECT email FROM members HTTP/1.1" 200 512 "-" "-"`, false}, // a raw space ends the target in the combined format
		{`203.0.113.9 - - [24/Jun/2025:09:00:03 +0000] "GET /search/union%20station?page=2 HTTP/1.1" 200 512 "-" "-"`, false},
	} {
		var ev event.Event
		if err := p.ParseCombined([]byte(tc.line), &ev); err != nil {
			t.Fatal(err)
		}
		ok, err := rs.Set.Rules[0].Cond.Match(&ev)
		if err != nil || ok != tc.want {
			t.Errorf("%s: match %v (%v), want %v", tc.line, ok, err, tc.want)
		}
	}
	jp, err := nginx.New(nginx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ev event.Event
	r := jp.NewJSONReader(strings.NewReader(`{"msec":"1719219603","request_method":"GET","uri":"/items","args":"id=1 UNION SELECT email"}`+"\n"), 0)
	if err := r.Next(&ev); err != nil {
		t.Fatal(err)
	}
	if ok, _ := rs.Set.Rules[0].Cond.Match(&ev); !ok {
		t.Errorf("JSON access log with args: no match on %+v", ev)
	}
}
