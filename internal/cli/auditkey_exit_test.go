package cli_test

import (
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/respond"
)

// An unusable audit key (HAECHI_AUDIT_KEY or audit.key_file) is the
// user's input: replay and eval --store exit 2, as every command opening
// the store does. (Found in review: app.Build returned the error unmarked,
// exit 1.)
func TestStoreCommandsAuditKeyErrorIsUsage(t *testing.T) {
	t.Setenv(respond.AuditKeyEnv, "not-a-key")
	for _, args := range [][]string{
		{"replay", "--data-dir", t.TempDir(), contractPath},
		{"eval", "--keep-store", "--data-dir", t.TempDir(), "--days", "1"},
	} {
		code, _, stderr := run(t, args...)
		if code != 2 || !strings.Contains(stderr, "audit key") {
			t.Errorf("%s: exit %d, want 2 (usage) for a bad audit key\n%s", args[0], code, stderr)
		}
	}
}
