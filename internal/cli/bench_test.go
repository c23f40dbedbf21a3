package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/sim"
)

// benchReport is the part of haechi bench -o json the tests read.
type benchReport struct {
	Workload struct {
		Source string
		Events int64
	}
	Phases []struct {
		Name                       string
		Events                     int64
		EventsPerSec               float64 `json:"events_per_sec"`
		ProcessedPerSec            float64 `json:"processed_per_sec"`
		CPUSeconds                 float64 `json:"cpu_seconds"`
		CPUSecondsPerMillionEvents float64 `json:"cpu_seconds_per_million_events"`
		PeakRSSBytes               int64   `json:"peak_rss_bytes"`
		LedgerBytes                int64   `json:"ledger_bytes"`
		LedgerBytesPerEvent        float64 `json:"ledger_bytes_per_event"`
		Memory                     *benchMemoryReport
		LedgerEngine               string `json:"ledger_engine"`
		LedgerDirBytes             int64  `json:"ledger_dir_bytes"`
	}
	Latency *struct {
		TargetPerSec float64 `json:"target_events_per_sec"`
		Probes       int
		Alerted      int
		P50Ms        float64 `json:"p50_ms"`
		P99Ms        float64 `json:"p99_ms"`
	}
}

// haechi bench on a small simulated company runs every phase in a child
// process (this test binary, as haechi: TestMain) and reports each phase's
// own figures; the ledger is measured where it is written, and every
// probe at half the serve capacity alerts. No figure is asserted beyond
// being measured: timing belongs to benchmarks.
func TestBenchSimulated(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts serve and replay in child processes")
	}
	t.Chdir(t.TempDir())
	code, stdout, stderr := run(t, "bench", "--days", "1", "--customers", "300", "--batch", "200",
		"--steady", "1s", "--probe-every", "100ms", "--progress", "never", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r benchReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if r.Workload.Source != "simulated" || r.Workload.Events == 0 {
		t.Fatalf("workload %+v", r.Workload)
	}
	var names []string
	for _, p := range r.Phases {
		names = append(names, p.Name)
		if p.Events != r.Workload.Events || p.EventsPerSec <= 0 || p.CPUSeconds <= 0 || p.CPUSecondsPerMillionEvents <= 0 || p.PeakRSSBytes <= 0 {
			t.Errorf("phase %s: %+v", p.Name, p)
		}
		if stored := p.Name != "replay-no-store"; stored != (p.LedgerBytes > 0 && p.LedgerBytesPerEvent > 0) {
			t.Errorf("phase %s: ledger %d bytes (%.1f per event)", p.Name, p.LedgerBytes, p.LedgerBytesPerEvent)
		}
		checkBenchMemory(t, p.Name, p.Memory)
		if p.Name == "serve" && (p.ProcessedPerSec < p.EventsPerSec) {
			t.Errorf("serve processed at %.0f events/s, durable at %.0f: durable cannot come first", p.ProcessedPerSec, p.EventsPerSec)
		}
	}
	if got := strings.Join(names, ","); got != "serve,replay,replay-no-store" {
		t.Errorf("phases %s", got)
	}
	l := r.Latency
	if l == nil || l.Probes == 0 || l.Alerted != l.Probes || l.P99Ms < l.P50Ms || l.TargetPerSec <= 0 {
		t.Errorf("latency %+v", l)
	}
}

// benchMemoryReport is a phase's memory in haechi bench -o json.
type benchMemoryReport struct {
	Samples []struct {
		EventTime string `json:"event_time"`
		RSSBytes  int64  `json:"rss_bytes"`
		HeapLive  int64  `json:"heap_live_bytes"`
	}
	Days []struct {
		Day          string
		PeakRSSBytes int64 `json:"peak_rss_bytes"`
	}
	Detectors []struct {
		Detector       string
		Entities       int64
		Bytes          int64
		BytesPerEntity float64 `json:"bytes_per_entity"`
	}
}

// checkBenchMemory: a phase's child sampled its resident memory and Go
// heap against event time, and reported its detectors' footprints.
func checkBenchMemory(t *testing.T, phase string, m *benchMemoryReport) {
	t.Helper()
	if m == nil || len(m.Samples) == 0 || len(m.Days) == 0 {
		t.Errorf("phase %s: memory %+v", phase, m)
		return
	}
	var live int64
	for _, s := range m.Samples {
		if s.RSSBytes <= 0 || s.HeapLive < 0 {
			t.Errorf("phase %s: sample %+v", phase, s)
		}
		live = max(live, s.HeapLive)
	}
	if live == 0 {
		t.Errorf("phase %s: no sample after a collection: %+v", phase, m.Samples)
	}
	found := false
	for _, d := range m.Detectors {
		if d.Entities < 0 || d.Bytes < 0 {
			t.Errorf("phase %s: detector %+v", phase, d)
		}
		if d.Detector == "token_provenance" {
			// Replay reports the state as the stream ended; serve what
			// its /metrics last said, which a run of a few seconds may
			// have sampled before the first token.
			found = phase == "serve" || d.Entities > 0 && d.Bytes > 0 && d.BytesPerEntity > 0
		}
	}
	if !found {
		t.Errorf("phase %s: token_provenance's footprint missing from %+v", phase, m.Detectors)
	}
}

// With store.ledger_engine: pebble in the configuration, serve and replay
// (children given the same --config) keep the ledger in pebble, and the
// report says so and measures it there.
func TestBenchPebbleLedger(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts serve and replay in child processes")
	}
	t.Chdir(t.TempDir())
	if err := os.WriteFile("pebble.yaml", []byte("store:\n  ledger_engine: pebble\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "--config", "pebble.yaml", "bench", "--days", "1", "--customers", "300", "--batch", "200",
		"--phases", "serve,replay", "--progress", "never", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r benchReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(r.Phases) != 2 {
		t.Fatalf("phases %+v", r.Phases)
	}
	for _, p := range r.Phases {
		if p.LedgerEngine != "pebble" || p.LedgerDirBytes <= 0 || p.LedgerBytes <= 0 {
			t.Errorf("phase %s: ledger engine %q, %d bytes on disk, %d stored", p.Name, p.LedgerEngine, p.LedgerDirBytes, p.LedgerBytes)
		}
	}
}

// A file workload: replay phases only, the table, the phases' order as
// given, and each replay phase's CPU and heap profiles
// (--cpu-profile-replay, --mem-profile-replay).
func TestBenchFile(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts replay in child processes")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	var buf bytes.Buffer
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 3, Days: 1, Customers: 200}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "events.ndjson")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "bench", "--events", file, "--phases", "replay-no-store,replay", "--progress", "never",
		"--cpu-profile-replay", "replay.cpu", "--mem-profile-replay", "replay.heap")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, prof := range []string{"replay.cpu", "replay.cpu.no-store", "replay.heap", "replay.heap.peak", "replay.heap.no-store", "replay.heap.no-store.peak"} {
		// A pprof profile is gzipped protobuf.
		if b, err := os.ReadFile(filepath.Join(dir, prof)); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: not a profile (%d bytes, %v)", prof, len(b), err)
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) < 8 || !strings.HasPrefix(lines[4], "replay-no-store: peak RSS/live Go heap MiB by week of event time: ") ||
		!strings.HasPrefix(lines[5], "replay: peak RSS/live Go heap MiB by week of event time: ") ||
		!strings.HasPrefix(lines[6], "replay-no-store: detectors' state as the stream ended") ||
		!strings.HasPrefix(strings.TrimSpace(lines[len(lines)-1]), "all ") {
		t.Errorf("memory:\n%s", stdout)
	}
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "workload: "+file+": ") ||
		!strings.Contains(lines[1], "events/s") || !strings.Contains(lines[1], "ledger B/event") ||
		!strings.HasPrefix(strings.TrimSpace(lines[2]), "replay-no-store ") || !strings.HasPrefix(strings.TrimSpace(lines[3]), "replay ") {
		t.Errorf("table:\n%s", stdout)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--phases", "latency"},
		{"bench", "--phases", "replay,nope"},
		{"bench", "--batch", "0"},
		{"bench", "-o", "csv"},
	} {
		if code, _, stderr := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
}

// An events file that cannot be read is a failure while running (exit 1),
// said once: "haechi bench: open …", not "haechi bench: bench: open …".
func TestBenchMissingEvents(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.ndjson")
	code, _, stderr := run(t, "bench", "--events", missing, "--progress", "never")
	if code != 1 {
		t.Errorf("exit %d, want 1: %s", code, stderr)
	}
	if want := "haechi bench: open " + missing + ": no such file or directory\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}
