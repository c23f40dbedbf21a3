package cli_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/cli"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

const contractPath = "../../testdata/contract-events.ndjson"

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func alerts(t *testing.T, stdout string) []event.Alert {
	t.Helper()
	var as []event.Alert
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var a event.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("stdout line is not an alert: %v\n%s", err, sc.Text())
		}
		as = append(as, a)
	}
	return as
}

func TestReplayContract(t *testing.T) {
	code, stdout, stderr := run(t, "replay", "--no-store", contractPath)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	a, ok := byDetector(alerts(t, stdout))["terminated_identity"]
	if !ok {
		t.Fatalf("no terminated_identity alert:\n%s", stdout)
	}
	if a.Entity != (event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1042"}) || a.Severity != event.SeverityCritical {
		t.Errorf("alert %+v", a)
	}
	if len(a.Findings) != 1 || len(a.Findings[0].Evidence) != 2 || a.Findings[0].Explanation == "" {
		t.Errorf("findings %+v", a.Findings)
	}
	if !strings.Contains(stderr, "replay: 15 events read, 0 rejected, ") {
		t.Errorf("summary missing from stderr:\n%s", stderr)
	}
}

func TestReplayCanary(t *testing.T) {
	code, stdout, stderr := run(t, "replay", "--no-store", "--canary-records", "70000003", contractPath)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	dets := map[string]string{}
	for d, a := range byDetector(alerts(t, stdout)) {
		dets[d] = a.Entity.ID
	}
	if dets["canary_record"] != "e:1042" || dets["terminated_identity"] != "e:1042" {
		t.Fatalf("alerts by detector %v, want canary and terminated findings in alerts on e:1042", dets)
	}
}

func TestReplayBrokenLineInTheMiddle(t *testing.T) {
	lines := strings.Split(strings.TrimRight(readFile(t, contractPath), "\n"), "\n")
	broken := append(append(append([]string{}, lines[:7]...), `{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":`), lines[7:]...)
	path := filepath.Join(t.TempDir(), "broken.ndjson")
	writeFile(t, path, strings.Join(broken, "\n")+"\n")
	code, stdout, stderr := run(t, "replay", "--no-store", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, path+":8: rejected (invalid_json)") {
		t.Errorf("line 8 not reported:\n%s", stderr)
	}
	if !strings.Contains(stderr, "15 events read, 1 rejected") {
		t.Errorf("summary:\n%s", stderr)
	}
	if _, ok := byDetector(alerts(t, stdout))["terminated_identity"]; !ok {
		t.Errorf("the lines after the broken one were not processed:\n%s", stdout)
	}
}

func TestReplayGzipAndStore(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(readFile(t, contractPath)))
	zw.Close()
	path := filepath.Join(dir, "events.ndjson.gz")
	writeFile(t, path, buf.String())
	data := filepath.Join(dir, "data")
	code, stdout, stderr := run(t, "replay", "--data-dir", data, path)
	as := alerts(t, stdout)
	if _, ok := byDetector(as)["terminated_identity"]; code != 0 || !ok {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// Replaying again is idempotent: same alert id, one stored alert.
	if code, _, stderr := run(t, "replay", "--data-dir", data, path); code != 0 {
		t.Fatalf("second replay: exit %d\n%s", code, stderr)
	}
	st, err := store.Open(context.Background(), data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.CountAlerts(context.Background())
	if err != nil || n != len(as) {
		t.Fatalf("stored alerts: %d, %v; want %d", n, err, len(as))
	}
}

func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "engine:\n  queue_sise: 10\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"missing file", []string{"replay", "--no-store", filepath.Join(dir, "nope.ndjson")}, 1, "nope.ndjson"},
		{"directory", []string{"replay", "--no-store", dir}, 1, "not a regular file"},
		{"bad config", []string{"--config", bad, "replay", "--no-store", contractPath}, 2, "queue_sise"},
		{"missing config", []string{"--config", filepath.Join(dir, "none.yaml"), "replay", contractPath}, 2, "none.yaml"},
		{"no files", []string{"replay"}, 2, "expected"},
		{"unknown flag", []string{"replay", "--bogus", contractPath}, 2, "bogus"},
		{"bad roster", []string{"replay", "--no-store", "--roster", filepath.Join(dir, "r.ndjson"), contractPath}, 1, "roster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d (want %d), stderr:\n%s\nwant it to mention %q", code, tc.code, stderr, tc.msg)
			}
		})
	}
}

func TestReplayRosterSnapshot(t *testing.T) {
	dir := t.TempDir()
	roster := filepath.Join(dir, "roster.ndjson")
	writeFile(t, roster, `{"@timestamp":"2025-01-01T00:00:00Z","event":{"dataset":"hr.roster","action":"identity.terminated"},"identity":{"id":"e:2210","status":"terminated","terminated_at":"2025-05-01T00:00:00Z"}}`+"\n")
	code, stdout, stderr := run(t, "replay", "--no-store", "--roster", roster, contractPath)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	got := map[string]bool{}
	for _, a := range alerts(t, stdout) {
		got[a.Entity.ID] = true
	}
	if !got["e:2210"] || !got["e:1042"] {
		t.Fatalf("alerts for %v, want e:2210 (from the snapshot) and e:1042", got)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"replay", "--help"}, {"serve", "--help"}, {"demo", "--help"}} {
		code, stdout, _ := run(t, args...)
		if code != 0 || !strings.Contains(stdout, "Usage: haechi") {
			t.Errorf("%v: exit %d\n%s", args, code, stdout)
		}
	}
	code, stdout, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "haechi ") {
		t.Errorf("version: exit %d %q", code, stdout)
	}
}

// byDetector indexes alerts by detector (the last one wins).
// byDetector indexes alerts by every detector among their findings (an
// alert is about one entity and may gather several detectors' findings);
// the alert raised by a detector wins over one it only joined.
func byDetector(as []event.Alert) map[string]event.Alert {
	m := map[string]event.Alert{}
	for _, a := range as {
		for _, f := range a.Findings {
			if _, ok := m[f.Detector]; !ok {
				m[f.Detector] = a
			}
		}
	}
	for _, a := range as {
		m[a.Detector] = a
	}
	return m
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("demo runs a live server for a few seconds")
	}
	code, stdout, stderr := run(t, "demo", "--days", "2", "--customers", "2000", "--duration", "2s", "--exit-after", "10ms")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The scorecard scores the response the demo's gateway enforced (its
	// "contained by" column), as eval does: the demo contains attacks.
	for _, want := range []string{"The scorecard", "ghost-key", "departed-insider-export", "False positives", "/v1/alerts", "stopped",
		"CONTAINED BY", "EXPOSED WITH RESPONSE"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	// serve took every line the demo posted (the period ends now: none
	// is dated in the future).
	if strings.Contains(stderr, "rejected") {
		t.Errorf("serve rejected demo lines:\n%s", stderr)
	}
}

func TestScopeAfterReplay(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := run(t, "replay", "--data-dir", data, contractPath)
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, stderr)
	}
	var terminated string
	for _, a := range alerts(t, stdout) {
		if a.Detector == "terminated_identity" {
			terminated = a.ID
		}
	}
	export := filepath.Join(t.TempDir(), "ids.csv")
	for _, tc := range []struct {
		args  []string
		total int
	}{
		{[]string{"--key", "auth-2022-11"}, 2},                       // the forged token's profile and address reads
		{[]string{"--principal", "e:1042"}, 5},                       // the departed engineer's export
		{[]string{"--alert", terminated, "--export", export}, 5},     // the same, through the alert
		{[]string{"--source", "45.77.0.0/16", "--country", "KR"}, 3}, // union: 2 via the source, 1 via KR (only events that carry a country count)
		{[]string{"--principal", "e:1042", "--key", "auth-2022-11", "--intersect"}, 0},
		{[]string{"--key", "auth-2022-11", "--from", "2025-06-25"}, 0}, // outside the window
	} {
		code, stdout, stderr := run(t, append([]string{"scope", "-o", "json", "--data-dir", data}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", tc.args, code, stderr)
		}
		var res struct{ Total int }
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Total != tc.total {
			t.Errorf("%v: total %d (%v), want %d\n%s", tc.args, res.Total, err, tc.total, stdout)
		}
	}
	if got := readFile(t, export); !strings.Contains(got, "customer,70000003") {
		t.Errorf("export:\n%s", got)
	}
	if code, _, stderr := run(t, "scope", "--data-dir", data); code != 2 || !strings.Contains(stderr, "whose scope") {
		t.Errorf("no selector: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := run(t, "scope", "--data-dir", data, "--alert", "al-nope"); code != 2 || !strings.Contains(stderr, "al-nope") {
		t.Errorf("unknown alert: exit %d\n%s", code, stderr)
	}
}

// Instance-role credentials used from outside AWS (CloudTrail, no prior
// history): the alert is about the access key, and scope answers for it
// by --token (or --access-key, or the alert); --key, which selects
// signing keys, answers 0 and says why.
func TestScopeAccessKey(t *testing.T) {
	const ct = "../detect/cloudcred/testdata/outside/events.cloudtrail.json"
	const ak = "ASIA3EXAMPLEINST1KEY"
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := run(t, "replay", "--data-dir", data, ct)
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, stderr)
	}
	var alertID string
	for _, a := range alerts(t, stdout) {
		if a.Detector == "cloud_credential" && a.Entity.ID == ak {
			alertID = a.ID
		}
	}
	if alertID == "" {
		t.Fatalf("no cloud_credential alert on %s:\n%s", ak, stdout)
	}
	for _, args := range [][]string{{"--token", ak}, {"--access-key", ak}, {"--alert", alertID}} {
		code, stdout, stderr := run(t, append([]string{"scope", "-o", "json", "--data-dir", data}, args...)...)
		var res struct{ Total int }
		if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || res.Total != 1 {
			t.Errorf("%v: exit %d, total %d, want 1\n%s%s", args, code, res.Total, stdout, stderr)
		}
	}
	code, stdout, stderr = run(t, "scope", "--data-dir", data, "--key", ak)
	if code != 0 || !strings.Contains(stdout, "key "+ak+" was never seen in the access ledger") || strings.Contains(stdout, "0 distinct records") ||
		!strings.Contains(stdout, "hint: key selects signing keys (token.key_id); "+ak+" looks like an access key id") ||
		!strings.Contains(stdout, "--token "+ak) {
		t.Errorf("--key %s: exit %d\n%s%s", ak, code, stdout, stderr)
	}
}

func TestReport(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := run(t, "replay", "--data-dir", data, contractPath)
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, stderr)
	}
	forged := byDetector(alerts(t, stdout))["token_provenance"].ID
	code, md, stderr := run(t, "report", "--data-dir", data, "--alert", forged, "--aware-at", "2025-06-27T09:00:00+09:00")
	if code != 0 {
		t.Fatalf("report: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"| Korea Network Act | KISA / Ministry of Science and ICT | report the breach | 2025-06-28 00:00:00 UTC | yes",
		"| Korea PIPA (PIPC report) | Personal Information Protection Commission (PIPC) | report the breach | 2025-06-30 00:00:00 UTC | yes — access from outside",
		"| EU GDPR Art. 33 | lead supervisory authority | notify the personal data breach | 2025-06-30 00:00:00 UTC | yes",
		"2025-07-03 00:00:00 UTC", // SEC: four business days from a Friday
		"2 distinct records touched by `key:auth-2022-11`",
		"| revoke_key | auth-2022-11 | dry_run | dry-run mode |", // replay plans the response at event time
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	code, html, _ := run(t, "report", "--data-dir", data, "--alert", forged, "-o", "html")
	if code != 0 || !strings.Contains(html, "<!doctype html>") || !strings.Contains(html, "Regulators") {
		t.Errorf("html report: exit %d", code)
	}
	code, js, _ := run(t, "report", "--data-dir", data, "--alert", forged, "-o", "json")
	var r struct{ Clocks []struct{ Applies bool } }
	if code != 0 || json.Unmarshal([]byte(js), &r) != nil || len(r.Clocks) != 5 {
		t.Errorf("json report: exit %d, %d clocks", code, len(r.Clocks))
	}
	if code, out, _ := run(t, "actions", "--data-dir", data, "--state", "dry_run"); code != 0 || !strings.Contains(out, "revoke_key") {
		t.Errorf("actions list: exit %d\n%s", code, out)
	}
	if code, out, _ := run(t, "audit", "verify", "--data-dir", data); code != 0 || !strings.Contains(out, "intact") {
		t.Errorf("audit verify: exit %d\n%s", code, out)
	}
	if code, _, stderr := run(t, "report", "--data-dir", data, "--alert", "al-nope"); code != 2 || !strings.Contains(stderr, "al-nope") {
		t.Errorf("unknown alert: exit %d\n%s", code, stderr)
	}
}
