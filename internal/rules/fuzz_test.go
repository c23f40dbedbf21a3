package rules_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/haechi-sec/haechi/internal/rules"
)

// FuzzLoad feeds arbitrary bytes to the rule loader: it may reject them,
// never panic, and whatever it accepts must run its tests without panicking.
func FuzzLoad(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("pack", "*.yml"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("id: a\ntitle: A\nseverity: low\ncondition: \"true\"\n"))
	f.Add([]byte("- id: a\n  title: A\n  severity: low\n  condition: size(records.ids) > 1\n  aggregate: {function: count, window: 1m, threshold: 2}\n"))
	f.Add([]byte("---\n- [\n"))
	f.Add([]byte("id: &a x\ntitle: *a\n"))
	opts := rules.Options{Lists: map[string][]string{"corporate_networks": {"10.0.0.0/8"}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := rules.ParseFile("f.yml", data, opts)
		if err != nil {
			return
		}
		set := &rules.Set{}
		for _, r := range rs {
			if set.Add(r) != nil {
				return
			}
		}
		if len(data) < 4096 {
			set.RunTests()
		}
		rules.Lint(set)
	})
}
