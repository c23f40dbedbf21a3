package ingest_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ingest"
	"github.com/haechi-sec/haechi/internal/spool"
)

// These tests feed app's pipeline (the real detectors and alerts), so they
// are outside the package: app imports ingest.

// The consumer skips only a true duplicate — a record with the scope, key
// and body of one consumed within the TTL before it — and processes every
// other record: another token's batch under the same key, and a key reused
// with another body that reached the spool (pre-upgrade spools, an expired
// key) are detected, not dropped.
func TestIngesterConsumesEveryScope(t *testing.T) {
	canaryRead := func(principal string) []byte {
		return []byte(`{"@timestamp":"2025-06-24T09:00:00Z","event":{"dataset":"gateway.access","action":"member.profile.read","outcome":"success"},` +
			`"user":{"id":"` + principal + `"},"records":{"type":"customer","ids":["canary-1"]}}` + "\n")
	}
	dir := t.TempDir()
	sp, err := spool.Open(spool.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	rec := func(scope, key string, body []byte, at time.Time) []byte {
		return ingest.EncodeRecord(at, scope, key, body)
	}
	a, b, c, d, e := canaryRead("m:a"), canaryRead("m:b"), canaryRead("m:c"), canaryRead("m:d"), canaryRead("m:e")
	if _, _, err := sp.Append(t.Context(),
		rec("tok-a", "batch-1", a, at),
		rec("tok-b", "batch-1", b, at),                   // another token: processed
		rec("tok-a", "batch-1", c, at),                   // same token, another body (a pre-upgrade race): processed
		rec("tok-a", "batch-1", a, at),                   // a true duplicate: skipped
		rec("", "batch-1", d, at),                        // anonymous: processed
		rec("tok-b", "batch-1", e, at.Add(25*time.Hour)), // after tok-b's key expired: processed
	); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	in, err := ingest.Open(ingest.Options{Spool: spool.Options{Dir: dir, NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var (
		mu    sync.Mutex
		fired = map[string]int{}
	)
	p, err := app.NewPipeline(app.PipelineOptions{Config: config.Default(), CanaryIDs: []string{"canary-1"},
		Sinks: []alert.Sink{alert.SinkFunc(func(ch alert.Change, al event.Alert) {
			if ch == alert.Raised {
				mu.Lock()
				fired[al.Entity.ID]++
				mu.Unlock()
			}
		})}})
	if err != nil {
		t.Fatal(err)
	}
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- p.Run(context.Background()) }()
	ctx, stop := context.WithCancel(t.Context())
	consumed := make(chan error, 1)
	go func() { consumed <- in.Run(ctx, p) }()
	for deadline := time.Now().Add(10 * time.Second); in.Pending() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the consumer did not take the spool")
		}
	}
	stop()
	if err := <-consumed; err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := <-pipeDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, who := range []string{"m:a", "m:b", "m:c", "m:d", "m:e"} {
		if fired[who] != 1 {
			t.Errorf("canary alerts for %s: %d, want 1 (all: %v)", who, fired[who], fired)
		}
	}
}

// A spool that filled up in a burst empties once the ledger has stored
// what it touched, even when nothing more arrives: every request was
// consumed before the ledger reported it durable, so retention must go on
// while the consumer waits — before, ingest answered 429 until a request
// small enough for the space left came in.
func TestIngesterRetainsWhileIdle(t *testing.T) {
	var durable atomic.Uint64
	body := []byte(strings.Repeat(`{"@timestamp":"2025-06-02T00:00:00Z","event":{"dataset":"gateway.access","action":"member.profile.read","outcome":"success"},"user":{"id":"m:1"}}`+"\n", 40))
	in, err := ingest.Open(ingest.Options{
		Spool:       spool.Options{Dir: t.TempDir(), NoSync: true, SegmentBytes: 16 << 10, MaxBytes: 64 << 10},
		RetainBytes: 8 << 10,
		Durable:     durable.Load,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for in.Admit(int64(len(body))) == nil {
		if _, err := in.Append(t.Context(), api.Stored{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := app.NewPipeline(app.PipelineOptions{Config: config.Default()})
	if err != nil {
		t.Fatal(err)
	}
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- p.Run(context.Background()) }()
	ctx, stop := context.WithCancel(t.Context())
	consumed := make(chan error, 1)
	go func() { consumed <- in.Run(ctx, p) }()
	defer func() {
		stop()
		if err := <-consumed; err != nil {
			t.Error(err)
		}
		p.Close()
		<-pipeDone
	}()
	for deadline := time.Now().Add(10 * time.Second); in.Pending() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the consumer did not take the spool")
		}
	}
	if err := in.Admit(int64(len(body))); !errors.Is(err, api.ErrBusy) {
		t.Fatalf("admitted before the ledger stored anything: %v", err)
	}
	durable.Store(1 << 62) // the ledger has stored everything handed over
	for deadline := time.Now().Add(5 * time.Second); in.Admit(int64(len(body))) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the spool stayed full (%d bytes) with nothing arriving", in.SpoolBytes())
		}
	}
}
