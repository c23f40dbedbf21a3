package extauthz_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/extauthz"
	"github.com/haechi-sec/haechi/internal/loadgen"
	"github.com/haechi-sec/haechi/internal/mint"
)

// TestOpenLoopServer is the server side of BenchmarkCheckGRPCOpenLoop, run
// in a child process (loadgen.StartChild) so that its CPU time is its own:
// the service as serve runs it over a registry of
// 65k tokens. Outside a benchmark it has nothing to do.
func TestOpenLoopServer(t *testing.T) {
	if loadgen.ChildMode() != "grpc" {
		t.Skip("the server of BenchmarkCheckGRPCOpenLoop (run only as its child process)")
	}
	now := time.Now().UTC()
	reg := mint.New(mint.Options{MaxLifetime: 12 * time.Hour})
	reg.Observe(&event.Event{Time: now.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	for i := range 1 << 16 {
		reg.Add(mint.Mint{TokenID: fmt.Sprintf("tok-%d", i), KeyID: "k1", At: now.Add(-time.Hour)})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan mint.Query, 8192)
	go func() {
		for range refused {
		}
	}()
	g := grpc.NewServer() // as serve
	extauthz.New(extauthz.Options{Registry: reg, Rate: 1e9, Burst: 1 << 20, OnRefuse: func(q mint.Query, _ mint.Answer) {
		select {
		case refused <- q:
		default:
		}
	}}).Register(g)
	go g.Serve(l)
	defer g.Stop()
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
	loadgen.Announce(l.Addr().String())
	loadgen.WaitParent()
}

// BenchmarkCheckGRPCOpenLoop offers a fixed load of ext_authz checks over
// gRPC on loopback, with the generated client on one connection (as an
// Envoy sidecar), to the service in a child process (TestOpenLoopServer),
// open loop (internal/loadgen: latency from each check's release by the
// pacer; sched-p99-µs from its scheduled time) at each rate of HAECHI_BENCH_RATES (default 10k, 25k, 50k/s) for
// HAECHI_BENCH_DURATION (3s), 64 checks in flight at most; half the tokens
// minted, half forged. Reports checks/s answered, p50/p99 latency, p99
// service time, and the server's and the client's CPU per check. Each
// sub-benchmark runs its load once, whatever b.N: run with -benchtime 1x.
func BenchmarkCheckGRPCOpenLoop(b *testing.B) {
	child, err := loadgen.StartChild("TestOpenLoopServer", "grpc")
	if err != nil {
		b.Fatal(err)
	}
	defer child.Stop()
	cc, err := grpc.NewClient(child.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	client := authv3.NewAuthorizationClient(cc)
	reqs := make([]*authv3.CheckRequest, 1024)
	for i := range reqs {
		id := fmt.Sprintf("tok-%d", i*61)
		if i%2 == 1 {
			id = fmt.Sprintf("forged-%d", i)
		}
		reqs[i] = request(map[string]string{"x-token-id": id, "x-token-key-id": "k1",
			"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"}, "203.0.113.7")
	}
	do := func(_, i int) error {
		_, err := client.Check(context.Background(), reqs[i&1023])
		return err
	}
	for _, rate := range benchRates(b) {
		b.Run(fmt.Sprintf("rate=%.0f", rate), func(b *testing.B) {
			o := loadgen.Options{Rate: rate, Duration: benchDuration(b), Workers: 64}
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
			b.ReportMetric(float64(loadgen.Quantile(r.Latency, 0.50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(loadgen.Quantile(r.Latency, 0.99).Microseconds()), "p99-µs")
			b.ReportMetric(float64(loadgen.Quantile(r.FromSchedule, 0.99).Microseconds()), "sched-p99-µs")
			b.ReportMetric(float64(loadgen.Quantile(r.Service, 0.99).Microseconds()), "svc-p99-µs")
			if err1 == nil && err2 == nil && err3 == nil && err4 == nil && r.Done > 0 {
				b.ReportMetric(float64((srv1-srv0).Microseconds())/float64(r.Done), "server-cpu-µs/check")
				b.ReportMetric(float64((cli1-cli0).Microseconds())/float64(r.Done), "client-cpu-µs/check")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// benchRates are the offered loads: the comma-separated
// HAECHI_BENCH_RATES, else 10k, 25k and 50k checks/s.
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
