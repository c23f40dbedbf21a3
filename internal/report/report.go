// Package report builds the incident report for an alert: what happened
// and when (first access by the alert's entity, detection, each response
// action), exactly whose data was touched (from the access ledger), and the
// regulators' clocks running from the moment of awareness.
//
// The notification regimes are data (Regime), not code: the defaults cover
// Korea's PIPA and Network Act, the EU GDPR and the US SEC's Form 8-K; a
// deployment adds its own in config.
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

// Regime is one regulator's notification clock.
type Regime struct {
	Name      string `yaml:"name" json:"name"`
	Authority string `yaml:"authority" json:"authority"`
	// Obligation says what must be done by the deadline.
	Obligation string `yaml:"obligation" json:"obligation"`
	// Hours after awareness, or BusinessDays (Monday–Friday, UTC) when set.
	Hours        int `yaml:"hours" json:"hours,omitempty"`
	BusinessDays int `yaml:"business_days" json:"business_days,omitempty"`
	// MinSubjects: the regime applies when at least this many people's data
	// was touched (0: always) — or, with ExternalAccess, whenever the
	// access came from outside (any source address on a public network).
	MinSubjects    int64 `yaml:"min_subjects" json:"min_subjects,omitempty"`
	ExternalAccess bool  `yaml:"external_access" json:"external_access,omitempty"`
}

// DefaultRegimes are the clocks haechi ships with. They are a summary for
// engineers, not legal advice.
func DefaultRegimes() []Regime {
	return []Regime{
		{Name: "Korea PIPA (data subjects)", Authority: "affected data subjects", Obligation: "notify the affected people", Hours: 72},
		{Name: "Korea PIPA (PIPC report)", Authority: "Personal Information Protection Commission (PIPC)", Obligation: "report the breach", Hours: 72, MinSubjects: 1000, ExternalAccess: true},
		{Name: "Korea Network Act", Authority: "KISA / Ministry of Science and ICT", Obligation: "report the breach", Hours: 24},
		{Name: "EU GDPR Art. 33", Authority: "lead supervisory authority", Obligation: "notify the personal data breach", Hours: 72},
		{Name: "US SEC Form 8-K Item 1.05", Authority: "SEC (public companies)", Obligation: "disclose a material cybersecurity incident (from the materiality determination)", BusinessDays: 4},
	}
}

// Clock is a regime's deadline for this incident.
type Clock struct {
	Regime   Regime    `json:"regime"`
	Applies  bool      `json:"applies"`
	Why      string    `json:"why"`
	Deadline time.Time `json:"deadline"`
}

// Step is one line of the timeline.
type Step struct {
	Time time.Time `json:"time"`
	What string    `json:"what"`
	// Kind says which clock Time was read from: the timeline sorts event
	// times and wall times together, and a reader must tell them apart.
	Kind TimeKind `json:"kind"`
}

// TimeKind is the clock a time was read from.
type TimeKind string

const (
	// EventTime is the events' own time: when something happened (an
	// access, a finding, an alert).
	EventTime TimeKind = "event"
	// WallTime is the wall clock: when haechi or a person acted (an
	// action delivered or decided, the declared awareness).
	WallTime TimeKind = "wall"
)

// Label is the kind in words: "event time" or "wall time".
func (k TimeKind) Label() string {
	if k == "" {
		return "time"
	}
	return string(k) + " time"
}

// Report is the incident report of one alert.
type Report struct {
	Alert     event.Alert       `json:"alert"`
	AwareAt   time.Time         `json:"aware_at"`
	Scope     *ledger.Result    `json:"scope,omitempty"`
	ScopeNote string            `json:"scope_note,omitempty"`
	Actions   []store.Action    `json:"actions"`
	Timeline  []Step            `json:"timeline"`
	Clocks    []Clock           `json:"clocks"`
	Generated time.Time         `json:"generated"`
	Entities  []event.EntityKey `json:"entities"`
	// Incident is set on an incident's report (BuildIncident): the
	// incident, without its detail; Alert then stands for it.
	Incident *store.Incident `json:"incident,omitempty"`
}

// Store is what the report reads.
type Store interface {
	GetAlert(ctx context.Context, id string) (event.Alert, error)
	ListActions(ctx context.Context, q store.ActionQuery) ([]store.Action, error)
	ledger.Reader
}

// Build assembles the report of alert id. awareAt zero means the alert's
// time (the moment haechi knew). now stamps the report.
func Build(ctx context.Context, st Store, id string, awareAt time.Time, regimes []Regime, now time.Time) (*Report, error) {
	a, err := st.GetAlert(ctx, id)
	if err != nil {
		return nil, err
	}
	if awareAt.IsZero() {
		awareAt = a.Time
	}
	r := &Report{Alert: a, AwareAt: awareAt.UTC(), Generated: now.UTC(), Entities: []event.EntityKey{a.Entity}}
	if dim, ok := ledger.OfEntity(a.Entity.Kind); ok {
		res, err := ledger.Scope(ctx, st, ledger.Query{Terms: []ledger.Term{{Dim: dim, Values: []string{a.Entity.ID}}}})
		if err != nil {
			return nil, fmt.Errorf("scope: %w", err)
		}
		r.Scope = res
	} else {
		r.ScopeNote = fmt.Sprintf("the ledger has no %s dimension; scope by key, principal, source, network or country", a.Entity.Kind)
	}
	acts, err := st.ListActions(ctx, store.ActionQuery{AlertID: id, Limit: 1000})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("actions: %w", err)
	}
	r.Actions = acts

	if r.Scope != nil && !r.Scope.First.IsZero() {
		r.Timeline = append(r.Timeline, Step{r.Scope.First, fmt.Sprintf("first recorded access to personal data by %s", a.Entity), EventTime})
	}
	r.Timeline = append(r.Timeline, Step{a.Time, fmt.Sprintf("detected: %s (%s, %s)", a.Title, a.Detector, a.Severity), EventTime})
	if !awareAt.Equal(a.Time) {
		r.Timeline = append(r.Timeline, Step{r.AwareAt, "awareness (regulators' clocks start)", WallTime})
	}
	for _, act := range acts {
		// UpdatedAt is the wall clock's; CreatedAt the alert's event time.
		t, kind := act.UpdatedAt, WallTime
		if t.IsZero() {
			t, kind = act.CreatedAt, EventTime
		}
		r.Timeline = append(r.Timeline, Step{t, fmt.Sprintf("action %s on %s: %s", act.Kind, act.Target, act.State), kind})
	}
	if r.Scope != nil && !r.Scope.Last.IsZero() {
		r.Timeline = append(r.Timeline, Step{r.Scope.Last, fmt.Sprintf("last recorded access by %s", a.Entity), EventTime})
	}
	sort.SliceStable(r.Timeline, func(i, j int) bool { return r.Timeline[i].Time.Before(r.Timeline[j].Time) })

	external := a.Entity.Kind == event.EntitySigningKey || a.Entity.Kind == event.EntitySource
	r.Clocks = clocks(regimes, r.AwareAt, r.Scope, external)
	return r, nil
}

// clocks are the regimes' clocks from awareness, given the scope and
// whether the access came from outside.
func clocks(regimes []Regime, aware time.Time, scope *ledger.Result, external bool) []Clock {
	var subjects int64
	if scope != nil {
		subjects = scope.Total
	}
	var out []Clock
	for _, rg := range regimes {
		c := Clock{Regime: rg, Applies: true, Deadline: deadline(aware, rg)}
		switch {
		case rg.MinSubjects > 0 && subjects >= rg.MinSubjects:
			c.Why = fmt.Sprintf("%d records touched (threshold %d)", subjects, rg.MinSubjects)
		case rg.ExternalAccess && external:
			c.Why = "access from outside the organisation"
		case rg.MinSubjects > 0 || rg.ExternalAccess:
			c.Applies = false
			c.Why = fmt.Sprintf("%d records touched, below %d, and no external access established", subjects, rg.MinSubjects)
		default:
			c.Why = "applies to any personal-data breach"
		}
		out = append(out, c)
	}
	return out
}

// deadline is aware + Hours, or aware + BusinessDays weekdays (UTC).
func deadline(aware time.Time, rg Regime) time.Time {
	if rg.BusinessDays <= 0 {
		return aware.Add(time.Duration(rg.Hours) * time.Hour)
	}
	t := aware
	for n := 0; n < rg.BusinessDays; {
		t = t.AddDate(0, 0, 1)
		if wd := t.Weekday(); wd != time.Saturday && wd != time.Sunday {
			n++
		}
	}
	return t
}
