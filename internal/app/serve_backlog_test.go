package app

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/ingest"
	"github.com/haechi-sec/haechi/internal/spool"
)

// A serve that fails after opening the spool (the listen address taken,
// --insecure-no-auth on a public address, the console failing) returns at
// once and leaves the spool's backlog for the next start (Service.Abort).
// (Found in review: with app.Build the failed start first waited, without
// a deadline, for the consumer to take everything pending.)
func TestServeEarlyErrorDoesNotReplayBacklog(t *testing.T) {
	contract, err := os.ReadFile("../../testdata/contract-events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "256.0.0.1:1" // listen fails
	in, err := ingest.Open(ingest.Options{Spool: spool.Options{Dir: filepath.Join(cfg.DataDir, "spool"), NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat(contract, 200)
	for range 300 {
		if _, err := in.Append(t.Context(), api.Stored{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The user gives up (Ctrl-C) long after start: a safety net, so the
	// test cannot hang, and late enough that opening the store (twelve
	// migrations, slow under -race on a loaded machine) is not cut short.
	time.AfterFunc(20*time.Second, cancel)
	start := time.Now()
	err = Serve(ctx, ServeOptions{Config: cfg, Announce: io.Discard, InsecureNoAuth: true})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Serve = %v, want the listen error", err)
	}
	// Replaying the 900,000 events waiting in the spool takes far longer.
	if took > 15*time.Second {
		t.Errorf("the listen error took %s to return: serve replayed the spool's backlog first", took)
	}
}
