// Package cli is haechi's command line: one file per subcommand, all
// parsed by kong. Run is the only entry point; it never exits the process
// and returns the exit code for main.
//
// Exit codes: 0 success, 1 the command failed while running (an input could
// not be read, the store failed), 2 bad usage or invalid configuration.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
)

// Globals are the flags every command takes.
type Globals struct {
	Config   string `help:"Config file (YAML). Default: ./haechi.yaml when it exists, else built-in defaults." placeholder:"FILE" predictor:"file"`
	DataDir  string `help:"Directory of the embedded store (overrides data_dir; default ./haechi-data)." placeholder:"DIR" predictor:"dir"`
	LogLevel string `help:"Log level: debug, info, warn or error (overrides log.level)." placeholder:"LEVEL"`
}

type cliRoot struct {
	Globals
	ShowVersion kong.VersionFlag `name:"version" help:"Print haechi's version and exit."`

	Replay    replayCmd    `cmd:"" help:"Run the pipeline over event files in event time and print every alert as JSON."`
	Serve     serveCmd     `cmd:"" help:"Serve the HTTP API and the web console: ingest events, alerts, scope, health and metrics."`
	Demo      demoCmd      `cmd:"" help:"Start a live demo on a free loopback port with sample traffic and show what haechi detects."`
	Simulate  simulateCmd  `cmd:"" help:"Generate a synthetic company's traffic with injected breaches, and its ground truth."`
	Bench     benchCmd     `cmd:"" help:"Measure throughput, CPU, memory, ledger size and ingest → alert latency on a standard workload (serve and replay)."`
	Eval      evalCmd      `cmd:"" help:"Score the detectors: simulate (or read --events and --truth), run the pipeline, print the scorecard."`
	Report    reportCmd    `cmd:"" help:"The incident report of an alert: timeline, scope, actions and the regulators' clocks."`
	Actions   actionsCmd   `cmd:"" help:"Response actions: list, approve, reject."`
	Incidents incidentsCmd `cmd:"" help:"Incidents: the alerts of one attack grouped, with timeline, entity graph and exact scope (list, show)."`
	Alerts    alertsCmd    `cmd:"" help:"Alerts: list them (the API's filters; -o table|json|csv); triage: feedback, suppressions."`
	Findings  findingsCmd  `cmd:"" help:"Every scored finding, alerting or not (the risk index), by entity, detector, kind and time."`
	Explain   explainCmd   `cmd:"" help:"Why an entity did or did not alert: its findings, what each adds after decay, and the threshold."`
	Audit     auditCmd     `cmd:"" help:"The tamper-evident audit log: verify, export."`
	Scope     scopeCmd     `cmd:"" help:"Exactly which records a key, principal, source, network, country or alert touched (from the access ledger)."`
	Rules     rulesCmd     `cmd:"" help:"Detection rules as code: test and lint rule files."`
	Tokens    tokensCmd    `cmd:"" help:"API tokens and their roles: create, list, revoke."`
	Drill     drillCmd     `cmd:"" help:"Continuous drills: run them on a running server now (run [NAME]) and see whether each detection still happens in time."`
	Version   versionCmd   `cmd:"" help:"Print haechi's version: module version, VCS revision and date, Go version."`

	// Packaging: the image's healthcheck, shell completion, the manual.
	Health     healthCmd     `cmd:"" help:"Check a running server's /healthz (the container image's healthcheck): exit 0 when healthy."`
	Completion completionCmd `cmd:"" help:"Print a shell completion script: haechi completion bash|zsh|fish."`
	Man        manCmd        `cmd:"" help:"Print haechi's manual page (roff), generated from the command line's own model."`
}

// env is what every command's Run receives.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	g      *Globals
	// store is the --store flag of the command, if it has one.
	store string
	// onPipeline, if set, is handed replay's pipeline once it is built
	// (bench's replay child samples its memory and detectors through it).
	onPipeline func(*app.Pipeline)
}

// storeFlag is the --store flag of the commands that open the store. It is
// not global: eval's --store is a switch of its own (eval reads store.dsn).
type storeFlag struct {
	Store string `help:"The store: a postgres:// URL of a PostgreSQL database several workers share (overrides store.dsn; default: SQLite in --data-dir)." placeholder:"URL"`
}

// storeFlagValue returns the value of a --store flag of type string in the
// parsed command line ("" when the command has none or it is unset).
func storeFlagValue(kctx *kong.Context) string {
	for _, f := range kctx.Flags() {
		if f.Name == "store" && f.Target.Kind() == reflect.String {
			return f.Target.String()
		}
	}
	return ""
}

// usageError marks an error that is the user's input (exit code 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

type exitPanic int

// Run parses args (without the program name), runs the command and returns
// the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	return run(ctx, args, stdout, stderr, nil)
}

// run is Run with onPipeline (see env).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, onPipeline func(*app.Pipeline)) (code int) {
	var root cliRoot
	defer func() {
		if r := recover(); r != nil {
			if c, ok := r.(exitPanic); ok {
				code = int(c)
				return
			}
			panic(r)
		}
	}()
	parser, err := kong.New(&root,
		kong.Name("haechi"),
		kong.Description("haechi catches unauthorized access to customer personal data in seconds, contains it, and tells you exactly whose data was touched."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(exitPanic(c)) }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Vars{"version": versionLine()},
	)
	if err != nil {
		fmt.Fprintf(stderr, "haechi: %v\n", err)
		return 2
	}
	// A shell asking for completions (COMP_LINE set, by the script
	// `haechi completion` prints) is answered here and exits.
	answerCompletion(parser)
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "haechi: %v\n", err)
		if hint := outputHint(err); hint != "" {
			fmt.Fprintf(stderr, "hint: %s\n", hint)
		}
		if kctx != nil {
			_ = kctx.PrintUsage(true)
		}
		return 2
	}
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, g: &root.Globals, store: storeFlagValue(kctx), onPipeline: onPipeline}
	if err := kctx.Run(e); err != nil {
		fmt.Fprintf(stderr, "haechi %s: %v\n", strings.Fields(kctx.Command())[0], err)
		var u usageError
		if errors.As(err, &u) {
			return 2
		}
		return 1
	}
	return 0
}

// loadConfig resolves the config file, applies the global flag overrides
// and validates the result. Commands apply their own flags on top and call
// Validate again.
func (e *env) loadConfig() (config.Config, error) {
	path := e.g.Config
	if path == "" {
		if _, err := os.Stat("haechi.yaml"); err == nil {
			path = "haechi.yaml"
		}
	}
	cfg := config.Default()
	if path != "" {
		var err error
		cfg, err = config.Load(path)
		if err != nil {
			return cfg, usageError{err}
		}
	}
	if e.g.DataDir != "" {
		cfg.DataDir = e.g.DataDir
	}
	if e.store != "" {
		cfg.Store.DSN = e.store
	}
	if e.g.LogLevel != "" {
		cfg.Log.Level = e.g.LogLevel
	}
	return cfg, nil
}

func validate(cfg *config.Config) error {
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	return nil
}

// logger builds the process logger from config, writing to w.
func logger(cfg config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if strings.EqualFold(cfg.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// canaryIDs merges the configured canary ids with the flag's.
func canaryIDs(cfg config.Config, flag []string) ([]string, error) {
	ids, err := cfg.CanaryRecordIDs()
	if err != nil {
		return nil, usageError{err}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	for _, id := range flag {
		if id = strings.TrimSpace(id); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}
