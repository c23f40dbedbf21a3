package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/longtext"
)

// TestReplayLongFieldsIntoPostgres replays the contract's events with the
// attacker's fields (the terminated employee, the stale key's token, its
// member, the key, a user agent) 8 KiB long, and a cited event.id 64 KiB,
// into PostgreSQL — whose btree entries hold ≈ 2.7 kB — and into SQLite:
// the PostgreSQL replay stores its alerts, incidents and the whole ledger
// as SQLite does, and a scope of each long value as the events carried it
// answers as on SQLite. Before, the alert batch failed (SQLSTATE 54000).
func TestReplayLongFieldsIntoPostgres(t *testing.T) {
	dsn := postgresSchema(t)
	b, err := os.ReadFile(contractPath)
	if err != nil {
		t.Fatal(err)
	}
	long := map[string]string{}
	events := string(b)
	for _, f := range []struct{ short, prefix string }{
		{"e:1042", "E"}, {"tk-ffe01a9b", "T"}, {"auth-2022-11", "K"}, {"m:30554120", "M"}, {"python-requests", "U"},
	} {
		if !strings.Contains(events, f.short) {
			t.Fatalf("the contract has no %s", f.short)
		}
		long[f.short] = longtext.Incompressible(f.prefix, 8<<10) // (kong splits a flag value in quadratic time: 64 KiB takes seconds)
		events = strings.ReplaceAll(events, f.short, long[f.short])
	}
	// And a cited event's event.id (its evidence reference).
	const cited = `"event":{"dataset":"gateway.access","action":"admin.customer.export",`
	if !strings.Contains(events, cited) {
		t.Fatal("the contract has no customer export")
	}
	events = strings.Replace(events, cited, `"event":{"id":"`+longtext.Incompressible("I", 64<<10)+`","dataset":"gateway.access","action":"admin.customer.export",`, 1)
	path := filepath.Join(t.TempDir(), "long.ndjson")
	if err := os.WriteFile(path, []byte(events), 0o600); err != nil {
		t.Fatal(err)
	}
	sqlite := t.TempDir()
	for _, target := range []string{sqlite, dsn} {
		args := []string{"replay", "--store", target, path}
		if target == sqlite {
			args = []string{"replay", "--data-dir", sqlite, path}
		}
		code, _, stderr := run(t, args...)
		if code != 0 || !strings.Contains(stderr, " 5 alerts ") {
			t.Fatalf("replay into %.10s: exit %d, want 5 alerts\n%.2000s", target, code, stderr)
		}
	}
	scope := func(store []string, flag, value string) map[string]any {
		t.Helper()
		code, out, stderr := run(t, append(append([]string{"scope"}, store...), "-o", "json", flag, value)...)
		if code != 0 {
			t.Fatalf("scope %s: exit %d\n%.2000s", flag, code, stderr)
		}
		var res map[string]any
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("scope %s: %v\n%.500s", flag, err, out)
		}
		return res
	}
	for _, q := range []struct{ flag, short string }{
		{"--principal", "e:1042"}, {"--token", "tk-ffe01a9b"}, {"--key", "auth-2022-11"}, {"--principal", "m:30554120"},
	} {
		want := scope([]string{"--data-dir", sqlite}, q.flag, long[q.short])
		got := scope([]string{"--store", dsn}, q.flag, long[q.short])
		if want["total"] != got["total"] || want["total"] == float64(0) {
			t.Errorf("scope %s %s: %v records on PostgreSQL, %v on SQLite", q.flag, q.short, got["total"], want["total"])
		}
	}
	// The alerts and incidents are stored as on SQLite, under their long
	// entities.
	for _, cmd := range []string{"alerts", "incidents"} {
		var outs []string
		for _, store := range [][]string{{"--data-dir", sqlite}, {"--store", dsn}} {
			code, out, stderr := run(t, append(append([]string{cmd}, store...), "-o", "json")...)
			if code != 0 || !strings.Contains(out, long["e:1042"]) {
				t.Errorf("%s in %s: exit %d, long principal shown %v\n%.2000s", cmd, store[0], code, strings.Contains(out, long["e:1042"]), stderr)
			}
			outs = append(outs, out)
		}
		if strings.Count(outs[0], `"id":`) != strings.Count(outs[1], `"id":`) {
			t.Errorf("%s: %d ids on SQLite, %d on PostgreSQL", cmd, strings.Count(outs[0], `"id":`), strings.Count(outs[1], `"id":`))
		}
	}
}
