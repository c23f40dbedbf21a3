package app

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/spool"
)

func TestSpoolRecordRoundTrip(t *testing.T) {
	at := time.Unix(1750755603, 123)
	for _, tc := range []struct{ key, format, body string }{{"", "", ""}, {"k-1", "ecs", `{"a":1}` + "\n"}, {"x", "mapping:orders", "line\n\nline"}} {
		r, err := decodeSpoolRecord(encodeSpoolRecord(at, at.Add(time.Hour), tc.key, tc.format, []byte(tc.body)))
		if err != nil || !r.Accepted.Equal(at) || !r.NotAfter.Equal(at.Add(time.Hour)) || r.Key != tc.key || r.Format != tc.format || string(r.Body) != tc.body {
			t.Errorf("%+v: got %+v, %v", tc, r, err)
		}
	}
	if r, err := decodeSpoolRecord(encodeSpoolRecord(at, time.Time{}, "", "", nil)); err != nil || !r.NotAfter.IsZero() {
		t.Errorf("no limit: %+v %v", r, err)
	}
	z8 := []byte{0, 0, 0, 0, 0, 0, 0, 0}
	rec := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	for _, bad := range [][]byte{nil, rec([]byte{2}, z8, z8, []byte{0, 0, 0}), rec([]byte{1}, z8, z8, []byte{9, 0, 'k'}), rec([]byte{1}, z8, z8, []byte{0, 0, 5, 'e'})} {
		if _, err := decodeSpoolRecord(bad); err == nil {
			t.Errorf("decodeSpoolRecord(%v) accepted", bad)
		}
	}
}

// A retried request (same Idempotency-Key) is stored once, also after a
// restart; what was stored waits for the pipeline across the restart.
func TestIngesterIdempotentAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *Ingester {
		in, err := OpenIngester(IngestOptions{Spool: spool.Options{Dir: dir, NoSync: true}})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	in := open()
	for i, c := range []struct {
		key     string
		wantDup bool
	}{{"a", false}, {"b", false}, {"a", true}, {"", false}, {"", false}} {
		dup, err := in.Append(t.Context(), api.Stored{Key: c.key, Body: []byte("{}\n")})
		if err != nil || dup != c.wantDup {
			t.Fatalf("append %d (%q): dup %v, err %v", i, c.key, dup, err)
		}
	}
	if n := in.Pending(); n != 4 {
		t.Errorf("pending %d, want 4", n)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	in = open()
	defer in.Close()
	if dup, err := in.Append(t.Context(), api.Stored{Key: "b", Body: []byte("{}\n")}); err != nil || !dup {
		t.Errorf("after restart: dup %v, err %v", dup, err)
	}
	if n := in.Pending(); n != 4 {
		t.Errorf("pending after restart %d, want 4", n)
	}
}

// faultyFS fails every write while full is set: a full disk.
type faultyFS struct {
	spool.OSFS
	full *atomic.Bool
}

func (f faultyFS) OpenFile(name string, flag int, perm os.FileMode) (spool.File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return faultyFile{File: file, full: f.full}, nil
}

type faultyFile struct {
	spool.File
	full *atomic.Bool
}

func (f faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if f.full.Load() {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(p, off)
}

// A full disk is never acknowledged: Append reports ErrUnavailable (the
// API answers 503) and the ingester is unhealthy until a write succeeds.
func TestIngesterDiskFull(t *testing.T) {
	var full atomic.Bool
	in, err := OpenIngester(IngestOptions{Spool: spool.Options{Dir: t.TempDir(), FS: faultyFS{full: &full}}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := in.Append(t.Context(), api.Stored{Key: "", Body: []byte("{}\n")}); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	_, err = in.Append(t.Context(), api.Stored{Key: "k", Body: []byte("{}\n")})
	if !errors.Is(err, api.ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", err)
	}
	if in.Health() == nil {
		t.Error("healthy after a failed write")
	}
	if dup, err := in.Append(t.Context(), api.Stored{Key: "k", Body: []byte("{}\n")}); err == nil || dup {
		t.Errorf("a failed key was remembered: dup %v err %v", dup, err)
	}
	full.Store(false)
	if _, err := in.Append(t.Context(), api.Stored{Key: "k", Body: []byte("{}\n")}); err != nil {
		t.Fatalf("after the disk recovered: %v", err)
	}
	if err := in.Health(); err != nil {
		t.Errorf("unhealthy after recovery: %v", err)
	}
	if n := in.Pending(); n != 2 {
		t.Errorf("pending %d, want 2 (nothing unacknowledged stored)", n)
	}
}

// Requests waiting longer than MaxLag for the pipeline turn new ones away
// with ErrBusy (429) — but a retry of a stored one is still answered.
func TestIngesterMaxLag(t *testing.T) {
	in, err := OpenIngester(IngestOptions{Spool: spool.Options{Dir: t.TempDir(), NoSync: true}, MaxLag: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if in.Backlog() != 0 {
		t.Fatal("backlog before any request")
	}
	if _, err := in.Append(t.Context(), api.Stored{Key: "a", Body: []byte("{}\n")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if b := in.Backlog(); b < 30*time.Millisecond {
		t.Fatalf("backlog %s", b)
	}
	if _, err := in.Append(t.Context(), api.Stored{Key: "b", Body: []byte("{}\n")}); !errors.Is(err, api.ErrBusy) || !strings.Contains(err.Error(), "behind") {
		t.Fatalf("append while behind: %v", err)
	}
	if dup, err := in.Append(t.Context(), api.Stored{Key: "a", Body: []byte("{}\n")}); err != nil || !dup {
		t.Fatalf("retry of a stored request while behind: dup %v err %v", dup, err)
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
	in, err := OpenIngester(IngestOptions{
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
	p, err := NewPipeline(PipelineOptions{Config: config.Default()})
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
			t.Fatalf("the spool stayed full (%d bytes) with nothing arriving", in.sp.Stats().Bytes)
		}
	}
}
