package cli_test

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
)

// replayed replays the contract events into a fresh data dir and returns
// it with the alerts replay printed.
func replayed(t *testing.T) (string, []event.Alert) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := run(t, "replay", "--data-dir", data, contractPath)
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, stderr)
	}
	return data, alerts(t, stdout)
}

// alerts list answers like GET /v1/alerts, in the three formats of -o.
func TestAlertsList(t *testing.T) {
	data, replayedAlerts := replayed(t)
	terminated := byDetector(replayedAlerts)["terminated_identity"]
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		check func(t *testing.T, stdout, stderr string)
	}{
		{"table by default", []string{"alerts", "list"}, 0, func(t *testing.T, out, _ string) {
			if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, "TITLE") || !strings.Contains(out, terminated.ID) {
				t.Errorf("table:\n%s", out)
			}
			if n := strings.Count(out, "\n"); n != len(replayedAlerts)+1 {
				t.Errorf("%d lines, want a header and %d alerts:\n%s", n, len(replayedAlerts), out)
			}
		}},
		{"alerts alone lists", []string{"alerts"}, 0, func(t *testing.T, out, _ string) {
			if !strings.Contains(out, terminated.ID) {
				t.Errorf("alerts:\n%s", out)
			}
		}},
		{"json with findings", []string{"alerts", "list", "-o", "json"}, 0, func(t *testing.T, out, _ string) {
			as := alerts(t, out)
			if len(as) != len(replayedAlerts) {
				t.Fatalf("%d alerts, want %d", len(as), len(replayedAlerts))
			}
			for _, a := range as {
				if len(a.Findings) == 0 {
					t.Errorf("%s: no findings in json", a.ID)
				}
			}
		}},
		{"csv", []string{"alerts", "list", "--output", "csv"}, 0, func(t *testing.T, out, _ string) {
			rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil || len(rows) != len(replayedAlerts)+1 {
				t.Fatalf("csv: %v, %d rows\n%s", err, len(rows), out)
			}
			if strings.Join(rows[0], ",") != "id,time,severity,state,entity,detector,risk,findings,title" {
				t.Errorf("header %v", rows[0])
			}
		}},
		{"entity filter", []string{"alerts", "list", "-o", "json", "--entity", terminated.Entity.String()}, 0, func(t *testing.T, out, _ string) {
			as := alerts(t, out)
			if len(as) != 1 || as[0].ID != terminated.ID {
				t.Errorf("--entity %s: %+v", terminated.Entity, as)
			}
		}},
		{"since after every alert", []string{"alerts", "list", "-o", "csv", "--since", "2099-01-01T00:00:00Z"}, 0, func(t *testing.T, out, _ string) {
			if strings.Count(out, "\n") != 1 {
				t.Errorf("want the header alone:\n%s", out)
			}
		}},
		{"limit", []string{"alerts", "list", "-o", "json", "--limit", "1"}, 0, func(t *testing.T, out, _ string) {
			if n := len(alerts(t, out)); n != 1 {
				t.Errorf("--limit 1: %d alerts", n)
			}
		}},
		{"bad limit", []string{"alerts", "list", "--limit", "0"}, 2, func(t *testing.T, _, stderr string) {
			if !strings.Contains(stderr, "limit") {
				t.Errorf("stderr:\n%s", stderr)
			}
		}},
		{"bad entity", []string{"alerts", "list", "--entity", "e1042"}, 2, func(t *testing.T, _, stderr string) {
			if !strings.Contains(stderr, "kind:id") {
				t.Errorf("stderr:\n%s", stderr)
			}
		}},
		{"bad format", []string{"alerts", "list", "-o", "yaml"}, 2, func(t *testing.T, _, stderr string) {
			if !strings.Contains(stderr, `"table","json","csv"`) {
				t.Errorf("stderr:\n%s", stderr)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append(tc.args, "--data-dir", data)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			tc.check(t, stdout, stderr)
		})
	}
}

// The flags -o replaced still work for a release, with a note on stderr;
// -o given a file name says where files go now.
func TestOutputDeprecatedFlags(t *testing.T) {
	data, as := replayed(t)
	forged := byDetector(as)["token_provenance"].ID
	events := filepath.Join(t.TempDir(), "events.ndjson")
	for _, tc := range []struct {
		args       []string
		code       int
		out, note  string
		stdoutJSON bool
	}{
		{[]string{"scope", "--key", "auth-2022-11", "--json"}, 0, `"total":2`, "--json is deprecated", true},
		{[]string{"actions", "--json"}, 0, `"kind":"revoke_key"`, "use -o json", true},
		{[]string{"report", "--alert", forged, "--format", "json"}, 0, `"clocks"`, "--format is deprecated and goes in the next release: use -o json", true},
		{[]string{"simulate", "--days", "1", "--customers", "300", "--scenarios", "none", "-o", events}, 0, "", "use --out FILE", false},
		{[]string{"report", "--alert", forged, "-o", "report.html"}, 2, "", "write to a file with --out FILE", false},
		{[]string{"scope", "--key", "auth-2022-11", "-o", "json"}, 0, `"total":2`, "", true},
	} {
		code, stdout, stderr := run(t, append(tc.args, "--data-dir", data)...)
		if code != tc.code || !strings.Contains(stdout, tc.out) || !strings.Contains(stderr, tc.note) {
			t.Errorf("%v: exit %d (want %d), want %q on stdout and %q on stderr\n%s%s", tc.args, code, tc.code, tc.out, tc.note, stdout, stderr)
		}
		if tc.note == "" && strings.Contains(stderr, "deprecated") {
			t.Errorf("%v: a deprecation note without a deprecated flag:\n%s", tc.args, stderr)
		}
		var v any
		if tc.stdoutJSON && code == 0 && json.NewDecoder(strings.NewReader(stdout)).Decode(&v) != nil {
			t.Errorf("%v: stdout is not JSON:\n%s", tc.args, stdout)
		}
	}
	if fi, err := os.Stat(events); err != nil || fi.Size() == 0 {
		t.Errorf("simulate -o FILE wrote no events: %v", err)
	}
}

// report ID is report --alert ID, or --incident when the ID is an
// incident's; exactly one subject is named.
func TestReportSubject(t *testing.T) {
	data, as := replayed(t)
	forged := byDetector(as)["token_provenance"].ID
	_, byFlag, _ := run(t, "report", "--data-dir", data, "--alert", forged, "-o", "json")
	code, out, stderr := run(t, "incidents", "list", "--data-dir", data, "-o", "json")
	if code != 0 {
		t.Fatalf("incidents: exit %d\n%s", code, stderr)
	}
	var inc struct{ ID string }
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &inc); err != nil || inc.ID == "" {
		t.Fatalf("no incident: %v\n%s", err, out)
	}
	_, incByFlag, _ := run(t, "report", "--data-dir", data, "--incident", inc.ID, "-o", "json")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"report", forged, "-o", "json"}, 0, byFlag},
		{[]string{"report", inc.ID, "-o", "json"}, 0, incByFlag},
		{[]string{"report"}, 2, "name one alert or incident"},
		{[]string{"report", forged, "--alert", forged}, 2, "name one alert or incident"},
		{[]string{"report", "al-nope"}, 2, `no alert or incident "al-nope"`},
	} {
		code, stdout, stderr := run(t, append(tc.args, "--data-dir", data)...)
		got := stdout
		if tc.code != 0 {
			got = stderr
		}
		// Reports carry the time they were made: compare without it.
		if code != tc.code || !strings.Contains(stripGenerated(got), stripGenerated(tc.want)) {
			t.Errorf("%v: exit %d (want %d)\n%s%s", tc.args, code, tc.code, stdout, stderr)
		}
	}
}

// stripGenerated drops the lines of a JSON report that name when it was
// made.
func stripGenerated(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, `"generated`) && !strings.Contains(l, `"now"`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// scope of an id the ledger has never seen says so, with near matches,
// instead of "0 distinct records touched".
func TestScopeNeverSeen(t *testing.T) {
	data, _ := replayed(t)
	for _, tc := range []struct {
		args     []string
		want     []string
		not      []string
		jsonNote string
	}{
		{[]string{"--key", "auth-2022-12"}, []string{"key auth-2022-12 was never seen in the access ledger (near: auth-2022-11"}, []string{"distinct records"}, ""},
		{[]string{"--principal", "e:1043"}, []string{"principal e:1043 was never seen", "near: e:1042"}, []string{"distinct records"}, ""},
		{[]string{"--key", "zzzzzzzzzzzzzzzz"}, []string{"key zzzzzzzzzzzzzzzz was never seen in the access ledger (nothing near it either)"}, []string{"distinct records"}, ""},
		// Seen, but not on those days: 0 is the answer.
		{[]string{"--key", "auth-2022-11", "--from", "2025-06-25"}, []string{"0 distinct records touched"}, []string{"never seen"}, ""},
		// One seen, one not, nothing touched in the window: both said.
		{[]string{"--key", "auth-2022-11", "--key", "auth-2022-12", "--from", "2025-06-25"}, []string{"key auth-2022-12 was never seen", "0 distinct records touched"}, []string{"auth-2022-11 was never"}, ""},
		{[]string{"--key", "auth-2022-11"}, []string{"2 distinct records touched"}, []string{"never seen"}, ""},
		{[]string{"--key", "auth-2022-12", "-o", "json"}, []string{`"total":0`}, nil, "note: key auth-2022-12 was never seen in the access ledger (near: auth-2022-11"},
	} {
		code, stdout, stderr := run(t, append([]string{"scope", "--data-dir", data}, tc.args...)...)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s", tc.args, code, stderr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%v: stdout lacks %q:\n%s", tc.args, w, stdout)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(stdout, n) {
				t.Errorf("%v: stdout has %q:\n%s", tc.args, n, stdout)
			}
		}
		if !strings.Contains(stderr, tc.jsonNote) {
			t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.jsonNote, stderr)
		}
	}
}

// The one-line help of serve names the console; simulate's help names
// $HAECHI_TOKEN once.
func TestHelpText(t *testing.T) {
	_, top, _ := run(t, "--help")
	for _, l := range strings.Split(top, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "serve") && !strings.Contains(l, "console") {
			t.Errorf("serve's one-line help does not mention the console: %q", l)
		}
	}
	_, sim, _ := run(t, "simulate", "--help")
	if n := strings.Count(sim, "HAECHI_TOKEN"); n != 1 {
		t.Errorf("simulate --help names HAECHI_TOKEN %d times:\n%s", n, sim)
	}
}
