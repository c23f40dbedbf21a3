package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/store"
)

// IncidentQuery is the scope question of an incident (docs/scope.md,
// "Incidents"): the union of its scope rule's terms (store.IncidentScope,
// which the incident keeper derives from its alerts), each over its own
// days and, with Within, restricted to the records also touched under the
// attacker's instruments; From and To span the terms' days. Terms of one dimension with the same days and
// the same Within are asked as one Term. Entities the ledger does not
// index are left out; an incident with none it indexes is an error.
//
// An incident stored without a rule (before incidents carried one) is
// asked the old way: the union over its Entities on the days of Start…End.
func IncidentQuery(in store.Incident) (Query, error) {
	if in.Scope == nil {
		return legacyQuery(in)
	}
	q := Query{Terms: terms(in.Scope.Terms, true)}
	if len(q.Terms) == 0 {
		return q, errors.New("the incident's scope names no entity the ledger indexes")
	}
	// The query's days span the terms' (a caller's from and to replace
	// them, and every term keeps to its own within them).
	for _, t := range q.Terms {
		if q.From.IsZero() || (!t.From.IsZero() && t.From.Before(q.From)) {
			q.From = t.From
		}
		if t.To.After(q.To) {
			q.To = t.To
		}
	}
	return q, nil
}

// terms groups scope terms into ledger Terms: one per dimension, day span
// and Within, in the order first met.
func terms(st []store.ScopeTerm, top bool) []Term {
	var out []Term
	index := map[string]int{}
	for _, s := range st {
		d, ok := OfEntity(s.Entity.Kind)
		if !ok {
			continue
		}
		t := Term{Dim: d, From: dayStart(s.From), To: dayStart(s.To)}
		if top && len(s.Within) > 0 {
			if t.Within = terms(s.Within, false); len(t.Within) == 0 {
				continue // restricted to nothing the ledger indexes
			}
		}
		k := groupKey(t)
		if i, ok := index[k]; ok {
			if !slices.Contains(out[i].Values, s.Entity.ID) {
				out[i].Values = append(out[i].Values, s.Entity.ID)
			}
			continue
		}
		t.Values = []string{s.Entity.ID}
		index[k] = len(out)
		out = append(out, t)
	}
	return out
}

func groupKey(t Term) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%d|%d", t.Dim, Day(t.From), Day(t.To))
	for _, w := range t.Within {
		b.WriteString("|" + w.String())
	}
	return b.String()
}

// dayStart is t's UTC day (zero stays zero).
func dayStart(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(24 * time.Hour)
}

func legacyQuery(in store.Incident) (Query, error) {
	byDim := map[Dimension][]string{}
	for _, e := range in.Entities {
		if d, ok := OfEntity(e.Kind); ok {
			byDim[d] = append(byDim[d], e.ID)
		}
	}
	q := Query{From: in.Start, To: in.End}
	for _, d := range Dimensions {
		if vals := byDim[d]; len(vals) > 0 {
			q.Terms = append(q.Terms, Term{Dim: d, Values: vals})
		}
	}
	if len(q.Terms) == 0 {
		return q, errors.New("the incident names no entity the ledger indexes")
	}
	return q, nil
}

// IncidentScope answers IncidentQuery(in): the incident's combined exact
// scope. The answer's Terms say which entities it covers over which days;
// LeftOut repeats the entities the rule leaves out, and why.
func IncidentScope(ctx context.Context, r Reader, in store.Incident) (*Result, error) {
	q, err := IncidentQuery(in)
	if err != nil {
		return nil, fmt.Errorf("incident %s scope: %w", in.ID, err)
	}
	res, err := Scope(ctx, r, q)
	if err != nil {
		return nil, fmt.Errorf("incident %s scope: %w", in.ID, err)
	}
	if in.Scope != nil {
		res.LeftOut = in.Scope.LeftOut
	}
	return res, nil
}
