package faulttrial

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/sim"
)

// TestOverload drives serve beyond its capacity over loopback HTTP and
// checks that it answers 429 instead of growing without bound, that its
// lag is visible in /metrics and returns to zero after the burst; then, at
// half the measured capacity, it measures ingest → alert latency with
// canary probes. HAECHI_OVERLOAD_SECONDS sets the burst (default 6 s; the
// closing note's figures come from a longer run).
func TestOverload(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("overload: not in -short or under -race (the plain go test run has it)")
	}
	burst := time.Duration(envInt(t, "HAECHI_OVERLOAD_SECONDS", 6)) * time.Second
	var buf bytes.Buffer
	start := time.Now().UTC().Add(72 * time.Hour).Truncate(24 * time.Hour)
	if _, err := sim.Generate(t.Context(), sim.Options{Seed: 11, Days: 2, Customers: 40000, Start: start}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	bodies := split(buf.Bytes(), 1000)
	perBody := float64(bytes.Count(buf.Bytes(), []byte("\n"))) / float64(len(bodies))

	dir := os.Getenv("HAECHI_OVERLOAD_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	cfgPath := filepath.Join(dir, "haechi.yaml")
	// A small spool, so the burst fills it and 429s begin.
	cfg := fmt.Sprintf(`data_dir: %q
listen: 127.0.0.1:0
ingest:
  max_future: 720h
spool:
  max_bytes: 67108864
  segment_bytes: 16777216
  retain_bytes: 16777216
detectors:
  canary:
    records: ["99999999"]
`, filepath.Join(dir, "data"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, cfgPath, filepath.Join(dir, "serve.log"))
	defer srv.stop(t)

	// Burst: posters as fast as they can, cycling through the bodies.
	var ok, busy, other atomic.Int64
	var peakRSS, peakPending atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	next := atomic.Int64{}
	client := &http.Client{Timeout: time.Minute}
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1)) % len(bodies)
				resp, err := client.Post(srv.base+"/v1/events", "application/x-ndjson", bytes.NewReader(bodies[i]))
				if err != nil {
					other.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					busy.Add(1)
					time.Sleep(5 * time.Millisecond)
				default:
					other.Add(1)
				}
			}
		}()
	}
	m0 := metrics(t, srv.base)
	t0 := time.Now()
	var maxLag float64
	for time.Since(t0) < burst {
		time.Sleep(200 * time.Millisecond)
		peakRSS.Store(max(peakRSS.Load(), rss(t, srv.cmd.Process.Pid)))
		m := metrics(t, srv.base)
		peakPending.Store(max(peakPending.Load(), int64(m["haechi_spool_pending_records"])))
		maxLag = max(maxLag, m["haechi_spool_lag_seconds"])
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(t0)
	m1 := metrics(t, srv.base)
	processed := m1["haechi_events_processed_total"] - m0["haechi_events_processed_total"]
	capacity := processed / elapsed.Seconds()
	accepted := float64(ok.Load()) * perBody / elapsed.Seconds()

	// Recovery: the backlog drains and the lag returns to zero.
	t1 := time.Now()
	waitDrained(t, srv.base)
	recovered := time.Since(t1)
	if lag := metrics(t, srv.base)["haechi_spool_lag_seconds"]; lag != 0 {
		t.Errorf("lag %v s after the backlog drained", lag)
	}
	t.Logf("burst %s: %d requests accepted (%.0f events/s), %d answered 429, %d other; processed %.0f events/s",
		elapsed.Round(time.Millisecond), ok.Load(), accepted, busy.Load(), other.Load(), capacity)
	t.Logf("peak RSS %d MiB, peak backlog %d requests, peak spool lag %.1f s, drained %s after the burst",
		peakRSS.Load()>>10, peakPending.Load(), maxLag, recovered.Round(time.Millisecond))
	if other.Load() > 0 {
		t.Errorf("%d requests failed with something other than 200 or 429", other.Load())
	}
	if peakRSS.Load() > 2<<20 { // KiB: 2 GiB
		t.Errorf("peak RSS %d MiB: memory grew without bound", peakRSS.Load()>>10)
	}

	// Half capacity: a steady rate, with a canary probe from a fresh
	// address every 250 ms; latency is from the probe's 200 to its alert
	// being listed by the API.
	rate := capacity / 2
	interval := time.Duration(float64(time.Second) * perBody / rate)
	var lat []time.Duration
	var latMu sync.Mutex
	var probes sync.WaitGroup
	steady := 2 * burst
	t2 := time.Now()
	lastProbe := time.Time{}
	for i := 0; time.Since(t2) < steady; i++ {
		tick := time.Now()
		resp, err := client.Post(srv.base+"/v1/events", "application/x-ndjson", bytes.NewReader(bodies[i%len(bodies)]))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if time.Since(lastProbe) >= 250*time.Millisecond {
			lastProbe = time.Now()
			ip := fmt.Sprintf("198.18.%d.%d", (i/250)%250, i%250+1)
			who := fmt.Sprintf("m:probe-%d", i)
			probe := fmt.Sprintf(`{"@timestamp":%q,"event":{"dataset":"gateway.access","action":"member.profile.read"},"user":{"id":%q},"source":{"ip":%q},"records":{"type":"customer","ids":["99999999"]}}`+"\n",
				lastTime(bodies[i%len(bodies)]).Format(time.RFC3339Nano), who, ip)
			resp, err := client.Post(srv.base+"/v1/events", "application/x-ndjson", strings.NewReader(probe))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				acked := time.Now()
				probes.Add(1)
				go func() {
					defer probes.Done()
					if d, ok := waitAlert(srv.base, "principal:"+who, acked); ok {
						latMu.Lock()
						lat = append(lat, d)
						latMu.Unlock()
					}
				}()
			}
		}
		if sleep := interval - time.Since(tick); sleep > 0 {
			time.Sleep(sleep)
		}
	}
	probes.Wait()
	if len(lat) == 0 {
		t.Fatal("no canary probe raised an alert")
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	t.Logf("at half capacity (%.0f events/s): ingest → alert latency over %d probes: p50 %s, p99 %s, max %s",
		rate, len(lat), p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
}

// waitAlert polls the API until an alert about entity is listed.
func waitAlert(base, entity string, since time.Time) (time.Duration, bool) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/v1/alerts?limit=5&entity=" + entity)
		if err == nil {
			var list struct{ Alerts []json.RawMessage }
			json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			if len(list.Alerts) > 0 {
				return time.Since(since), true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, false
}

// rss returns the process's peak resident set size in KiB (VmHWM).
func rss(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// lastTime returns the @timestamp of a body's last line: a probe dated so
// is in step with the traffic around it.
func lastTime(body []byte) time.Time {
	lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
	var ev struct {
		T time.Time `json:"@timestamp"`
	}
	json.Unmarshal(lines[len(lines)-1], &ev)
	return ev.T
}
