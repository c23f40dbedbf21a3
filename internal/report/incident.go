package report

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// IncidentStore is what an incident's report reads.
type IncidentStore interface {
	Store
	GetIncident(ctx context.Context, id string) (store.Incident, error)
	ListAlerts(ctx context.Context, q store.AlertQuery) ([]event.Alert, error)
}

// BuildIncident assembles the report of incident id (an alias resolves):
// the report of an alert, made of the whole incident. Its Alert stands for
// the incident (its ID, title, severity, founding entity and start; every
// alert's findings), its scope is the incident's combined exact scope
// (ledger.IncidentScope), its actions those of all its alerts, and its
// timeline has each alert's detection. awareAt zero means the incident's
// start.
func BuildIncident(ctx context.Context, st IncidentStore, id string, awareAt time.Time, regimes []Regime, now time.Time) (*Report, error) {
	in, err := st.GetIncident(ctx, id)
	if err != nil {
		return nil, err
	}
	alerts, err := st.ListAlerts(ctx, store.AlertQuery{Incident: in.ID, Limit: store.MaxListLimit, WithFindings: true})
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	sort.SliceStable(alerts, func(i, j int) bool { return alerts[i].Time.Before(alerts[j].Time) })
	if awareAt.IsZero() {
		awareAt = in.Start
	}
	inc := in
	inc.Body = nil
	a := event.Alert{ID: in.ID, Time: in.Start, LastTime: in.End, Severity: in.Severity, Title: in.Title,
		Detector: fmt.Sprintf("incident of %d alerts", in.AlertCount), State: event.AlertState(in.State),
		Explanation: fmt.Sprintf("%s, from %s to %s (event time), %s.", in.Title, in.Start.UTC().Format(time.RFC3339),
			in.End.UTC().Format(time.RFC3339), in.State), Findings: []event.Finding{}}
	for _, x := range alerts {
		if x.ID == in.Founder {
			a.Entity = x.Entity
		}
		a.Findings = append(a.Findings, x.Findings...)
	}
	r := &Report{Alert: a, Incident: &inc, AwareAt: awareAt.UTC(), Generated: now.UTC(), Entities: in.Entities}
	if res, err := ledger.IncidentScope(ctx, st, in); err != nil {
		r.ScopeNote = err.Error()
	} else {
		r.Scope = res
	}
	for _, x := range alerts {
		acts, err := st.ListActions(ctx, store.ActionQuery{AlertID: x.ID, Limit: 1000})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("actions: %w", err)
		}
		r.Actions = append(r.Actions, acts...)
	}
	if r.Scope != nil && !r.Scope.First.IsZero() {
		r.Timeline = append(r.Timeline, Step{r.Scope.First, "first recorded access to " + accessed(r.Scope) + " by the incident's entities", EventTime})
	}
	for _, x := range alerts {
		r.Timeline = append(r.Timeline, Step{x.Time, fmt.Sprintf("detected: %s on %s (%s, %s)", x.Title, x.Entity, x.Detector, x.Severity), EventTime})
	}
	if !r.AwareAt.Equal(in.Start) {
		r.Timeline = append(r.Timeline, Step{r.AwareAt, "awareness (regulators' clocks start)", WallTime})
	}
	for _, act := range r.Actions {
		t, kind := act.UpdatedAt, WallTime
		if t.IsZero() {
			t, kind = act.CreatedAt, EventTime
		}
		r.Timeline = append(r.Timeline, Step{t, fmt.Sprintf("action %s on %s: %s", act.Kind, act.Target, act.State), kind})
	}
	if r.Scope != nil && !r.Scope.Last.IsZero() {
		r.Timeline = append(r.Timeline, Step{r.Scope.Last, "last recorded access by the incident's entities", EventTime})
	}
	sort.SliceStable(r.Timeline, func(i, j int) bool { return r.Timeline[i].Time.Before(r.Timeline[j].Time) })
	r.Clocks = clocks(regimes, r.AwareAt, r.Scope, externalAccess(in.Entities, a.Findings))
	return r, nil
}
