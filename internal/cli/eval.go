package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/console"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/eval"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/truth"
)

type evalCmd struct {
	simFlags
	Events        string `placeholder:"FILE" help:"Score this event file (with --truth) instead of simulating."`
	Truth         string `placeholder:"FILE" help:"Ground truth of --events."`
	outputFlag    `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
	CanaryRecords []string `name:"canary-records" sep:"," placeholder:"ID,..." help:"Canary record ids (added to detectors.canary.records)."`
	Response      string   `enum:"enforce,off" default:"enforce" help:"Score containment by the response playbooks at event time (enforce), or count exposure up to the first alert (off)."`
	InlineVerify  bool     `name:"inline-verify" help:"Put the inline token check in front of the simulated gateway: each API request's token is refused unless a mint registry filled from the stream's own mints allows it (docs/verify.md; verify.grace_* apply). Needs --response enforce."`
	KeepStore     bool     `name:"keep-store" help:"Keep the run's alerts and access ledger in the store (--data-dir, or store.dsn), so scope and report can inspect it afterwards (slower: the ledger is written)."`
	Store         bool     `name:"store" hidden:"" help:"Deprecated: --keep-store."`
	Seeds         string   `placeholder:"1-5|1,3,7" help:"Run every seed of this list or range in turn (instead of --seed) and report detection per scenario over all of them; scenario variants are drawn unless --variants off."`
}

func (c *evalCmd) Run(e *env) (err error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if e.g.LogLevel == "" {
		cfg.Log.Level = "warn"
	}
	cfg.Respond.Mode = respond.ModeOff
	if c.Response == "enforce" {
		cfg.Respond.Mode = respond.ModeEnforce
	}
	if err := validate(&cfg); err != nil {
		return err
	}
	if c.InlineVerify && c.Response != "enforce" {
		return usageError{errors.New("--inline-verify is scored with the response: it needs --response enforce")}
	}
	ids, err := canaryIDs(cfg, c.CanaryRecords)
	if err != nil {
		return err
	}
	if c.Store {
		deprecated(e, "eval --store", "--keep-store (--store names a store URL in every other command)")
		c.KeepStore = true
	}
	if (c.Events == "") != (c.Truth == "") {
		return usageError{errors.New("--events and --truth go together")}
	}
	if c.Seeds != "" {
		if c.Events != "" || c.KeepStore {
			return usageError{errors.New("--seeds simulates: it excludes --events and --keep-store")}
		}
		return c.runSeeds(e, cfg, ids)
	}
	var printed int
	onReject := func(le *decode.LineError) {
		if printed < 20 {
			fmt.Fprintf(e.stderr, "events:%d: rejected (%s): %s\n", le.Line, le.Code, le.Reason)
		}
		printed++
	}
	start := time.Now()
	var sc eval.Scorecard
	run := eval.RunOptions{Config: cfg, CanaryIDs: ids, OnReject: onReject, InlineVerify: c.InlineVerify}
	if c.KeepStore {
		// The output side of a scored run: the store, the alert writer and
		// the ledger, written once a simulated day (app.ModeScore).
		svc, err := app.Build(e.ctx, app.BuildOptions{Config: cfg, Mode: app.ModeScore})
		if errors.Is(err, app.ErrConfig) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		svc.Start(e.ctx)
		defer func() {
			if cerr := svc.Close(context.WithoutCancel(e.ctx)); cerr != nil && err == nil {
				err = cerr
			}
		}()
		run.Ledger, run.Sinks = svc.Ledger, svc.Sinks()
	}
	if c.Events != "" {
		tr, err := truth.Load(c.Truth)
		if err != nil {
			return usageError{err}
		}
		// Read once to detect, and again through the gateway when the
		// response is scored.
		run.Truth, run.Events = tr, func() (io.ReadCloser, error) {
			f, err := os.Open(c.Events)
			if err != nil {
				return nil, fmt.Errorf("cannot read input: %w", err)
			}
			r, err := openInput(f, new(atomic.Int64))
			if err != nil {
				f.Close()
				return nil, err
			}
			return readCloser{r, f}, nil
		}
		if sc, err = eval.RunWith(e.ctx, run); err != nil {
			return err
		}
	} else {
		o, err := c.options()
		if err != nil {
			return err
		}
		// The generator is deterministic: a first pass yields the truth
		// the scorer needs up front, the next feed the pipeline (and,
		// with the response scored, the gateway that enforces it).
		tr, err := sim.Generate(e.ctx, o, io.Discard, nil)
		if err != nil {
			return err
		}
		run.Truth, run.Events = tr, simOpener(e, o, "eval")
		if sc, err = eval.RunWith(e.ctx, run); err != nil {
			return err
		}
	}
	if f, ok := e.stderr.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(e.stderr, "\r\033[K")
	}
	if c.format(e) == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(sc); err != nil {
			return err
		}
	} else if err := sc.WriteText(e.stdout); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "eval: %d events scored in %s\n", sc.Events, time.Since(start).Round(time.Millisecond))
	// The console of a serve on this data dir shows the latest scorecard;
	// eval writes into a data dir only when it exists (or with --keep-store).
	if fi, err := os.Stat(cfg.DataDir); c.KeepStore || (err == nil && fi.IsDir()) {
		note := "simulated company"
		if c.Events != "" {
			note = "scored " + c.Events + " against " + c.Truth
		}
		saved, err := console.NewSavedScorecard("eval", note, sc, time.Now())
		if err == nil {
			err = console.SaveScorecard(cfg.DataDir, saved)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "eval: scorecard saved for the console in %s\n", filepath.Join(cfg.DataDir, console.ScorecardFile))
	}
	return nil
}

// simOpener opens the simulated stream of o: each call generates it anew
// (the generator is deterministic), on a pipe.
func simOpener(e *env, o sim.Options, what string) eval.Opener {
	passes := 0
	return func() (io.ReadCloser, error) {
		w := what
		if passes++; passes > 1 {
			w = what + ", again through the gateway with the response in force"
		}
		pr, pw := io.Pipe()
		go func() {
			bw := bufio.NewWriterSize(pw, 1<<20)
			_, err := sim.Generate(e.ctx, o, bw, progressPrinter(e, w))
			if err == nil {
				err = bw.Flush()
			}
			pw.CloseWithError(err)
		}()
		// Closing the reader stops a generator that is still writing.
		return readCloser{pr, closerFunc(func() error { return pr.CloseWithError(context.Canceled) })}, nil
	}
}

// runSeeds scores each seed of --seeds in turn, through one pipeline per
// seed, and prints the scorecard over all of them.
func (c *evalCmd) runSeeds(e *env, cfg config.Config, ids []string) error {
	seeds, err := eval.ParseSeeds(c.Seeds)
	if err != nil {
		return usageError{err}
	}
	f := c.simFlags
	if f.Variants == "auto" {
		f.Variants = "on"
	}
	start := time.Now()
	var runs []eval.SeedRun
	var events int64
	for i, seed := range seeds {
		f.Seed = seed
		o, err := f.options()
		if err != nil {
			return err
		}
		t0 := time.Now()
		tr, err := sim.Generate(e.ctx, o, io.Discard, nil)
		if err != nil {
			return err
		}
		what := fmt.Sprintf("eval seed %d (%d of %d)", seed, i+1, len(seeds))
		sc, err := eval.RunWith(e.ctx, eval.RunOptions{Config: cfg, CanaryIDs: ids, Truth: tr, Events: simOpener(e, o, what), InlineVerify: c.InlineVerify,
			OnReject: func(le *decode.LineError) {
				fmt.Fprintf(e.stderr, "seed %d: events:%d: rejected (%s): %s\n", seed, le.Line, le.Code, le.Reason)
			}})
		if err != nil {
			return fmt.Errorf("seed %d: %w", seed, err)
		}
		variants := map[string]string{}
		for _, s := range tr.Scenarios {
			if s.Variant != "" {
				variants[s.Name] = s.Variant
			}
		}
		runs = append(runs, eval.SeedRun{Seed: seed, Variants: variants, Scorecard: sc})
		events += sc.Events
		det := 0
		for _, s := range sc.Scenarios {
			if s.Detected {
				det++
			}
		}
		if f, ok := e.stderr.(*os.File); ok && isTerminal(f) {
			fmt.Fprint(e.stderr, "\r\033[K")
		}
		fmt.Fprintf(e.stderr, "eval: seed %d (%d of %d): %d of %d scenarios detected, %d ordinary and %d hard-benign false positives, %d events in %s\n",
			seed, i+1, len(seeds), det, len(sc.Scenarios), sc.FalsePositives.Ordinary, sc.FalsePositives.HardBenign.Alerts,
			sc.Events, time.Since(t0).Round(time.Millisecond))
	}
	all := eval.AggregateSeeds(runs)
	if c.format(e) == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(all); err != nil {
			return err
		}
	} else if err := all.WriteText(e.stdout); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "eval: %d seeds, %d events scored in %s\n", len(seeds), events, time.Since(start).Round(time.Millisecond))
	return nil
}

// readCloser reads from one reader and closes another (the file under a
// decompressor).
type readCloser struct {
	io.Reader
	io.Closer
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
