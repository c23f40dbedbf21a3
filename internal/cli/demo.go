package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/demo"
	"github.com/haechi-sec/haechi/internal/event"
)

type demoCmd struct {
	Listen    string        `default:"127.0.0.1:0" placeholder:"ADDR" help:"Listen address (default: a free loopback port)."`
	ExitAfter time.Duration `placeholder:"DURATION" help:"Stop this long after the traffic has been fed (default: run until Ctrl-C)."`
	KeepData  bool          `help:"Keep the temporary data directory when the demo stops."`
	Seed      uint64        `default:"1" help:"Seed of the generated background traffic."`
}

func (c *demoCmd) Run(e *env) (err error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "haechi-demo-")
	if err != nil {
		return fmt.Errorf("temporary data dir: %w", err)
	}
	if !c.KeepData {
		defer os.RemoveAll(dir)
	}
	cfg.DataDir = dir
	cfg.Listen = c.Listen
	if e.g.LogLevel == "" {
		cfg.Log.Level = "error" // the demo narrates on stdout
	}
	if err := validate(&cfg); err != nil {
		return err
	}
	ids, err := canaryIDs(cfg, demo.CanaryRecords)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- app.Serve(ctx, app.ServeOptions{
			Config: cfg, CanaryIDs: ids, Listener: ln, Logger: logger(cfg, e.stderr),
			Ready: func(u string) { ready <- u },
		})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-served:
		return err
	}
	out := e.stdout
	fmt.Fprintf(out, "haechi demo: serving on %s (data in %s)\n", base, dir)
	fmt.Fprintf(out, "canary records: %v\n", ids)

	lines, err := demo.Traffic(time.Now(), c.Seed)
	if err != nil {
		cancel()
		<-served
		return err
	}
	accepted, rejected, err := post(ctx, base, lines)
	if err != nil {
		cancel()
		<-served
		return err
	}
	fmt.Fprintf(out, "fed %d events over HTTP (%d accepted, %d rejected): customers, CS agents, the contract's examples, a departed contractor and a scraper with forged tokens\n\n",
		len(lines), accepted, rejected)

	alerts, err := waitForAlerts(ctx, base, 10*time.Second)
	if err != nil {
		cancel()
		<-served
		return err
	}
	fmt.Fprintf(out, "detected %d alert(s):\n", len(alerts))
	const show = 25
	for i, a := range alerts {
		if i == show {
			fmt.Fprintf(out, "  … and %d more at %s/v1/alerts\n", len(alerts)-show, base)
			break
		}
		fmt.Fprintf(out, "  [%s] %s — %s\n      %s\n      %s/v1/alerts/%s\n", a.Severity, a.Title, a.Entity, a.Explanation, base, a.ID)
	}
	fmt.Fprintf(out, "\nlook at:\n  %s/v1/alerts   alerts (JSON)\n  %s/metrics     Prometheus metrics\n  %s/healthz     health\n", base, base, base)
	fmt.Fprintf(out, "post your own events: curl --data-binary @events.ndjson %s/v1/events\n", base)

	if c.ExitAfter > 0 {
		fmt.Fprintf(out, "stopping in %s\n", c.ExitAfter)
		select {
		case <-time.After(c.ExitAfter):
		case <-ctx.Done():
		}
	} else {
		fmt.Fprintln(out, "press Ctrl-C to stop")
		<-ctx.Done()
	}
	cancel()
	if err := <-served; err != nil {
		return err
	}
	fmt.Fprintln(out, "stopped")
	return nil
}

// post sends lines to /v1/events in chunks, retrying politely on 429.
func post(ctx context.Context, base string, lines [][]byte) (accepted, rejected int, err error) {
	const chunk = 500
	for i := 0; i < len(lines); i += chunk {
		body := bytes.Join(lines[i:min(i+chunk, len(lines))], []byte("\n"))
		for attempt := 0; ; attempt++ {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/events", bytes.NewReader(body))
			if err != nil {
				return accepted, rejected, err
			}
			req.Header.Set("Content-Type", "application/x-ndjson")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return accepted, rejected, fmt.Errorf("post events: %w", err)
			}
			var res struct {
				Accepted int    `json:"accepted"`
				Rejected int    `json:"rejected"`
				Error    string `json:"error"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests && attempt < 50 {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if resp.StatusCode != http.StatusOK || derr != nil {
				return accepted, rejected, fmt.Errorf("post events: %s %s", resp.Status, res.Error)
			}
			accepted += res.Accepted
			rejected += res.Rejected
			break
		}
	}
	return accepted, rejected, nil
}

// waitForAlerts polls /v1/alerts until the count has been stable for a
// second (the store writes in batches) or the timeout passes.
func waitForAlerts(ctx context.Context, base string, timeout time.Duration) ([]event.Alert, error) {
	deadline := time.Now().Add(timeout)
	var last []event.Alert
	stable := 0
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/alerts?limit=1000", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return last, nil
			}
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		var res struct {
			Alerts []event.Alert `json:"alerts"`
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		if len(res.Alerts) > 0 && len(res.Alerts) == len(last) {
			stable++
			if stable >= 4 {
				return res.Alerts, nil
			}
		} else {
			stable = 0
		}
		last = res.Alerts
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return last, nil
		}
	}
	return last, nil
}
