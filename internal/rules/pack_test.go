package rules_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/rules"
)

// updating reports the -update flag (registered by detecttest).
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func TestPackLoadsAndPasses(t *testing.T) {
	set, err := rules.Pack(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) < 10 {
		t.Errorf("pack has %d rules, want at least 10", len(set.Rules))
	}
	for _, res := range set.RunTests() {
		if !res.Pass {
			t.Errorf("%s/%s (%s:%d):\n%s", res.Rule, res.Test, res.File, res.Line, res.Diff)
		}
	}
	for _, p := range rules.Lint(set) {
		t.Errorf("lint: %s", p)
	}
	for _, r := range set.Rules {
		pos, neg := false, false
		for _, tc := range r.Tests {
			if tc.Expect.Findings > 0 {
				pos = true
			} else {
				neg = true
			}
		}
		if !pos || !neg {
			t.Errorf("%s: wants a positive and a negative test", r.ID)
		}
	}
}

// TestPackGolden pins the pack's rules and what they find in the contract's
// reference events (testdata/pack/want.json; -update rewrites it).
func TestPackGolden(t *testing.T) {
	set, err := rules.Pack(rules.Options{Lists: map[string][]string{"corporate_networks": {"10.0.0.0/8"}}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, r := range set.Rules {
		agg := ""
		if r.Agg != nil {
			agg = fmt.Sprintf(" %s(%s) >= %d in %s", r.Agg.Func, r.Agg.Field, r.Agg.Threshold, r.Agg.Window)
		}
		fmt.Fprintf(&b, "%s %s %s %v%s\n", r.ID, r.Severity, r.Entity, r.Tags, agg)
	}
	f, err := os.Open("../../testdata/contract-events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := detecttest.Findings(t, f, 3, rules.Detectors(rules.NewHolder(set))...)
	js, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("\n")
	b.Write(js)
	b.WriteString("\n")
	path := filepath.Join("testdata", "pack.golden")
	if updating() {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(want, b.Bytes()) {
		t.Errorf("pack output differs from %s (run with -update to accept):\n%s", path, strings.TrimSpace(b.String()))
	}
}
