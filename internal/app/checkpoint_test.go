package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/sim"
)

// With every detector of the default configuration over three simulated
// days, a restart from a checkpoint taken mid-stream finds exactly what an
// uninterrupted run finds: the detectors that checkpoint their state resume
// from it, the others rebuild theirs from the replayed events (whose
// findings were emitted before the checkpoint and are dropped).
func TestCheckpointRestartEqualsUninterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates three days")
	}
	var buf bytes.Buffer
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 3, Days: 3, Customers: 3000}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	evs := detecttestEvents(t, buf.Bytes())
	cfg := config.Default()
	mk := func() []engine.Detector { return app.Detectors(cfg, nil) }
	snapshots := map[string]bool{}
	for _, d := range mk() {
		if _, ok := d.NewShard().(engine.Snapshotter); ok {
			snapshots[d.Name()] = true
		}
	}
	for _, want := range []string{"record_volume", "off_hours", "peer_route"} {
		if !snapshots[want] {
			t.Fatalf("%s does not checkpoint its state", want)
		}
	}
	union := func(a, b []event.Finding) []event.Finding {
		u := append(append([]event.Finding{}, a...), b...)
		detecttest.Sort(u)
		return u
	}
	// Uninterrupted: the checkpoint after the last event (the restarted
	// engine only flushes what is open at the end of input).
	want := union(detecttest.Restart(t, evs, len(evs), 3, mk))
	var fromSnapshots int
	for _, f := range want {
		if snapshots[f.Detector] {
			fromSnapshots++
		}
	}
	if fromSnapshots == 0 {
		t.Fatal("the checkpointing detectors found nothing in three days: the test proves nothing")
	}
	t.Logf("%d events; %d findings, %d of them by checkpointing detectors", len(evs), len(want), fromSnapshots)
	for _, cut := range []int{len(evs) / 3, len(evs) / 2} {
		got := union(detecttest.Restart(t, evs, cut, 3, mk))
		if a, b := js(got), js(want); a != b {
			t.Errorf("cut at %d: %d findings across the restart, %d uninterrupted", cut, len(got), len(want))
		}
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func detecttestEvents(t *testing.T, b []byte) []event.Event {
	t.Helper()
	rd := decode.NewReader(bytes.NewReader(b), 0, 0)
	var evs []event.Event
	for {
		var ev event.Event
		if err := rd.Next(&ev); err != nil {
			break
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	return evs
}

func TestCheckpointEncoding(t *testing.T) {
	c := app.Checkpoint{Mark: 9, Shards: 2, Alerts: []byte(`{"v":1}`),
		Parts: map[string][][]byte{"off_hours": {{1}, {2, 3}}, "peer_route": {{}, {4}}}}
	got, err := app.DecodeCheckpoint(app.EncodeCheckpoint(c), 9, 2)
	if err != nil || js(got) != js(c) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := app.DecodeCheckpoint(app.EncodeCheckpoint(c), 9, 3); err == nil {
		t.Error("a checkpoint of 2 shards decoded as 3")
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(app.EncodeCheckpoint(app.Checkpoint{Shards: 2, Parts: map[string][][]byte{"x": {{1}, {2}}}}), 2)
	f.Fuzz(func(t *testing.T, b []byte, shards int) {
		c, err := app.DecodeCheckpoint(b, 1, shards)
		if err != nil {
			return
		}
		if again, err := app.DecodeCheckpoint(app.EncodeCheckpoint(c), 1, shards); err != nil || js(again) != js(c) {
			t.Fatalf("re-encoding changed it: %v", err)
		}
	})
}
