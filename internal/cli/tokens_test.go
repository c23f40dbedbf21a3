package cli_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/store"
)

func TestTokens(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := run(t, "tokens", "create", "--data-dir", data, "--role", "analyst", "--name", "Kim Jiwoo")
	if code != 0 {
		t.Fatalf("create: exit %d\n%s", code, stderr)
	}
	tok := strings.TrimSpace(stdout)
	if !auth.WellFormed(tok) {
		t.Fatalf("create printed %q, not a token", stdout)
	}
	id := regexp.MustCompile(`tok-[0-9a-f]+`).FindString(stderr)
	if id == "" {
		t.Fatalf("create did not name the token's id:\n%s", stderr)
	}
	// Stored hashed, with its role.
	st, err := store.Open(context.Background(), data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.TokenByHash(context.Background(), auth.HashToken(tok))
	st.Close()
	if err != nil || rec.ID != id || rec.Role != "analyst" || rec.Name != "Kim Jiwoo" {
		t.Fatalf("stored token %+v, %v", rec, err)
	}

	code, stdout, _ = run(t, "tokens", "list", "--data-dir", data)
	if code != 0 || !strings.Contains(stdout, id) || !strings.Contains(stdout, "Kim Jiwoo") || strings.Contains(stdout, tok) {
		t.Fatalf("list: exit %d\n%s", code, stdout)
	}
	if code, _, stderr = run(t, "tokens", "create", "--data-dir", data, "--role", "root"); code != 2 {
		t.Errorf("create --role root: exit %d, want 2\n%s", code, stderr)
	}
	if code, stdout, stderr = run(t, "tokens", "revoke", "--data-dir", data, id); code != 0 || !strings.Contains(stdout, "revoked") {
		t.Fatalf("revoke: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr = run(t, "tokens", "revoke", "--data-dir", data, id); code != 2 || !strings.Contains(stderr, "no active token") {
		t.Errorf("revoking twice: exit %d\n%s", code, stderr)
	}
	if _, stdout, _ = run(t, "tokens", "list", "--data-dir", data); !regexp.MustCompile(id + `.*\d{4}-\d\d-\d\d \d\d:\d\d\s*$`).MatchString(strings.TrimSpace(stdout)) {
		t.Errorf("list does not show the revocation:\n%s", stdout)
	}
	if code, stdout, stderr = run(t, "tokens", "create", "--data-dir", data, "--role", "verify", "--name", "edge gateway"); code != 0 || !auth.WellFormed(strings.TrimSpace(stdout)) {
		t.Errorf("create --role verify: exit %d\n%s", code, stderr)
	}
	if code, stdout, stderr = run(t, "tokens", "create", "--data-dir", data, "--role", "mint", "--name", "token issuer"); code != 0 || !auth.WellFormed(strings.TrimSpace(stdout)) {
		t.Errorf("create --role mint: exit %d\n%s", code, stderr)
	}
	if _, stdout, _ = run(t, "tokens", "list", "--data-dir", data); !regexp.MustCompile(`mint\s+token issuer`).MatchString(stdout) {
		t.Errorf("list does not show the mint token:\n%s", stdout)
	}
}
