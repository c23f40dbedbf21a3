package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/eval"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/truth"
)

type evalCmd struct {
	simFlags
	Events        string   `placeholder:"FILE" help:"Score this event file (with --truth) instead of simulating."`
	Truth         string   `placeholder:"FILE" help:"Ground truth of --events."`
	JSON          bool     `name:"json" help:"Print the scorecard as one JSON object."`
	CanaryRecords []string `name:"canary-records" sep:"," placeholder:"ID,..." help:"Canary record ids (added to detectors.canary.records)."`
	Response      string   `enum:"enforce,off" default:"enforce" help:"Score containment by the response playbooks at event time (enforce), or count exposure up to the first alert (off)."`
}

func (c *evalCmd) Run(e *env) error {
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
	ids, err := canaryIDs(cfg, c.CanaryRecords)
	if err != nil {
		return err
	}
	if (c.Events == "") != (c.Truth == "") {
		return usageError{errors.New("--events and --truth go together")}
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
	if c.Events != "" {
		tr, err := truth.Load(c.Truth)
		if err != nil {
			return usageError{err}
		}
		f, err := os.Open(c.Events)
		if err != nil {
			return fmt.Errorf("cannot read input: %w", err)
		}
		defer f.Close()
		r, err := openInput(f, new(atomic.Int64))
		if err != nil {
			return err
		}
		sc, err = eval.Run(e.ctx, cfg, ids, tr, r, onReject, nil)
		if err != nil {
			return err
		}
	} else {
		o, err := c.options()
		if err != nil {
			return err
		}
		// The generator is deterministic: a first pass yields the truth
		// the scorer needs up front, the second feeds the pipeline.
		tr, err := sim.Generate(e.ctx, o, io.Discard, nil)
		if err != nil {
			return err
		}
		pr, pw := io.Pipe()
		go func() {
			bw := bufio.NewWriterSize(pw, 1<<20)
			_, err := sim.Generate(e.ctx, o, bw, progressPrinter(e, "eval"))
			if err == nil {
				err = bw.Flush()
			}
			pw.CloseWithError(err)
		}()
		sc, err = eval.Run(e.ctx, cfg, ids, tr, pr, onReject, nil)
		pr.CloseWithError(context.Canceled)
		if err != nil {
			return err
		}
	}
	if f, ok := e.stderr.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(e.stderr, "\r\033[K")
	}
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(sc); err != nil {
			return err
		}
	} else if err := sc.WriteText(e.stdout); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "eval: %d events scored in %s\n", sc.Events, time.Since(start).Round(time.Millisecond))
	return nil
}
