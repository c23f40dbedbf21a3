package app_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/sim"
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
