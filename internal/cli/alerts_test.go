package cli_test

import (
	"regexp"
	"strings"
	"testing"
)

func TestAlertsTriage(t *testing.T) {
	data := t.TempDir()
	code, stdout, stderr := run(t, "replay", "--data-dir", data, contractPath)
	if code != 0 {
		t.Fatalf("replay: %d %s", code, stderr)
	}
	id := alerts(t, stdout)[0].ID
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"feedback", id, "--verdict", "false_positive", "--note", "test", "--by", "alice"}, 0, id + ": false_positive (by alice)"},
		{[]string{"feedback", "al-nope", "--verdict", "benign"}, 2, "not found"},
		{[]string{"feedback", id, "--verdict", "maybe"}, 2, "verdict"},
		{[]string{"suppress", "--entity", "source:203.0.113.9", "--for", "2h", "--reason", "pen test", "--by", "bob"}, 0, "suppressed until"},
		{[]string{"suppress", "--entity", "nokind", "--for", "2h", "--reason", "x"}, 2, "want kind:id"},
		{[]string{"suppressions"}, 0, "pen test"},
		{[]string{"unsuppress", "sup-nope"}, 2, "not found"},
	}
	for _, tc := range tests {
		args := append([]string{"alerts", tc.args[0], "--data-dir", data}, tc.args[1:]...)
		code, stdout, stderr := run(t, args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("alerts %v: exit %d\n%s%s\nwant exit %d containing %q", tc.args, code, stdout, stderr, tc.code, tc.want)
		}
	}
	_, out, _ := run(t, "alerts", "suppressions", "--data-dir", data)
	sid := regexp.MustCompile(`sup-[0-9a-f]+`).FindString(out)
	if code, out, errs := run(t, "alerts", "unsuppress", "--data-dir", data, sid); code != 0 {
		t.Fatalf("unsuppress %s: %d %s%s", sid, code, out, errs)
	}
	if code, out, _ := run(t, "audit", "export", "--data-dir", data); code != 0 || !strings.Contains(out, `"kind":"feedback"`) ||
		!strings.Contains(out, `"kind":"suppression"`) || !strings.Contains(out, `"kind":"suppression_removed"`) {
		t.Errorf("audit export lacks triage entries (exit %d)", code)
	}
	if code, _, _ := run(t, "audit", "verify", "--data-dir", data); code != 0 {
		t.Error("audit chain broken")
	}
}
