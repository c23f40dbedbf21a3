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
	"slices"
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
	// access came from outside: an incident about a signing key or a
	// source address, or one whose findings are tagged
	// event.TagExternalAccess (a departed employee reaching the data from
	// outside the company's networks).
	MinSubjects    int64 `yaml:"min_subjects" json:"min_subjects,omitempty"`
	ExternalAccess bool  `yaml:"external_access" json:"external_access,omitempty"`
	// Basis is what the regime is about: BasisPersonalData (the default,
	// ""): a breach of personal data, so it applies only when the scope
	// holds personal-data fields; or BasisMateriality: a material
	// cybersecurity incident of a registrant, whatever data it touched —
	// a judgement the report cannot make, so the clock says "assess".
	Basis string `yaml:"basis" json:"basis,omitempty"`
}

// Regime bases (Regime.Basis).
const (
	BasisPersonalData = "personal_data"
	BasisMateriality  = "materiality"
)

// DefaultRegimes are the clocks haechi ships with. They are a summary for
// engineers, not legal advice.
func DefaultRegimes() []Regime {
	return []Regime{
		{Name: "Korea PIPA (data subjects)", Authority: "affected data subjects", Obligation: "notify the affected people", Hours: 72},
		{Name: "Korea PIPA (PIPC report)", Authority: "Personal Information Protection Commission (PIPC)", Obligation: "report the breach", Hours: 72, MinSubjects: 1000, ExternalAccess: true},
		{Name: "Korea Network Act", Authority: "KISA / Ministry of Science and ICT", Obligation: "report the breach", Hours: 24},
		{Name: "EU GDPR Art. 33", Authority: "lead supervisory authority", Obligation: "notify the personal data breach", Hours: 72},
		{Name: "US SEC Form 8-K Item 1.05", Authority: "SEC (registrants)", Obligation: "disclose a material cybersecurity incident (4 business days from the materiality determination)", BusinessDays: 4, Basis: BasisMateriality},
	}
}

// Clock is a regime's deadline for this incident.
type Clock struct {
	Regime  Regime `json:"regime"`
	Applies bool   `json:"applies"`
	// Assess marks a clock whose applicability is a judgement for people
	// (materiality): Applies is false and Why says what to assess.
	Assess   bool      `json:"assess,omitempty"`
	Why      string    `json:"why"`
	Deadline time.Time `json:"deadline"`
}

// Answer is the clock's applicability in a word: yes, no or assess.
func (c Clock) Answer() string {
	switch {
	case c.Applies:
		return "yes"
	case c.Assess:
		return "assess"
	}
	return "no"
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
		r.Timeline = append(r.Timeline, Step{r.Scope.First, fmt.Sprintf("first recorded access to %s by %s", accessed(r.Scope), a.Entity), EventTime})
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

	r.Clocks = clocks(regimes, r.AwareAt, r.Scope, externalAccess([]event.EntityKey{a.Entity}, a.Findings))
	return r, nil
}

// accessed names what the scope's records are: personal data when it
// holds personal-data fields, records otherwise.
func accessed(scope *ledger.Result) string {
	if personalFields(scope) > 0 {
		return "personal data"
	}
	return "records"
}

// personalFields is how many personal-data field categories (name,
// email, phone, …) the scope's records exposed; -1 when that is not known.
//
// 0 — no personal data — only when the scope shows it: records were
// touched, none exposed a field, and every one of them is a listing
// (isListing: a bucket listing names objects, it does not open them).
// Records of other types whose events carry no fields (a feed that does
// not list fields, an S3 object whose content is unknown — an export file
// of customers is one) and a scope with nothing touched yet are unknown:
// a personal-data breach is assumed until the scope says otherwise.
func personalFields(scope *ledger.Result) int {
	if scope == nil {
		return -1
	}
	n := 0
	for f, c := range scope.ByField {
		if f != "" && c > 0 {
			n++
		}
	}
	if n > 0 {
		return n
	}
	if scope.Total == 0 || len(scope.ByType) == 0 {
		return -1
	}
	for t, c := range scope.ByType {
		if c > 0 && !isListing(t) {
			return -1
		}
	}
	return 0
}

// isListing says whether a record type's touch lists a container's
// contents without reading them (CloudTrail's ListObjects and kin on a
// bucket): a scope of only these exposes no personal data.
func isListing(recordType string) bool {
	return recordType == "s3_bucket"
}

// externalAccess says whether the access came from outside, and why ("":
// not established): an incident about a signing key (tokens forged
// outside) or a source address, or a finding tagged
// event.TagExternalAccess (a departed employee from outside the
// company's networks).
func externalAccess(entities []event.EntityKey, findings []event.Finding) string {
	for _, f := range findings {
		if slices.Contains(f.Tags, event.TagExternalAccess) {
			return "access from outside the company's networks by a departed employee (" + f.Entity.String() + ")"
		}
	}
	for _, e := range entities {
		if e.Kind == event.EntitySigningKey || e.Kind == event.EntitySource {
			return "access from outside the organisation"
		}
	}
	return ""
}

// clocks are the regimes' clocks from awareness, given the scope and
// whether (and why) the access came from outside ("": not established).
//
// A personal-data regime applies only to a personal-data breach: when the
// scope shows no personal-data field (an S3 listing, records of a type
// without personal fields), it does not apply on this evidence; when the
// scope is unknown, it is assumed to apply. A materiality regime (SEC
// 8-K Item 1.05) is neither: the registrant must assess materiality.
func clocks(regimes []Regime, aware time.Time, scope *ledger.Result, external string) []Clock {
	var subjects int64
	if scope != nil {
		subjects = scope.Total
	}
	fields := personalFields(scope)
	var out []Clock
	for _, rg := range regimes {
		c := Clock{Regime: rg, Applies: true, Deadline: deadline(aware, rg)}
		switch {
		case rg.Basis == BasisMateriality:
			c.Applies, c.Assess = false, true
			c.Why = "assess materiality: Item 1.05 concerns a registrant's material cybersecurity incidents, whatever the data; the deadline runs from the materiality determination (shown as if made at awareness)"
		case fields == 0:
			c.Applies = false
			c.Why = fmt.Sprintf("no personal-data field in the scope (%d records touched, none exposing a personal-data field): not a personal-data breach on this evidence", subjects)
		case rg.MinSubjects > 0 && subjects >= rg.MinSubjects:
			c.Why = fmt.Sprintf("%d records touched (threshold %d)", subjects, rg.MinSubjects)
		case rg.ExternalAccess && external != "":
			c.Why = external
		case rg.MinSubjects > 0 || rg.ExternalAccess:
			c.Applies = false
			c.Why = fmt.Sprintf("%d records touched, below %d, and no external access established", subjects, rg.MinSubjects)
		case fields < 0 && scope == nil:
			c.Why = "applies to a personal-data breach; the scope is unknown, so assume one until it is known"
		case fields < 0:
			c.Why = fmt.Sprintf("applies to a personal-data breach; which fields the %d records touched exposed is not known, so assume one until it is", subjects)
		default:
			c.Why = fmt.Sprintf("personal data exposed (%d records, %d personal-data fields)", subjects, fields)
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
