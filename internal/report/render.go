package report

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var tmplFS embed.FS

var funcs = template.FuncMap{"ts": ts, "sorted": sortedCounts, "exportCommand": exportCommand}

// ts renders a time for the report.
func ts(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

var htmlTmpl = template.Must(template.New("report.html.tmpl").Funcs(funcs).ParseFS(tmplFS, "report.html.tmpl"))

// htmlCSP is HTMLContentSecurityPolicy's answer, computed once from the
// template.
var htmlCSP = func() string {
	b, err := tmplFS.ReadFile("report.html.tmpl")
	if err != nil {
		panic(err)
	}
	_, rest, ok := strings.Cut(string(b), "<style>")
	style, _, ok2 := strings.Cut(rest, "</style>")
	if !ok || !ok2 {
		panic("report.html.tmpl: no <style> element")
	}
	sum := sha256.Sum256([]byte(style))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// HTMLContentSecurityPolicy is the Content-Security-Policy to serve
// WriteHTML's page (and the Markdown) with: nothing may load or run but
// the page's own inline style sheet, named by its hash; no scripts, no
// frames around it.
func HTMLContentSecurityPolicy() string { return htmlCSP }

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

// WriteMarkdown renders the report as Markdown. Every value taken from
// events, alerts, actions or config is escaped (mdText, mdCode): whatever
// an id, a title or an explanation holds, the document has exactly the
// sections, lists and tables written here, and no raw HTML, link or
// image.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	a := r.Alert
	fmt.Fprintf(&b, "# Incident report — %s\n\n", mdText(a.Title))
	if r.Incident != nil {
		fmt.Fprintf(&b, "- Incident: %s (%s, %s, %d alerts)\n", mdCode(a.ID), mdText(a.Severity.String()), mdText(r.Incident.State), r.Incident.AlertCount)
	} else {
		fmt.Fprintf(&b, "- Alert: %s (%s, score %.0f, detector %s)\n", mdCode(a.ID), mdText(a.Severity.String()), a.Score, mdCode(a.Detector))
	}
	fmt.Fprintf(&b, "- Entity: %s\n", mdCode(a.Entity.String()))
	fmt.Fprintf(&b, "- Detected: %s\n- Awareness: %s\n- Report generated: %s\n\n", ts(a.Time),
		ts(r.AwareAt), ts(r.Generated))
	fmt.Fprintf(&b, "%s\n\n", mdText(a.Explanation))
	b.WriteString("## Regulators' clocks\n\n| regime | authority | obligation | deadline | applies |\n|---|---|---|---|---|\n")
	for _, c := range r.Clocks {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s — %s |\n", mdText(c.Regime.Name), mdText(c.Regime.Authority),
			mdText(c.Regime.Obligation), ts(c.Deadline), c.Answer(), mdText(c.Why))
	}
	b.WriteString("\n## Scope\n\n")
	if r.Scope == nil {
		fmt.Fprintf(&b, "%s.\n", mdText(r.ScopeNote))
	} else {
		fmt.Fprintf(&b, "%d distinct records touched by %s (first %s, last %s); %d exposed only a name.\n\n",
			r.Scope.Total, mdCode(a.Entity.String()), ts(r.Scope.First), ts(r.Scope.Last), r.Scope.NameOnly)
		b.WriteString("| record type | records |\n|---|---|\n")
		for _, c := range sortedCounts(r.Scope.ByType) {
			fmt.Fprintf(&b, "| %s | %d |\n", mdText(c.Name), c.N)
		}
		b.WriteString("\n| personal-data field | records |\n|---|---|\n")
		for _, c := range sortedCounts(r.Scope.ByField) {
			fmt.Fprintf(&b, "| %s | %d |\n", mdText(c.Name), c.N)
		}
		fmt.Fprintf(&b, "\nExport the affected ids with %s.\n", mdCode(exportCommand(a.ID)))
	}
	b.WriteString("\n## Timeline\n\n")
	for _, s := range r.Timeline {
		fmt.Fprintf(&b, "- %s (%s) — %s\n", ts(s.Time), s.Kind.Label(), mdText(s.What))
	}
	b.WriteString("\n## Actions and approvals\n\n")
	if len(r.Actions) == 0 {
		b.WriteString("None recorded.\n")
	} else {
		b.WriteString("| action | target | state | reason |\n|---|---|---|---|\n")
		for _, act := range r.Actions {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdText(act.Kind), mdText(act.Target), mdText(act.State), mdText(act.Reason))
		}
	}
	b.WriteString("\n## Findings\n\n")
	for _, f := range a.Findings {
		ev := make([]string, len(f.Evidence))
		for i, e := range f.Evidence {
			ev[i] = mdText(e)
		}
		fmt.Fprintf(&b, "- %s — %s (evidence: %s)\n", ts(f.Time), mdText(f.Explanation), strings.Join(ev, ", "))
	}
	if a.FindingCount > len(a.Findings) {
		fmt.Fprintf(&b, "- … and %d more findings\n", a.FindingCount-len(a.Findings))
	}
	b.WriteString("\n_The clocks are a summary for engineers, not legal advice._\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// exportCommand is the command line that exports the affected ids of
// alert id, the id quoted for a shell.
func exportCommand(id string) string {
	if strings.HasPrefix(id, "in-") { // an incident's report (BuildIncident)
		return "haechi scope --incident=" + shellQuote(id) + " --export affected.csv"
	}
	return "haechi scope --alert=" + shellQuote(id) + " --export affected.csv"
}
