package cli_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/findings")

// golden compares got with testdata/findings/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "findings", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// The contract's scripted-client finding on the python-requests traffic
// stays below the threshold: replay stores it, `findings` lists it,
// `replay --findings` prints it and `explain` says why it did not alert.
func TestFindingsGolden(t *testing.T) {
	data := t.TempDir()
	if code, _, stderr := run(t, "replay", "--data-dir", data, contractPath); code != 0 {
		t.Fatalf("replay: %d %s", code, stderr)
	}
	// The store lists newest first, by time then id: one order whatever
	// the shards.
	for _, c := range []struct {
		golden string
		args   []string
	}{
		{"table.golden", []string{"findings"}},
		{"scripted.json.golden", []string{"findings", "-o", "json", "--detector", "scripted_client"}},
		{"below.golden", []string{"findings", "--below", "--limit", "2"}},
		{"explain-scripted.golden", []string{"explain", "--entity", "source:45.77.201.13"}},
	} {
		code, stdout, stderr := run(t, append(append([]string{}, c.args...), "--data-dir", data)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, stderr)
		}
		golden(t, c.golden, stdout+stderr)
	}
	code, stdout, stderr := run(t, "replay", "--no-store", "--findings", contractPath)
	if code != 0 {
		t.Fatalf("replay --findings: %d %s", code, stderr)
	}
	// In the order scored, which across shards depends on their count:
	// compared sorted.
	lines := strings.SplitAfter(stdout, "\n")
	slices.Sort(lines)
	golden(t, "replay-findings.golden", strings.Join(lines, ""))
	if !strings.Contains(stdout, `"detector":"scripted_client"`) || !strings.Contains(stdout, `"threshold":90`) {
		t.Errorf("replay --findings lacks the scripted-client finding:\n%s", stdout)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"findings", "--since", "yesterday"}, "since: want an RFC 3339 time"},
		{[]string{"findings", "--entity", ":x"}, "entity: want kind:id or a kind"},
		{[]string{"findings", "--limit", "0"}, "limit: want an integer from 1 to 1000"},
		{[]string{"findings", "--cursor", "nope"}, "--cursor: not one haechi findings printed"},
		{[]string{"explain", "--entity", "nokind"}, "--entity: want kind:id"},
		{[]string{"explain", "--entity", "source:x", "--at", "soon"}, "--at: want an RFC 3339 time or now"},
	} {
		code, stdout, stderr := run(t, append(append([]string{}, c.args...), "--data-dir", data)...)
		if code != 2 || !strings.Contains(stdout+stderr, c.want) {
			t.Errorf("%v: exit %d %s%s, want 2 containing %q", c.args, code, stdout, stderr, c.want)
		}
	}
}

// explain on an entity below the threshold shows each finding's
// contribution, what is left of it after decay, each detector's capped
// risk and the threshold.
func TestExplainBelowThreshold(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	p := event.EntityKey{Kind: event.EntityPrincipal, ID: "e:7"}
	mk := func(det, kind, title string, at time.Duration, score float64) store.ScoredFinding {
		return store.ScoredFinding{Finding: event.Finding{Detector: det, Kind: kind, Title: title, Entity: p, Time: t0.Add(at),
			Score: score, Severity: event.SeverityForScore(score), Evidence: []string{"in:" + at.String()}}, Threshold: 90}
	}
	sup := mk("peer_route", "uncommon_route", "Uncommon route", 2*time.Hour, 50)
	sup.Suppressed = true
	if err := st.SaveFindings(ctx, []store.ScoredFinding{
		mk("principal_geo", "new_country", "Sign-in from a new country", 0, 60),
		mk("principal_geo", "new_country", "Sign-in from a new country", time.Hour, 60),
		mk("off_hours", "off_hours_access", "Access outside working hours", 12*time.Hour, 25),
		sup,
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, c := range []struct{ golden, at string }{
		{"explain-below.golden", "2025-06-02T00:00:00Z"},
		{"explain-below-last.golden", ""},
	} {
		args := []string{"explain", "--data-dir", data, "--entity", "principal:e:7"}
		if c.at != "" {
			args = append(args, "--at", c.at)
		}
		code, stdout, stderr := run(t, args...)
		if code != 0 {
			t.Fatalf("explain: %d %s", code, stderr)
		}
		golden(t, c.golden, stdout)
	}
	code, stdout, _ := run(t, "explain", "--data-dir", data, "--entity", "principal:e:7", "--at", "2025-06-02T00:00:00Z", "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"risk": 77.7`) || !strings.Contains(stdout, `"threshold": 90`) {
		t.Errorf("explain -o json: %d\n%s", code, stdout)
	}
}
