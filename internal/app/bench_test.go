package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident/track"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// repeater yields corpus lines until n lines have been read.
type repeater struct {
	corpus [][]byte
	n, i   int
	buf    []byte
}

func (r *repeater) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.i >= r.n {
			return 0, io.EOF
		}
		r.buf = append(r.corpus[r.i%len(r.corpus)], '\n')
		r.i++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// BenchmarkPipeline measures the whole pipeline — decode → enrich →
// engine → every detector → alert stage — on a simulated day of the
// synthetic company (customers logging in, minting tokens and reading
// their data; staff, services and partners; the six breach scenarios).
// Run with GOMAXPROCS=1 for the one-core figure. cpu-ns/event is the
// process's CPU time (all goroutines) per event: on a shared machine it
// moves far less with other processes' load than ns/op and events/s.
//
// rules=bench50 adds a 50-rule pack (testdata/rulebench: the shipped CEL
// pack, 14 more CEL rules and 30 Sigma rules); its cost is its events/s
// against rules=none (docs/rules.md, Cost).
func BenchmarkPipeline(b *testing.B) {
	b.Run("rules=pack", func(b *testing.B) { benchPipeline(b, func(r *config.Rules) { r.Pack = true }) })
	b.Run("rules=none", func(b *testing.B) { benchPipeline(b, func(r *config.Rules) { r.Pack = false }) })
	b.Run("rules=bench50", func(b *testing.B) { benchPipeline(b, bench50) })
	// HAECHI_BENCH_SIGMA names Sigma rule directories (a list, as PATH) to
	// measure alone, e.g. a checkout of SigmaHQ's rules/web and
	// rules/cloud/aws; the rules haechi cannot load are left out.
	if dirs := os.Getenv("HAECHI_BENCH_SIGMA"); dirs != "" {
		b.Run("rules=sigma-dirs", func(b *testing.B) {
			benchPipeline(b, func(r *config.Rules) { r.Pack, r.SigmaDirs = false, filepath.SplitList(dirs) })
		})
	}
}

// bench50 configures the 50-rule benchmark pack.
func bench50(r *config.Rules) {
	r.Pack = true
	r.Dirs = []string{"testdata/rulebench/cel"}
	r.SigmaDirs = []string{"testdata/rulebench/sigma"}
}

func benchPipeline(b *testing.B, rules func(*config.Rules)) {
	var buf bytes.Buffer
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 1, Days: 1, Customers: 20000}, &buf, nil); err != nil {
		b.Fatal(err)
	}
	corpus := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	var size int
	for _, l := range corpus {
		size += len(l) + 1
	}
	cfg := config.Default()
	rules(&cfg.Rules)
	p, err := app.NewPipeline(app.PipelineOptions{Config: cfg, CanaryIDs: []string{"70000003"}})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	b.SetBytes(int64(size / len(corpus)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	st, err := app.Feed(context.Background(), p, &repeater{corpus: corpus, n: b.N}, 1, 0, nil)
	p.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	}
	if err != nil || st.Events != b.N || st.Rejected != 0 {
		b.Fatalf("fed %+v, err %v", st, err)
	}
	findings, _ := p.Counts()
	if b.N >= len(corpus) && findings == 0 {
		b.Fatal("no findings: the detectors did not run")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReplayStore is BenchmarkPipeline with replay's output side
// (app.Build, ModeReplay: the SQLite store, the alert writer, the ledger
// and the response), with and without the risk index of every scored
// finding, which the alert writer stores off the pipeline's goroutine.
// cpu-ns/event is the process's CPU time per event, the store's writers
// and their last flush included (see BenchmarkPipeline).
func BenchmarkReplayStore(b *testing.B) {
	b.Run("findings=off", func(b *testing.B) { benchReplayStore(b, false) })
	b.Run("findings=on", func(b *testing.B) { benchReplayStore(b, true) })
}

func benchReplayStore(b *testing.B, findings bool) {
	var buf bytes.Buffer
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 1, Days: 1, Customers: 20000}, &buf, nil); err != nil {
		b.Fatal(err)
	}
	corpus := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	var size int
	for _, l := range corpus {
		size += len(l) + 1
	}
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	ctx := context.Background()
	svc, err := app.Build(ctx, app.BuildOptions{Config: cfg, Mode: app.ModeReplay})
	if err != nil {
		b.Fatal(err)
	}
	svc.Start(ctx)
	po := svc.PipelineOptions([]string{"70000003"})
	if !findings {
		po.FindingSinks = nil
	}
	p, err := app.NewPipeline(po)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	b.SetBytes(int64(size / len(corpus)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	st, err := app.Feed(ctx, p, &repeater{corpus: corpus, n: b.N}, 1, 0, nil)
	p.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	// Everything stored: the writer's last batches are part of the cost.
	if err := svc.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	}
	if err != nil || st.Events != b.N || st.Rejected != 0 {
		b.Fatalf("fed %+v, err %v", st, err)
	}
	nf, _ := p.Counts()
	b.ReportMetric(float64(nf)/float64(b.N)*1e6, "findings/Mevent")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestBench50Loads holds the benchmark pack to its name: 50 rules running,
// none skipped.
func TestBench50Loads(t *testing.T) {
	cfg := config.Default()
	bench50(&cfg.Rules)
	rs, err := app.LoadRules(cfg.Rules)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Skipped) > 0 {
		t.Fatalf("skipped: %v", rs.Skipped)
	}
	enabled := 0
	for _, r := range rs.Set.Rules {
		if !r.Disabled {
			enabled++
		}
	}
	if enabled != 50 {
		t.Fatalf("%d rules enabled of %d, want 50", enabled, len(rs.Set.Rules))
	}
}

// writerItem is one thing the pipeline handed the store's sinks: an alert
// (Put) or a scored finding (PutFinding), and a Flush before it.
type writerItem struct {
	alert   *event.Alert
	finding *store.ScoredFinding
	flush   bool
}

// writerWorkload is what the pipeline hands the store's sinks over
// benchWriterDays of the simulated company, in order: recorded once, as
// serve's and replay's sinks would Put it.
var writerWorkload = sync.OnceValues(func() (recorded, error) {
	var buf bytes.Buffer
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 1, Days: benchWriterDays, Customers: 20000}, &buf, nil); err != nil {
		return recorded{}, err
	}
	var items []writerItem
	var mu sync.Mutex
	p, err := app.NewPipeline(app.PipelineOptions{Config: config.Default(), CanaryIDs: []string{"70000003"},
		Sinks: []alert.Sink{alert.SinkFunc(func(_ alert.Change, a event.Alert) {
			mu.Lock()
			items = append(items, writerItem{alert: &a})
			mu.Unlock()
		})},
		FindingSinks: []alert.FindingSink{alert.FindingSinkFunc(func(sc alert.Scored) {
			sf := app.ScoredFinding(sc)
			mu.Lock()
			items = append(items, writerItem{finding: &sf})
			mu.Unlock()
		})}})
	if err != nil {
		return recorded{}, err
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	st, err := app.Feed(context.Background(), p, &buf, 1, 0, nil)
	p.Close()
	if rerr := <-done; err == nil {
		err = rerr
	}
	return recorded{items, st.Events}, err
})

type recorded struct {
	items  []writerItem
	events int
}

// benchWriterDays is the length of BenchmarkAlertWriter's workload.
const benchWriterDays = 7

// BenchmarkAlertWriter measures the store's alert writer alone — the
// alerts and scored findings a week of the simulated company (20,000
// customers, 144 k events) raises, committed in batches with the
// incident keeper (keeper=on, as every entry point runs it) or without
// it — on a SQLite store. A batch is committed every `every` of event
// time (Flush), besides the writer's own size limits: at serve's
// 12–13 k events/s on this workload, its 200 ms flush interval is about
// 3 h of event time. cpu-ns/event is the process's CPU time per event of
// the workload (comparable with haechi bench's CPU-seconds per million
// events).
func BenchmarkAlertWriter(b *testing.B) {
	w, err := writerWorkload()
	if err != nil {
		b.Fatal(err)
	}
	items, events := w.items, w.events
	for _, every := range []time.Duration{3 * time.Hour} {
		// Flushes where the event time passes a multiple of every.
		flushed := make([]writerItem, 0, len(items)+benchWriterDays*24)
		var next time.Time
		for _, it := range items {
			t := it.time()
			if next.IsZero() {
				next = t.Truncate(every).Add(every)
			}
			if !t.Before(next) {
				flushed = append(flushed, writerItem{flush: true})
				next = t.Truncate(every).Add(every)
			}
			flushed = append(flushed, it)
		}
		for _, keep := range []bool{true, false} {
			b.Run(fmt.Sprintf("every=%v/keeper=%v", every, keep), func(b *testing.B) {
				benchAlertWriter(b, flushed, events, keep)
			})
		}
	}
}

func (it writerItem) time() time.Time {
	if it.alert != nil {
		return it.alert.LastTime
	}
	return it.finding.Time
}

func benchAlertWriter(b *testing.B, items []writerItem, events int, keep bool) {
	ctx := context.Background()
	var alerts, flushes int
	for _, it := range items {
		if it.alert != nil {
			alerts++
		}
		if it.flush {
			flushes++
		}
	}
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		var opts store.Options
		if keep {
			opts.Incidents = track.New(track.Options{})
		}
		s, err := store.Open(ctx, b.TempDir(), opts)
		if err != nil {
			b.Fatal(err)
		}
		w := store.NewWriter(s, store.WriterOptions{})
		go func() { _ = w.Run(ctx) }()
		b.StartTimer()
		cpu0 := processCPU()
		for _, it := range items {
			switch {
			case it.flush:
				err = w.Flush(ctx)
			case it.alert != nil:
				err = w.Put(ctx, *it.alert)
			default:
				err = w.PutFinding(ctx, *it.finding)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU() - cpu0
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(events), "cpu-ns/event")
	}
	b.ReportMetric(float64(alerts), "alert-puts")
	b.ReportMetric(float64(flushes), "flushes")
}
