package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// benchCmd measures haechi on a standard workload (docs/bench.md). Each
// phase runs in a child process — this binary run again as
// `bench --phase …` or `replay` — so its CPU time and peak RSS are its own
// (the child's rusage, read when it exits).
type benchCmd struct {
	Events     string        `placeholder:"FILE" help:"Contract NDJSON workload (default: the simulated company of --seed, --days and --customers)." predictor:"file"`
	Seed       uint64        `default:"1" help:"Simulator seed of the workload."`
	Days       int           `default:"2" help:"Simulated days of the workload."`
	Customers  int           `default:"2000" help:"Simulated customers of the workload."`
	Phases     []string      `default:"serve,replay,replay-no-store,latency" sep:"," placeholder:"PHASE,..." help:"Phases to run, in order: serve (HTTP ingest → spool → pipeline → store and ledger durable), replay (with the store), replay-no-store, latency (probes at half the serve capacity; needs serve)."`
	Batch      int           `default:"1000" placeholder:"N" help:"Events per ingest request."`
	Conns      int           `default:"2" placeholder:"N" help:"Concurrent ingest connections of the serve phase."`
	Steady     time.Duration `default:"10s" placeholder:"DURATION" help:"Length of the latency phase."`
	ProbeEvery time.Duration `default:"250ms" placeholder:"DURATION" help:"Interval between latency probes."`
	Progress   string        `enum:"auto,always,never" default:"auto" help:"Progress on stderr: auto (when stderr is a terminal), always or never."`
	Keep       bool          `help:"Keep the temporary directory (workload, stores, spool) and print its path."`
	CPUProfile string        `name:"cpu-profile" placeholder:"FILE" help:"Write a CPU profile of the serve phase's server to FILE (go tool pprof)." predictor:"file"`
	// CPUProfileReplay profiles the replay phases' children: replay writes
	// FILE, replay-no-store FILE.no-store.
	CPUProfileReplay string `name:"cpu-profile-replay" placeholder:"FILE" help:"Write a CPU profile of the replay phase to FILE and of the replay-no-store phase to FILE.no-store (go tool pprof)." predictor:"file"`
	// MemProfile and MemProfileReplay write the children's heap profiles:
	// FILE as the child exits (every allocation of the run) and
	// FILE.peak at the live heap's peak (see memSampler.heapProfile).
	MemProfile       string `name:"mem-profile" placeholder:"FILE" help:"Write heap profiles of the serve phase's server: FILE as it exits (allocations of the whole run) and FILE.peak at its peak live heap (go tool pprof)." predictor:"file"`
	MemProfileReplay string `name:"mem-profile-replay" placeholder:"FILE" help:"Write heap profiles of the replay phase to FILE and FILE.peak, and of the replay-no-store phase to FILE.no-store and FILE.no-store.peak (go tool pprof)." predictor:"file"`
	// MemProfileDays adds profiles along the stream: with --mem-profile or
	// --mem-profile-replay, FILE.day-D every N days of event time (D the
	// day since the stream's first), after a collection, so that two of
	// them diffed (go tool pprof -base) show what grew in between.
	MemProfileDays int    `name:"mem-profile-days" placeholder:"N" help:"With --mem-profile or --mem-profile-replay, also write FILE.day-D every N days of event time (D counted from the stream's first day; taken after a collection; compare two with go tool pprof -base)."`
	Phase          string `hidden:"" help:"Internal: run one phase as a child process (serve)."`
	HeapProfile    string `hidden:"" help:"Internal: the child's heap profile (--mem-profile)."`
	HeapDays       int    `hidden:"" help:"Internal: the child's --mem-profile-days."`
	outputFlag     `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
}

// probeRecord is the canary record id the latency probes read; every
// phase adds it to detectors.canary.records, so a probe alerts at once.
const probeRecord = "99999999"

// probePrefix starts every probe's principal id.
const probePrefix = "bench-probe-"

// benchResult is haechi bench's report (-o json).
type benchResult struct {
	Workload benchWorkload `json:"workload"`
	Phases   []benchPhase  `json:"phases"`
	Latency  *benchLatency `json:"latency,omitempty"`
}

type benchWorkload struct {
	Source    string `json:"source"` // "simulated" or the file
	Seed      uint64 `json:"seed,omitempty"`
	Days      int    `json:"days,omitempty"`
	Customers int    `json:"customers,omitempty"`
	Events    int64  `json:"events"`
	Bytes     int64  `json:"bytes"`
}

// benchPhase is one phase's figures. EventsPerSec is end to end: for
// serve, from the first request to the store and ledger being durable
// (the server stopped, its last flush done); AcceptedPerSec and
// ProcessedPerSec are the rates at which requests were acknowledged and
// events left the pipeline.
type benchPhase struct {
	Name               string  `json:"name"`
	Events             int64   `json:"events"`
	Seconds            float64 `json:"seconds"`
	EventsPerSec       float64 `json:"events_per_sec"`
	AcceptedPerSec     float64 `json:"accepted_per_sec,omitempty"`
	ProcessedPerSec    float64 `json:"processed_per_sec,omitempty"`
	CPUSeconds         float64 `json:"cpu_seconds"`
	CPUSecondsPerMEvt  float64 `json:"cpu_seconds_per_million_events"`
	PeakRSSBytes       int64   `json:"peak_rss_bytes"`
	LedgerBytes        int64   `json:"ledger_bytes,omitempty"`
	LedgerBytesPerEvt  float64 `json:"ledger_bytes_per_event,omitempty"`
	Busy               int64   `json:"busy_responses,omitempty"` // 429s retried
	StoreFileBytes     int64   `json:"store_file_bytes,omitempty"`
	ChildUserSeconds   float64 `json:"user_seconds"`
	ChildSystemSeconds float64 `json:"system_seconds"`
	// Memory is sampled inside the child every second (docs/bench.md).
	Memory *benchMemory `json:"memory,omitempty"`
	// LedgerEngine is where the phase's store kept the ledger (sqlite or
	// pebble); LedgerDirBytes the pebble ledger's files on disk.
	LedgerEngine   string `json:"ledger_engine,omitempty"`
	LedgerDirBytes int64  `json:"ledger_dir_bytes,omitempty"`
}

// benchLatency is ingest → alert latency of probes at a steady background
// rate: from sending a probe's request to serve's alert stage raising its
// alert (when webhooks and the response start; the store writer saves it
// right after).
type benchLatency struct {
	TargetPerSec   float64 `json:"target_events_per_sec"`
	AchievedPerSec float64 `json:"achieved_events_per_sec"`
	Probes         int     `json:"probes"`
	Alerted        int     `json:"alerted"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	MaxMs          float64 `json:"max_ms"`
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
}

var benchPhases = []string{"serve", "replay", "replay-no-store", "latency"}

func (c *benchCmd) Run(e *env) error {
	if c.Phase != "" {
		return c.child(e)
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if cfg.Store.DSN != "" {
		return usageError{errors.New("bench measures the embedded store in a temporary directory: unset store.dsn (and --store)")}
	}
	if cfg.Kafka.Enabled() {
		return usageError{errors.New("bench measures one node: unset kafka (cluster mode)")}
	}
	for _, p := range c.Phases {
		if !slices.Contains(benchPhases, p) {
			return usageError{fmt.Errorf("--phases: unknown phase %q (known: %s)", p, strings.Join(benchPhases, ", "))}
		}
	}
	if slices.Contains(c.Phases, "latency") && !slices.Contains(c.Phases, "serve") {
		return usageError{errors.New("--phases: latency runs at half the capacity serve measures: add serve before it")}
	}
	if c.Batch <= 0 || c.Conns <= 0 || c.Days <= 0 || c.Customers <= 0 || c.Steady <= 0 || c.ProbeEvery <= 0 {
		return usageError{errors.New("--batch, --conns, --days, --customers, --steady and --probe-every must be positive")}
	}
	progress := c.Progress == "always" || c.Progress == "auto" && isTerminalWriter(e.stderr)
	say := func(format string, args ...any) {
		if progress {
			fmt.Fprintf(e.stderr, "bench: "+format+"\n", args...)
		}
	}

	dir, err := os.MkdirTemp("", "haechi-bench-")
	if err != nil {
		return err
	}
	if c.Keep {
		defer fmt.Fprintf(e.stderr, "bench: kept %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bencher{c: c, e: e, dir: dir, say: say}
	if b.exe, err = os.Executable(); err != nil {
		return fmt.Errorf("find this binary to run its phases: %w", err)
	}

	// The workload, read once into memory (the serve phase posts it).
	var res benchResult
	file := c.Events
	if file == "" {
		file = filepath.Join(dir, "events.ndjson")
		say("generating the workload: seed %d, %d days, %d customers", c.Seed, c.Days, c.Customers)
		if err := generate(e.ctx, file, sim.Options{Seed: c.Seed, Days: c.Days, Customers: c.Customers, Start: b.simStart(0)}); err != nil {
			return err
		}
		res.Workload = benchWorkload{Source: "simulated", Seed: c.Seed, Days: c.Days, Customers: c.Customers}
	} else {
		res.Workload = benchWorkload{Source: file}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	b.file = file
	b.lines = splitLines(data)
	res.Workload.Events, res.Workload.Bytes = int64(len(b.lines)), int64(len(data))
	if len(b.lines) == 0 {
		return usageError{fmt.Errorf("%s holds no events", file)}
	}
	say("workload: %d events, %d MB", len(b.lines), len(data)>>20)

	var capacity float64
	for _, name := range c.Phases {
		if err := e.ctx.Err(); err != nil {
			return err
		}
		switch name {
		case "serve":
			ph, err := b.serve()
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			capacity = ph.ProcessedPerSec
			res.Phases = append(res.Phases, ph)
		case "replay", "replay-no-store":
			ph, err := b.replay(name == "replay")
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			res.Phases = append(res.Phases, ph)
		case "latency":
			lat, err := b.latency(capacity / 2)
			if err != nil {
				return fmt.Errorf("latency: %w", err)
			}
			res.Latency = lat
		}
	}
	return c.print(e, res)
}

func (c *benchCmd) print(e *env, res benchResult) error {
	if c.format(e) == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	w := res.Workload
	if w.Source == "simulated" {
		fmt.Fprintf(e.stdout, "workload: simulated company (seed %d, %d days, %d customers): %d events, %d MB\n", w.Seed, w.Days, w.Customers, w.Events, w.Bytes>>20)
	} else {
		fmt.Fprintf(e.stdout, "workload: %s: %d events, %d MB\n", w.Source, w.Events, w.Bytes>>20)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tevents/s\tCPU-s/M events\tpeak RSS MB\tledger B/event\tseconds\t")
	for _, p := range res.Phases {
		ledger := "-"
		if p.LedgerBytes > 0 {
			ledger = strconv.FormatFloat(p.LedgerBytesPerEvt, 'f', 1, 64)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%d\t%s\t%.1f\t\n", p.Name, p.EventsPerSec, p.CPUSecondsPerMEvt, p.PeakRSSBytes>>20, ledger, p.Seconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printMemory(e.stdout, res.Phases)
	for _, p := range res.Phases {
		if p.Name == "serve" {
			fmt.Fprintf(e.stdout, "serve: requests acknowledged at %.0f events/s, processed at %.0f events/s, store and ledger durable at %.0f events/s (%d answers 429, retried)\n",
				p.AcceptedPerSec, p.ProcessedPerSec, p.EventsPerSec, p.Busy)
		}
	}
	if l := res.Latency; l != nil {
		fmt.Fprintf(e.stdout, "latency at half capacity (%.0f events/s, %.0f achieved): ingest → alert p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d of %d probes\n",
			l.TargetPerSec, l.AchievedPerSec, l.P50Ms, l.P99Ms, l.MaxMs, l.Alerted, l.Probes)
	}
	return nil
}

// bencher is one bench run's state.
type bencher struct {
	c     *benchCmd
	e     *env
	dir   string
	exe   string
	file  string
	lines [][]byte
	say   func(string, ...any)
	runs  int
}

// simStart is the first day of a simulated stream: three days ahead of
// now, so serve's wall clock never makes its events late (the wall clock
// advances idle streams), plus offset days.
func (b *bencher) simStart(offset int) time.Time {
	return time.Now().UTC().Add(72*time.Hour).Truncate(24*time.Hour).AddDate(0, 0, offset)
}

// generate writes the simulated company's events of o to file.
func generate(ctx context.Context, file string, o sim.Options) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := sim.Generate(ctx, o, w, nil); err != nil {
		f.Close()
		return fmt.Errorf("simulate: %w", err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func splitLines(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		if len(bytes.TrimSpace(line)) > 0 {
			out = append(out, line)
		}
		data = rest
	}
	return out
}

// childDir returns a fresh data directory for the next child.
func (b *bencher) childDir(name string) string {
	b.runs++
	return filepath.Join(b.dir, fmt.Sprintf("%d-%s", b.runs, name))
}

// command returns this binary run with the global flags that shape the
// configuration and the given data directory and arguments. The child's
// environment sets HAECHI_TEST_RUN_CLI, which a test binary's TestMain
// reads to run as haechi (the real binary ignores it).
func (b *bencher) command(ctx context.Context, dataDir string, args ...string) *exec.Cmd {
	var g []string
	if b.e.g.Config != "" {
		g = append(g, "--config", b.e.g.Config)
	}
	g = append(g, "--data-dir", dataDir)
	cmd := exec.CommandContext(ctx, b.exe, append(g, args...)...) // #nosec G204 -- b.exe is this binary (os.Executable), args are bench's own phase flags
	cmd.Env = append(os.Environ(), "HAECHI_TEST_RUN_CLI=1")
	return cmd
}

// finish fills a phase's CPU and memory figures from the exited child.
// Its peak RSS is the rusage's only until the child reports its own
// (childPeak): on Linux a child's ru_maxrss includes the parent's RSS at
// the fork, which here holds the workload.
func finish(ph *benchPhase, st *os.ProcessState, events int64, elapsed time.Duration) {
	ph.Events = events
	ph.Seconds = elapsed.Seconds()
	ph.EventsPerSec = float64(events) / elapsed.Seconds()
	ph.ChildUserSeconds = st.UserTime().Seconds()
	ph.ChildSystemSeconds = st.SystemTime().Seconds()
	ph.CPUSeconds = ph.ChildUserSeconds + ph.ChildSystemSeconds
	ph.CPUSecondsPerMEvt = ph.CPUSeconds / float64(events) * 1e6
	ph.PeakRSSBytes = peakRSS(st)
}

// ledgerFigures adds the ledger's stored bytes in dataDir.
func (b *bencher) ledgerFigures(ph *benchPhase, dataDir string) error {
	st, err := store.Open(b.e.ctx, dataDir, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.LedgerBytes(b.e.ctx)
	if err != nil {
		return err
	}
	ph.LedgerBytes = n
	ph.LedgerBytesPerEvt = float64(n) / float64(ph.Events)
	if fi, err := os.Stat(filepath.Join(dataDir, store.FileName)); err == nil {
		ph.StoreFileBytes = fi.Size()
	}
	ph.LedgerEngine = store.LedgerSQLite
	if des, err := os.ReadDir(filepath.Join(dataDir, store.LedgerDirName)); err == nil {
		ph.LedgerEngine = store.LedgerPebble
		for _, de := range des {
			if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() {
				ph.LedgerDirBytes += fi.Size()
			}
		}
	}
	return nil
}

// replay runs `haechi replay` over the workload in a child (bench
// --phase replay, which runs the replay command and reports its peak).
func (b *bencher) replay(withStore bool) (benchPhase, error) {
	name := "replay"
	if !withStore {
		name = "replay-no-store"
	}
	dataDir := b.childDir(name)
	args := []string{"bench", "--phase", name, "--events", b.file}
	if prof := b.c.CPUProfileReplay; prof != "" {
		if !withStore {
			prof += ".no-store"
		}
		abs, err := filepath.Abs(prof)
		if err != nil {
			return benchPhase{}, err
		}
		args = append(args, "--cpu-profile", abs)
	}
	if prof := b.c.MemProfileReplay; prof != "" {
		if !withStore {
			prof += ".no-store"
		}
		abs, err := filepath.Abs(prof)
		if err != nil {
			return benchPhase{}, err
		}
		args = append(args, "--heap-profile", abs)
		if b.c.MemProfileDays > 0 {
			args = append(args, "--heap-days", strconv.Itoa(b.c.MemProfileDays))
		}
	}
	cmd := b.command(b.e.ctx, dataDir, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	b.say("%s: %d events", name, len(b.lines))
	start := time.Now()
	stop := b.ticker(name, start)
	err := cmd.Run()
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return benchPhase{}, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	ph := benchPhase{Name: name}
	finish(&ph, cmd.ProcessState, int64(len(b.lines)), elapsed)
	for line := range strings.Lines(stdout.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "peak "); ok {
			ph.PeakRSSBytes, _ = strconv.ParseInt(v, 10, 64)
		}
		parseMemoryLine(&ph, line)
	}
	if withStore {
		if err := b.ledgerFigures(&ph, dataDir); err != nil {
			return ph, err
		}
	}
	b.say("%s: %.0f events/s", name, ph.EventsPerSec)
	return ph, nil
}

// ticker says every 10 s that a phase is still running.
func (b *bencher) ticker(name string, start time.Time) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				b.say("%s: running for %s", name, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// server is a serve child: `haechi bench --phase serve`.
type benchServer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	base  string
	// alerts receives the wall time at which each probe's alert was raised.
	mu     sync.Mutex
	alerts map[string]time.Time
	done   chan struct{} // stdout ended
	errOut bytes.Buffer
	peak   atomic.Int64 // the child's own peak RSS, reported as it exits
	memory string       // the child's "memory" line, reported as it exits
}

func (b *bencher) startServer(dataDir, profile, heapProfile string) (*benchServer, error) {
	s := &benchServer{alerts: map[string]time.Time{}, done: make(chan struct{})}
	args := []string{"bench", "--phase", "serve"}
	for _, p := range []struct{ flag, file string }{{"--cpu-profile", profile}, {"--heap-profile", heapProfile}} {
		if p.file == "" {
			continue
		}
		abs, err := filepath.Abs(p.file)
		if err != nil {
			return nil, err
		}
		args = append(args, p.flag, abs)
	}
	if heapProfile != "" && b.c.MemProfileDays > 0 {
		args = append(args, "--heap-days", strconv.Itoa(b.c.MemProfileDays))
	}
	s.cmd = b.command(context.WithoutCancel(b.e.ctx), dataDir, args...)
	s.cmd.Stderr = &s.errOut
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 256<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "memory ") {
				s.mu.Lock()
				s.memory = sc.Text()
				s.mu.Unlock()
				continue
			}
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 2 && f[0] == "ready":
				ready <- f[1]
			case len(f) == 2 && f[0] == "peak":
				n, _ := strconv.ParseInt(f[1], 10, 64)
				s.peak.Store(n)
			case len(f) == 3 && f[0] == "alert":
				ns, _ := strconv.ParseInt(f[2], 10, 64)
				s.mu.Lock()
				if _, ok := s.alerts[f[1]]; !ok {
					s.alerts[f[1]] = time.Unix(0, ns)
				}
				s.mu.Unlock()
			}
		}
	}()
	select {
	case s.base = <-ready:
		return s, nil
	case <-s.done:
		s.cmd.Wait()
		return nil, fmt.Errorf("serve did not start: %s", strings.TrimSpace(s.errOut.String()))
	case <-time.After(2 * time.Minute):
		s.cmd.Process.Kill()
		s.cmd.Wait()
		return nil, errors.New("serve did not start in 2 minutes")
	}
}

// stop asks the server to stop (it closes every alert window and flushes
// the store and the ledger) and waits until it has.
func (s *benchServer) stop() error {
	s.stdin.Close()
	<-s.done
	if err := s.cmd.Wait(); err != nil {
		return fmt.Errorf("serve: %w: %s", err, strings.TrimSpace(s.errOut.String()))
	}
	return nil
}

// post sends one body, retrying while the server answers 429; it returns
// how many 429s it saw.
func post(ctx context.Context, client *http.Client, url string, body []byte) (int64, error) {
	var busy int64
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return busy, err
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := client.Do(req)
		if err != nil {
			return busy, err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK, http.StatusAccepted:
			return busy, nil
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			busy++
			select {
			case <-ctx.Done():
				return busy, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		default:
			return busy, fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(msg))
		}
	}
}

// bodies splits lines into request bodies of n lines.
func bodies(lines [][]byte, n int) [][]byte {
	var out [][]byte
	for i := 0; i < len(lines); i += n {
		var buf bytes.Buffer
		for _, l := range lines[i:min(i+n, len(lines))] {
			buf.Write(l)
			buf.WriteByte('\n')
		}
		out = append(out, buf.Bytes())
	}
	return out
}

// serve posts the workload to a serve child as fast as it takes it and
// measures until the store and ledger are durable.
func (b *bencher) serve() (benchPhase, error) {
	dataDir := b.childDir("serve")
	srv, err := b.startServer(dataDir, b.c.CPUProfile, b.c.MemProfile)
	if err != nil {
		return benchPhase{}, err
	}
	defer func() {
		if srv.cmd.ProcessState == nil {
			srv.cmd.Process.Kill()
			srv.cmd.Wait()
		}
	}()
	ctx := b.e.ctx
	base0, err := processed(ctx, srv.base)
	if err != nil {
		return benchPhase{}, err
	}
	bs := bodies(b.lines, b.c.Batch)
	n := int64(len(b.lines))
	b.say("serve: posting %d events in %d requests on %d connections to %s", n, len(bs), b.c.Conns, srv.base)
	client := &http.Client{Timeout: 2 * time.Minute}
	var next, busy, sent atomic.Int64
	errs := make(chan error, b.c.Conns)
	start := time.Now()
	var wg sync.WaitGroup
	for range b.c.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(bs)) || ctx.Err() != nil {
					return
				}
				nb, err := post(ctx, client, srv.base+"/v1/events", bs[i])
				busy.Add(nb)
				if err != nil {
					errs <- err
					return
				}
				sent.Add(int64(bytes.Count(bs[i], []byte("\n"))))
			}
		}()
	}
	stopTick := b.progressLoop("serve", start, func() string {
		p, _ := processed(ctx, srv.base)
		return fmt.Sprintf("%d acknowledged, %d processed of %d", sent.Load(), int64(p-base0), n)
	})
	wg.Wait()
	acked := time.Since(start)
	select {
	case err := <-errs:
		stopTick()
		return benchPhase{}, err
	default:
	}
	// Processed: every event has left the pipeline.
	var done time.Duration
	last, lastChange := -1.0, time.Now()
	for {
		p, err := processed(ctx, srv.base)
		if err != nil {
			stopTick()
			return benchPhase{}, err
		}
		if p-base0 >= float64(n) {
			done = time.Since(start)
			break
		}
		if p != last {
			last, lastChange = p, time.Now()
		} else if time.Since(lastChange) > 2*time.Minute {
			stopTick()
			return benchPhase{}, fmt.Errorf("stuck: %.0f of %d events processed", p-base0, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopTick()
	// Durable: stopping serve flushes the store and the ledger.
	if err := srv.stop(); err != nil {
		return benchPhase{}, err
	}
	durable := time.Since(start)
	ph := benchPhase{Name: "serve", Busy: busy.Load(),
		AcceptedPerSec: float64(n) / acked.Seconds(), ProcessedPerSec: float64(n) / done.Seconds()}
	finish(&ph, srv.cmd.ProcessState, n, durable)
	if p := srv.peak.Load(); p > 0 {
		ph.PeakRSSBytes = p
	}
	parseMemoryLine(&ph, srv.memory)
	if err := b.ledgerFigures(&ph, dataDir); err != nil {
		return ph, err
	}
	b.say("serve: processed at %.0f events/s, durable at %.0f events/s", ph.ProcessedPerSec, ph.EventsPerSec)
	return ph, nil
}

// progressLoop says every 5 s how a phase is going.
func (b *bencher) progressLoop(name string, start time.Time, status func() string) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				b.say("%s: %s: %s", name, time.Since(start).Round(time.Second), status())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// processed reads from serve's /metrics the events the detectors have
// processed (haechi_events_processed_total: counted once every shard an
// event was routed to has processed it).
func processed(ctx context.Context, base string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	const name = "haechi_events_processed_total "
	for sc.Scan() {
		if num, ok := strings.CutPrefix(sc.Text(), name); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil {
				return 0, fmt.Errorf("metrics: %s: %w", name, err)
			}
			return n, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("metrics: haechi_events_processed_total missing")
}

// latency runs a fresh serve child with a simulated background stream at
// rate events/s and a canary probe every --probe-every, and measures from
// sending each probe's request to its alert being raised (the alert can
// be raised before the 200 reaches the client, so the request's own round
// trip is included).
func (b *bencher) latency(rate float64) (*benchLatency, error) {
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return nil, errors.New("no serve capacity measured")
	}
	// The background: enough simulated days for the steady phase, with
	// the workload's customers (a file workload: --customers).
	perDay := float64(len(b.lines)) / float64(max(b.c.Days, 1))
	if b.c.Events != "" {
		perDay = 0
	}
	need := rate * b.c.Steady.Seconds() * 1.2
	days := 1
	if perDay > 0 {
		days = int(math.Ceil(need / perDay))
	}
	file := filepath.Join(b.dir, "background.ndjson")
	var lines [][]byte
	for {
		b.say("latency: generating %d days of background for %.0f events/s over %s", days, rate, b.c.Steady)
		if err := generate(b.e.ctx, file, sim.Options{Seed: b.c.Seed + 1, Days: days, Customers: b.c.Customers, Start: b.simStart(0)}); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		lines = splitLines(data)
		if float64(len(lines)) >= need || days >= 3660 {
			break
		}
		days = int(math.Ceil(float64(days) * need / float64(max(len(lines), 1))))
	}
	bs := bodies(lines, b.c.Batch)

	srv, err := b.startServer(b.childDir("latency"), "", "")
	if err != nil {
		return nil, err
	}
	defer func() {
		if srv.cmd.ProcessState == nil {
			srv.cmd.Process.Kill()
			srv.cmd.Wait()
		}
	}()
	ctx := b.e.ctx
	client := &http.Client{Timeout: time.Minute}
	interval := time.Duration(float64(time.Second) * float64(b.c.Batch) / rate)
	var at atomic.Int64 // the last background body's last event time (unix ns)
	at.Store(lastEventTime(bs[0]).UnixNano())

	// Probes: a canary read by a fresh principal from a fresh address,
	// dated with the background's time.
	acks := map[string]time.Time{}
	var acksMu sync.Mutex
	stopProbes := make(chan struct{})
	var probeWG sync.WaitGroup
	probeWG.Add(1)
	go func() {
		defer probeWG.Done()
		t := time.NewTicker(b.c.ProbeEvery)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopProbes:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			who := fmt.Sprintf("%s%d", probePrefix, i)
			ip := fmt.Sprintf("198.18.%d.%d", (i/250)%250, i%250+1)
			probe := fmt.Sprintf(`{"@timestamp":%q,"event":{"dataset":"gateway.access","action":"member.profile.read"},"user":{"id":%q},"source":{"ip":%q},"records":{"type":"customer","ids":[%q]}}`+"\n",
				time.Unix(0, at.Load()).UTC().Format(time.RFC3339Nano), who, ip, probeRecord)
			sent := time.Now()
			if _, err := post(ctx, client, srv.base+"/v1/events", []byte(probe)); err != nil {
				b.say("latency: probe: %v", err)
				continue
			}
			acksMu.Lock()
			acks[event.EntityKey{Kind: event.EntityPrincipal, ID: who}.String()] = sent
			acksMu.Unlock()
		}
	}()

	b.say("latency: %.0f events/s for %s with a probe every %s", rate, b.c.Steady, b.c.ProbeEvery)
	start := time.Now()
	var sent int64
	var postErr error
	for i := 0; i < len(bs) && time.Since(start) < b.c.Steady && ctx.Err() == nil; i++ {
		tick := time.Now()
		if _, err := post(ctx, client, srv.base+"/v1/events", bs[i]); err != nil {
			postErr = err
			break
		}
		sent += int64(bytes.Count(bs[i], []byte("\n")))
		at.Store(lastEventTime(bs[i]).UnixNano())
		if d := interval - time.Since(tick); d > 0 {
			time.Sleep(d)
		}
	}
	elapsed := time.Since(start)
	close(stopProbes)
	probeWG.Wait()
	if postErr != nil {
		return nil, postErr
	}
	// The last probes' alerts: wait up to 30 s.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		acksMu.Lock()
		srv.mu.Lock()
		all := true
		for k := range acks {
			if _, ok := srv.alerts[k]; !ok {
				all = false
			}
		}
		srv.mu.Unlock()
		acksMu.Unlock()
		if all {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := srv.stop(); err != nil {
		return nil, err
	}
	var lat []time.Duration
	for k, ack := range acks {
		if t, ok := srv.alerts[k]; ok {
			lat = append(lat, t.Sub(ack))
		}
	}
	res := &benchLatency{TargetPerSec: rate, AchievedPerSec: float64(sent) / elapsed.Seconds(),
		Probes: len(acks), Alerted: len(lat), PeakRSSBytes: peakRSS(srv.cmd.ProcessState)}
	if p := srv.peak.Load(); p > 0 {
		res.PeakRSSBytes = p
	}
	if len(lat) == 0 {
		return res, fmt.Errorf("none of %d probes raised an alert", len(acks))
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	res.P50Ms, res.P99Ms, res.MaxMs = q(0.5), q(0.99), float64(lat[len(lat)-1])/float64(time.Millisecond)
	return res, nil
}

// lastEventTime returns the @timestamp of a body's last line.
func lastEventTime(body []byte) time.Time {
	lines := splitLines(body)
	var ev struct {
		T time.Time `json:"@timestamp"`
	}
	if len(lines) > 0 {
		_ = json.Unmarshal(lines[len(lines)-1], &ev)
	}
	return ev.T
}

// child runs one phase inside a child process (bench --phase serve): serve
// on a free loopback port without authentication, printing "ready URL",
// then "alert ENTITY UNIXNANO" for each probe alert raised, until its
// standard input ends.
func (c *benchCmd) child(e *env) error {
	switch c.Phase {
	case "serve":
	case "replay", "replay-no-store":
		return c.replayChild(e)
	default:
		return usageError{fmt.Errorf("--phase %q: want serve, replay or replay-no-store", c.Phase)}
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if e.g.LogLevel == "" {
		cfg.Log.Level = "error"
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.Ingest.MaxFuture = 0
	if err := validate(&cfg); err != nil {
		return err
	}
	ids, err := canaryIDs(cfg, []string{probeRecord})
	if err != nil {
		return err
	}
	if c.CPUProfile != "" {
		stop, err := startCPUProfile(c.CPUProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	sampler := startMemSampler(c.HeapProfile, c.HeapDays)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		// The parent stops serve once everything was processed: the
		// detectors' state then, while /metrics still answers.
		sampler.sample()
		cancel()
	}()
	var mu sync.Mutex
	sink := alert.SinkFunc(func(ch alert.Change, a event.Alert) {
		if ch != alert.Raised || !strings.HasPrefix(a.Entity.ID, probePrefix) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(e.stdout, "alert %s %d\n", a.Entity.String(), time.Now().UnixNano())
	})
	err = app.Serve(ctx, app.ServeOptions{
		Config: cfg, CanaryIDs: ids, InsecureNoAuth: true, Announce: io.Discard,
		Logger: logger(cfg, e.stderr), Sinks: []alert.Sink{sink},
		Ready: func(u string) {
			sampler.setSource(metricsSource(ctx, u))
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(e.stdout, "ready %s\n", u)
		},
	})
	mu.Lock()
	if perr := sampler.stop(e.stdout); err == nil {
		err = perr
	}
	mu.Unlock()
	if p := selfPeakRSS(); p > 0 {
		mu.Lock()
		fmt.Fprintf(e.stdout, "peak %d\n", p)
		mu.Unlock()
	}
	return err
}

// replayChild runs the replay command over --events in this process
// (bench --phase replay|replay-no-store), its alerts discarded, and then
// prints "peak BYTES": this process's own peak RSS.
func (c *benchCmd) replayChild(e *env) error {
	var args []string
	if e.g.Config != "" {
		args = append(args, "--config", e.g.Config)
	}
	if e.g.DataDir != "" {
		args = append(args, "--data-dir", e.g.DataDir)
	}
	args = append(args, "replay", "--progress", "never", "--canary-records", probeRecord)
	if c.Phase == "replay-no-store" {
		args = append(args, "--no-store")
	}
	if c.CPUProfile != "" {
		stop, err := startCPUProfile(c.CPUProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	sampler := startMemSampler(c.HeapProfile, c.HeapDays)
	code := run(e.ctx, append(args, c.Events), io.Discard, e.stderr, func(p *app.Pipeline) { sampler.setSource(pipelineSource(p)) })
	perr := sampler.stop(e.stdout)
	if code != 0 {
		return fmt.Errorf("replay: exit %d", code)
	}
	if perr != nil {
		return perr
	}
	if p := selfPeakRSS(); p > 0 {
		fmt.Fprintf(e.stdout, "peak %d\n", p)
	}
	return nil
}

// startCPUProfile starts profiling this process's CPU into file; the
// returned func stops it and closes the file.
func startCPUProfile(file string) (func(), error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// selfPeakRSS returns this process's peak resident set size in bytes
// (VmHWM of /proc/self/status: this image's own, unlike ru_maxrss), 0
// where there is no /proc.
func selfPeakRSS() int64 { return procStatus("VmHWM:") }

// isTerminalWriter reports whether w is a terminal.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}
