package cli

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

type alertsCmd struct {
	storeFlag
	List         alertsListCmd         `cmd:"" default:"withargs" help:"List alerts, newest first, with the API's filters (GET /v1/alerts)."`
	Feedback     alertsFeedbackCmd     `cmd:"" help:"Record a verdict on an alert: true_positive, false_positive or benign (audited)."`
	Suppress     alertsSuppressCmd     `cmd:"" help:"Suppress response for an entity's alerts (optionally one detector) for a while; they are still detected and stored (audited)."`
	Suppressions alertsSuppressionsCmd `cmd:"" help:"List the suppressions in force (--all: lifted and expired too)."`
	Unsuppress   alertsUnsuppressCmd   `cmd:"" help:"Lift a suppression (audited)."`
}

// whoami names the person acting, for the audit log.
func whoami(by string) string {
	if by != "" {
		return by
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "cli"
}

type alertsListCmd struct {
	Entity     string `placeholder:"KIND:ID" help:"Only alerts about this entity (kind:id, e.g. source:203.0.113.9)."`
	Since      string `placeholder:"TIME" help:"Only alerts raised at or after this event time (RFC 3339)."`
	Before     string `placeholder:"TIME" help:"Only alerts raised before this event time (RFC 3339)."`
	Limit      int    `default:"100" placeholder:"N" help:"At most N alerts (1 to 1000), newest first."`
	outputFlag `kong:"embed,set='output_formats=table,json,csv',set='output_default=table'"`
}

// query is the command's store query, checked as GET /v1/alerts checks
// its parameters.
func (c *alertsListCmd) query() (store.AlertQuery, error) {
	v := url.Values{"limit": {strconv.Itoa(c.Limit)}}
	for k, s := range map[string]string{"entity": c.Entity, "since": c.Since, "before": c.Before} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return api.ParseAlertQuery(v)
}

func (c *alertsListCmd) Run(e *env) error {
	q, err := c.query()
	if err != nil {
		return usageError{err}
	}
	format := c.format(e)
	// Only json prints the findings (as the API does).
	q.WithFindings = format == "json"
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListAlerts(e.ctx, q)
	if err != nil {
		return err
	}
	return writeAlerts(e.stdout, format, list)
}

// alertColumns are the columns of alerts list's table and CSV.
var alertColumns = []string{"id", "time", "severity", "state", "entity", "detector", "risk", "findings", "title"}

// writeAlerts writes list in format: table, csv (a header row, then one
// row an alert; RFC 4180) or json (one alert per line, as GET
// /v1/alerts/{id} gives it).
func writeAlerts(w io.Writer, format string, list []event.Alert) error {
	row := func(a *event.Alert) []string {
		return []string{a.ID, a.Time.UTC().Format(time.RFC3339), a.Severity.String(), string(a.State), a.Entity.String(),
			a.Detector, strconv.FormatFloat(a.Risk, 'f', 1, 64), strconv.Itoa(a.FindingCount), a.Title}
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for i := range list {
			if err := enc.Encode(&list[i]); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(alertColumns); err != nil {
			return err
		}
		for i := range list {
			if err := cw.Write(row(&list[i])); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(alertColumns, "\t")))
	for i := range list {
		fmt.Fprintln(tw, strings.Join(row(&list[i]), "\t"))
	}
	return tw.Flush()
}

type alertsFeedbackCmd struct {
	ID      string `arg:"" help:"Alert id."`
	Verdict string `required:"" enum:"true_positive,false_positive,benign" help:"true_positive, false_positive or benign (real but allowed)."`
	Note    string `help:"Why."`
	By      string `help:"Who (default: the OS user)."`
}

func (c *alertsFeedbackCmd) Run(e *env) error {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	f := store.Feedback{AlertID: c.ID, Verdict: c.Verdict, Note: c.Note, By: whoami(c.By), At: time.Now().UTC(),
		SuppressFor: cfg.Alerts.FalsePositiveSuppression.D()}
	f, err = st.AddFeedback(e.ctx, f)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return usageError{err}
		}
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %s (by %s)\n", c.ID, c.Verdict, f.By)
	for _, sp := range f.Suppressions {
		fmt.Fprintf(e.stdout, "  %s: %s findings of %s add no risk until %s\n", sp.ID, sp.Kind, sp.Entity, sp.Until.Format(time.RFC3339))
	}
	return nil
}

type alertsSuppressCmd struct {
	Entity   string        `required:"" placeholder:"KIND:ID" help:"The entity, e.g. source:203.0.113.9 or principal:s:nightly-backfill."`
	Detector string        `placeholder:"NAME" help:"Only this detector's alerts (default: every detector)."`
	For      time.Duration `required:"" placeholder:"DURATION" help:"How long (at most 90 days), e.g. 24h."`
	Reason   string        `required:"" help:"Why (kept in the audit log)."`
	By       string        `help:"Who (default: the OS user)."`
}

func (c *alertsSuppressCmd) Run(e *env) error {
	sp, err := api.NewSuppression(c.Entity, c.Detector, c.For.String(), time.Time{}, c.Reason, whoami(c.By), time.Now())
	if err != nil {
		return usageError{err}
	}
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	if sp, err = st.AddSuppression(e.ctx, sp); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: response for %s suppressed until %s\n", sp.ID, c.Entity, sp.Until.Format(time.RFC3339))
	return nil
}

type alertsSuppressionsCmd struct {
	All        bool `help:"Include lifted and expired suppressions."`
	outputFlag `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
}

func (c *alertsSuppressionsCmd) Run(e *env) error {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListSuppressions(e.ctx, time.Now(), c.All)
	if err != nil {
		return err
	}
	if c.format(e) == "json" {
		enc := json.NewEncoder(e.stdout)
		for _, sp := range list {
			if err := enc.Encode(sp); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENTITY\tDETECTOR\tUNTIL\tBY\tREASON")
	for _, sp := range list {
		det := sp.Detector
		if det == "" {
			det = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sp.ID, sp.Entity, det, sp.Until.Format(time.RFC3339), sp.By, sp.Reason)
	}
	return tw.Flush()
}

type alertsUnsuppressCmd struct {
	ID string `arg:"" help:"Suppression id."`
	By string `help:"Who (default: the OS user)."`
}

func (c *alertsUnsuppressCmd) Run(e *env) error {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RemoveSuppression(e.ctx, c.ID, whoami(c.By), time.Now().UTC()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return usageError{err}
		}
		return err
	}
	fmt.Fprintf(e.stdout, "%s lifted\n", c.ID)
	return nil
}
