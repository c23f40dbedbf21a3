package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/truth"
)

// simFlags are the simulator's options, shared by simulate and eval.
type simFlags struct {
	Seed      uint64 `default:"1" help:"Seed: the same seed gives the same traffic, byte for byte."`
	Days      int    `default:"14" help:"Simulated days."`
	Customers int    `default:"200000" help:"Simulated customers (up to 34,000,000)."`
	Scenarios string `default:"all" placeholder:"a,b|all|none" help:"Breach scenarios to inject: a comma-separated list, all or none."`
	Start     string `placeholder:"RFC3339" help:"Simulated start (default 2025-06-02T00:00:00Z)."`
}

func (f simFlags) options() (sim.Options, error) {
	o := sim.Options{Seed: f.Seed, Days: f.Days, Customers: f.Customers}
	switch s := strings.TrimSpace(f.Scenarios); s {
	case "all", "":
	case "none":
		o.Scenarios = []string{}
	default:
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.Scenarios = append(o.Scenarios, n)
			}
		}
	}
	if f.Start != "" {
		t, err := time.Parse(time.RFC3339, f.Start)
		if err != nil {
			return o, usageError{fmt.Errorf("--start: %w", err)}
		}
		o.Start = t
	}
	if err := o.Validate(); err != nil {
		return o, usageError{err}
	}
	return o, nil
}

type simulateCmd struct {
	simFlags
	Out   string  `short:"o" placeholder:"FILE" help:"Write events here (default stdout)."`
	Truth string  `placeholder:"FILE" help:"Write the ground truth (JSON) here."`
	To    string  `placeholder:"URL" help:"Post the events live to a running haechi serve (e.g. http://127.0.0.1:8470) instead of writing them."`
	Speed float64 `default:"3600" help:"With --to: simulated seconds per real second."`
	Token string  `env:"HAECHI_TOKEN" placeholder:"TOKEN" help:"With --to: an ingest (or admin) API token (default $HAECHI_TOKEN)."`
}

func (c *simulateCmd) Run(e *env) error {
	o, err := c.options()
	if err != nil {
		return err
	}
	if c.To != "" && c.Out != "" {
		return usageError{errors.New("--to and --out exclude each other")}
	}
	if c.Speed <= 0 {
		return usageError{errors.New("--speed must be positive")}
	}
	start := time.Now()
	var n int64
	var tr *truth.Truth
	switch {
	case c.To != "":
		pr, pw := io.Pipe()
		genErr := make(chan error, 1)
		go func() {
			var err error
			tr, err = sim.Generate(e.ctx, o, pw, nil)
			pw.CloseWithError(err)
			genErr <- err
		}()
		start := o.Start
		if start.IsZero() {
			start = sim.DefaultStart()
		}
		n, err = postLive(e.ctx, c.To, c.Token, pr, start, c.Speed, e.stderr, nil)
		pr.CloseWithError(errors.New("stopped"))
		if gerr := <-genErr; err == nil && gerr != nil {
			err = gerr
		}
	default:
		var w io.Writer = e.stdout
		var f *os.File
		if c.Out != "" && c.Out != "-" {
			f, err = createPrivate(c.Out)
			if err != nil {
				return err
			}
			w = f
		}
		bw := bufio.NewWriterSize(w, 1<<20)
		cw := &countingWriter{w: bw}
		tr, err = sim.Generate(e.ctx, o, cw, progressPrinter(e, "simulate"))
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		n = cw.lines
	}
	if err != nil {
		return err
	}
	if c.Truth != "" {
		f, err := createPrivate(c.Truth)
		if err != nil {
			return err
		}
		if err := tr.Write(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Fprintf(e.stderr, "simulate: %d events, %d scenarios, %d hard-benign sets in %s (%s events/s)\n",
		n, len(tr.Scenarios), len(tr.HardBenign), el.Round(time.Millisecond), humanRate(float64(n)/el.Seconds()))
	return nil
}

type countingWriter struct {
	w     io.Writer
	lines int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.lines += int64(bytes.Count(p, []byte{'\n'}))
	return c.w.Write(p)
}

// progressPrinter reports generation progress on stderr when it is a
// terminal; nil otherwise.
func progressPrinter(e *env, what string) func(int64, time.Time) {
	f, ok := e.stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return nil
	}
	last := time.Now()
	return func(n int64, t time.Time) {
		if time.Since(last) < 250*time.Millisecond {
			return
		}
		last = time.Now()
		fmt.Fprintf(e.stderr, "\r\033[K%s: %d events, simulated time %s", what, n, t.UTC().Format("2006-01-02 15:04"))
	}
}

// postLive paces NDJSON lines by their event time at speed× real time and
// posts them to base/v1/events in batches, retrying on 429. transform, if
// not nil, sees every event that decodes before it is posted and returns
// the line to post in its place (the demo's gateway refuses contained
// requests this way). Pacing starts at start: earlier events (reference
// data dated before the simulated period) are posted at once. Lines serve
// accepted the request but rejected are reported on warn, one line per
// batch (the first rejection's reason and how many).
func postLive(ctx context.Context, base, token string, r io.Reader, start time.Time, speed float64, warn io.Writer, transform func(*event.Event, []byte) []byte) (int64, error) {
	base = strings.TrimRight(base, "/")
	br := bufio.NewReaderSize(r, 1<<20)
	dec := decode.NewDecoder()
	var (
		batch    bytes.Buffer
		n        int64
		wall     = time.Now()
		lastPost = time.Now()
		ev       event.Event
	)
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		for attempt := 0; ; attempt++ {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/events", bytes.NewReader(batch.Bytes()))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/x-ndjson")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("post events: %w", err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
				// haechi is behind or its storage is failing: wait as told
				// and send the same batch again (never drop it).
				wait := 200 * time.Millisecond
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
					wait = time.Duration(s) * time.Second
				}
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return ctx.Err()
				}
				continue
			}
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				return fmt.Errorf("post events: %s: pass an ingest token with --token or HAECHI_TOKEN", resp.Status)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("post events: %s", resp.Status)
			}
			reportRejected(warn, body)
			break
		}
		batch.Reset()
		lastPost = time.Now()
		return nil
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if derr := dec.Decode(bytes.TrimRight(line, "\r\n"), &ev); derr == nil {
				if transform != nil {
					line = transform(&ev, line)
				}
				due := wall.Add(time.Duration(float64(ev.Time.Sub(start)) / speed))
				if d := time.Until(due); d > 0 {
					if ferr := flush(); ferr != nil {
						return n, ferr
					}
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return n, ctx.Err()
					}
				}
			}
			batch.Write(line)
			n++
			if batch.Len() > 1<<20 || time.Since(lastPost) > 200*time.Millisecond {
				if ferr := flush(); ferr != nil {
					return n, ferr
				}
			}
		}
		if err == io.EOF {
			return n, flush()
		}
		if err != nil {
			return n, err
		}
	}
}

// reportRejected prints, on warn, how many lines of an accepted request
// serve rejected and why the first was (the answer of POST /v1/events).
func reportRejected(warn io.Writer, body []byte) {
	var ans struct {
		Rejected int `json:"rejected"`
		Errors   []struct {
			Line   int    `json:"line"`
			Code   string `json:"code"`
			Reason string `json:"reason"`
		} `json:"errors"`
	}
	if warn == nil || json.Unmarshal(body, &ans) != nil || ans.Rejected == 0 {
		return
	}
	first := ""
	if len(ans.Errors) > 0 {
		e := ans.Errors[0]
		first = fmt.Sprintf(" (first: line %d of the batch: %s: %s)", e.Line, e.Code, e.Reason)
	}
	fmt.Fprintf(warn, "haechi: serve rejected %d line(s) of a batch%s\n", ans.Rejected, first)
}
