package cli_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The --store flag and store.dsn select the store; a bad one is a usage
// error that never echoes the URL (it may carry a password).
func TestStoreSelection(t *testing.T) {
	code, _, stderr := run(t, "actions", "--store", "mysql://u:secret@db/haechi")
	if code != 2 || !strings.Contains(stderr, "store.dsn") || strings.Contains(stderr, "secret") {
		t.Errorf("actions --store mysql://…: exit %d\n%s", code, stderr)
	}
	cfg := filepath.Join(t.TempDir(), "haechi.yaml")
	if err := os.WriteFile(cfg, []byte("store:\n  dsn: \"sqlite:x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, "--config", cfg, "audit", "verify"); code != 2 || !strings.Contains(stderr, "store.dsn") {
		t.Errorf("store.dsn sqlite:x: exit %d\n%s", code, stderr)
	}
	// A data dir without a store is still refused, naming both ways out.
	if code, _, stderr := run(t, "scope", "--data-dir", t.TempDir(), "--key", "k"); code != 2 || !strings.Contains(stderr, "--store") {
		t.Errorf("scope on an empty data dir: exit %d\n%s", code, stderr)
	}
}

// TestReplayIntoPostgres runs replay, actions, scope and audit against one
// PostgreSQL store selected with --store (skipped without
// HAECHI_TEST_POSTGRES; see docs/store.md).
func TestReplayIntoPostgres(t *testing.T) {
	dsn := postgresSchema(t)
	data := t.TempDir() // must stay empty: the store is elsewhere
	code, stdout, stderr := run(t, "replay", "--data-dir", data, "--store", dsn, contractPath)
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, stderr)
	}
	if len(alerts(t, stdout)) == 0 {
		t.Fatal("replay raised no alerts")
	}
	if _, err := os.Stat(filepath.Join(data, "haechi.db")); err == nil {
		t.Error("replay --store postgres://… wrote a SQLite store in the data dir")
	}
	if code, out, stderr := run(t, "actions", "--store", dsn, "-o", "json"); code != 0 || !strings.Contains(out, `"id"`) {
		t.Errorf("actions: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := run(t, "audit", "verify", "--store", dsn); code != 0 || !strings.Contains(out, "intact") {
		t.Errorf("audit verify: exit %d\n%s%s", code, out, stderr)
	}
	cfg := filepath.Join(t.TempDir(), "haechi.yaml")
	if err := os.WriteFile(cfg, []byte("store:\n  dsn: \""+dsn+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := run(t, "--config", cfg, "audit", "export"); code != 0 || !strings.Contains(out, `"kind":"planned"`) {
		t.Errorf("audit export via store.dsn: exit %d\n%s%s", code, out, stderr)
	}
}

// postgresSchema returns HAECHI_TEST_POSTGRES with search_path set to a
// schema of its own, dropped when t ends; it skips t when the variable is
// unset and fails it when the server is unreachable.
func postgresSchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("HAECHI_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("HAECHI_TEST_POSTGRES not set: skipping the PostgreSQL store (set it to a postgres:// URL; see docs/store.md)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("HAECHI_TEST_POSTGRES is set but PostgreSQL is unreachable: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "haechi_cli_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
