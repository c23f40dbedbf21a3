package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

type incidentsCmd struct {
	storeFlag
	List incidentsListCmd `cmd:"" default:"withargs" help:"List incidents (newest start first)."`
	Show incidentsShowCmd `cmd:"" help:"One incident: its alerts' timeline, entity graph and combined exact scope."`
}

type incidentsListCmd struct {
	State      string `placeholder:"STATE" help:"Only incidents in this state (open, contained, closed)."`
	Severity   string `placeholder:"SEVERITY" help:"Only incidents of at least this severity (low, medium, high, critical)."`
	Since      string `placeholder:"TIME" help:"Only incidents whose alerts reach this time (RFC 3339)."`
	After      string `placeholder:"CURSOR" help:"The next page: the cursor a previous listing printed."`
	Limit      int    `default:"50" help:"At most this many (1-1000)."`
	outputFlag `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
}

func (c *incidentsListCmd) Run(e *env) error {
	params := map[string]string{"state": c.State, "severity": c.Severity, "since": c.Since, "after": c.After,
		"limit": fmt.Sprint(c.Limit)}
	q, err := api.IncidentQuery(func(k string) string { return params[k] })
	if err != nil {
		return usageError{err}
	}
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListIncidents(e.ctx, q)
	if err != nil {
		return err
	}
	next := ""
	if len(list) == q.Limit && len(list) > 0 {
		last := list[len(list)-1]
		next = api.IncidentCursorString(store.IncidentCursor{Start: last.Start, ID: last.ID})
	}
	if c.format(e) == "json" {
		enc := json.NewEncoder(e.stdout)
		for _, in := range list {
			if err := enc.Encode(in); err != nil {
				return err
			}
		}
		if next != "" {
			fmt.Fprintf(e.stderr, "more: --after %s\n", next)
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tSTATE\tALERTS\tSTART\tEND\tTITLE")
	for _, in := range list {
		state := in.State
		if in.Verdict != "" {
			state += " (" + in.Verdict + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", in.ID, in.Severity, state, in.AlertCount,
			in.Start.Format(time.RFC3339), in.End.Format(time.RFC3339), in.Title)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(e.stdout, "\nmore: haechi incidents list --after %s\n", next)
	}
	return nil
}

type incidentsShowCmd struct {
	ID         string `arg:"" help:"Incident id (an id merged into another resolves to it)."`
	outputFlag `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
}

func (c *incidentsShowCmd) Run(e *env) error {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	in, err := st.GetIncident(e.ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	d := api.IncidentDetail{Incident: in}
	if c.ID != in.ID {
		d.Requested = c.ID
	}
	if res, err := ledger.IncidentScope(e.ctx, st, in); err != nil {
		d.ScopeError = err.Error()
	} else {
		d.Scope = res
		if err := auditRead(e.ctx, st, "scope_read", map[string]any{"incident": in.ID, "total": res.Total}); err != nil {
			return err
		}
	}
	if c.format(e) == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	var body incident.Incident
	if err := json.Unmarshal(in.Body, &body); err != nil {
		return fmt.Errorf("incident %s: %w", in.ID, err)
	}
	w := e.stdout
	if d.Requested != "" {
		fmt.Fprintf(w, "(%s was merged into %s)\n", d.Requested, in.ID)
	}
	fmt.Fprintf(w, "%s  %s\n", in.ID, in.Title)
	state := in.State
	if in.Verdict != "" {
		state += ", verdict " + in.Verdict
		if in.VerdictBy != "" {
			state += " by " + in.VerdictBy
		}
	}
	fmt.Fprintf(w, "severity %s · %s · %s · %s to %s (event time)\n", in.Severity, state, plural(in.AlertCount, "alert"),
		in.Start.Format(time.RFC3339), in.End.Format(time.RFC3339))
	if in.Note != "" {
		fmt.Fprintf(w, "note: %s\n", in.Note)
	}
	fmt.Fprintln(w, "\nScope (the access ledger over its accused entities and their days):")
	if d.Scope != nil {
		fmt.Fprintf(w, "  %d distinct records", d.Scope.Total)
		for _, t := range d.Scope.Types() {
			fmt.Fprintf(w, " · %s %d", t, d.Scope.ByType[t])
		}
		fmt.Fprintln(w)
		for _, t := range d.Scope.Terms {
			fmt.Fprintf(w, "  counts %s\n", t)
		}
		if n := len(d.Scope.LeftOut); n > 0 {
			fmt.Fprintf(w, "  leaves out %d entities (victims, owners, shared addresses: -o json says which and why)\n", n)
		}
	} else {
		fmt.Fprintf(w, "  not answered: %s\n", d.ScopeError)
	}
	fmt.Fprintln(w, "\nTimeline (event time):")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, en := range body.Timeline {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", en.Time.Format(time.RFC3339), en.Severity, en.Entity, en.Kind, en.AlertID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nEntities:")
	for _, n := range body.Graph.Nodes {
		mark := ""
		if n.Hub {
			mark = " (hub: joins nothing)"
		}
		fmt.Fprintf(w, "  %s  %s%s\n", n.Entity, plural(n.Alerts, "alert"), mark)
	}
	if body.Graph.Omitted > 0 {
		fmt.Fprintf(w, "  … %d more\n", body.Graph.Omitted)
	}
	if len(body.Graph.Edges) > 0 {
		fmt.Fprintln(w, "Links:")
		for _, ed := range body.Graph.Edges {
			fmt.Fprintf(w, "  %s → %s\n", ed.From, ed.To)
		}
	}
	return nil
}

// plural is "1 alert", "2 alerts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
