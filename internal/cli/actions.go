package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

// openStore opens the configured store, which must exist: the SQLite
// database in the data dir, or the PostgreSQL database of --store or
// store.dsn.
func (e *env) openStore() (*store.Store, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	if err := storeExists(cfg); err != nil {
		return nil, err
	}
	return store.Open(e.ctx, cfg.StoreTarget(), store.Options{})
}

// storeExists refuses a data dir without a SQLite store (rather than
// creating an empty one to read). A PostgreSQL store is opened as it is.
func storeExists(cfg config.Config) error {
	if store.IsPostgresDSN(cfg.StoreTarget()) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, store.FileName)); err != nil {
		return usageError{fmt.Errorf("no store in %s (run replay or serve first, or pass --data-dir or --store)", cfg.DataDir)}
	}
	return nil
}

type actionsCmd struct {
	storeFlag
	List    actionsListCmd    `cmd:"" default:"withargs" help:"List response actions (newest first)."`
	Approve actionsApproveCmd `cmd:"" help:"Approve a pending action: the running server delivers it."`
	Reject  actionsRejectCmd  `cmd:"" help:"Reject a pending action."`
}

type actionsApproveCmd struct{ actionsDecideCmd }

func (c *actionsApproveCmd) Run(e *env) error { return c.decide(e, true) }

type actionsRejectCmd struct{ actionsDecideCmd }

func (c *actionsRejectCmd) Run(e *env) error { return c.decide(e, false) }

type actionsListCmd struct {
	State string `placeholder:"STATE" help:"Only actions in this state (pending_approval, planned, delivering, delivered, failed, dead, rejected, skipped, dry_run)."`
	Alert string `placeholder:"ID" help:"Only actions of this alert."`
	Limit int    `default:"100" help:"At most this many."`
	JSON  bool   `name:"json" help:"One JSON object per line."`
}

func (c *actionsListCmd) Run(e *env) error {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	as, err := st.ListActions(e.ctx, store.ActionQuery{State: c.State, AlertID: c.Alert, Limit: c.Limit})
	if err != nil {
		return usageError{err}
	}
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		for _, a := range as {
			if err := enc.Encode(a); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tKIND\tTARGET\tALERT\tREASON")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.State, a.Kind, a.Target, a.AlertID, a.Reason)
	}
	return tw.Flush()
}

type actionsDecideCmd struct {
	ID   string `arg:"" help:"Action id."`
	By   string `default:"cli" help:"Who decides (recorded in the audit log)."`
	Note string `help:"Why (recorded in the audit log)."`
}

func (c *actionsDecideCmd) decide(e *env, approve bool) error {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := st.DecideAction(e.ctx, c.ID, approve, c.By, c.Note, time.Now())
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrActionState) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %s %s → %s\n", a.ID, a.Kind, a.Target, a.State)
	return nil
}

type auditCmd struct {
	storeFlag
	Verify auditVerifyCmd `cmd:"" help:"Check the audit log's hash chain; names the first broken entry."`
	Export auditExportCmd `cmd:"" help:"Write the audit log as NDJSON."`
}

type auditVerifyCmd struct{}

func (auditVerifyCmd) Run(e *env) error {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	broken, err := respond.VerifyAudit(e.ctx, st)
	if err != nil {
		if broken > 0 {
			return fmt.Errorf("audit log broken at entry %d: %w", broken, err)
		}
		return err
	}
	fmt.Fprintln(e.stdout, "audit log intact")
	return nil
}

type auditExportCmd struct {
	Out string `short:"o" placeholder:"FILE" help:"Write here (default stdout)."`
}

func (c auditExportCmd) Run(e *env) (err error) {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	w := e.stdout
	if c.Out != "" && c.Out != "-" {
		f, err := createPrivate(c.Out)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	return respond.ExportAudit(e.ctx, st, w)
}
