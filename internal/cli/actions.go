package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
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
	opts, err := storeOptions(cfg)
	if err != nil {
		return nil, err
	}
	return store.Open(e.ctx, cfg.StoreTarget(), opts)
}

// storeOptions returns the options a command opens the store with: the
// audit key (app.AuditKey), when one exists, so that the audit entries
// the command appends are MACed like serve's. The key is never created
// here; serve creates it on first start.
func storeOptions(cfg config.Config) (store.Options, error) {
	key, _, err := app.AuditKey(cfg, false)
	if err != nil {
		return store.Options{}, usageError{err}
	}
	return store.Options{AuditKey: key, LedgerEngine: readerLedgerEngine(cfg)}, nil
}

// readerLedgerEngine is the ledger engine of a command that reads the
// store: the configured one, except that the default (sqlite) follows a
// store whose ledger is in pebble instead of refusing it.
func readerLedgerEngine(cfg config.Config) string {
	if cfg.Store.LedgerEngine == store.LedgerSQLite {
		return ""
	}
	return cfg.Store.LedgerEngine
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
	State      string `placeholder:"STATE" help:"Only actions in this state (pending_approval, planned, delivering, delivered, failed, dead, rejected, skipped, dry_run)."`
	Alert      string `placeholder:"ID" help:"Only actions of this alert."`
	Limit      int    `default:"100" help:"At most this many."`
	outputFlag `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
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
	if c.format(e) == "json" {
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
	Verify auditVerifyCmd `cmd:"" help:"Check the audit log: every entry's MAC (or legacy hash) and link, and the heads the witness signed; names the first broken entry."`
	Export auditExportCmd `cmd:"" help:"Write the audit log as NDJSON."`
}

type auditVerifyCmd struct {
	Witness string `placeholder:"FILE" help:"Check against this witness file (default: audit.witness.file)."`
}

func (c auditVerifyCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if err := validate(&cfg); err != nil {
		return err
	}
	if err := storeExists(cfg); err != nil {
		return err
	}
	key, keyFrom, err := app.AuditKey(cfg, false)
	if err != nil {
		return usageError{err}
	}
	st, err := store.Open(e.ctx, cfg.StoreTarget(), store.Options{AuditKey: key, LedgerEngine: readerLedgerEngine(cfg)})
	if err != nil {
		return err
	}
	defer st.Close()
	witness := c.Witness
	if witness == "" {
		witness = cfg.AuditWitnessFile()
	}
	rep, verr := respond.VerifyAudit(e.ctx, st, respond.VerifyOptions{Key: key, Witness: witness})
	printAuditReport(e.stdout, e.stderr, rep, key != nil, keyFrom, verr == nil)
	if verr != nil {
		var ab *respond.AuditBreak
		if errors.As(verr, &ab) {
			if ab.Problem == respond.ProblemNoKey {
				return fmt.Errorf("audit log not verifiable: %w (audit key looked for in %s)", verr, keyFrom)
			}
			return fmt.Errorf("audit log broken at entry %d (%s): %w", ab.Seq, ab.Problem, verr)
		}
		return verr
	}
	fmt.Fprintln(e.stdout, "audit log intact")
	return nil
}

// printAuditReport writes what verify checked: counts, then the witness.
func printAuditReport(out, warn io.Writer, rep respond.AuditReport, haveKey bool, keyFrom string, ok bool) {
	checked := "checked"
	if !ok {
		checked = "checked before the break"
	}
	fmt.Fprintf(out, "%d entries %s: %d MAC-protected, %d legacy", rep.Entries, checked, rep.Keyed, rep.Legacy)
	if rep.Legacy > 0 {
		fmt.Fprintf(out, " (entries 1–%d: plain SHA-256 from before the audit key, not MAC-protected", rep.Legacy)
		if rep.Keyed > 0 {
			fmt.Fprintf(out, "; fixed by the MAC of entry %d", rep.Legacy+1)
		}
		fmt.Fprint(out, ")")
	}
	fmt.Fprintln(out)
	if haveKey {
		fmt.Fprintf(out, "audit key: %s\n", keyFrom)
	} else {
		fmt.Fprintf(out, "audit key: none (%s does not exist)\n", keyFrom)
	}
	switch {
	case rep.Witness == "":
		fmt.Fprintln(out, "witness: none (audit.witness.enabled is false): the removal of the newest entries cannot be detected")
	case !haveKey:
		fmt.Fprintf(out, "witness %s: not checked without the audit key: the removal of the newest entries cannot be detected\n", rep.Witness)
	case rep.WitnessMissing:
		fmt.Fprintf(out, "witness %s: missing: the removal of the newest entries cannot be detected\n", rep.Witness)
	case !rep.HaveWitness:
		fmt.Fprintf(out, "witness %s: no signed line: the removal of the newest entries cannot be detected\n", rep.Witness)
	default:
		l := rep.Witnessed
		fmt.Fprintf(out, "witness %s: %d signed lines checked; the newest, entry %d signed %s", rep.Witness,
			len(rep.WitnessFile.Valid), l.Seq, l.Time.Format(time.RFC3339))
		if ok {
			fmt.Fprintf(out, ", is in the log; %d entries written since", rep.Head-l.Seq)
		}
		fmt.Fprintln(out)
	}
	if wf := rep.WitnessFile; wf.Forged+wf.Unreadable > 0 {
		fmt.Fprintf(warn, "warning: witness %s: %d lines not signed by this audit key (forged, altered, or from another key) and %d unreadable, ignored; the first at line %d\n",
			rep.Witness, wf.Forged, wf.Unreadable, wf.FirstBad)
	}
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
