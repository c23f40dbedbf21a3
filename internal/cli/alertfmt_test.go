package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// replay -o ecs and -o ocsf print the contract's alerts in the SIEM
// formats, through the real alert path; compared (sorted: alerts print as
// their windows close, in an order that depends on the shards) with
// testdata/alerts/replay.{ecs,ocsf}.golden (rewritten with -update).
func TestReplayOutputFormatsGolden(t *testing.T) {
	for _, format := range []string{"ecs", "ocsf"} {
		t.Run(format, func(t *testing.T) {
			code, stdout, stderr := run(t, "replay", "--no-store", "-o", format, contractPath)
			if code != 0 {
				t.Fatalf("replay -o %s: %d %s", format, code, stderr)
			}
			lines := strings.SplitAfter(stdout, "\n")
			slices.Sort(lines)
			got := strings.Join(lines, "")
			path := filepath.Join("testdata", "alerts", "replay."+format+".golden")
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
				t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
			// Beyond the bytes: every line is the format's alert, and the
			// forged-token alert carries its ATT&CK techniques.
			forged := false
			for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
				var doc map[string]any
				if err := json.Unmarshal([]byte(l), &doc); err != nil {
					t.Fatalf("not JSON: %v: %s", err, l)
				}
				switch format {
				case "ecs":
					ev, _ := doc["event"].(map[string]any)
					if ev["kind"] != "alert" || doc["@timestamp"] == nil {
						t.Errorf("not an ECS alert: %s", l)
					}
				case "ocsf":
					if doc["class_uid"] != 2004.0 || doc["category_uid"] != 2.0 || doc["finding_info"] == nil {
						t.Errorf("not an OCSF Detection Finding: %s", l)
					}
				}
				if strings.Contains(l, "token_never_minted") && strings.Contains(l, `"T1606"`) && strings.Contains(l, `"T1550.001"`) {
					forged = true
				}
			}
			if !forged {
				t.Errorf("no forged-token alert with T1606 and T1550.001 in:\n%s", stdout)
			}
		})
	}
	if code, _, stderr := run(t, "replay", "--no-store", "--findings", "-o", "ecs", contractPath); code != 2 || !strings.Contains(stderr, "--findings") {
		t.Errorf("replay --findings -o ecs: exit %d %s, want a usage error", code, stderr)
	}
	if code, _, stderr := run(t, "replay", "--no-store", "-o", "cef", contractPath); code != 2 {
		t.Errorf("replay -o cef: exit %d %s, want a usage error", code, stderr)
	}
}
