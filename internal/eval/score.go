package eval

import (
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

// Scorecard is the result of scoring a run's alerts against its ground
// truth. Its JSON form is what `haechi eval -o json` prints.
type Scorecard struct {
	Scenarios      []ScenarioScore `json:"scenarios"`
	FalsePositives FalsePositives  `json:"false_positives"`
	// Events observed, distinct identities among them, and the event-time
	// span of the activity in days (the denominators of the FP rate).
	Events     int64   `json:"events"`
	Identities int     `json:"identities"`
	Days       float64 `json:"days"`
	// Alerts is the number of distinct alerts the pipeline raised and
	// did not withdraw.
	Alerts int `json:"alerts"`
	// Withdrawn counts the alerts withdrawn because late events proved
	// their findings wrong (a token's mint arriving after the never-minted
	// verdict): no standing alert, they are not scored.
	Withdrawn WithdrawnAlerts `json:"withdrawn"`
	// Response says whether containment by the response playbooks
	// (enforce mode, at event time) was scored.
	Response bool `json:"response"`
	// Incidents scores the grouping of the standing alerts into incidents
	// (RunWith; absent when only alerts were scored).
	Incidents *IncidentsScore `json:"incidents,omitempty"`
	// FalseContainments counts the containments that refused benign
	// requests (RunWith with the response scored; absent otherwise).
	FalseContainments *FalseContainments `json:"false_containments,omitempty"`
	// InlineVerify counts the inline token check's verdicts and false
	// refusals (RunOptions.InlineVerify; nil without it).
	InlineVerify *InlineVerify `json:"inline_verify,omitempty"`
}

// ScenarioScore scores one attack scenario.
type ScenarioScore struct {
	Name     string `json:"name"`
	Detected bool   `json:"detected"`
	// TimeToDetectSeconds is event time from the scenario's first malicious
	// event to the earliest DetectedAt of its attributed alerts: when, in
	// the order findings were processed, an alert first held the attack —
	// not when an alert that was already open before the attack began
	// (its window's start) was raised. Floored at 0; null when not
	// detected.
	TimeToDetectSeconds *float64 `json:"time_to_detect_seconds"`
	// RecordsExposedBeforeContainment counts distinct records read by
	// malicious events with the response in force (with response scored):
	// what they still read through the gateway once the containments the
	// playbooks delivered refused what they covered — every record touched
	// when nothing refused the attacker, and reads through what the
	// containments did not cover included. Without response scored, the
	// records read at or before the first attributed alert.
	RecordsExposedBeforeContainment int `json:"records_exposed_before_containment"`
	// RecordsExposedBeforeDetection counts the records read at or before
	// the first attributed alert (all touched when not detected).
	RecordsExposedBeforeDetection int `json:"records_exposed_before_detection"`
	// ContainedAt is the event time of the earliest containment that
	// refused one of the attacker's requests, and ContainedBy its action
	// kind; absent without one.
	ContainedAt    *time.Time `json:"contained_at,omitempty"`
	ContainedBy    string     `json:"contained_by,omitempty"`
	RecordsTouched int        `json:"records_touched"`
	// Alerts attributed to the scenario, by time.
	Alerts []AlertRef `json:"alerts"`
	// Incidents counts the incidents holding an alert attributed to the
	// scenario, and IncidentIDs names them (ScoreIncidents; 0 and absent
	// when incidents were not scored).
	Incidents   int      `json:"incidents"`
	IncidentIDs []string `json:"incident_ids,omitempty"`
	// TimeToFindingSeconds is, per detector, event time from the
	// scenario's first malicious event to the earliest finding of that
	// detector in an attributed alert that cites one of the scenario's
	// malicious events, floored at 0. An alert's time is that of the
	// finding that raised it, which need not be its earliest (findings of
	// several shards reach the unordered alert stage in no particular
	// order), so this is the detector's own speed.
	TimeToFindingSeconds map[string]float64 `json:"time_to_finding_seconds,omitempty"`
}

// FirstDetecting returns the attributed alert with the earliest DetectedAt
// (the first by time of those), the one time to detect counts from; zero
// without alerts.
func (ss *ScenarioScore) FirstDetecting() AlertRef {
	var first AlertRef
	for i, r := range ss.Alerts {
		if i == 0 || r.DetectedAt.Before(first.DetectedAt) {
			first = r
		}
	}
	return first
}

// WithdrawnAlerts counts withdrawn alerts by what they were about, the way
// standing ones are attributed (Score).
type WithdrawnAlerts struct {
	Alerts     int `json:"alerts"`
	Scenario   int `json:"scenario"`
	HardBenign int `json:"hard_benign"`
	Ordinary   int `json:"ordinary"`
	// ByName counts withdrawn alerts per hard-benign entry.
	ByName map[string]int `json:"by_name"`
}

// AlertRef names an alert in the scorecard.
type AlertRef struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// DetectedAt is the event time at which the alert first held the
	// scenario (detectedAt): its Time when it was raised at or after the
	// scenario's first malicious event, else (an alert open before the
	// attack that attack findings joined) the time of its earliest finding
	// from then on.
	DetectedAt time.Time       `json:"detected_at"`
	Detector   string          `json:"detector"`
	Entity     event.EntityKey `json:"entity"`
	Severity   string          `json:"severity"` // "low" … "critical"
	Title      string          `json:"title"`
}

// FalsePositives counts alerts attributed to no scenario.
type FalsePositives struct {
	// PerTenKIdentitiesPerDay is ordinary FP alerts / (identities/10,000) /
	// days.
	PerTenKIdentitiesPerDay float64 `json:"per_10k_identities_per_day"`
	Ordinary                int     `json:"ordinary"`
	// ByDetector counts ordinary false positives per detector.
	ByDetector map[string]int `json:"by_detector"`
	HardBenign HardBenignFP   `json:"hard_benign"`
}

// HardBenignFP counts false positives about deliberately hard benign
// traffic (truth.HardBenign).
type HardBenignFP struct {
	Alerts                  int     `json:"alerts"`
	PerTenKIdentitiesPerDay float64 `json:"per_10k_identities_per_day"`
	// ByName counts alerts per hard-benign entry (an alert matching two
	// entries counts under both, once in Alerts).
	ByName map[string]int `json:"by_name"`
	// ByDetector counts hard-benign false positives per detector.
	ByDetector map[string]int `json:"by_detector"`
}

// minDays floors the span used as the FP-rate denominator, so that a file
// whose activity spans seconds (or one instant) gives a finite rate.
const minDays = 1.0 / 24

// Score scores alerts against the ground truth t and what obs saw of the
// events. Alerts are deduplicated by ID, keeping the last (an alert
// reopened by a late finding is closed twice). obs may be nil (no events
// observed: records come from the truth, the FP rate is over zero
// identities and reported as 0).
//
// An alert is attributed to a scenario when any of its findings' evidence
// cites one of the scenario's malicious event ids, or when its entity is
// one of the scenario's attacker entities and its latest finding is not
// before the scenario's first malicious event (an alert that was over
// before the attack began did not detect it). An alert attributed to no scenario
// is a false positive: hard-benign when its entity is one of a hard-benign
// entry's entities or its evidence cites one of that entry's event ids,
// otherwise ordinary. Withdrawn alerts (state withdrawn) are not scored:
// they are counted in Scorecard.Withdrawn, attributed the same way.
func Score(t *truth.Truth, obs *Observer, alerts []event.Alert) Scorecard {
	return ScoreWithResponse(t, obs, nil, alerts)
}

// ScoreWithResponse is Score with the response in force: gated has
// observed the same stream a second time, through a Gate enforcing the
// containments the playbooks would deliver (RunWith does this). A
// scenario's RecordsExposedBeforeContainment is then what its malicious
// events still read through the gate — the attacker's real gain with
// haechi's response in force, reads through whatever the containments did
// not cover included — and ContainedAt/By name the earliest containment
// that refused one of them. Detection figures come from obs, the stream
// without response: a containment follows an alert, so it cannot change
// when the first one came. With gated nil, the first alert stands in for
// containment, as in Score.
func ScoreWithResponse(t *truth.Truth, obs, gated *Observer, alerts []event.Alert) Scorecard {
	if t == nil {
		t = &truth.Truth{}
	}
	if obs == nil {
		obs = NewObserver(t)
	}
	alerts = dedupe(alerts)
	var withdrawn []event.Alert
	alerts = slices.DeleteFunc(alerts, func(a event.Alert) bool {
		if a.State == event.AlertWithdrawn {
			withdrawn = append(withdrawn, a)
			return true
		}
		return false
	})

	at := newAttributor(t)
	malByID, benignEnt, benignByID := at.malByID, at.benignEnt, at.benignByID

	sc := Scorecard{
		Scenarios:  make([]ScenarioScore, len(t.Scenarios)),
		Events:     obs.Events(),
		Identities: obs.Identities(),
		Days:       obs.Span().Hours() / 24,
		Alerts:     len(alerts),
		Withdrawn:  WithdrawnAlerts{Alerts: len(withdrawn), ByName: map[string]int{}},
		FalsePositives: FalsePositives{
			ByDetector: map[string]int{},
			HardBenign: HardBenignFP{ByName: map[string]int{}, ByDetector: map[string]int{}},
		},
	}
	for i, s := range t.Scenarios {
		sc.Scenarios[i] = ScenarioScore{Name: s.Name, Alerts: []AlertRef{}}
	}

	fp := &sc.FalsePositives
	scenarios := at.scenarios
	// Per scenario, the earliest finding of each detector citing one of its
	// malicious events.
	firstFinding := make([]map[string]time.Time, len(t.Scenarios))
	firsts := make([]time.Time, len(t.Scenarios))
	for i, s := range t.Scenarios {
		firsts[i] = firstMalicious(s, obs)
	}
	for i := range alerts {
		a := &alerts[i]
		scen := scenarios(a)
		if len(scen) > 0 {
			ref := AlertRef{ID: a.ID, Time: a.Time, Detector: a.Detector, Entity: a.Entity, Severity: a.Severity.String(), Title: a.Title}
			for _, si := range scen {
				ref.DetectedAt = detectedAt(a, firsts[si])
				sc.Scenarios[si].Alerts = append(sc.Scenarios[si].Alerts, ref)
			}
			for fi := range a.Findings {
				f := &a.Findings[fi]
				for _, si := range citedScenarios(f, malByID) {
					if firstFinding[si] == nil {
						firstFinding[si] = map[string]time.Time{}
					}
					if at, ok := firstFinding[si][f.Detector]; !ok || f.Time.Before(at) {
						firstFinding[si][f.Detector] = f.Time
					}
				}
			}
			continue
		}
		if hb := matches(a, benignEnt, benignByID); len(hb) > 0 {
			fp.HardBenign.Alerts++
			fp.HardBenign.ByDetector[a.Detector]++
			for _, bi := range hb {
				fp.HardBenign.ByName[t.HardBenign[bi].Name]++
			}
			continue
		}
		fp.Ordinary++
		fp.ByDetector[a.Detector]++
	}
	for i := range withdrawn {
		a := &withdrawn[i]
		w := &sc.Withdrawn
		if len(scenarios(a)) > 0 {
			w.Scenario++
		} else if hb := matches(a, benignEnt, benignByID); len(hb) > 0 {
			w.HardBenign++
			for _, bi := range hb {
				w.ByName[t.HardBenign[bi].Name]++
			}
		} else {
			w.Ordinary++
		}
	}
	fp.PerTenKIdentitiesPerDay = rate(fp.Ordinary, sc.Identities, sc.Days)
	fp.HardBenign.PerTenKIdentitiesPerDay = rate(fp.HardBenign.Alerts, sc.Identities, sc.Days)

	for i, s := range t.Scenarios {
		first := scoreScenario(&sc.Scenarios[i], s, obs, firsts[i])
		if ff := firstFinding[i]; ff != nil && !first.IsZero() {
			sc.Scenarios[i].TimeToFindingSeconds = map[string]float64{}
			for det, at := range ff {
				sc.Scenarios[i].TimeToFindingSeconds[det] = max(at.Sub(first).Seconds(), 0)
			}
		}
		sc.Scenarios[i].RecordsExposedBeforeDetection = sc.Scenarios[i].RecordsExposedBeforeContainment
		if gated != nil {
			containScenario(&sc.Scenarios[i], s, gated)
		}
	}
	sc.Response = gated != nil
	return sc
}

// attributor attributes alerts to scenarios and hard-benign entries the
// way Score does.
type attributor struct {
	t *truth.Truth
	// Indexes: malicious event id / attacker entity → scenarios;
	// hard-benign event id / entity → entries.
	malByID    map[string][]int
	attacker   map[event.EntityKey][]int
	benignByID map[string][]int
	benignEnt  map[event.EntityKey][]int
}

func newAttributor(t *truth.Truth) *attributor {
	at := &attributor{t: t, malByID: map[string][]int{}, attacker: map[event.EntityKey][]int{},
		benignByID: map[string][]int{}, benignEnt: map[event.EntityKey][]int{}}
	for i, s := range t.Scenarios {
		for _, id := range s.MaliciousEventIDs {
			at.malByID[id] = appendOnce(at.malByID[id], i)
		}
		for _, e := range s.AttackerEntities {
			at.attacker[e] = appendOnce(at.attacker[e], i)
		}
	}
	for i, b := range t.HardBenign {
		for _, id := range b.EventIDs {
			at.benignByID[id] = appendOnce(at.benignByID[id], i)
		}
		for _, e := range b.Entities {
			at.benignEnt[e] = appendOnce(at.benignEnt[e], i)
		}
	}
	return at
}

// scenarios returns the scenarios an alert is attributed to (Score).
func (at *attributor) scenarios(a *event.Alert) []int {
	scen := matches(a, at.attacker, at.malByID)
	// An alert about an attacker entity that ended before the attack
	// began (a cold-start alert on the service that is abused a week
	// later) did not detect it: it is scored like any other alert.
	return slices.DeleteFunc(scen, func(si int) bool {
		first := at.t.Scenarios[si].FirstMalicious
		return !first.IsZero() && alertEnd(a).Before(first) && !citesAny(a, at.t.Scenarios[si].MaliciousEventIDs)
	})
}

// firstMalicious is the scenario's first malicious event time: the
// truth's first_malicious, else the earliest malicious event obs saw
// (zero: unknown).
func firstMalicious(s truth.Scenario, obs *Observer) time.Time {
	first := s.FirstMalicious
	if !first.IsZero() {
		return first
	}
	for _, id := range s.MaliciousEventIDs {
		if m := obs.mal[id]; m != nil && m.seen && (first.IsZero() || m.time.Before(first)) {
			first = m.time
		}
	}
	return first
}

// detectedAt is the event time at which the alert a first held an attack
// whose first malicious event is at first. Alerts are raised in the order
// findings are processed, each finding at the event time of the event
// that decided it (the request that crossed a threshold, the use whose
// mint could no longer come): an alert raised at or after first detected
// the attack at its Time, the event time of the finding that made its
// entity cross the threshold. An alert raised before first (its entity's
// session window was already open, e.g. a signing key's posture alert in
// the morning of a forgery) detected the attack only when a finding from
// first on joined it: the earliest such finding's time, else (none among
// the findings the alert keeps) the alert's latest finding's. Without
// first, its Time.
func detectedAt(a *event.Alert, first time.Time) time.Time {
	if first.IsZero() || !a.Time.Before(first) {
		return a.Time
	}
	var at time.Time
	for i := range a.Findings {
		f := &a.Findings[i]
		if f.Withdraws == 0 && !f.Time.Before(first) && (at.IsZero() || f.Time.Before(at)) {
			at = f.Time
		}
	}
	if at.IsZero() {
		at = alertEnd(a)
	}
	return at
}

// scoreScenario fills detection, time to detect and records from the
// attributed alerts (already sorted by time) and the observed events, and
// returns the scenario's first malicious event time first (zero: unknown;
// firstMalicious).
func scoreScenario(ss *ScenarioScore, s truth.Scenario, obs *Observer, first time.Time) time.Time {
	touched := map[string]struct{}{}
	seen := false
	for _, id := range s.MaliciousEventIDs {
		m := obs.mal[id]
		if m == nil || !m.seen {
			continue
		}
		seen = true
		for _, r := range m.records {
			touched[r] = struct{}{}
		}
	}
	// The records touched are counted from the events themselves; the
	// truth's count stands in when none of the malicious events was seen.
	ss.RecordsTouched = len(touched)
	if !seen {
		ss.RecordsTouched = s.RecordsTouched
	}
	if len(ss.Alerts) == 0 {
		ss.RecordsExposedBeforeContainment = ss.RecordsTouched
		return first
	}
	ss.Detected = true
	at := ss.FirstDetecting().DetectedAt
	ttd := max(at.Sub(first).Seconds(), 0)
	if first.IsZero() {
		ttd = 0
	}
	ss.TimeToDetectSeconds = &ttd
	if !seen {
		// Nothing observed to count from: assume the worst.
		ss.RecordsExposedBeforeContainment = ss.RecordsTouched
		return first
	}
	exposed := map[string]struct{}{}
	for _, id := range s.MaliciousEventIDs {
		m := obs.mal[id]
		if m == nil || !m.seen || m.time.After(at) {
			continue
		}
		for _, r := range m.records {
			exposed[r] = struct{}{}
		}
	}
	ss.RecordsExposedBeforeContainment = len(exposed)
	return first
}

// matches returns the indexes an alert's entity or evidence points at, in
// ascending order without repeats.
func matches(a *event.Alert, byEntity map[event.EntityKey][]int, byID map[string][]int) []int {
	var out []int
	for _, i := range byEntity[a.Entity] {
		out = appendOnce(out, i)
	}
	if len(byID) > 0 {
		for fi := range a.Findings {
			for _, ref := range a.Findings[fi].Evidence {
				for _, i := range byID[ref] {
					out = appendOnce(out, i)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// alertEnd is the event time of the alert's latest finding.
func alertEnd(a *event.Alert) time.Time {
	if a.LastTime.After(a.Time) {
		return a.LastTime
	}
	return a.Time
}

// citedScenarios returns the scenarios whose malicious events f cites.
func citedScenarios(f *event.Finding, malByID map[string][]int) []int {
	var out []int
	for _, ref := range f.Evidence {
		for _, si := range malByID[ref] {
			out = appendOnce(out, si)
		}
	}
	return out
}

// citesAny reports whether the alert's evidence cites one of ids.
func citesAny(a *event.Alert, ids []string) bool {
	for fi := range a.Findings {
		for _, ref := range a.Findings[fi].Evidence {
			if slices.Contains(ids, ref) {
				return true
			}
		}
	}
	return false
}

func appendOnce(s []int, v int) []int {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// dedupe keeps the last alert per ID and sorts by time, then ID.
func dedupe(alerts []event.Alert) []event.Alert {
	idx := make(map[string]int, len(alerts))
	out := make([]event.Alert, 0, len(alerts))
	for _, a := range alerts {
		if i, ok := idx[a.ID]; ok {
			out[i] = a
			continue
		}
		idx[a.ID] = len(out)
		out = append(out, a)
	}
	slices.SortStableFunc(out, func(x, y event.Alert) int {
		if c := x.Time.Compare(y.Time); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// rate is n alerts per 10,000 identities per day; 0 without identities.
func rate(n, identities int, days float64) float64 {
	if n == 0 || identities == 0 {
		return 0
	}
	return float64(n) * 10000 / float64(identities) / max(days, minDays)
}

// containScenario sets containment from the gated stream: the earliest
// containment that refused one of the scenario's malicious events, and
// the records its malicious events read through the gate.
func containScenario(ss *ScenarioScore, s truth.Scenario, gated *Observer) {
	var at time.Time
	by := ""
	exposed := map[string]struct{}{}
	seen := false
	for _, id := range s.MaliciousEventIDs {
		m := gated.mal[id]
		if m == nil || !m.seen {
			continue
		}
		seen = true
		if m.refused && (at.IsZero() || m.refusedAt.Before(at) || (m.refusedAt.Equal(at) && m.refusedBy < by)) {
			at, by = m.refusedAt, m.refusedBy
		}
		for _, r := range m.records {
			exposed[r] = struct{}{}
		}
	}
	if !seen {
		ss.RecordsExposedBeforeContainment = ss.RecordsTouched
		return
	}
	if !at.IsZero() {
		ss.ContainedAt, ss.ContainedBy = &at, by
	}
	ss.RecordsExposedBeforeContainment = len(exposed)
}
