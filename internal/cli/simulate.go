package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/demo"
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
	Variants  string `enum:"auto,on,off" default:"auto" help:"Draw each scenario's variant (rates, hours, victims, token lifetimes, the attacker's network) from the seed (on), or keep the canonical scenarios (off); auto is on with eval --seeds, off otherwise."`
}

func (f simFlags) options() (sim.Options, error) {
	o := sim.Options{Seed: f.Seed, Days: f.Days, Customers: f.Customers, Variants: f.Variants == "on"}
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
	Out   string  `placeholder:"FILE" help:"Write events here (default stdout)."`
	OldO  string  `short:"o" name:"o-file" hidden:"" placeholder:"FILE" help:"Deprecated: --out (-o names an output format)."`
	Truth string  `placeholder:"FILE" help:"Write the ground truth (JSON) here."`
	To    string  `placeholder:"URL" help:"Post the events live to a running haechi serve (e.g. http://127.0.0.1:8470) instead of writing them."`
	Speed float64 `default:"3600" help:"With --to: simulated seconds per real second."`
	Token string  `env:"HAECHI_TOKEN" placeholder:"TOKEN" help:"With --to: an ingest (or admin) API token."`
}

func (c *simulateCmd) Run(e *env) error {
	o, err := c.options()
	if err != nil {
		return err
	}
	if c.OldO != "" {
		deprecated(e, "simulate -o FILE", "--out FILE (-o names an output format in every command)")
		if c.Out != "" {
			return usageError{errors.New("-o and --out both name the events file: use --out")}
		}
		c.Out = c.OldO
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
		n, err = demo.PostLive(e.ctx, c.To, c.Token, pr, start, c.Speed, e.stderr, nil)
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
		prog := newProgressLine(e, "simulate")
		tr, err = sim.Generate(e.ctx, o, cw, prog.callback())
		// The summary below starts on a clean line.
		prog.clear()
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
	return newProgressLine(e, what).callback()
}

// progressLine is a generator's progress, redrawn in place on one line of
// a terminal at most four times a second. A nil *progressLine draws
// nothing.
type progressLine struct {
	w     io.Writer
	what  string
	last  time.Time
	drawn bool
}

// newProgressLine returns the progress line of what on stderr when it is a
// terminal; nil otherwise.
func newProgressLine(e *env, what string) *progressLine {
	f, ok := e.stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return nil
	}
	return &progressLine{w: e.stderr, what: what, last: time.Now()}
}

// callback is the progress callback sim.Generate takes (nil for a nil p).
func (p *progressLine) callback() func(int64, time.Time) {
	if p == nil {
		return nil
	}
	return p.update
}

func (p *progressLine) update(n int64, t time.Time) {
	if time.Since(p.last) < 250*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.drawn = true
	fmt.Fprintf(p.w, "\r\033[K%s: %d events, simulated time %s", p.what, n, t.UTC().Format("2006-01-02 15:04"))
}

// clear erases the line, if anything was drawn on it, so that what is
// written next starts at the margin. Call it once generation has ended.
func (p *progressLine) clear() {
	if p != nil && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}
