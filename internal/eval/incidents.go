package eval

import (
	"slices"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/truth"
)

// IncidentsScore scores the grouping of the standing alerts into
// incidents (internal/incident) against the ground truth, with the
// attribution Score uses for alerts: an incident is about the scenarios
// its alerts are attributed to.
type IncidentsScore struct {
	// Incidents counts every incident; Attack those with an alert
	// attributed to a scenario, Benign the others (false positives only).
	Incidents int `json:"incidents"`
	Attack    int `json:"attack"`
	Benign    int `json:"benign"`
	// MixedScenarios counts incidents with alerts of two or more
	// scenarios; WithBenign attack incidents that also hold alerts
	// attributed to no scenario (hard-benign or ordinary false
	// positives). Both should be 0.
	MixedScenarios int `json:"mixed_scenarios"`
	WithBenign     int `json:"with_benign"`
	// Precursors counts alerts attributed to no scenario that sit in an
	// attack incident and are about one of its scenarios' attacker
	// entities: raised before the attack began (the ghost key's overdue
	// rotation, weeks before the forgery). Score counts them as false
	// positives; the incident rightly holds them, so they do not make it
	// mixed.
	Precursors int `json:"precursors"`
	// Mixed lists the mixed incidents.
	Mixed []MixedIncident `json:"mixed"`
}

// MixedIncident names an incident that mixes scenarios or an attack with
// benign alerts.
type MixedIncident struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	Scenarios []string `json:"scenarios"`
	// BenignAlerts counts its alerts attributed to no scenario.
	BenignAlerts int `json:"benign_alerts"`
}

// ScoreIncidents scores incidents grouped from alerts against t, and sets
// each scenario's Incidents and IncidentIDs in sc (sc.Scenarios must come
// from the same truth, as Score makes them). Alerts are attributed as in
// Score; withdrawn alerts and alerts in no incident are ignored. An
// unattributed alert about an attacker entity of the incident's own
// scenarios is a precursor, not a benign alert (IncidentsScore.Precursors).
func ScoreIncidents(sc *Scorecard, t *truth.Truth, alerts []event.Alert, incs []incident.Incident) IncidentsScore {
	if t == nil {
		t = &truth.Truth{}
	}
	at := newAttributor(t)
	byID := map[string]*event.Alert{}
	for _, a := range dedupe(alerts) {
		if a.State != event.AlertWithdrawn {
			byID[a.ID] = &a
		}
	}
	out := IncidentsScore{Incidents: len(incs), Mixed: []MixedIncident{}}
	for i := range sc.Scenarios {
		sc.Scenarios[i].IncidentIDs = []string{}
	}
	for _, in := range incs {
		var scen []int
		var unattributed []*event.Alert
		for _, id := range in.AlertIDs {
			a := byID[id]
			if a == nil {
				continue
			}
			s := at.scenarios(a)
			if len(s) == 0 {
				unattributed = append(unattributed, a)
			}
			for _, si := range s {
				scen = appendOnce(scen, si)
			}
		}
		slices.Sort(scen)
		benign := 0
		for _, a := range unattributed {
			if slices.ContainsFunc(at.attacker[a.Entity], func(si int) bool { return slices.Contains(scen, si) }) {
				out.Precursors++
				continue
			}
			benign++
		}
		if len(scen) == 0 {
			out.Benign++
			continue
		}
		out.Attack++
		for _, si := range scen {
			if si < len(sc.Scenarios) {
				sc.Scenarios[si].Incidents++
				sc.Scenarios[si].IncidentIDs = append(sc.Scenarios[si].IncidentIDs, in.ID)
			}
		}
		if len(scen) > 1 {
			out.MixedScenarios++
		}
		if benign > 0 {
			out.WithBenign++
		}
		if len(scen) > 1 || benign > 0 {
			m := MixedIncident{ID: in.ID, Title: in.Title, BenignAlerts: benign}
			for _, si := range scen {
				m.Scenarios = append(m.Scenarios, t.Scenarios[si].Name)
			}
			out.Mixed = append(out.Mixed, m)
		}
	}
	return out
}

// maxSourcePrincipals caps the principals eventFacts counts per source:
// enough to tell a shared address (incident.DefaultSharedSource).
const maxSourcePrincipals = 2 * incident.DefaultSharedSource

// eventFacts answers incident.Facts from one more read of the stream:
// what the events the alerts cite were, and how many principals acted
// from the addresses the alerts name. Its memory is bounded by the alerts
// (one entry per cited event, up to maxSourcePrincipals ids per named
// source), not by the stream.
type eventFacts struct {
	events  map[string]*incident.EventFacts // nil until seen
	sources map[string]map[string]struct{}
}

var _ incident.Facts = (*eventFacts)(nil)

// newEventFacts prepares to collect the facts the incidents of alerts need.
func newEventFacts(alerts []event.Alert) *eventFacts {
	f := &eventFacts{events: map[string]*incident.EventFacts{}, sources: map[string]map[string]struct{}{}}
	named := func(e event.EntityKey) {
		if e.Kind == event.EntitySource && f.sources[e.ID] == nil {
			f.sources[e.ID] = map[string]struct{}{}
		}
	}
	for i := range alerts {
		a := &alerts[i]
		named(a.Entity)
		for fi := range a.Findings {
			fd := &a.Findings[fi]
			named(fd.Entity)
			for _, r := range fd.Related {
				named(r)
			}
			for _, ref := range fd.Evidence {
				f.events[ref] = nil
			}
		}
	}
	return f
}

// Observe notes ev if an alert cites it or names its source. Call it with
// the event as decoded (before a gate rewrites it).
func (f *eventFacts) Observe(ev *event.Event) {
	success := ev.IsActivity() && ev.Outcome != event.OutcomeFailure
	if ev.Source.IP.IsValid() && success {
		if ps, ok := f.sources[ev.Source.IP.String()]; ok && len(ps) < maxSourcePrincipals {
			ps[ev.User.ID] = struct{}{}
		}
	}
	ref := ev.RefWith(inputName)
	x, ok := f.events[ref]
	if !ok || x != nil {
		return // not cited, or seen already (the first occurrence rules)
	}
	ef := &incident.EventFacts{Success: success, Principal: ev.User.ID, Token: ev.Token.ID, Key: ev.Token.KeyID,
		ASN: ev.Source.ASN, UserAgent: ev.UserAgent, Country: ev.Source.Country}
	if ev.Source.IP.IsValid() {
		ef.Source = ev.Source.IP.String()
	}
	f.events[ref] = ef
}

// Event implements incident.Facts.
func (f *eventFacts) Event(ref string) (incident.EventFacts, bool) {
	if x := f.events[ref]; x != nil {
		return *x, true
	}
	return incident.EventFacts{}, false
}

// Source implements incident.Facts.
func (f *eventFacts) Source(ip string) (int, bool) {
	ps, ok := f.sources[ip]
	return len(ps), ok
}
