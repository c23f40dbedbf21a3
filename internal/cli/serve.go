package cli

import (
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
)

type serveCmd struct {
	Listen        string         `placeholder:"ADDR" help:"Listen address (overrides listen; default 127.0.0.1:8470)."`
	CanaryRecords []string       `name:"canary-records" sep:"," placeholder:"ID,..." help:"Canary record ids (added to detectors.canary.records)."`
	Roster        string         `placeholder:"FILE" help:"Roster snapshot (contract NDJSON of hr.roster events) loaded at start-up."`
	MaxBodyBytes  int64          `placeholder:"N" help:"Largest accepted ingest body in bytes (overrides ingest.max_body_bytes)."`
	Lateness      *time.Duration `placeholder:"DURATION" help:"Allowed lateness of out-of-order events (overrides engine.allowed_lateness)."`
}

func (c *serveCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if c.Listen != "" {
		cfg.Listen = c.Listen
	}
	if c.Roster != "" {
		cfg.Detectors.TerminatedIdentity.RosterFile = c.Roster
	}
	if c.MaxBodyBytes != 0 {
		cfg.Ingest.MaxBodyBytes = c.MaxBodyBytes
	}
	if c.Lateness != nil {
		cfg.Engine.AllowedLateness = config.Duration(*c.Lateness)
	}
	if err := validate(&cfg); err != nil {
		return err
	}
	ids, err := canaryIDs(cfg, c.CanaryRecords)
	if err != nil {
		return err
	}
	log := logger(cfg, e.stderr)
	return app.Serve(e.ctx, app.ServeOptions{Config: cfg, CanaryIDs: ids, Logger: log})
}
