package cli_test

import (
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/respond"
)

// Before the refactor, replay and eval --store opened the store through
// storeOptions, which marks an unusable audit key (HAECHI_AUDIT_KEY or
// audit.key_file) as the user's input: exit code 2. app.Build returns
// AuditKey's error unmarked, so it became exit code 1.
func TestReview18AuditKeyErrorIsUsage(t *testing.T) {
	t.Setenv(respond.AuditKeyEnv, "not-a-key")
	for _, args := range [][]string{
		{"replay", "--data-dir", t.TempDir(), contractPath},
		{"eval", "--store", "--data-dir", t.TempDir(), "--days", "1"},
	} {
		code, _, stderr := run(t, args...)
		if code != 2 || !strings.Contains(stderr, "audit key") {
			t.Errorf("%s: exit %d, want 2 (usage) for a bad audit key\n%s", args[0], code, stderr)
		}
	}
}
