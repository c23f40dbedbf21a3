package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/haechi-sec/haechi/internal/report"
	"github.com/haechi-sec/haechi/internal/store"
)

type reportCmd struct {
	storeFlag
	ID         string `arg:"" optional:"" help:"The alert to report on (as --alert), or else the incident of that id (as --incident)."`
	Alert      string `placeholder:"ID" help:"The alert to report on."`
	Incident   string `placeholder:"ID" help:"The incident to report on: all its alerts, its combined scope and actions."`
	outputFlag `kong:"embed,set='output_formats=md,html,json',set='output_default=md'"`
	Format     string `hidden:"" enum:",md,html,json" default:"" help:"Deprecated: -o."`
	AwareAt    string `placeholder:"TIME" help:"When the organisation became aware (RFC 3339; default: the alert's time). The regulators' clocks start here."`
	Out        string `placeholder:"FILE" help:"Write here (default stdout)."`
}

// subject resolves what the report is about: exactly one of ID, --alert
// and --incident. A positional ID that is no alert but an incident's id
// reports on the incident.
func (c *reportCmd) subject(e *env, st *store.Store) error {
	n := 0
	for _, s := range []string{c.ID, c.Alert, c.Incident} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return usageError{errors.New("name one alert or incident: report ID, --alert ID or --incident ID")}
	}
	if c.ID == "" {
		return nil
	}
	_, err := st.GetAlert(e.ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		if _, ierr := st.GetIncident(e.ctx, c.ID); ierr == nil {
			c.Incident = c.ID
			return nil
		}
		return usageError{fmt.Errorf("no alert or incident %q", c.ID)}
	}
	if err != nil {
		return err
	}
	c.Alert = c.ID
	return nil
}

func (c *reportCmd) Run(e *env) (err error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	var aware time.Time
	if c.AwareAt != "" {
		if aware, err = time.Parse(time.RFC3339, c.AwareAt); err != nil {
			return usageError{errors.New("--aware-at: want an RFC 3339 time, e.g. 2025-06-25T10:30:00+09:00")}
		}
	}
	format := c.format(e)
	if c.Format != "" {
		deprecated(e, "--format", "-o "+c.Format)
		format = c.Format
	}
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	if err := c.subject(e, st); err != nil {
		return err
	}
	var r *report.Report
	if c.Incident != "" {
		r, err = report.BuildIncident(e.ctx, st, c.Incident, aware, cfg.Report.Regimes, time.Now())
	} else {
		r, err = report.Build(e.ctx, st, c.Alert, aware, cfg.Report.Regimes, time.Now())
	}
	if errors.Is(err, store.ErrNotFound) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	// Rendered whole before anything is written: a failure leaves an
	// existing -o file as it was.
	var b bytes.Buffer
	switch format {
	case "html":
		err = r.WriteHTML(&b)
	case "json":
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	default:
		err = r.WriteMarkdown(&b)
	}
	if err != nil {
		return err
	}
	// Audited like the console's report read, before it is shown.
	var records int64
	if r.Scope != nil {
		records = r.Scope.Total
	}
	detail := map[string]any{"alert_id": c.Alert, "records": records, "format": format}
	if c.Incident != "" {
		detail = map[string]any{"incident_id": r.Alert.ID, "records": records, "format": format}
	}
	if c.Out != "" && c.Out != "-" {
		detail["file"] = c.Out
	}
	if err := auditRead(e.ctx, st, "report_read", detail); err != nil {
		return err
	}
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
	_, err = w.Write(b.Bytes())
	return err
}
