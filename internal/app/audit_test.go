package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

func auditConfig(t *testing.T) config.Config {
	t.Helper()
	t.Setenv(respond.AuditKeyEnv, "")
	cfg := config.Default()
	dir := t.TempDir()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Audit.KeyFile = filepath.Join(dir, "keys", "audit.key")
	cfg.Audit.Witness.File = filepath.Join(dir, "witness")
	cfg.Listen = "127.0.0.1:0"
	cfg.Log.Level = "error"
	return cfg
}

func writeKey(t *testing.T, path string, key []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// serveBriefly runs serve until it is ready, then stops it.
func serveBriefly(t *testing.T, cfg config.Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, app.ServeOptions{Config: cfg, Ready: func(u string) { ready <- u }, InsecureNoAuth: true})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve not ready")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestServeRefusesAuditKey: serve does not start with a key file group or
// others can read, nor with a key that does not authenticate the log.
func TestServeRefusesAuditKey(t *testing.T) {
	t.Run("readable by others", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no mode bits")
		}
		cfg := auditConfig(t)
		writeKey(t, cfg.Audit.KeyFile, bytes.Repeat([]byte{7}, store.AuditKeySize), 0o644)
		err := app.Serve(context.Background(), app.ServeOptions{Config: cfg, Announce: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("err = %v, want a refusal of the 0644 key file", err)
		}
	})
	t.Run("another key", func(t *testing.T) {
		cfg := auditConfig(t)
		st, err := store.Open(t.Context(), cfg.DataDir, store.Options{AuditKey: bytes.Repeat([]byte{1}, store.AuditKeySize)})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AppendAudit(t.Context(), time.Now(), "x", "", nil); err != nil {
			t.Fatal(err)
		}
		st.Close()
		writeKey(t, cfg.Audit.KeyFile, bytes.Repeat([]byte{2}, store.AuditKeySize), 0o600)
		err = app.Serve(context.Background(), app.ServeOptions{Config: cfg, Announce: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "newest audit entry 1") {
			t.Fatalf("err = %v, want a refusal of the key", err)
		}
	})
}

// TestServeAuditsWitnessMismatch: serve keys a legacy log (its first keyed
// entry pins the legacy ones), and when it finds the log shorter than the
// witness saw it, it says so in the log itself.
func TestServeAuditsWitnessMismatch(t *testing.T) {
	cfg := auditConfig(t)
	st, err := store.Open(t.Context(), cfg.DataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AppendAudit(t.Context(), time.Now(), "legacy", "", nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	serveBriefly(t, cfg)
	key, _, err := app.AuditKey(cfg, false)
	if err != nil || key == nil {
		t.Fatalf("key: %v", err)
	}
	st, err = store.Open(t.Context(), cfg.DataDir, store.Options{AuditKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := respond.VerifyAudit(t.Context(), st, respond.VerifyOptions{Key: key, Witness: cfg.AuditWitnessFile()})
	if err != nil || rep.Legacy != 1 || rep.Keyed == 0 || rep.Witnessed.Seq != rep.Head {
		t.Fatalf("after serve: %+v, %v", rep, err)
	}
	// Someone with the key appends, the witness sees it, then the newest
	// entries vanish while serve is down.
	for range 3 {
		if err := st.AppendAudit(t.Context(), time.Now(), "y", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := respond.WitnessHead(t.Context(), st, cfg.AuditWitnessFile(), respond.WitnessKey(key), time.Now()); err != nil {
		t.Fatal(err)
	}
	h, _ := st.AuditHead(t.Context())
	raw, err := sql.Open("sqlite", "file:"+st.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec("DELETE FROM audit WHERE seq > ?", h.Seq-2); err != nil {
		t.Fatal(err)
	}
	serveBriefly(t, cfg)
	log, err := st.AuditLog(t.Context(), h.Seq-2, 100)
	if err != nil || len(log) == 0 || log[0].Kind != "audit_witness_mismatch" || !strings.Contains(string(log[0].Detail), "removed") {
		t.Fatalf("entries after the truncation: %+v, %v", log, err)
	}
	// The witness file removed while serve is down: serve audits that it
	// is gone (it writes one whenever it holds the key).
	h, _ = st.AuditHead(t.Context())
	if err := os.Remove(cfg.AuditWitnessFile()); err != nil {
		t.Fatal(err)
	}
	serveBriefly(t, cfg)
	log, err = st.AuditLog(t.Context(), h.Seq, 100)
	if err != nil || len(log) == 0 || log[0].Kind != "audit_witness_missing" {
		t.Fatalf("entries after the witness was removed: %+v, %v", log, err)
	}
}
