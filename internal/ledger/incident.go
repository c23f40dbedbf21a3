package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/haechi-sec/haechi/internal/store"
)

// IncidentQuery is the scope question of an incident: the union of the
// records its entities (store.Incident.Entities) touched on the UTC days
// of its time range. Entities the ledger does not index are left out; an
// incident with none it indexes is an error.
func IncidentQuery(in store.Incident) (Query, error) {
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
// scope.
func IncidentScope(ctx context.Context, r Reader, in store.Incident) (*Result, error) {
	q, err := IncidentQuery(in)
	if err != nil {
		return nil, fmt.Errorf("incident %s scope: %w", in.ID, err)
	}
	res, err := Scope(ctx, r, q)
	if err != nil {
		return nil, fmt.Errorf("incident %s scope: %w", in.ID, err)
	}
	return res, nil
}
