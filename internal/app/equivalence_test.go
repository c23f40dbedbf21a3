package app_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// alertKey is what must match between serve and replay: the alert's id,
// its entity and the detectors behind it.
func alertKey(a event.Alert) string {
	var dets []string
	for _, f := range a.Findings {
		if !slices.Contains(dets, f.Detector) {
			dets = append(dets, f.Detector)
		}
	}
	slices.Sort(dets)
	return fmt.Sprintf("%s %s:%s %s", a.ID, a.Entity.Kind, a.Entity.ID, strings.Join(dets, ","))
}

// Posting a simulated company's days at full speed to a fresh serve — a
// shipper catching up, its events days older than the wall clock — raises
// the same alerts as replaying the same file: same ids, entities and
// detectors. Serve's wall clock used to advance event time while the
// server was quiet before the first request, so every posted event was
// late and the detectors that wait on event time (key posture, token
// provenance, geography) decided differently.
func TestServePostedEqualsReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates three days")
	}
	var buf bytes.Buffer
	// Days ago, so the whole file is older than the wall clock.
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -5)
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 2, Days: 3, Customers: 3000, Start: start}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()

	replayed := replayAlerts(t, data)
	if len(replayed) < 3 {
		t.Fatalf("replay raised %d alerts: the comparison proves little", len(replayed))
	}
	served := serveAlerts(t, data)
	var missing, extra []string
	for k := range replayed {
		if !served[k] {
			missing = append(missing, k)
		}
	}
	for k := range served {
		if !replayed[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing)+len(extra) > 0 {
		t.Errorf("serve raised %d alerts, replay %d\nonly in replay:\n  %s\nonly in serve:\n  %s", len(served), len(replayed),
			strings.Join(missing, "\n  "), strings.Join(extra, "\n  "))
	}
	t.Logf("%d alerts in replay, %d in serve, %d only in one", len(replayed), len(served), len(missing)+len(extra))
}

func replayAlerts(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	svc, err := app.Build(ctx, app.BuildOptions{Config: cfg, Mode: app.ModeReplay, NoStore: true})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start(ctx)
	var mu sync.Mutex
	got := map[string]bool{}
	p, err := app.NewPipeline(svc.PipelineOptions(nil, alert.SinkFunc(func(ch alert.Change, a event.Alert) {
		if ch == alert.Closed {
			mu.Lock()
			got[alertKey(a)] = true
			mu.Unlock()
		}
	})))
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
	if err := svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return got
}

func serveAlerts(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	st := serveStore(t, data)
	alerts, err := st.ListAlerts(context.Background(), store.AlertQuery{Limit: store.MaxListLimit, WithFindings: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, a := range alerts {
		got[alertKey(a)] = true
	}
	return got
}

// serveStore posts data to a fresh serve at full speed, stops it and
// returns its store (closed when t ends).
func serveStore(t *testing.T, data []byte) *store.Store {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, app.ServeOptions{Config: cfg, Ready: func(u string) { ready <- u }, InsecureNoAuth: true})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	// A fresh server, quiet for a few of its wall-clock ticks.
	time.Sleep(3 * time.Second)
	// Post at full speed, one request after another, 5,000 lines each.
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var chunk bytes.Buffer
	post := func() {
		if chunk.Len() == 0 {
			return
		}
		resp, err := http.Post(base+"/v1/events", "application/x-ndjson", bytes.NewReader(chunk.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post: %s", resp.Status)
		}
		chunk.Reset()
	}
	for n := 1; sc.Scan(); n++ {
		chunk.Write(sc.Bytes())
		chunk.WriteByte('\n')
		if n%5000 == 0 {
			post()
		}
	}
	post()
	// Wait until the pipeline has taken every stored request and worked
	// off its queue: stopping drains what is left only within serve's
	// 30-second shutdown budget (the rest stays in the spool for the next
	// start), which the race detector's slowdown can exceed — alerts of
	// the stream's last events were then missing here, not lost.
	waitDrained(t, base, 5*time.Minute)
	// Stopping ends the input, which closes every window.
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	key, _, err := app.AuditKey(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), cfg.DataDir, store.Options{AuditKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// waitDrained polls serve's metrics until no stored request waits for the
// pipeline and its queue is empty, twice in a row, or fails t after limit.
func waitDrained(t *testing.T, base string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	quiet := 0
	for quiet < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not work off its spool and queue within %s", limit)
		}
		time.Sleep(250 * time.Millisecond)
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, err = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		busy := false
		for _, line := range strings.Split(body.String(), "\n") {
			for _, name := range []string{"haechi_spool_pending_records ", "haechi_queue_depth_events "} {
				if strings.HasPrefix(line, name) && strings.TrimSpace(strings.TrimPrefix(line, name)) != "0" {
					busy = true
				}
			}
		}
		if busy {
			quiet = 0
		} else {
			quiet++
		}
	}
}
