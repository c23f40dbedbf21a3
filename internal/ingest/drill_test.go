package ingest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/spool"
)

// recordingPipeline records what the consumer hands it.
type recordingPipeline struct {
	mu     sync.Mutex
	events []event.Event
	from   []string
	ended  []string
}

func (p *recordingPipeline) NewBatch() []event.Event { return make([]event.Event, 0, 16) }
func (p *recordingPipeline) SubmitFrom(_ context.Context, origin string, _ time.Time, evs []event.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, evs...)
	for range evs {
		p.from = append(p.from, origin)
	}
	return nil
}
func (p *recordingPipeline) Mark(context.Context, uint64) error       { return nil }
func (p *recordingPipeline) Checkpoint(context.Context, uint64) error { return nil }
func (p *recordingPipeline) EndOrigin(_ context.Context, origin string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ended = append(p.ended, origin)
	return nil
}

// Events a drill stored (AppendDrill) reach the pipeline marked Drill,
// from an origin of their run that ends after them; a request's events are
// never marked, whatever ids they carry, and no request can claim the
// drill scope.
func TestDrillRecordsAreMarked(t *testing.T) {
	in, err := Open(Options{Spool: spool.Options{Dir: t.TempDir(), NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	line := func(user string) []byte {
		return []byte(`{"@timestamp":"2026-01-01T00:00:00Z","event":{"dataset":"gateway.access","action":"read"},"user":{"id":"` + user + `"}}` + "\n")
	}
	if _, err := in.Append(t.Context(), api.Stored{Scope: DrillScope, Body: line("x")}); err == nil || !strings.Contains(err.Error(), "drill runner") {
		t.Fatalf("a request in the drill scope: %v", err)
	}
	if _, err := in.Append(t.Context(), api.Stored{Scope: "tok-1", Body: line("haechi-drill-spoofed-user")}); err != nil {
		t.Fatal(err)
	}
	if err := in.AppendDrill(t.Context(), "canary-read-1", line("haechi-drill-canary-read-1-user")); err != nil {
		t.Fatal(err)
	}
	if err := in.AppendDrill(t.Context(), "", line("y")); err == nil {
		t.Error("a drill without a run id was stored")
	}
	p := &recordingPipeline{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx, p) }()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		p.mu.Lock()
		n := len(p.ended)
		p.mu.Unlock()
		if n > 0 {
			break
		}
	}
	cancel()
	<-done
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.events) != 2 {
		t.Fatalf("%d events, want 2", len(p.events))
	}
	if ev := p.events[0]; ev.Drill || p.from[0] != "token tok-1" {
		t.Errorf("a request's event: drill %v from %q", ev.Drill, p.from[0])
	}
	if ev := p.events[1]; !ev.Drill || p.from[1] != "drill canary-read-1" {
		t.Errorf("a drill's event: drill %v from %q", ev.Drill, p.from[1])
	}
	if len(p.ended) != 1 || p.ended[0] != "drill canary-read-1" {
		t.Errorf("ended origins %q, want the drill run's", p.ended)
	}
}
