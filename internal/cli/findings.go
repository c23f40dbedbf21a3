package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

type findingsCmd struct {
	storeFlag
	Entity     string `placeholder:"KIND:ID" help:"Only findings about this entity (kind:id, e.g. source:203.0.113.9), or of this entity kind."`
	Detector   string `placeholder:"NAME" help:"Only this detector's findings."`
	Kind       string `placeholder:"KIND" help:"Only findings of this kind."`
	Since      string `placeholder:"TIME" help:"Only findings at or after this time (RFC 3339)."`
	Before     string `placeholder:"TIME" help:"Only findings before this time (RFC 3339)."`
	Below      bool   `help:"Only findings that raised or joined no alert (below the threshold)."`
	Limit      int    `default:"100" placeholder:"N" help:"At most N findings (1 to 1000), newest first."`
	Cursor     string `placeholder:"CURSOR" help:"Continue a listing (the cursor the previous page printed)."`
	outputFlag `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
}

// query is the command's store query, checked as GET /v1/findings checks
// its parameters.
func (c *findingsCmd) query() (store.FindingQuery, error) {
	v := url.Values{}
	for k, s := range map[string]string{"entity": c.Entity, "detector": c.Detector, "kind": c.Kind, "since": c.Since,
		"before": c.Before, "cursor": c.Cursor, "limit": strconv.Itoa(c.Limit)} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if c.Below {
		v.Set("below", "true")
	}
	return api.ParseFindingQuery(v)
}

func (c *findingsCmd) Run(e *env) error {
	q, err := c.query()
	if err != nil {
		return usageError{err}
	}
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	fs, next, err := st.ListFindings(e.ctx, q)
	if errors.Is(err, store.ErrBadCursor) {
		return usageError{fmt.Errorf("--cursor: not one haechi findings printed")}
	}
	if err != nil {
		return err
	}
	if c.format(e) == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		for i := range fs {
			if err := enc.Encode(&fs[i]); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tENTITY\tDETECTOR\tKIND\tSCORE\tADDED\tRISK\tALERT\tTITLE")
		for i := range fs {
			f := &fs[i]
			al := f.Alert
			switch {
			case f.Suppressed:
				al = "suppressed"
			case al == "":
				al = fmt.Sprintf("below %g", f.Threshold)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%g\t%+.1f\t%.1f\t%s\t%s\n", f.Time.Format(time.RFC3339), f.Entity, f.Detector, f.Kind,
				f.Score, f.Contribution, f.Risk, al, f.Title)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if next != "" {
		fmt.Fprintf(e.stderr, "more: --cursor %s\n", next)
	}
	return nil
}

type explainCmd struct {
	storeFlag
	Entity     string `required:"" placeholder:"KIND:ID" help:"The entity, e.g. principal:e:1042 or source:203.0.113.9."`
	At         string `placeholder:"TIME" help:"The moment to explain (RFC 3339, or now; default: the entity's last finding)."`
	outputFlag `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
}

// maxExplain bounds the findings explain reads about one entity.
const maxExplain = 10 * store.MaxListLimit

// Explanation is what `haechi explain -o json` prints.
type Explanation struct {
	Entity    event.EntityKey `json:"entity"`
	At        time.Time       `json:"at"`
	Risk      float64         `json:"risk"`
	Threshold float64         `json:"threshold"`
	HalfLife  string          `json:"half_life"`
	RepeatCap float64         `json:"repeat_cap"`
	// PrivilegedMultiplier weighs the risk (a finding about a privileged
	// principal is among the counted ones); absent when it does not.
	PrivilegedMultiplier float64 `json:"privileged_multiplier,omitempty"`
	// LastAlert is the entity's latest alert, whose window's end starts
	// the findings counted ("" when none).
	LastAlert string              `json:"last_alert,omitempty"`
	Detectors []ExplainedDetector `json:"detectors"`
	Findings  []ExplainedFinding  `json:"findings"`
	Skipped   int                 `json:"suppressed,omitempty"`
}

// ExplainedDetector is one detector's line in an Explanation.
type ExplainedDetector struct {
	Detector string  `json:"detector"`
	Risk     float64 `json:"risk"`
	Decayed  float64 `json:"decayed"`
	Cap      float64 `json:"cap"`
	Findings int     `json:"findings"`
}

// ExplainedFinding is one finding's line in an Explanation.
type ExplainedFinding struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Detector string    `json:"detector"`
	Kind     string    `json:"kind"`
	Title    string    `json:"title"`
	Score    float64   `json:"score"`
	Added    float64   `json:"added"`
	Now      float64   `json:"now"`
}

func (c *explainCmd) Run(e *env) error {
	kind, id, ok := strings.Cut(c.Entity, ":")
	if !ok || kind == "" || id == "" {
		return usageError{fmt.Errorf("--entity: want kind:id (e.g. principal:e:1042), got %q", c.Entity)}
	}
	ent := event.EntityKey{Kind: event.EntityKind(kind), ID: id}
	var at time.Time
	switch c.At {
	case "":
	case "now":
		at = time.Now().UTC()
	default:
		t, err := time.Parse(time.RFC3339Nano, c.At)
		if err != nil {
			return usageError{fmt.Errorf("--at: want an RFC 3339 time or now, got %q", c.At)}
		}
		at = t.UTC()
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	x := Explanation{Entity: ent}
	// The stage clears an entity's risk when its alert closes: only what
	// came after the last alert's window counts.
	q := store.FindingQuery{Entity: ent, Limit: store.MaxListLimit}
	alerts, err := st.ListAlerts(e.ctx, store.AlertQuery{Entity: ent, Limit: 1, Before: beforeOrZero(at)})
	if err != nil {
		return err
	}
	if len(alerts) > 0 {
		x.LastAlert = alerts[0].ID
		q.Since = alerts[0].WindowEnd
	}
	if !at.IsZero() {
		q.Before = at.Add(time.Nanosecond)
	}
	var fs []event.Finding
	for len(fs) < maxExplain {
		page, next, err := st.ListFindings(e.ctx, q)
		if err != nil {
			return err
		}
		for i := range page {
			if page[i].Suppressed {
				x.Skipped++ // added no risk
				continue
			}
			fs = append(fs, page[i].Finding)
		}
		if next == "" {
			break
		}
		q.Cursor = next
	}
	b, err := alert.Explain(app.AlertOptions(cfg), fs, at)
	if err != nil {
		return err
	}
	x.At, x.Risk, x.Threshold, x.HalfLife, x.RepeatCap = b.At, b.Risk, b.Threshold, shortDuration(b.HalfLife), b.RepeatCap
	if b.Privileged && b.PrivilegedMultiplier != 1 {
		x.PrivilegedMultiplier = b.PrivilegedMultiplier
	}
	x.Detectors = []ExplainedDetector{}
	for _, d := range b.Detectors {
		x.Detectors = append(x.Detectors, ExplainedDetector(d))
	}
	x.Findings = []ExplainedFinding{}
	for _, c := range b.Findings {
		f := &c.Finding
		x.Findings = append(x.Findings, ExplainedFinding{ID: store.FindingID(f), Time: f.Time, Detector: f.Detector, Kind: f.Kind,
			Title: f.Title, Score: f.Score, Added: c.Added, Now: c.Now})
	}
	if c.format(e) == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(x)
	}
	return printExplanation(e, &x)
}

// shortDuration is d without zero minutes and seconds ("24h", not
// "24h0m0s").
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// beforeOrZero is the bound of alerts to consider at at: those raised up
// to at (no bound for the zero time).
func beforeOrZero(at time.Time) time.Time {
	if at.IsZero() {
		return time.Time{}
	}
	return at.Add(time.Nanosecond)
}

func printExplanation(e *env, x *Explanation) error {
	w := e.stdout
	if len(x.Findings) == 0 {
		fmt.Fprintf(w, "%s: no findings", x.Entity)
		if x.LastAlert != "" {
			fmt.Fprintf(w, " since its last alert %s closed", x.LastAlert)
		}
		fmt.Fprintf(w, "; risk 0, threshold %g.\n", x.Threshold)
		return nil
	}
	fmt.Fprintf(w, "%s: risk %.1f at %s; threshold %g: ", x.Entity, x.Risk, x.At.Format(time.RFC3339), x.Threshold)
	if x.Risk >= x.Threshold {
		fmt.Fprintln(w, "at or above the threshold.")
	} else {
		fmt.Fprintf(w, "below it by %.1f, so no alert.\n", x.Threshold-x.Risk)
	}
	fmt.Fprintf(w, "Each finding's score decays with a half-life of %s; each detector counts at most %g × its strongest finding; the risk is the sum over detectors.\n",
		x.HalfLife, x.RepeatCap)
	if x.PrivilegedMultiplier != 0 {
		fmt.Fprintf(w, "A finding is about a privileged identity: the sum is weighed ×%g (alerts.privileged_multiplier).\n", x.PrivilegedMultiplier)
	}
	if x.LastAlert != "" {
		fmt.Fprintf(w, "Counted from the end of its last alert, %s (an alert spends the risk before it).\n", x.LastAlert)
	}
	if x.Skipped > 0 {
		fmt.Fprintf(w, "Suppressed findings add no risk: %d left out.\n", x.Skipped)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DETECTOR\tRISK\tDECAYED\tCAP\tFINDINGS")
	for _, d := range x.Detectors {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%d\n", d.Detector, d.Risk, d.Decayed, d.Cap, d.Findings)
	}
	fmt.Fprintf(tw, "total\t%.1f\t\t\t%d\n", x.Risk, len(x.Findings))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tDETECTOR\tKIND\tSCORE\tADDED\tNOW\tTITLE")
	for _, f := range x.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%+.1f\t%.1f\t%s\n", f.Time.Format(time.RFC3339), f.Detector, f.Kind, f.Score, f.Added, f.Now, f.Title)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nADDED: the risk the finding added when scored (0 once its detector's cap is reached); NOW: its score decayed to the moment explained.")
	return nil
}
