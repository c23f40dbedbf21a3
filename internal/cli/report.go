package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/haechi-sec/haechi/internal/report"
	"github.com/haechi-sec/haechi/internal/store"
)

type reportCmd struct {
	storeFlag
	Alert    string `placeholder:"ID" xor:"subject" required:"" help:"The alert to report on."`
	Incident string `placeholder:"ID" xor:"subject" required:"" help:"The incident to report on: all its alerts, its combined scope and actions."`
	Format   string `enum:"md,html,json" default:"md" help:"md, html (self-contained, prints well) or json."`
	AwareAt  string `placeholder:"TIME" help:"When the organisation became aware (RFC 3339; default: the alert's time). The regulators' clocks start here."`
	Out      string `short:"o" placeholder:"FILE" help:"Write here (default stdout)."`
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
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
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
	switch c.Format {
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
	detail := map[string]any{"alert_id": c.Alert, "records": records, "format": c.Format}
	if c.Incident != "" {
		detail = map[string]any{"incident_id": r.Alert.ID, "records": records, "format": c.Format}
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
