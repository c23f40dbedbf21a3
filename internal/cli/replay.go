package cli

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/alertfmt"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	inputfmt "github.com/haechi-sec/haechi/internal/input"
)

type replayCmd struct {
	storeFlag
	Files         []string       `arg:"" name:"file" help:"Event files (gzip accepted); - reads stdin."`
	Format        string         `default:"auto" placeholder:"FORMAT" help:"Input format: auto (recognise each file; when unsure, stop and ask for one), ecs, cloudtrail, nginx, nginx-json, okta, keycloak, entra, ocsf or mapping:NAME (inputs.mappings). docs/inputs.md."`
	CanaryRecords []string       `name:"canary-records" sep:"," placeholder:"ID,..." help:"Canary record ids (added to detectors.canary.records)."`
	Roster        string         `placeholder:"FILE" help:"Roster snapshot (contract NDJSON of hr.roster events) loaded before the input."`
	Grace         *time.Duration `placeholder:"DURATION" help:"Grace after termination before activity is flagged (overrides detectors.terminated_identity.grace)."`
	Lateness      *time.Duration `placeholder:"DURATION" help:"Allowed lateness of out-of-order events (overrides engine.allowed_lateness)."`
	Window        *time.Duration `placeholder:"DURATION" help:"Alert dedup window per entity and detector (overrides alerts.window)."`
	Shards        int            `placeholder:"N" help:"Shard goroutines (default GOMAXPROCS)."`
	NoStore       bool           `help:"Do not write alerts to the store in --data-dir."`
	Findings      bool           `help:"Print every scored finding (alerting or not, with its contribution and the entity's risk) as a JSON line on stdout instead of the alerts; alerts are still stored and counted."`
	Progress      string         `enum:"auto,always,never" default:"auto" help:"Progress bar on stderr: auto (when stderr is a terminal), always or never."`
	MaxErrors     int            `default:"100" placeholder:"N" help:"Print at most N rejected lines (all are counted)."`
	outputFlag    `kong:"embed,set='output_formats=json,ecs,ocsf',set='output_default=json'"`
}

// input is one opened replay input.
type input struct {
	name string
	f    *os.File
	size int64
}

func (c *replayCmd) Run(e *env) (err error) {
	outFormat := c.format(e)
	if c.Findings && outFormat != "json" {
		return usageError{fmt.Errorf("--findings prints findings as JSON; it does not take -o %s", outFormat)}
	}
	cfg, formats, err := c.config(e)
	if err != nil {
		return err
	}
	ids, err := canaryIDs(cfg, c.CanaryRecords)
	if err != nil {
		return err
	}
	if e.g.LogLevel == "" {
		cfg.Log.Level = "warn" // stderr carries rejected lines and the summary
	}
	log := logger(cfg, e.stderr)

	// Open every input first: a missing file fails before any work.
	inputs, err := openInputs(c.Files)
	defer closeInputs(inputs)
	if err != nil {
		return err
	}
	// Recognise every file's format before anything is fed: a later file
	// in no format would otherwise stop the replay after the earlier ones
	// were read, stored and alerted on.
	if err := c.checkFormats(formats, inputs); err != nil {
		return err
	}
	const rosterInput = 0 // input 0 is the roster snapshot; files are 1…n
	inputName := func(i uint32) string {
		if i == rosterInput {
			return cfg.Detectors.TerminatedIdentity.RosterFile
		}
		if int(i) <= len(inputs) {
			return inputs[i-1].name
		}
		return "input-" + strconv.FormatUint(uint64(i), 10)
	}

	// The output side: the store, the alert writer, the ledger (written
	// every six hours of event time) and the response, planned and
	// recorded but never delivered (app.ModeReplay).
	svc, err := app.Build(e.ctx, app.BuildOptions{Config: cfg, Mode: app.ModeReplay, NoStore: c.NoStore, Logger: log})
	switch {
	case errors.Is(err, app.ErrOpenStore):
		return fmt.Errorf("%w (use --no-store to replay without storing alerts)", err)
	case errors.Is(err, app.ErrConfig):
		return usageError{err}
	case err != nil:
		return err
	}
	svc.Start(e.ctx)
	defer func() {
		if cerr := svc.Close(context.WithoutCancel(e.ctx)); cerr != nil && err == nil {
			err = cerr
		}
	}()
	// -o json: one alert (or with --findings one finding) per line in
	// haechi's JSON; -o ecs|ocsf: one alert per line as an ECS document or an
	// OCSF Detection Finding (docs/sinks.md).
	out := bufio.NewWriter(e.stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	var printErr error
	printSink := alert.SinkFunc(func(ch alert.Change, a event.Alert) {
		// A withdrawn alert is printed like a closed one: its final form.
		if ch != alert.Closed && ch != alert.Withdrawn || printErr != nil || c.Findings {
			return
		}
		if outFormat == "json" {
			if err := enc.Encode(a); err != nil {
				printErr = err
				return
			}
		} else {
			b, err := alertfmt.Encode(outFormat, &a, alertfmt.Options{Version: version()})
			if err != nil {
				printErr = err
				return
			}
			if _, err := out.Write(append(b, '\n')); err != nil {
				printErr = err
				return
			}
		}
		printErr = out.Flush()
	})

	popts := svc.PipelineOptions(ids, printSink)
	if c.Findings {
		// Flushed at the end (and by the buffer): findings are many.
		popts.FindingSinks = append(popts.FindingSinks, alert.FindingSinkFunc(func(sc alert.Scored) {
			if printErr == nil {
				printErr = enc.Encode(app.ScoredFinding(sc))
			}
		}))
	}
	popts.InputName = inputName
	p, err := app.NewPipeline(popts)
	if err != nil {
		return err
	}
	if e.onPipeline != nil {
		e.onPipeline(p)
	}
	start := time.Now()
	pipeDone := make(chan error, 1)
	// The pipeline is closed explicitly after the last input, so a Ctrl-C
	// still flushes the alerts of what was read.
	go func() { pipeDone <- p.Run(context.WithoutCancel(e.ctx)) }()

	var (
		total     app.FeedStats
		readBytes atomic.Int64
		printed   int
		feedErr   error
	)
	onReject := func(name string) func(*decode.LineError) {
		return func(le *decode.LineError) {
			if printed < c.MaxErrors {
				fmt.Fprintf(e.stderr, "%s:%d: rejected (%s): %s\n", name, le.Line, le.Code, le.Reason)
			}
			printed++
		}
	}
	stopProgress := c.startProgress(e, inputs, &readBytes, p)
	if f := cfg.Detectors.TerminatedIdentity.RosterFile; f != "" && cfg.Detectors.TerminatedIdentity.Enabled {
		feedErr = app.LoadSnapshot(e.ctx, p, f, rosterInput, log)
	}
	for i, in := range inputs {
		if feedErr != nil {
			break
		}
		r, err := openInput(in.f, &readBytes)
		if err != nil {
			feedErr = fmt.Errorf("%s: %w", in.name, err)
			break
		}
		rd, err := c.openFormat(formats, r, uint32(i+1), in.name, e)
		if err != nil {
			feedErr = formatError(in.name, err)
			break
		}
		st, err := app.FeedReader(e.ctx, p, rd, app.InputOrigin(uint32(i+1)), onReject(in.name), nil)
		total.Events += st.Events
		total.Rejected += st.Rejected
		total.Lines += st.Lines
		if err != nil {
			feedErr = fmt.Errorf("%s: %w", in.name, err)
		}
	}
	p.Close()
	if err := <-pipeDone; err != nil && feedErr == nil {
		feedErr = err
	}
	if err := out.Flush(); err != nil && printErr == nil {
		printErr = err
	}
	stopProgress()
	if err := svc.Close(context.WithoutCancel(e.ctx)); err != nil && feedErr == nil {
		feedErr = err
	}
	elapsed := time.Since(start)
	if printed > c.MaxErrors {
		fmt.Fprintf(e.stderr, "… %d more rejected lines not shown\n", printed-c.MaxErrors)
	}
	findings, alerts := p.Counts()
	replaySummary(e.stderr, total, int64(findings), int64(alerts), elapsed)
	if printErr != nil && feedErr == nil {
		feedErr = fmt.Errorf("write alerts: %w", printErr)
	}
	if feedErr == nil && e.ctx.Err() != nil {
		feedErr = errors.New("interrupted; alerts of what was read were printed")
	}
	return feedErr
}

// replaySummary writes replay's last line on stderr. Its rate is of events
// read: a rejected line is counted apart, never as an event.
func replaySummary(w io.Writer, total app.FeedStats, findings, alerts int64, elapsed time.Duration) {
	rate := float64(total.Events) / elapsed.Seconds()
	fmt.Fprintf(w, "replay: %d events read, %d rejected, %d findings, %d alerts in %s (%s events/s)\n",
		total.Events, total.Rejected, findings, alerts, elapsed.Round(time.Millisecond), humanRate(rate))
}

// config is the configuration replay runs with: the config file's, with
// the command's flags applied and validated, and the input formats it
// reads.
func (c *replayCmd) config(e *env) (config.Config, *inputfmt.Inputs, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return cfg, nil, err
	}
	formats, err := inputfmt.New(cfg.InputOptions())
	if err != nil {
		return cfg, nil, usageError{err}
	}
	if c.Format != "auto" && !slices.Contains(formats.Formats(), c.Format) {
		return cfg, nil, usageError{fmt.Errorf("--format %q: want auto or one of %s", c.Format, strings.Join(formats.Formats(), ", "))}
	}
	if c.Roster != "" {
		cfg.Detectors.TerminatedIdentity.RosterFile = c.Roster
	}
	if c.Grace != nil {
		cfg.Detectors.TerminatedIdentity.Grace = config.Duration(*c.Grace)
	}
	if c.Lateness != nil {
		cfg.Engine.AllowedLateness = config.Duration(*c.Lateness)
	}
	if c.Window != nil {
		cfg.Alerts.Window = config.Duration(*c.Window)
	}
	if c.Shards != 0 {
		cfg.Engine.Shards = c.Shards
	}
	if err := validate(&cfg); err != nil {
		return cfg, nil, err
	}
	if c.Shards < 0 {
		return cfg, nil, usageError{errors.New("--shards must not be negative")}
	}
	return cfg, formats, nil
}

// openInputs opens the named files ("-": standard input) for reading, in
// order; on an error it returns those opened so far, for closeInputs.
func openInputs(names []string) ([]input, error) {
	inputs := make([]input, 0, len(names))
	for _, name := range names {
		if name == "-" {
			inputs = append(inputs, input{name: "stdin", f: os.Stdin, size: -1})
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return inputs, fmt.Errorf("cannot read input: %w", err)
		}
		fi, err := f.Stat()
		if err != nil || fi.IsDir() {
			f.Close()
			return inputs, fmt.Errorf("cannot read input %s: not a regular file", name)
		}
		inputs = append(inputs, input{name: name, f: f, size: fi.Size()})
	}
	return inputs, nil
}

// closeInputs closes what openInputs opened (not standard input).
func closeInputs(inputs []input) {
	for _, in := range inputs {
		if in.f != os.Stdin {
			in.f.Close()
		}
	}
}

// openFormat opens r in the requested format; "auto" recognises it from its
// start (reading as far as its first line goes) and names the format when
// it is not the event contract. When it cannot tell, it fails naming the
// formats it tried rather than guess.
func (c *replayCmd) openFormat(formats *inputfmt.Inputs, r io.Reader, idx uint32, name string, e *env) (inputfmt.Reader, error) {
	format := c.Format
	if format == "auto" {
		detected, br, err := formats.Sniff(r)
		if err != nil {
			return nil, err
		}
		r, format = br, detected
		if format != inputfmt.FormatECS {
			fmt.Fprintf(e.stderr, "%s: read as %s\n", name, format)
		}
	}
	return formats.Open(format, r, idx)
}

// checkFormats sniffs each regular-file input when the format is "auto"
// and rewinds it, so an unrecognised file is a usage error before any input
// is fed. Standard input cannot be rewound; it is recognised when read.
func (c *replayCmd) checkFormats(formats *inputfmt.Inputs, inputs []input) error {
	if c.Format != "auto" {
		return nil
	}
	for _, in := range inputs {
		if in.f == os.Stdin {
			continue
		}
		var scratch atomic.Int64
		r, err := openInput(in.f, &scratch)
		if err == nil {
			_, _, err = formats.Sniff(r)
		}
		if _, serr := in.f.Seek(0, io.SeekStart); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return formatError(in.name, err)
		}
	}
	return nil
}

// formatError is err of recognising or opening input name: a usage error
// (exit 2) when the format could not be told (--format fixes it), else an
// input that cannot be read (exit 1), as a corrupt gzip stream.
func formatError(name string, err error) error {
	err = fmt.Errorf("%s: %w", name, err)
	if _, ok := errors.AsType[*inputfmt.DetectError](err); ok {
		return usageError{err}
	}
	return err
}

// openInput wraps f with a byte counter and, when the content starts with
// the gzip magic, a gzip reader (whatever the file is called).
func openInput(f *os.File, n *atomic.Int64) (io.Reader, error) {
	br := bufio.NewReaderSize(&countingReader{r: f, n: n}, 256<<10)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, err // "gzip: invalid header": it names gzip itself
		}
		return gz, nil
	}
	return br, nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// startProgress draws a progress line on stderr while the replay runs, when
// asked to or when stderr is a terminal. The returned func erases it.
func (c *replayCmd) startProgress(e *env, inputs []input, read *atomic.Int64, p *app.Pipeline) func() {
	show := c.Progress == "always"
	if c.Progress == "auto" {
		if f, ok := e.stderr.(*os.File); ok && isTerminal(f) {
			show = true
		}
	}
	if !show {
		return func() {}
	}
	var total int64
	for _, in := range inputs {
		if in.size < 0 {
			total = -1
			break
		}
		total += in.size
	}
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprint(e.stderr, "\r\033[K")
				return
			case <-t.C:
				n := read.Load()
				findings, alerts := p.Counts()
				rate := float64(n) / time.Since(start).Seconds()
				if total > 0 {
					pct := float64(n) / float64(total)
					bar := progressBar(pct, 24)
					fmt.Fprintf(e.stderr, "\r\033[K%s %5.1f%%  %s / %s  %s/s  %d findings  %d alerts",
						bar, pct*100, humanBytes(float64(n)), humanBytes(float64(total)), humanBytes(rate), findings, alerts)
				} else {
					fmt.Fprintf(e.stderr, "\r\033[K%s read  %s/s  %d findings  %d alerts",
						humanBytes(float64(n)), humanBytes(rate), findings, alerts)
				}
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

func progressBar(frac float64, width int) string {
	if frac > 1 {
		frac = 1
	}
	full := int(frac * float64(width))
	b := make([]byte, 0, width+2)
	b = append(b, '[')
	for i := 0; i < width; i++ {
		if i < full {
			b = append(b, '#')
		} else {
			b = append(b, '.')
		}
	}
	return string(append(b, ']'))
}

func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

func humanRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}
