package report

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var tmplFS embed.FS

var funcs = template.FuncMap{"ts": ts, "sorted": sortedCounts}

// ts renders a time for the report.
func ts(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

var htmlTmpl = template.Must(template.New("report.html.tmpl").Funcs(funcs).ParseFS(tmplFS, "report.html.tmpl"))

type count struct {
	Name string
	N    int64
}

func sortedCounts(m map[string]int64) []count {
	out := make([]count, 0, len(m))
	for k, v := range m {
		out = append(out, count{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N > out[j].N || (out[i].N == out[j].N && out[i].Name < out[j].Name) })
	return out
}

// WriteHTML renders the report as one self-contained HTML page (inline
// CSS, no scripts, prints well).
func (r *Report) WriteHTML(w io.Writer) error { return htmlTmpl.Execute(w, r) }

// WriteMarkdown renders the report as Markdown.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	a := r.Alert
	fmt.Fprintf(&b, "# Incident report — %s\n\n", a.Title)
	fmt.Fprintf(&b, "- Alert: `%s` (%s, score %.0f, detector `%s`)\n", a.ID, a.Severity, a.Score, a.Detector)
	fmt.Fprintf(&b, "- Entity: `%s`\n", a.Entity)
	fmt.Fprintf(&b, "- Detected: %s\n- Awareness: %s\n- Report generated: %s\n\n", ts(a.Time),
		ts(r.AwareAt), ts(r.Generated))
	fmt.Fprintf(&b, "%s\n\n", a.Explanation)
	b.WriteString("## Regulators' clocks\n\n| regime | authority | obligation | deadline | applies |\n|---|---|---|---|---|\n")
	for _, c := range r.Clocks {
		applies := "yes"
		if !c.Applies {
			applies = "no"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s — %s |\n", c.Regime.Name, c.Regime.Authority, c.Regime.Obligation,
			ts(c.Deadline), applies, c.Why)
	}
	b.WriteString("\n## Scope\n\n")
	if r.Scope == nil {
		fmt.Fprintf(&b, "%s.\n", r.ScopeNote)
	} else {
		fmt.Fprintf(&b, "%d distinct records touched by `%s` (first %s, last %s); %d exposed only a name.\n\n",
			r.Scope.Total, a.Entity, ts(r.Scope.First), ts(r.Scope.Last), r.Scope.NameOnly)
		b.WriteString("| record type | records |\n|---|---|\n")
		for _, c := range sortedCounts(r.Scope.ByType) {
			fmt.Fprintf(&b, "| %s | %d |\n", c.Name, c.N)
		}
		b.WriteString("\n| personal-data field | records |\n|---|---|\n")
		for _, c := range sortedCounts(r.Scope.ByField) {
			fmt.Fprintf(&b, "| %s | %d |\n", c.Name, c.N)
		}
		fmt.Fprintf(&b, "\nExport the affected ids with `haechi scope --alert %s --export affected.csv`.\n", a.ID)
	}
	b.WriteString("\n## Timeline\n\n")
	for _, s := range r.Timeline {
		fmt.Fprintf(&b, "- %s — %s\n", ts(s.Time), s.What)
	}
	b.WriteString("\n## Actions and approvals\n\n")
	if len(r.Actions) == 0 {
		b.WriteString("None recorded.\n")
	} else {
		b.WriteString("| action | target | state | reason |\n|---|---|---|---|\n")
		for _, act := range r.Actions {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", act.Kind, act.Target, act.State, act.Reason)
		}
	}
	b.WriteString("\n## Findings\n\n")
	for _, f := range a.Findings {
		fmt.Fprintf(&b, "- %s — %s (evidence: %s)\n", ts(f.Time), f.Explanation, strings.Join(f.Evidence, ", "))
	}
	if a.FindingCount > len(a.Findings) {
		fmt.Fprintf(&b, "- … and %d more findings\n", a.FindingCount-len(a.Findings))
	}
	b.WriteString("\n_The clocks are a summary for engineers, not legal advice._\n")
	_, err := io.WriteString(w, b.String())
	return err
}
