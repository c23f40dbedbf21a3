package app_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// incidentsOf reads every stored incident: its id, with its alerts.
func incidentsOf(t *testing.T, st *store.Store) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	var cur store.IncidentCursor
	for {
		page, err := st.ListIncidents(ctx, store.IncidentQuery{Limit: 100, Older: cur})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range page {
			alerts, err := st.ListAlerts(ctx, store.AlertQuery{Incident: in.ID, Limit: store.MaxListLimit})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, a := range alerts {
				ids = append(ids, a.ID)
			}
			slices.Sort(ids)
			out[in.ID] = ids
		}
		if len(page) < 100 {
			return out
		}
		last := page[len(page)-1]
		cur = store.IncidentCursor{Start: last.Start, ID: last.ID}
	}
}

// Replaying a file into a fresh store gives the incidents — the same ids,
// each with the same alerts — that serve gives when the same events are
// posted to it at full speed (its store writer commits other batches).
func TestServeIncidentsEqualReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates three days")
	}
	var buf bytes.Buffer
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -5)
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 2, Days: 3, Customers: 3000, Start: start}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()

	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	svc, err := app.Build(ctx, app.BuildOptions{Config: cfg, Mode: app.ModeReplay})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start(ctx)
	p, err := app.NewPipeline(svc.PipelineOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	if _, err := app.Feed(ctx, p, bytes.NewReader(data), 1, 0, nil); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(ctx); err != nil { // drains the store writer
		t.Fatal(err)
	}
	key, _, err := app.AuditKey(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, cfg.DataDir, store.Options{AuditKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	replayed := incidentsOf(t, st)
	multi := 0
	for _, ids := range replayed {
		if len(ids) > 1 {
			multi++
		}
	}
	if len(replayed) < 2 || multi == 0 {
		t.Fatalf("replay kept %d incidents, %d of several alerts: the comparison proves little", len(replayed), multi)
	}
	served := incidentsOf(t, serveStore(t, data))
	if diff := cmp.Diff(replayed, served); diff != "" {
		t.Errorf("serve's incidents differ from replay's (-replay +serve):\n%s", diff)
	}
	n := 0
	for _, ids := range replayed {
		n += len(ids)
	}
	t.Logf("%d incidents over %d alerts, %d of several alerts", len(replayed), n, multi)
}
