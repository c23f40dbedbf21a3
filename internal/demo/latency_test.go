package demo

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
)

// TestForgedTokenLatency runs the harness on a small company with only the
// ghost-key scenario, unpaced: the forged tokens are found in the feed,
// their requests acknowledged, and alerts naming them heard.
func TestForgedTokenLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("serves haechi and posts a simulated day (a few seconds)")
	}
	rep, err := ForgedTokenLatency(context.Background(), LatencyOptions{
		Config: config.Default(), Seed: 3, Days: 1, Customers: 300, Scenarios: []string{"ghost-key"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Forged) == 0 {
		t.Fatal("no forged token in the feed")
	}
	for _, u := range rep.Forged {
		if u.Acked.IsZero() {
			t.Fatalf("forged use %s: never acknowledged", u.EventID)
		}
	}
	if _, ok := rep.FirstAlert(); !ok || len(rep.Alerts) == 0 {
		t.Fatalf("no alert raised on a never-minted finding (%d forged uses)", len(rep.Forged))
	}
	if rep.Alerts[0].Acked.IsZero() {
		t.Errorf("the first alert's opening finding %q names no forged first use of the feed", rep.Alerts[0].Use)
	}
	ds, before, after := rep.Latencies()
	if len(ds) == 0 || before+after != len(ds) {
		t.Errorf("latencies: %d named, %d before the feed ended, %d after", len(ds), before, after)
	}
	if rep.Unnamed()+len(ds) != len(rep.Forged) {
		t.Errorf("%d unnamed + %d named != %d forged", rep.Unnamed(), len(ds), len(rep.Forged))
	}
}

// BenchmarkForgedTokenLatency serves haechi (app.Serve, as the demo does)
// and posts the simulated company to it at the demo's load — 20,000
// customers, a simulated day every 2m/14 of real time, one connection,
// batches of up to 1 MiB or 200 ms — and reports the wall time from the
// acknowledgement of each forged token's first request to the alert
// naming it: the first forged-token alert (the issue-19 check: ≤ 2 s),
// p50, p99 and max over the forged tokens an alert named, how many of
// them were alerted before the feed ended and after, and how many no
// alert named (an alert keeps at most 100 findings).
//
// By default it plays 3 simulated days (about 26 s). The environment sets
// the size: HAECHI_LATENCY_DAYS (14 for the demo's fortnight),
// HAECHI_LATENCY_CUSTOMERS, HAECHI_LATENCY_DURATION (the real time to play
// the period in; default the demo's pace, 2m per 14 days; 0: unpaced, as
// fast as serve acknowledges) and HAECHI_LATENCY_SEED; HAECHI_LATENCY_CONFIG
// names a configuration file to serve with (default: the defaults).
//
//	HAECHI_LATENCY_DAYS=14 go test -run '^$' -bench BenchmarkForgedTokenLatency -benchtime 1x ./internal/demo
func BenchmarkForgedTokenLatency(b *testing.B) {
	days := envInt(b, "HAECHI_LATENCY_DAYS", 3)
	o := LatencyOptions{
		Config:    config.Default(),
		Seed:      uint64(envInt(b, "HAECHI_LATENCY_SEED", 1)),
		Days:      days,
		Customers: envInt(b, "HAECHI_LATENCY_CUSTOMERS", 20000),
		Duration:  time.Duration(days) * 2 * time.Minute / 14,
	}
	if f := os.Getenv("HAECHI_LATENCY_CONFIG"); f != "" {
		cfg, err := config.Load(f)
		if err != nil {
			b.Fatal(err)
		}
		o.Config = cfg
	}
	if v := os.Getenv("HAECHI_LATENCY_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("HAECHI_LATENCY_DURATION: %v", err)
		}
		o.Duration = d
	}
	var (
		all                             []time.Duration
		firsts, audits                  []time.Duration
		before, after, unnamed, forged  int
		alerts, raisedAfter, alertFinds int
	)
	for i := 0; i < b.N; i++ {
		rep, err := ForgedTokenLatency(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		first, ok := rep.FirstAlert()
		if !ok {
			b.Fatalf("no forged-token alert (%d forged uses)", len(rep.Forged))
		}
		firsts = append(firsts, first)
		if a := rep.Alerts[0]; !a.Audited.IsZero() {
			audits = append(audits, a.Audited.Sub(a.Raised))
		}
		ds, bf, af := rep.Latencies()
		all = append(all, ds...)
		before, after = before+bf, after+af
		unnamed += rep.Unnamed()
		forged += len(rep.Forged)
		alerts += len(rep.Alerts)
		alertFinds += rep.AlertFindings
		for _, a := range rep.Alerts {
			if a.Raised.After(rep.FeedEnd) {
				raisedAfter++
			}
		}
		b.Logf("run %d: %d events in %s; %d forged tokens, first forged use acked at +%s, first alert %s after it; %d alerts raised (%d after the feed ended), %d findings in them",
			i+1, rep.Events, rep.FeedEnd.Sub(rep.FeedStart).Round(time.Millisecond), len(rep.Forged),
			rep.Forged[0].Acked.Sub(rep.FeedStart).Round(time.Millisecond), first.Round(time.Millisecond),
			len(rep.Alerts), raisedAfter, rep.AlertFindings)
		for j, a := range rep.Alerts {
			if j == 8 {
				b.Logf("  … %d more alerts", len(rep.Alerts)-j)
				break
			}
			lat := "(opening use not in the feed's forged uses)"
			if !a.Acked.IsZero() {
				lat = a.Raised.Sub(a.Acked).Round(time.Millisecond).String() + " after its opening use was acked"
			}
			if !a.Audited.IsZero() {
				lat += ", audited " + a.Audited.Sub(a.Raised).Round(time.Millisecond).String() + " after the raise"
			}
			b.Logf("  alert %s on %s raised at +%s, %s", a.ID, a.Entity, a.Raised.Sub(rep.FeedStart).Round(time.Millisecond), lat)
		}
	}
	slices.Sort(all)
	slices.Sort(firsts)
	slices.Sort(audits)
	b.ReportMetric(Quantile(firsts, 0.5).Seconds(), "first-alert-s")
	b.ReportMetric(Quantile(audits, 0.5).Seconds(), "first-alert-audit-lag-s")
	b.ReportMetric(Quantile(all, 0.5).Seconds(), "p50-s")
	b.ReportMetric(Quantile(all, 0.99).Seconds(), "p99-s")
	b.ReportMetric(Quantile(all, 1).Seconds(), "max-s")
	n := float64(b.N)
	b.ReportMetric(float64(forged)/n, "forged/op")
	b.ReportMetric(float64(before)/n, "alerted-in-feed/op")
	b.ReportMetric(float64(after)/n, "alerted-after-feed/op")
	b.ReportMetric(float64(unnamed)/n, "unnamed/op")
	b.ReportMetric(float64(alerts)/n, "alerts/op")
	b.ReportMetric(float64(raisedAfter)/n, "alerts-after-feed/op")
	b.ReportMetric(float64(alertFinds)/n, "alert-findings/op")
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s: %q is not a positive number", name, v)
	}
	return n
}
