package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

// A configuration serve refuses (a roster file in cluster mode) is refused
// before the response is built: no webhook leaves a process that refuses
// to start. (Found in review: with app.Build the check came after the
// dispatcher had started, and Close drained it, delivering a due action.)
func TestServeRefusedDeliversNoWebhook(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Respond.Mode = respond.ModeEnforce
	cfg.Respond.Secret = "s3cret"
	cfg.Respond.Receivers = map[string]respond.Receiver{}
	for _, k := range respond.ActionKinds {
		cfg.Respond.Receivers[k] = respond.Receiver{URL: srv.URL, AllowPrivate: true}
	}

	// An action due in the outbox, left by an earlier run.
	key, _, err := AuditKey(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), cfg.StoreTarget(), store.Options{AuditKey: key})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := respond.NewPlanner(cfg.Respond)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour)
	acts := pl.Plan(event.Alert{ID: "a1", Time: at, Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"},
		Severity: event.SeverityCritical, Score: 95, Title: "t", Detector: "terminated_identity", State: event.AlertOpen,
		Findings: []event.Finding{{Detector: "terminated_identity", Kind: "terminated_identity",
			Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"}, Time: at}}})
	if len(acts) == 0 {
		t.Fatal("no action planned")
	}
	if _, err := st.InsertActions(t.Context(), acts, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A configuration serve refuses: cluster mode with a roster file.
	roster := filepath.Join(t.TempDir(), "roster.ndjson")
	if err := os.WriteFile(roster, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"}
	cfg.Kafka.Topic = "events"
	cfg.Detectors.TerminatedIdentity.RosterFile = roster
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Serve(ctx, ServeOptions{Config: cfg, Announce: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "roster snapshot file is not read") {
		t.Fatalf("Serve = %v, want the cluster roster refusal", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("a serve that refused its configuration delivered %d webhooks", n)
	}
}
