package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ingest"
	"github.com/haechi-sec/haechi/internal/spool"
	"github.com/haechi-sec/haechi/internal/store"
)

// cs-agent traffic: four agents reading customers through their tickets,
// office hours (00–09 UTC) for three days — the baseline off_hours and
// peer_route learn.
func baselineBody(t0 time.Time) []byte {
	var b strings.Builder
	n := 0
	for d := range 3 {
		for h := range 9 {
			for m := 0; m < 60; m += 3 {
				for a := 1; a <= 4; a++ {
					n++
					at := t0.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(a)*time.Second)
					fmt.Fprintf(&b, `{"@timestamp":%q,"event":{"id":"b%d","dataset":"gateway.access","action":"admin.customer.view","outcome":"success"},"user":{"id":"e:%d","roles":["cs-agent"]},"http":{"request":{"method":"GET"}},"url":{"path":"/admin/tickets/T-%d/customers/%d"},"records":{"type":"customer","ids":["%d"]}}`+"\n",
						at.Format(time.RFC3339), n, a, 4100000+n, 1000+n, 1000+n)
				}
			}
		}
	}
	return []byte(b.String())
}

// run wires store, checkpoint, pipeline and ingester as serve does, feeds
// the bodies and stops gracefully; it returns the alerts raised.
func runWithCheckpoints(t *testing.T, dir string, bodies ...[]byte) []event.Alert {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config.Default()
	cfg.Engine.Shards = 2
	restore := loadCheckpoint(ctx, st, slog.New(slog.DiscardHandler))
	saver := newCheckpointSaver(st, slog.New(slog.DiscardHandler), nil, nil)
	var (
		mu     sync.Mutex
		alerts []event.Alert
	)
	p, err := NewPipeline(PipelineOptions{Config: cfg, Restore: restore, OnCheckpoint: saver.Offer,
		Sinks: []alert.Sink{alert.SinkFunc(func(c alert.Change, a event.Alert) {
			if c == alert.Raised {
				mu.Lock()
				alerts = append(alerts, a)
				mu.Unlock()
			}
		})}})
	if err != nil {
		t.Fatal(err)
	}
	saverCtx, stopSaver := context.WithCancel(ctx)
	saverDone := make(chan struct{})
	go func() { saver.Run(saverCtx); close(saverDone) }()
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- p.Run(ctx) }()
	in, err := ingest.Open(ingest.Options{Spool: spool.Options{Dir: filepath.Join(dir, "spool"), NoSync: true},
		CheckpointEvery: time.Hour, RestoredThrough: restoredThrough(restore, p)})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		if _, err := in.Append(ctx, api.Stored{Body: b}); err != nil {
			t.Fatal(err)
		}
	}
	cctx, stop := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- in.Run(cctx, p) }()
	for deadline := time.Now().Add(10 * time.Second); in.Pending() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	stop() // graceful: the consumer asks for a final checkpoint
	if err := <-consumed; err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := <-pipeDone; err != nil {
		t.Fatal(err)
	}
	stopSaver()
	<-saverDone
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	return alerts
}

// Killing the spool between runs leaves the checkpoint as the only memory
// of the baseline: a night read through a route no cs-agent uses is an
// alert (off-hours 45 + uncommon route 50) only if the baselines came back.
func TestServeResumesBaselinesFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	if a := runWithCheckpoints(t, dir, baselineBody(t0)); len(a) != 0 {
		t.Fatalf("the baseline raised alerts: %+v", a)
	}
	st, err := store.Open(context.Background(), filepath.Join(dir, "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, ok, err := st.LoadCheckpoint(context.Background(), checkpointName)
	st.Close()
	if err != nil || !ok || c.Shards != 2 || len(c.Data) == 0 {
		t.Fatalf("no checkpoint stored after a graceful stop: %+v %v %v", c, ok, err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "spool")); err != nil {
		t.Fatal(err)
	}
	night := t0.Add(3*24*time.Hour + 17*time.Hour) // 02:00 in Seoul
	snoop := fmt.Sprintf(`{"@timestamp":%q,"event":{"id":"snoop","dataset":"gateway.access","action":"admin.customer.view","outcome":"success"},"user":{"id":"e:3","roles":["cs-agent"]},"http":{"request":{"method":"GET"}},"url":{"path":"/admin/customers/777"},"records":{"type":"customer","ids":["777"]}}`+"\n", night.Format(time.RFC3339))
	alerts := runWithCheckpoints(t, dir, []byte(snoop))
	if len(alerts) != 1 || alerts[0].Entity.ID != "e:3" {
		b, _ := json.MarshalIndent(alerts, "", " ")
		t.Fatalf("after the restart, alerts:\n%s\nwant one about e:3 (the baselines were not restored)", b)
	}
	var dets []string
	for _, f := range alerts[0].Findings {
		dets = append(dets, f.Detector)
	}
	if !strings.Contains(strings.Join(dets, ","), "off_hours") || !strings.Contains(strings.Join(dets, ","), "peer_route") {
		t.Errorf("findings from %v, want off_hours and peer_route", dets)
	}

	// Without the checkpoint, the same read is nothing: the detectors are cold.
	cold := t.TempDir()
	if a := runWithCheckpoints(t, cold, []byte(snoop)); len(a) != 0 {
		t.Fatalf("a cold start alerted: %+v", a)
	}
}

// TestCheckpointWaitsForAlerts: a checkpoint is stored only after what the
// alert sinks were handed is (a kill between the two would otherwise lose
// an alert for good: the restored alert stage does not raise it again),
// and not at all when that fails.
func TestCheckpointWaitsForAlerts(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var stored []string
	fail := false
	saver := newCheckpointSaver(st, slog.New(slog.DiscardHandler), nil, func(context.Context) error {
		_, ok, err := st.LoadCheckpoint(ctx, checkpointName)
		if err != nil {
			return err
		}
		stored = append(stored, fmt.Sprint(ok))
		if fail {
			return fmt.Errorf("store unreachable")
		}
		return nil
	})
	saver.save(Checkpoint{Mark: 7, Shards: 1, Parts: map[string][][]byte{}})
	fail = true
	saver.save(Checkpoint{Mark: 9, Shards: 1, Parts: map[string][][]byte{}})
	// The barrier ran before the first checkpoint was stored.
	if fmt.Sprint(stored) != "[false true]" {
		t.Errorf("barrier saw stored checkpoints %v, want [false true]", stored)
	}
	cp, ok, err := st.LoadCheckpoint(ctx, checkpointName)
	if err != nil || !ok || cp.Mark != 7 {
		t.Fatalf("stored checkpoint mark %d (%v, %v); want 7 (mark 9's alerts were not stored)", cp.Mark, ok, err)
	}
}
