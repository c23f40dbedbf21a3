package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const passingRule = `id: cs-night
title: CS agent at night
description: A CS agent read customers at night.
severity: medium
tags: [attack.collection]
condition: '"cs-agent" in user.roles && timestamp.getHours("Asia/Seoul") < 6'
tests:
  - name: night
    events:
      - {"@timestamp": "2025-06-25T17:00:00Z", event: {dataset: gateway.access, action: a}, user: {id: "e:1", roles: [cs-agent]}}
    expect: {findings: 1, entities: ["e:1"]}
  - name: day
    events:
      - {"@timestamp": "2025-06-25T03:00:00Z", event: {dataset: gateway.access, action: a}, user: {id: "e:1", roles: [cs-agent]}}
    expect: {findings: 0}
`

const failingRule = `- id: wrong-expectation
  title: Expects too much
  description: Its test expects a finding the condition never produces.
  severity: low
  condition: event.action == "never"
  tests:
    - name: expects-one
      events:
        - {"@timestamp": "2025-06-25T03:00:00Z", event: {dataset: gateway.access, action: a}, user: {id: "e:1"}}
      expect: {findings: 1, entities: ["e:1"]}
`

func TestRulesTestPack(t *testing.T) {
	code, stdout, stderr := run(t, "rules", "test")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "ok ") || !strings.Contains(stdout, " rules, ") {
		t.Errorf("stdout %q", stdout)
	}
}

func TestRulesTest(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string
		args     []string
		code     int
		contains []string
	}{
		{"pass", map[string]string{"a.yml": passingRule}, nil, 0, []string{"ok 1 rules, 2 tests"}},
		{"fail", map[string]string{"a.yml": passingRule, "sub/b.yaml": failingRule}, nil, 1, []string{
			"--- FAIL: wrong-expectation/expects-one (", "b.yaml:7)",
			"findings: want 1, got 0", "entities: want [e:1], got []", "FAIL 1 of 3 tests",
		}},
		{"filter", map[string]string{"a.yml": passingRule, "b.yml": failingRule}, []string{"--run", "cs-night/"}, 0, []string{"ok 2 rules, 2 tests"}},
		{"load-error", map[string]string{"a.yml": "id: x\ntitle: X\nseverity: low\ncondition: nosuch == 1\n"}, nil, 1, []string{"a.yml:4:12: x: condition: undeclared reference to 'nosuch'"}},
		{"bad-list-flag", map[string]string{"a.yml": passingRule}, []string{"--list", "novalue"}, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				path := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, path, body)
			}
			code, stdout, stderr := run(t, append([]string{"rules", "test", dir}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.contains {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
		})
	}
}

func TestRulesTestMissingDir(t *testing.T) {
	if code, _, _ := run(t, "rules", "test", filepath.Join(t.TempDir(), "nope")); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
}

func TestRulesLint(t *testing.T) {
	code, stdout, stderr := run(t, "rules", "lint")
	if code != 0 {
		t.Fatalf("pack: exit %d\n%s%s", code, stdout, stderr)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "r.yml"), "id: sloppy\ntitle: Sloppy\nseverity: low\ntags: [Attack.X, attack.t99]\ncondition: 1 == 1\n")
	code, stdout, _ = run(t, "rules", "lint", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stdout)
	}
	for _, s := range []string{"r.yml:1: sloppy: no description", `tag "Attack.X"`, `tag "attack.t99"`, "condition is always true", "no tests"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, stdout)
		}
	}
}

func TestRulesLintSigma(t *testing.T) {
	code, stdout, stderr := run(t, "rules", "lint", "--sigma", "../sigma/testdata/rules")
	if code != 0 || !strings.Contains(stdout, "ok 15 Sigma rules\n") || strings.Contains(stdout, "weakened") {
		t.Fatalf("supported rules: exit %d\n%s%s", code, stdout, stderr)
	}
	// A rule that loads but runs weaker than written is named, with where
	// and why; the lint still passes (the rule runs).
	dir := t.TempDir()
	weak := "title: SQLi keywords\nid: 11111111-2222-4333-8444-555555555555\nlogsource:\n    category: webserver\ndetection:\n    keywords:\n        - 'UNION SELECT'\n    condition: keywords\n"
	if err := os.WriteFile(filepath.Join(dir, "kw.yml"), []byte(weak), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(t, "rules", "lint", "--sigma", dir)
	if code != 0 || !strings.Contains(stdout, "kw.yml:6:5: weakened: keyword search: a keyword search looks in the request target") ||
		!strings.Contains(stdout, "ok 1 Sigma rules (1 of them weakened") {
		t.Fatalf("weakened rule: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "rules", "lint", "--sigma", "../sigma/testdata/unsupported")
	if code != 1 || !strings.Contains(stdout, `web_referrer.yml:7:9: unsupported: field "cs-referrer"`) ||
		!strings.Contains(stdout, "0 Sigma rules loaded, 13 not loaded") {
		t.Fatalf("unsupported rules: exit %d\n%s", code, stdout)
	}
}
