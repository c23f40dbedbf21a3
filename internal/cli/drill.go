package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/haechi-sec/haechi/internal/drill"
	"github.com/haechi-sec/haechi/internal/event"
)

// drillCmd asks a running serve to run its drills (docs/drills.md): they
// go through that server's real ingest path, so the command is a client of
// its API, like health.
type drillCmd struct {
	Run  drillRunCmd  `cmd:"" help:"Run a drill (or every drill) on a running server now and print the results; exit 1 when one failed, 2 for a name the server does not run."`
	Show drillShowCmd `cmd:"" help:"Show a stored drill run: its verdict, and the alerts, findings and actions it produced (kept apart from the real ones)."`
}

// drillClient is how the drill commands reach the server.
type drillClient struct {
	URL     string        `default:"http://127.0.0.1:8470" placeholder:"URL" help:"The server's base URL."`
	Token   string        `env:"HAECHI_TOKEN" placeholder:"TOKEN" help:"An API token (run: admin; show: analyst; none: a server under --insecure-no-auth)."`
	Timeout time.Duration `default:"10m" placeholder:"DURATION" help:"Give up after this long."`
}

type drillRunCmd struct {
	Name        string `arg:"" optional:"" help:"The drill to run (GET /v1/drills lists them); none: every drill, one after another."`
	drillClient `kong:"embed"`
	outputFlag  `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
}

type drillShowCmd struct {
	ID          string `arg:"" name:"run" help:"The run's id (the RUN column of haechi drill run, or GET /v1/drills)."`
	drillClient `kong:"embed"`
	outputFlag  `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
}

// drillRunDetail is GET /v1/drills/runs/{run}'s answer.
type drillRunDetail struct {
	Run         string        `json:"run"`
	Drill       string        `json:"drill"`
	Kind        string        `json:"kind"`
	Started     time.Time     `json:"started"`
	Status      string        `json:"status"`
	Reason      string        `json:"reason,omitempty"`
	TimeToAlert time.Duration `json:"time_to_alert_ns,omitempty"`
	Entity      string        `json:"entity,omitempty"`
	Detail      struct {
		Alerts   []event.Alert         `json:"alerts"`
		Findings []event.Finding       `json:"findings"`
		Actions  []drill.PlannedAction `json:"actions"`
	} `json:"detail"`
}

func (c *drillShowCmd) Run(e *env) error {
	base, err := c.base()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()
	var raw json.RawMessage
	if err := c.call(ctx, http.MethodGet, base+"/v1/drills/runs/"+url.PathEscape(c.ID), &raw); err != nil {
		return err
	}
	if c.format(e) == "json" {
		_, err := fmt.Fprintf(e.stdout, "%s\n", bytes.TrimSpace(raw))
		return err
	}
	var d drillRunDetail
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("run %s: %w", c.ID, err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\ndrill\t%s (%s)\nstarted\t%s\nstatus\t%s\n", d.Run, d.Drill, d.Kind, d.Started.UTC().Format(time.RFC3339), d.Status)
	if d.Status == string(drill.Passed) {
		fmt.Fprintf(tw, "time to alert\t%s\n", d.TimeToAlert.Round(time.Millisecond))
	}
	if d.Entity != "" {
		fmt.Fprintf(tw, "entity\t%s\n", d.Entity)
	}
	if d.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", d.Reason)
	}
	fmt.Fprintf(tw, "\nALERT\tSEVERITY\tENTITY\tDETECTORS\tTITLE\n")
	for _, a := range d.Detail.Alerts {
		var dets []string
		for _, f := range a.Findings {
			if !slices.Contains(dets, f.Detector) {
				dets = append(dets, f.Detector)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.Severity, a.Entity, strings.Join(dets, ","), a.Title)
	}
	fmt.Fprintf(tw, "\nFINDING\tKIND\tENTITY\tSCORE\tTITLE\n")
	for _, f := range d.Detail.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\n", f.Detector, f.Kind, f.Entity, f.Score, f.Title)
	}
	fmt.Fprintf(tw, "\nACTION\tTARGET\tSTATE\tPLAYBOOK\tALERT\tREASON\n")
	for _, a := range d.Detail.Actions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Kind, a.Target, a.State, a.Playbook, a.Alert, a.Reason)
	}
	return tw.Flush()
}

// base returns the server's base URL without a trailing slash.
func (c *drillClient) base() (string, error) {
	base := strings.TrimRight(c.URL, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return "", usageError{fmt.Errorf("--url %q: want an http:// or https:// URL", c.URL)}
	}
	return base, nil
}

func (c *drillRunCmd) Run(e *env) error {
	base, err := c.base()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()
	names := []string{c.Name}
	if c.Name == "" {
		var list struct {
			Drills []struct{ Name string }
		}
		if err := c.call(ctx, http.MethodGet, base+"/v1/drills", &list); err != nil {
			return err
		}
		names = names[:0]
		for _, d := range list.Drills {
			names = append(names, d.Name)
		}
	}
	var results []drill.Result
	for _, n := range names {
		var res drill.Result
		if err := c.call(ctx, http.MethodPost, base+"/v1/drills/"+url.PathEscape(n)+"/run", &res); err != nil {
			if c.Name != "" && statusOf(err) == http.StatusNotFound {
				return c.unknown(ctx, base, err)
			}
			return err
		}
		results = append(results, res)
	}
	failed := 0
	for _, r := range results {
		if r.Status == drill.Failed {
			failed++
		}
	}
	switch c.format(e) {
	case "json":
		enc := json.NewEncoder(e.stdout)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	default:
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DRILL\tSTATUS\tTIME TO ALERT\tACTIONS\tRUN\tREASON")
		for _, r := range results {
			tta := "-"
			if r.Status == drill.Passed {
				tta = r.TimeToAlert.Round(time.Millisecond).String()
			}
			var acts []string
			for _, a := range r.Actions {
				if !slices.Contains(acts, a.Kind) {
					acts = append(acts, a.Kind)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Drill, r.Status, tta, orDash(strings.Join(acts, ","), "-"), orDash(r.Run, "-"), r.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d drills failed: detection regression", failed, len(results))
	}
	return nil
}

// unknown explains the server's 404 (err) for the drill named on the
// command line: a name the server does not run is the user's input (exit
// 2), said with the drills it does run. When they cannot be listed, err
// stands.
func (c *drillRunCmd) unknown(ctx context.Context, base string, err error) error {
	var list struct {
		Drills []struct{ Name string }
	}
	switch lerr := c.call(ctx, http.MethodGet, base+"/v1/drills", &list); {
	case statusOf(lerr) == http.StatusNotFound:
		return usageError{fmt.Errorf("unknown drill %q: the server at %s runs no drills (drills.list empty)", c.Name, base)}
	case lerr != nil:
		return err
	}
	names := make([]string, len(list.Drills))
	for i, d := range list.Drills {
		names[i] = d.Name
	}
	if slices.Contains(names, c.Name) {
		return err // listed, yet not found: the server's answer stands
	}
	if len(names) == 0 {
		return usageError{fmt.Errorf("unknown drill %q: the server at %s runs no drills", c.Name, base)}
	}
	return usageError{fmt.Errorf("unknown drill %q; the server's drills: %s", c.Name, strings.Join(names, ", "))}
}

// statusError is a server's answer other than 200 OK.
type statusError struct {
	status int
	msg    string
}

func (s *statusError) Error() string { return s.msg }

// statusOf returns the HTTP status of the server's answer err reports, or
// 0 when err is not one.
func statusOf(err error) int {
	var s *statusError
	if errors.As(err, &s) {
		return s.status
	}
	return 0
}

// call sends a request to the server and decodes its JSON answer into v.
func (c *drillClient) call(ctx context.Context, method, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return usageError{fmt.Errorf("--url: %w", err)}
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := http.DefaultClient.Do(req) // #nosec G107 -- the URL is the operator's own flag
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer within %s", u, c.Timeout)
		}
		return fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &statusError{status: resp.StatusCode, msg: fmt.Sprintf("%s %s: %s %s", method, u, resp.Status, strings.TrimSpace(string(body)))}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}
