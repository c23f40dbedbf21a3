package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
)

// metrics_listen serves /metrics to scrapers without a token, and nothing
// else; the API's /metrics still asks for one.
func TestServeMetricsListen(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	ready, metricsReady := make(chan string, 1), make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, app.ServeOptions{Config: cfg, Announce: io.Discard,
			Ready: func(u string) { ready <- u }, MetricsReady: func(u string) { metricsReady <- u }})
	}()
	var base, mbase string
	for base == "" || mbase == "" {
		select {
		case base = <-ready:
		case mbase = <-metricsReady:
		case err := <-done:
			t.Fatalf("serve: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not start")
		}
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(base + "/metrics"); code != http.StatusUnauthorized {
		t.Errorf("API /metrics without a token: %d, want 401", code)
	}
	code, body := get(mbase + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics_listen /metrics: %d", code)
	}
	for _, name := range []string{`haechi_http_request_duration_seconds_count{code="401",route="GET /metrics"} 1`,
		"haechi_ledger_flush_seconds_count", "haechi_events_received_total"} {
		if !strings.Contains(body, name) {
			t.Errorf("metrics lack %s", name)
		}
	}
	if code, _ := get(mbase + "/v1/alerts"); code != http.StatusNotFound {
		t.Errorf("metrics_listen /v1/alerts: %d, want 404", code)
	}
}
