package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/gateway"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/loadgen"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/store"
)

// TestOpenLoopServer is the server side of BenchmarkCheckOpenLoop, run in
// a child process (loadgen.StartChild) so that its CPU time is its own: the
// API as serve mounts it — access control with a verify token in a SQLite
// store, metrics — over a registry of 65k tokens. Outside a benchmark it
// has nothing to do.
func TestOpenLoopServer(t *testing.T) {
	if loadgen.ChildMode() != "http" {
		t.Skip("the server of BenchmarkCheckOpenLoop (run only as its child process)")
	}
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, _, err := auth.CreateToken(t.Context(), st, auth.RoleVerify, "bench gateway", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reg := mint.New(mint.Options{MaxLifetime: 12 * time.Hour})
	reg.Observe(&event.Event{Time: t0.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	for i := range 1 << 16 {
		reg.Add(mint.Mint{TokenID: fmt.Sprintf("tok-%d", i), KeyID: "k1", At: t0.Add(-time.Hour)})
	}
	authn := auth.New(auth.Options{Store: st, CacheTTL: time.Second}) // as serve
	defer authn.Close()
	preg := prometheus.NewRegistry()
	// Refusals are kept as serve's refusal recorder keeps them (appended
	// under a lock, at most 8192, taken every second); here they are
	// then dropped.
	var refusedMu sync.Mutex
	var refused []mint.Query
	go func() {
		for range time.Tick(time.Second) {
			refusedMu.Lock()
			refused = refused[:0]
			refusedMu.Unlock()
		}
	}()
	h := api.New(api.Options{Auth: authn, Registerer: preg, Gatherer: preg,
		Verify: api.VerifyOptions{Registry: reg, Rate: 1e9, Burst: 1 << 20, OnRefuse: func(q mint.Query, _ mint.Answer) {
			refusedMu.Lock()
			if len(refused) < 8192 {
				refused = append(refused, q)
			}
			refusedMu.Unlock()
		}}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go srv.Serve(l)
	defer srv.Close()
	if p := os.Getenv("HAECHI_BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	loadgen.Announce(l.Addr().String() + " " + tok)
	loadgen.WaitParent()
}

// benchRates are the offered loads of an open-loop benchmark: the
// comma-separated HAECHI_BENCH_RATES, else 10k, 25k and 50k checks/s.
func benchRates(b *testing.B) []float64 {
	s := os.Getenv("HAECHI_BENCH_RATES")
	if s == "" {
		s = "10000,25000,50000"
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			b.Fatalf("HAECHI_BENCH_RATES: %q is not a rate", f)
		}
		out = append(out, r)
	}
	return out
}

// benchDuration is how long each offered load lasts:
// HAECHI_BENCH_DURATION, else 3s.
func benchDuration(b *testing.B) time.Duration {
	if s := os.Getenv("HAECHI_BENCH_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("HAECHI_BENCH_DURATION: %v", err)
		}
		return d
	}
	return 3 * time.Second
}

// BenchmarkCheckOpenLoop offers a fixed load of checks over HTTP on
// loopback to the API server in a child process (TestOpenLoopServer),
// open loop (internal/loadgen: latency from each check's release by the
// pacer), at each rate of HAECHI_BENCH_RATES for HAECHI_BENCH_DURATION, with
// 64 keep-alive connections. Half the tokens are minted, half forged.
// Paths: "checker" is gateway.Checker.Check (the Go middleware's request:
// one GET /v1/verify/auth-request per check, nginx's form too),
// "checker-batch" the same with MaxBatch 256 and 4 senders
// (POST /v1/verify/batch), "checker-stream" the Checker's default (two
// persistent streams, GET /v1/verify/stream), "checker-stream1" the same
// over one stream, "post-json" a POST /v1/verify with a JSON body
// (curl's form), and "noop" no check at all: the generator's own CPU. Reports
// checks/s answered, p50/p99 latency from release (p50-µs, p99-µs) and
// from schedule (sched-…), the pacer's p99 lateness (late-p99-µs), p99
// service time, and the server's
// and the client's CPU per check. Each sub-benchmark runs its load once,
// whatever b.N: run with -benchtime 1x.
func BenchmarkCheckOpenLoop(b *testing.B) {
	child, err := loadgen.StartChild("TestOpenLoopServer", "http")
	if err != nil {
		b.Fatal(err)
	}
	defer child.Stop()
	addr, tok, _ := strings.Cut(child.Addr, " ")
	base := "http://" + addr
	const workers = 64
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers
	client := &http.Client{Transport: tr}
	chk, err := gateway.New(gateway.Options{URL: base, APIToken: tok, Timeout: time.Second, Client: client, Streams: -1})
	if err != nil {
		b.Fatal(err)
	}
	batched, err := gateway.New(gateway.Options{URL: base, APIToken: tok, Timeout: time.Second, Client: client, MaxBatch: 256, Senders: 4, Streams: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer batched.Close()
	streamed, err := gateway.New(gateway.Options{URL: base, APIToken: tok, Timeout: time.Second}) // the default: 2 streams
	if err != nil {
		b.Fatal(err)
	}
	defer streamed.Close()
	streamed1, err := gateway.New(gateway.Options{URL: base, APIToken: tok, Timeout: time.Second, Streams: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer streamed1.Close()
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "203.0.113.7:50123"
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
	ids := make([]string, 1<<12)
	for i := range ids {
		ids[i] = fmt.Sprintf("tok-%d", i*13)
		if i%2 == 1 {
			ids[i] = fmt.Sprintf("forged-%d", i)
		}
	}
	only := os.Getenv("HAECHI_BENCH_PATHS") // comma-separated; empty: all
	paths := []struct {
		name string
		do   func(i int) error
	}{
		{"noop", func(int) error { return nil }}, // the generator's own cost
		{"checker", func(i int) error {
			_, err := chk.Check(context.Background(), req, gateway.Token{ID: ids[i&(len(ids)-1)], KeyID: "k1", IssuedAt: t0.Add(-time.Hour)})
			return err
		}},
		{"checker-batch", func(i int) error {
			_, err := batched.Check(context.Background(), req, gateway.Token{ID: ids[i&(len(ids)-1)], KeyID: "k1", IssuedAt: t0.Add(-time.Hour)})
			return err
		}},
		{"checker-stream", func(i int) error {
			_, err := streamed.Check(context.Background(), req, gateway.Token{ID: ids[i&(len(ids)-1)], KeyID: "k1", IssuedAt: t0.Add(-time.Hour)})
			return err
		}},
		{"checker-stream1", func(i int) error {
			_, err := streamed1.Check(context.Background(), req, gateway.Token{ID: ids[i&(len(ids)-1)], KeyID: "k1", IssuedAt: t0.Add(-time.Hour)})
			return err
		}},
		{"post-json", func(i int) error {
			body := fmt.Sprintf(`{"token_id":%q,"key_id":"k1","issued_at":%q,"source_ip":"203.0.113.7","user_agent":%q}`,
				ids[i&(len(ids)-1)], t0.Add(-time.Hour).Format(time.RFC3339), req.UserAgent())
			r, _ := http.NewRequest(http.MethodPost, base+"/v1/verify", strings.NewReader(body))
			r.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(r)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"verdict"`)) {
				return fmt.Errorf("%s: %s", resp.Status, b)
			}
			return nil
		}},
	}
	for _, p := range paths {
		if only != "" && !slices.Contains(strings.Split(only, ","), p.name) {
			continue
		}
		for _, rate := range benchRates(b) {
			b.Run(fmt.Sprintf("%s/rate=%.0f", p.name, rate), func(b *testing.B) {
				openLoop(b, child, loadgen.Options{Rate: rate, Duration: benchDuration(b), Workers: workers}, func(_, i int) error { return p.do(i) })
			})
		}
	}
}

// openLoop warms the path up, runs the load once and reports it.
func openLoop(b *testing.B, child *loadgen.Child, o loadgen.Options, do func(w, i int) error) {
	warm := o
	warm.Duration = 300 * time.Millisecond
	if _, err := loadgen.Run(context.Background(), warm, do); err != nil {
		b.Fatal(err)
	}
	srv0, err1 := child.CPU()
	cli0, err2 := loadgen.ProcessCPU(os.Getpid())
	b.ResetTimer()
	r, err := loadgen.Run(context.Background(), o, do)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if r.Errors > 0 {
		b.Errorf("%d of %d checks failed", r.Errors, r.Done)
	}
	srv1, err3 := child.CPU()
	cli1, err4 := loadgen.ProcessCPU(os.Getpid())
	b.ReportMetric(r.Throughput(), "checks/s")
	reportOpenLoop(b, r)
	if err1 == nil && err2 == nil && err3 == nil && err4 == nil && r.Done > 0 {
		b.ReportMetric(float64((srv1-srv0).Microseconds())/float64(r.Done), "server-cpu-µs/check")
		b.ReportMetric(float64((cli1-cli0).Microseconds())/float64(r.Done), "client-cpu-µs/check")
	}
	b.ReportMetric(0, "ns/op")
}

// reportOpenLoop reports the run's distributions: p50/p99 from release (the
// headline), from schedule, the pacer's lateness and the service time.
func reportOpenLoop(b *testing.B, r loadgen.Result) {
	for _, m := range []struct {
		name string
		d    []time.Duration
		q    []float64
	}{
		{"", r.Latency, []float64{0.50, 0.99}},
		{"sched-", r.FromSchedule, []float64{0.50, 0.99}},
		{"late-", r.Lateness, []float64{0.99}},
		{"svc-", r.Service, []float64{0.99}},
	} {
		for _, q := range m.q {
			b.ReportMetric(float64(loadgen.Quantile(m.d, q).Microseconds()), fmt.Sprintf("%sp%.0f-µs", m.name, q*100))
		}
	}
}
