package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/haechi-sec/haechi/internal/drill"
)

// drillCmd asks a running serve to run its drills (docs/drills.md): they
// go through that server's real ingest path, so the command is a client of
// its API, like health.
type drillCmd struct {
	Run drillRunCmd `cmd:"" help:"Run a drill (or every drill) on a running server now and print the results; exit 1 when one failed."`
}

type drillRunCmd struct {
	Name       string        `arg:"" optional:"" help:"The drill to run (GET /v1/drills lists them); none: every drill, one after another."`
	URL        string        `default:"http://127.0.0.1:8470" placeholder:"URL" help:"The server's base URL."`
	Token      string        `env:"HAECHI_TOKEN" placeholder:"TOKEN" help:"An admin API token (none: a server under --insecure-no-auth)."`
	Timeout    time.Duration `default:"10m" placeholder:"DURATION" help:"Give up after this long."`
	outputFlag `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
}

func (c *drillRunCmd) Run(e *env) error {
	base := strings.TrimRight(c.URL, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return usageError{fmt.Errorf("--url %q: want an http:// or https:// URL", c.URL)}
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
		fmt.Fprintln(tw, "DRILL\tSTATUS\tTIME TO ALERT\tALERTS\tREASON")
		for _, r := range results {
			tta := "-"
			if r.Status == drill.Passed {
				tta = r.TimeToAlert.Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Drill, r.Status, tta, strings.Join(r.Alerts, ","), r.Reason)
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

// call sends a request to the server and decodes its JSON answer into v.
func (c *drillRunCmd) call(ctx context.Context, method, u string, v any) error {
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
		return fmt.Errorf("%s %s: %s %s", method, u, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}
