package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/haechi-sec/haechi/internal/demo"
)

type demoCmd struct {
	Listen    string        `default:"127.0.0.1:0" placeholder:"ADDR" help:"Listen address (default: a free loopback port)."`
	Days      int           `default:"14" help:"Simulated days."`
	Customers int           `default:"20000" help:"Simulated customers."`
	Seed      uint64        `default:"1" help:"Seed of the simulated company."`
	Duration  time.Duration `default:"2m" help:"Real time to play the simulated period in."`
	ExitAfter time.Duration `placeholder:"DURATION" help:"Stop this long after the scorecard (default: run until Ctrl-C)."`
	KeepData  bool          `help:"Keep the temporary data directory when the demo stops."`
}

func (c *demoCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if c.Duration <= 0 || c.Days <= 0 {
		return usageError{fmt.Errorf("--duration and --days must be positive")}
	}
	if e.g.LogLevel == "" {
		cfg.Log.Level = "error" // the demo narrates on stdout
	}
	err = demo.Run(e.ctx, demo.Options{
		Config: cfg, Listen: c.Listen, Seed: c.Seed, Days: c.Days, Customers: c.Customers,
		Duration: c.Duration, ExitAfter: c.ExitAfter, KeepData: c.KeepData,
		Stdout: e.stdout, Stderr: e.stderr, Logger: logger(cfg, e.stderr),
	})
	var u *demo.UsageError
	if errors.As(err, &u) {
		return usageError{err}
	}
	return err
}
