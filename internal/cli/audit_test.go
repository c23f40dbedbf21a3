package cli_test

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

// TestAuditVerifyCommand: commands append keyed entries with the key
// serve made; verify counts them, checks them against the witness and
// names a truncation; a missing or exposed key is said plainly.
func TestAuditVerifyCommand(t *testing.T) {
	t.Setenv(respond.AuditKeyEnv, "")
	data := filepath.Join(t.TempDir(), "data")
	keyFile, witness := data+".audit.key", data+".audit-witness"
	key, _, err := respond.LoadAuditKey(respond.AuditKeySource{File: keyFile, Create: true}) // as serve's first start
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if code, _, stderr := run(t, "tokens", "create", "--data-dir", data, "--role", "analyst", "--name", name); code != 0 {
			t.Fatalf("tokens create: %d %s", code, stderr)
		}
	}
	st, err := store.Open(t.Context(), data, store.Options{AuditKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := respond.WitnessHead(t.Context(), st, witness, respond.WitnessKey(key), time.Now()); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "audit", "verify", "--data-dir", data)
	if code != 0 || !strings.Contains(out, "3 entries checked: 3 MAC-protected, 0 legacy") ||
		!strings.Contains(out, "the newest, entry 3 signed") || !strings.Contains(out, "intact") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, stderr)
	}

	// A line signed with another key is ignored, and said so.
	if err := respond.AppendWitness(witness, respond.SignWitness(respond.WitnessKey(bytes.Repeat([]byte{3}, store.AuditKeySize)), 9, "x", time.Now())); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "audit", "verify", "--data-dir", data); code != 0 || !strings.Contains(stderr, "1 lines not signed by this audit key") {
		t.Errorf("forged line: exit %d\n%s", code, stderr)
	}

	// The newest entries removed by the database's writer.
	raw, err := sql.Open("sqlite", "file:"+st.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec("DELETE FROM audit WHERE seq > 1"); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = run(t, "audit", "verify", "--data-dir", data)
	if code != 1 || !strings.Contains(stderr, "broken at entry 2 (truncated)") || !strings.Contains(stderr, "entries 2–3 were removed") ||
		!strings.Contains(out, "1 entries checked") {
		t.Errorf("truncated: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := run(t, "audit", "verify", "--data-dir", data, "--witness", filepath.Join(t.TempDir(), "none")); code != 1 ||
		!strings.Contains(out, "missing: the removal of the newest entries cannot be detected") || !strings.Contains(stderr, "(witness_missing)") {
		t.Errorf("no witness: exit %d\n%s%s", code, out, stderr)
	}

	// Without the key nothing can be appended after keyed entries, and
	// they cannot be verified.
	if err := os.Rename(keyFile, keyFile+".away"); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "tokens", "create", "--data-dir", data, "--role", "analyst"); code == 0 || !strings.Contains(stderr, "no audit key") {
		t.Errorf("append without the key: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := run(t, "audit", "verify", "--data-dir", data); code != 1 || !strings.Contains(stderr, "not verifiable") {
		t.Errorf("verify without the key: exit %d\n%s", code, stderr)
	}
	if err := os.Rename(keyFile+".away", keyFile); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(keyFile, 0o640); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := run(t, "audit", "verify", "--data-dir", data); code != 2 || !strings.Contains(stderr, "chmod 600") {
			t.Errorf("group-readable key: exit %d\n%s", code, stderr)
		}
	}
}
