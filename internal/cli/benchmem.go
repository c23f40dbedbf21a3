package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
)

// benchMemory is a phase's memory over time, sampled inside its child:
// resident memory and the Go heap against the stream's event time, and
// each detector's tracked entities and estimated bytes (engine.Footprinter,
// the haechi_detector_* gauges) as the stream ended.
type benchMemory struct {
	Samples   []benchSample   `json:"samples"`
	Days      []benchDay      `json:"days,omitempty"`
	Detectors []benchDetector `json:"detectors,omitempty"`
}

// benchSample is one sample, every second of the phase.
type benchSample struct {
	Seconds   float64   `json:"seconds"`             // since the child started
	EventTime time.Time `json:"event_time,omitzero"` // the engine's watermark
	RSSBytes  int64     `json:"rss_bytes"`           // VmRSS
	HeapLive  int64     `json:"heap_live_bytes"`     // Go heap objects live at the last collection (/gc/heap/live:bytes)
	HeapHeld  int64     `json:"heap_held_bytes"`     // Go heap spans held from the OS (HeapSys − HeapReleased)
}

// benchDay is the peak of one day of event time.
type benchDay struct {
	Day          string `json:"day"`
	PeakRSSBytes int64  `json:"peak_rss_bytes"`
	PeakHeapLive int64  `json:"peak_heap_live_bytes"`
}

// benchDetector is one detector's footprint as the stream ended (before
// its end closed every window).
type benchDetector struct {
	Detector       string  `json:"detector"`
	Entities       int64   `json:"entities"`
	Bytes          int64   `json:"bytes"`
	BytesPerEntity float64 `json:"bytes_per_entity"`
}

// memSampler samples this process every second until stop.
type memSampler struct {
	start  time.Time
	mu     sync.Mutex
	source func() (time.Time, []benchDetector) // nil until the pipeline is known
	mem    benchMemory
	done   chan struct{}
	wg     sync.WaitGroup

	// heapProfile, when set, is where the heap profile goes: written to
	// heapProfile+".peak" whenever a sample's live heap is 1 % above the
	// one last written (so it holds the profile near the peak: the
	// in-use figures are the last collection's, as HeapLive), and to
	// heapProfile by stop (the allocations of the whole run).
	heapProfile string
	peakWritten int64 // the live heap of the last .peak profile
	profErr     error // the first error writing a profile

	// everyDays, when positive (and heapProfile set), also writes
	// heapProfile+".day-D" after a collection once the event time reaches
	// day D = everyDays, 2·everyDays, … of the stream (D counted from the
	// first event time's day).
	everyDays int
	firstDay  time.Time // the first event time's day, zero until known
	nextDay   int       // the next D to write
}

// startMemSampler starts sampling; heapProfile and everyDays are
// memSampler's.
func startMemSampler(heapProfile string, everyDays int) *memSampler {
	s := &memSampler{start: time.Now(), done: make(chan struct{}), heapProfile: heapProfile,
		everyDays: everyDays, nextDay: everyDays}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// setSource names where the event time and the detectors' footprints come
// from.
func (s *memSampler) setSource(f func() (time.Time, []benchDetector)) {
	s.mu.Lock()
	s.source = f
	s.mu.Unlock()
}

func (s *memSampler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	sm := benchSample{Seconds: time.Since(s.start).Seconds(), RSSBytes: selfRSS(),
		HeapHeld: int64(ms.HeapSys) - int64(ms.HeapReleased)}
	if live[0].Value.Kind() == metrics.KindUint64 {
		sm.HeapLive = int64(live[0].Value.Uint64())
	}
	s.mu.Lock()
	src := s.source
	s.mu.Unlock()
	var dets []benchDetector
	if src != nil {
		sm.EventTime, dets = src()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mem.Samples = append(s.mem.Samples, sm)
	if len(dets) > 0 {
		s.mem.Detectors = dets
	}
	if s.heapProfile != "" && s.profErr == nil && sm.HeapLive > s.peakWritten+s.peakWritten/100 {
		s.profErr = writeHeapProfile(s.heapProfile + ".peak")
		s.peakWritten = sm.HeapLive
	}
	if d, ok := s.dueDay(sm.EventTime); ok && s.profErr == nil {
		runtime.GC() // the in-use figures as of now, not of the last cycle
		s.profErr = writeHeapProfile(fmt.Sprintf("%s.day-%d", s.heapProfile, d))
	}
}

// dueDay reports whether event time t reached the next day whose profile
// is due (memSampler.everyDays), and that day; it then moves on to the
// next multiple of everyDays past it. Its caller holds mu.
func (s *memSampler) dueDay(t time.Time) (int, bool) {
	if s.heapProfile == "" || s.everyDays <= 0 || t.IsZero() || t.Year() > 9000 {
		return 0, false
	}
	day := t.UTC().Truncate(24 * time.Hour)
	if s.firstDay.IsZero() {
		s.firstDay = day
	}
	d := int(day.Sub(s.firstDay) / (24 * time.Hour))
	if d < s.nextDay {
		return 0, false
	}
	for s.nextDay <= d {
		s.nextDay += s.everyDays
	}
	return d, true
}

// stop takes a last sample, writes "memory JSON" to w and the whole run's
// heap profile when asked; it returns the first error writing a profile.
func (s *memSampler) stop(w io.Writer) error {
	close(s.done)
	s.wg.Wait()
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.Marshal(&s.mem)
	if err == nil {
		fmt.Fprintf(w, "memory %s\n", b)
	}
	if s.heapProfile != "" && s.profErr == nil {
		s.profErr = writeHeapProfile(s.heapProfile)
	}
	if s.profErr != nil {
		return fmt.Errorf("heap profile: %w", s.profErr)
	}
	return nil
}

// writeHeapProfile writes this process's heap profile (go tool pprof:
// inuse_* as of the last collection, alloc_* since the start) to file,
// through a temporary file renamed into place.
func writeHeapProfile(file string) error {
	f, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// pipelineSource reads replay's pipeline: its watermark and footprints.
func pipelineSource(p *app.Pipeline) func() (time.Time, []benchDetector) {
	return func() (time.Time, []benchDetector) {
		var out []benchDetector
		for _, f := range p.Engine.Footprints() {
			out = append(out, benchDetector{Detector: f.Detector, Entities: f.Entities, Bytes: f.Bytes, BytesPerEntity: f.PerEntity()})
		}
		return p.Engine.Watermark(), out
	}
}

// metricsSource reads serve's /metrics at base: the watermark and the
// haechi_detector_* gauges.
func metricsSource(ctx context.Context, base string) func() (time.Time, []benchDetector) {
	client := &http.Client{Timeout: 5 * time.Second}
	return func() (time.Time, []benchDetector) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
		if err != nil {
			return time.Time{}, nil
		}
		resp, err := client.Do(req)
		if err != nil {
			return time.Time{}, nil
		}
		defer resp.Body.Close()
		return parseMetrics(resp.Body)
	}
}

// parseMetrics reads haechi_watermark_timestamp_seconds and the
// haechi_detector_entities and haechi_detector_bytes gauges from the
// Prometheus text format.
func parseMetrics(r io.Reader) (time.Time, []benchDetector) {
	var wm time.Time
	byName := map[string]*benchDetector{}
	var order []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "haechi_watermark_timestamp_seconds "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f > 0 {
				wm = time.Unix(0, int64(f*1e9)).UTC()
			}
			continue
		}
		for _, m := range []string{"haechi_detector_entities", "haechi_detector_bytes"} {
			rest, ok := strings.CutPrefix(line, m+`{detector="`)
			if !ok {
				continue
			}
			name, val, ok := strings.Cut(rest, `"} `)
			if !ok {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				continue
			}
			d := byName[name]
			if d == nil {
				d = &benchDetector{Detector: name}
				byName[name] = d
				order = append(order, name)
			}
			if m == "haechi_detector_entities" {
				d.Entities = int64(f)
			} else {
				d.Bytes = int64(f)
			}
		}
	}
	var out []benchDetector
	for _, n := range order {
		d := *byName[n]
		if d.Entities > 0 {
			d.BytesPerEntity = float64(d.Bytes) / float64(d.Entities)
		}
		out = append(out, d)
	}
	return wm, out
}

// parseMemoryLine reads a child's "memory JSON" line into ph, with the
// peaks per day of event time.
func parseMemoryLine(ph *benchPhase, line string) {
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "memory ")
	if !ok {
		return
	}
	var m benchMemory
	if json.Unmarshal([]byte(v), &m) != nil {
		return
	}
	m.Days = daysOf(m.Samples)
	ph.Memory = &m
}

// daysOf returns the peaks per day of event time (samples before the
// first event time are left out).
func daysOf(samples []benchSample) []benchDay {
	var days []benchDay
	idx := map[string]int{}
	for _, s := range samples {
		if s.EventTime.IsZero() || s.EventTime.Year() > 9000 {
			continue
		}
		d := s.EventTime.UTC().Format(time.DateOnly)
		i, ok := idx[d]
		if !ok {
			i = len(days)
			idx[d] = i
			days = append(days, benchDay{Day: d})
		}
		days[i].PeakRSSBytes = max(days[i].PeakRSSBytes, s.RSSBytes)
		days[i].PeakHeapLive = max(days[i].PeakHeapLive, s.HeapLive)
	}
	slices.SortFunc(days, func(a, b benchDay) int { return strings.Compare(a.Day, b.Day) })
	return days
}

// selfRSS returns this process's resident set size in bytes (VmRSS of
// /proc/self/status), 0 where there is no /proc.
func selfRSS() int64 { return procStatus("VmRSS:") }

// procStatus reads one kB field of /proc/self/status in bytes.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return n << 10
		}
	}
	return 0
}

// printMemory writes the phases' memory: resident memory's peak per week
// of event time (and the last day), and each detector's footprint.
func printMemory(w io.Writer, phases []benchPhase) {
	for _, p := range phases {
		m := p.Memory
		if m == nil || len(m.Days) == 0 {
			continue
		}
		var parts []string
		for i := 0; i < len(m.Days); i += 7 {
			wk := m.Days[i:min(i+7, len(m.Days))]
			var rss, heap int64
			for _, d := range wk {
				rss, heap = max(rss, d.PeakRSSBytes), max(heap, d.PeakHeapLive)
			}
			parts = append(parts, fmt.Sprintf("%s… %d/%d", wk[0].Day, rss>>20, heap>>20))
		}
		fmt.Fprintf(w, "%s: peak RSS/live Go heap MiB by week of event time: %s\n", p.Name, strings.Join(parts, ", "))
	}
	for _, p := range phases {
		if p.Memory == nil || len(p.Memory.Detectors) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s: detectors' state as the stream ended\n", p.Name)
		var tot benchDetector
		for _, d := range p.Memory.Detectors {
			fmt.Fprintf(w, "  %-22s %9d entities %9.1f MiB %7.0f B/entity\n", d.Detector, d.Entities, float64(d.Bytes)/(1<<20), d.BytesPerEntity)
			tot.Entities += d.Entities
			tot.Bytes += d.Bytes
		}
		fmt.Fprintf(w, "  %-22s %9d entities %9.1f MiB\n", "all", tot.Entities, float64(tot.Bytes)/(1<<20))
		break // the detectors are the same in every phase
	}
}
