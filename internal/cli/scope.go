package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

type scopeCmd struct {
	storeFlag
	Key        []string `placeholder:"ID" help:"Signing key id: token.key_id, the key that signs tokens (repeatable). An access key or a token is --token."`
	Token      []string `placeholder:"ID" aliases:"access-key" help:"Token id: token.id, a token's own id or a cloud access key id such as ASIA… (repeatable; alias --access-key)."`
	Principal  []string `placeholder:"ID" help:"Principal (user.id; repeatable)."`
	Source     []string `placeholder:"ADDR|CIDR" help:"Source address or network (repeatable)."`
	Network    []string `placeholder:"AS|CIDR" help:"Source network as recorded (AS4766, or a /24 or /64; repeatable)."`
	Country    []string `placeholder:"CC" help:"Source country (repeatable)."`
	Alert      []string `placeholder:"ID" help:"An alert: the scope of its entity (repeatable)."`
	Incident   string   `placeholder:"ID" help:"An incident: the union over its entities and days (alone; --from/--to narrow it)."`
	From       string   `placeholder:"TIME" help:"From this UTC day (RFC 3339 or YYYY-MM-DD), inclusive."`
	To         string   `placeholder:"TIME" help:"To this UTC day (RFC 3339 or YYYY-MM-DD), inclusive."`
	Intersect  bool     `help:"Records touched under every selector, not any."`
	outputFlag `kong:"embed,set='output_formats=table,json',set='output_default=table'"`
	Export     string `placeholder:"FILE" help:"Write the record ids to FILE (.csv or .ndjson) for notification."`
}

func (c *scopeCmd) Run(e *env) (err error) {
	// The export's name is checked before anything is read or written: a
	// wrong extension leaves an existing file as it was.
	var format string
	if c.Export != "" {
		if format, err = exportFormat(c.Export); err != nil {
			return usageError{err}
		}
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if err := validate(&cfg); err != nil {
		return err
	}
	v := url.Values{"key": c.Key, "token": c.Token, "principal": c.Principal, "source": c.Source, "network": c.Network, "country": c.Country, "alert": c.Alert}
	v.Set("from", c.From)
	v.Set("to", c.To)
	if c.Intersect {
		v.Set("intersect", "true")
	}
	if err := storeExists(cfg); err != nil {
		return err
	}
	opts, err := storeOptions(cfg)
	if err != nil {
		return err
	}
	st, err := store.Open(e.ctx, cfg.StoreTarget(), opts)
	if err != nil {
		return err
	}
	defer st.Close()
	var q ledger.Query
	if c.Incident != "" {
		if q, err = c.incidentQuery(e, st); err != nil {
			return err
		}
		v.Set("incident", c.Incident)
	} else if q, err = api.ScopeQuery(v, func(id string) (event.Alert, error) { return st.GetAlert(e.ctx, id) }); err != nil {
		return usageError{err}
	}
	start := time.Now()
	res, err := ledger.Scope(e.ctx, st, q)
	if err != nil {
		return err
	}
	took := time.Since(start)
	// Every read is audited like the API's: scope_read before the answer
	// is shown, scope_export once the file is written (or has failed:
	// what was written is recorded as incomplete).
	detail := map[string]any{"query": v.Encode(), "records": res.Total, "export": format}
	if c.Export == "" {
		if err := auditRead(e.ctx, st, "scope_read", detail); err != nil {
			return err
		}
	} else {
		werr := export(e.ctx, res, c.Export, format)
		detail["file"] = c.Export
		detail["complete"] = werr == nil
		if werr != nil {
			detail["error"] = werr.Error()
		}
		if err := auditRead(e.ctx, st, "scope_export", detail); err != nil {
			return errors.Join(werr, err)
		}
		if werr != nil {
			return werr
		}
	}
	hint := api.ScopeHint(res)
	// Nothing touched: say which asked values the ledger has never seen
	// (an incident's entities come from its alerts: they were seen).
	var unseen []string
	if res.Total == 0 && c.Incident == "" {
		if unseen, err = neverSeen(e.ctx, st, res); err != nil {
			return err
		}
	}
	if c.format(e) == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res); err != nil {
			return err
		}
		for _, s := range unseen {
			fmt.Fprintln(e.stderr, "note: "+s)
		}
		if hint != "" {
			fmt.Fprintln(e.stderr, "hint: "+hint)
		}
		return nil
	}
	w := e.stdout
	for _, id := range c.Alert {
		// ScopeQuery found it: the alert is scoped through its entity.
		if a, err := st.GetAlert(e.ctx, id); err == nil {
			fmt.Fprintf(w, "alert %s is about %s: scoped through it, over every day unless --from/--to narrow it\n", id, a.Entity)
		}
	}
	fmt.Fprintf(w, "scope of %s", describeTerms(res))
	if res.FromDay != "" || res.ToDay != "" {
		fmt.Fprintf(w, " from %s to %s", orDash(res.FromDay, "the start"), orDash(res.ToDay, "now"))
	}
	fmt.Fprintln(w, ":")
	for _, s := range unseen {
		fmt.Fprintln(w, s)
	}
	if len(unseen) > 0 && len(unseen) == countValues(res) {
		// Nothing asked was ever seen: no counts, which would read as
		// "known, and exposed nothing".
		if hint != "" {
			fmt.Fprintf(w, "hint: %s\n", hint)
		}
		if c.Export != "" {
			fmt.Fprintf(w, "no record ids to write: %s is empty\n", c.Export)
		}
		return nil
	}
	fmt.Fprintf(w, "%d distinct records touched", res.Total)
	if !res.First.IsZero() {
		fmt.Fprintf(w, ", first %s, last %s", res.First.UTC().Format(time.RFC3339), res.Last.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, " (%s)\n", took.Round(time.Millisecond))
	for _, part := range []struct {
		title string
		m     map[string]int64
	}{{"by record type", res.ByType}, {"by personal-data field", res.ByField}} {
		if len(part.m) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s:\n", part.title)
		keys := make([]string, 0, len(part.m))
		for k := range part.m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return part.m[keys[i]] > part.m[keys[j]] || (part.m[keys[i]] == part.m[keys[j]] && keys[i] < keys[j])
		})
		for _, k := range keys {
			fmt.Fprintf(w, "  %-20s %d\n", k, part.m[k])
		}
	}
	fmt.Fprintf(w, "only a name exposed: %d\n", res.NameOnly)
	if hint != "" {
		fmt.Fprintf(w, "hint: %s\n", hint)
	}
	if c.Export != "" {
		fmt.Fprintf(w, "record ids written to %s\n", c.Export)
	}
	return nil
}

// exportFormat is the format an export file's name asks for: "csv" for
// .csv, "ndjson" for .ndjson or .jsonl.
func exportFormat(path string) (string, error) {
	switch {
	case strings.HasSuffix(path, ".csv"):
		return "csv", nil
	case strings.HasSuffix(path, ".ndjson"), strings.HasSuffix(path, ".jsonl"):
		return "ndjson", nil
	}
	return "", fmt.Errorf("--export %s: name the file .csv or .ndjson", path)
}

// export writes the record ids of res to path (createPrivate: 0600) in
// format (exportFormat's).
func export(ctx context.Context, res *ledger.Result, path, format string) (err error) {
	f, err := createPrivate(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if format == "csv" {
		err = res.WriteCSV(ctx, bw)
	} else {
		err = res.WriteNDJSON(ctx, bw)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// describeTerms names what a scope answered: "key auth-2022-11 or source
// 203.0.113.0/24" (and, with --intersect, "and").
func describeTerms(res *ledger.Result) string {
	parts := make([]string, 0, len(res.Terms))
	for _, t := range res.Terms {
		parts = append(parts, string(t.Dim)+" "+strings.Join(t.Values, ", "))
	}
	sep := " or "
	if res.Intersect {
		sep = " and "
	}
	return strings.Join(parts, sep)
}

// countValues is the number of values res's terms asked about.
func countValues(res *ledger.Result) int {
	n := 0
	for _, t := range res.Terms {
		n += len(t.Values)
	}
	return n
}

func orDash(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

// incidentQuery is the scope question of --incident: its entities over
// its days, narrowed by --from and --to.
func (c *scopeCmd) incidentQuery(e *env, st *store.Store) (ledger.Query, error) {
	if len(c.Key)+len(c.Token)+len(c.Principal)+len(c.Source)+len(c.Network)+len(c.Country)+len(c.Alert) > 0 || c.Intersect {
		return ledger.Query{}, usageError{errors.New("--incident stands alone (its entities are the selectors)")}
	}
	in, err := st.GetIncident(e.ctx, c.Incident)
	if err != nil {
		return ledger.Query{}, usageError{err}
	}
	q, err := ledger.IncidentQuery(in)
	if err != nil {
		return q, usageError{fmt.Errorf("incident %s: %w", in.ID, err)}
	}
	// The same day bounds as the API's: RFC 3339 or YYYY-MM-DD.
	bounds, err := api.ScopeQuery(url.Values{"from": {c.From}, "to": {c.To}, "key": {"-"}}, nil)
	if err != nil {
		return q, usageError{err}
	}
	if !bounds.From.IsZero() {
		q.From = bounds.From
	}
	if !bounds.To.IsZero() {
		q.To = bounds.To
	}
	return q, nil
}
