package event

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// EntityKind names what an entity key identifies.
type EntityKind string

const (
	EntityPrincipal  EntityKind = "principal" // user.id / identity.id
	EntitySource     EntityKind = "source"    // source.ip
	EntityToken      EntityKind = "token"     // token.id
	EntitySigningKey EntityKind = "key"       // token.key_id / key.id
	EntityRecord     EntityKind = "record"    // one record id
)

// EntityKey identifies the entity a detector keys its state on and a
// finding or alert is about. It is comparable and used as a map key.
type EntityKey struct {
	Kind EntityKind `json:"kind"`
	ID   string     `json:"id"`
}

// String renders "kind:id".
func (k EntityKey) String() string { return string(k.Kind) + ":" + k.ID }

// IsZero reports whether the key is unset.
func (k EntityKey) IsZero() bool { return k.Kind == "" && k.ID == "" }

// Severity of a finding or an alert, ordered.
type Severity uint8

const (
	SeverityLow Severity = iota + 1
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"", "low", "medium", "high", "critical"}

// String returns the lower-case name ("low" … "critical"), "" when unset.
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return ""
}

// ParseSeverity is the inverse of String.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if i > 0 && n == s {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want low, medium, high or critical)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) {
	if s.String() == "" {
		return nil, fmt.Errorf("invalid severity %d", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// SeverityForScore maps a 0–100 score to a severity: ≥90 critical, ≥70
// high, ≥40 medium, otherwise low.
func SeverityForScore(score float64) Severity {
	switch {
	case score >= 90:
		return SeverityCritical
	case score >= 70:
		return SeverityHigh
	case score >= 40:
		return SeverityMedium
	}
	return SeverityLow
}

// TagExternalAccess marks a finding about access to the company's data
// by someone no longer inside it — an identity whose employment has ended
// — from outside the company's networks. Korea's PIPA counts such access
// as external access (a PIPC report is due whatever the number of people):
// the incident report reads this tag (report.Regime.ExternalAccess).
const TagExternalAccess = "haechi.access.external"

// Finding is what a detector emits: one observation about one entity, with
// the evidence behind it and a sentence a security engineer would accept.
type Finding struct {
	Detector    string    `json:"detector"`
	Kind        string    `json:"kind"`
	Title       string    `json:"title"` // short headline, e.g. "Activity after termination"
	Entity      EntityKey `json:"entity"`
	Time        time.Time `json:"time"`     // event time of the observation
	Score       float64   `json:"score"`    // 0–100
	Severity    Severity  `json:"severity"` // usually SeverityForScore(Score)
	Explanation string    `json:"explanation"`
	Evidence    []string  `json:"evidence"` // event references (Event.Ref)
	// Tags label the finding for playbooks and triage (e.g. MITRE ATT&CK
	// ids such as "attack.t1530" from rules).
	Tags []string `json:"tags,omitempty"`
	// Related names other entities the finding implicates beyond Entity —
	// e.g. the source address of a forged request in a finding about the
	// signing key — so a playbook can contain them too.
	Related []EntityKey `json:"related,omitempty"`
	// Figures are the measurements and baseline figures behind the
	// finding (e.g. "distinct_records" 4210, "own_p99" 38, "peers_p99"
	// 55), in the order the explanation cites them.
	Figures []Figure `json:"figures,omitempty"`
	// Line names the line of evidence the finding counts in; empty: its
	// Detector. The alert stage counts each line once at its strongest,
	// so one observation must be one line: a detector whose kinds measure
	// independent things gives each its own line, and a finding about an
	// observation another detector owns (being abroad: principal_geo; an
	// unusual hour: off_hours) names that detector, so the two do not
	// corroborate each other.
	Line string `json:"line,omitempty"`
	// Privileged marks a finding about a principal holding a privileged
	// role: the alert stage weighs the entity's whole risk by
	// alerts.privileged_multiplier while such a finding holds risk (entity
	// criticality, as Elastic's asset criticality and Splunk RBA's risk
	// modifiers).
	Privileged bool `json:"privileged,omitempty"`
	// Contribution is the risk the finding added to its entity when the
	// alert stage scored it (0 for a repeat of a signal already counted,
	// or a suppressed one); set by the alert stage.
	Contribution float64 `json:"contribution,omitempty"`
	// Immediate marks a high-confidence finding that must alert at once
	// rather than wait for risk to accumulate.
	Immediate bool `json:"-"`
	// Withdraws, when set, makes this finding a withdrawal: the finding of
	// that ID (Finding.ID), which the same detector emitted earlier about
	// the same Entity, turned out wrong — a late event (a token's mint
	// arriving after the never-minted verdict) removed its basis. A
	// withdrawal carries the late event as Evidence and says why in
	// Explanation; its Time is the withdrawn finding's Time (never
	// earlier, so processing in event-time order meets the finding first),
	// its Score 0, and it is never Immediate. It adds no risk and opens no
	// alert: the alert stage removes the withdrawn finding from its alert
	// and withdraws the alert when nothing standing is left
	// (docs/alerts.md). A detector emits at most one withdrawal per
	// finding.
	Withdraws FindingID `json:"withdraws,omitempty"`
	// Cited describes events among Evidence: the engine fills it, for
	// the event whose processing emitted the finding when the finding
	// cites it, so later stages (incident grouping) know who acted with
	// which credential from where without keeping the stream. Not stored
	// with the finding (the store keeps citations apart); empty for
	// findings emitted outside the processing of an event (timers).
	Cited []Citation `json:"cited,omitempty"`
}

// Citation is what an event cited as evidence was: who acted, with which
// credential, from where.
type Citation struct {
	Ref string `json:"ref"` // the evidence reference (Event.Ref)
	// Success: an activity that did not fail (event.outcome success or
	// unset).
	Success   bool   `json:"success,omitempty"`
	Principal string `json:"principal,omitempty"`  // user.id
	Token     string `json:"token,omitempty"`      // token.id
	Key       string `json:"key,omitempty"`        // token.key_id
	Source    string `json:"source,omitempty"`     // source.ip, "" when absent
	ASN       uint32 `json:"asn,omitempty"`        // source.as.number
	UserAgent string `json:"user_agent,omitempty"` // user_agent.original
	Country   string `json:"country,omitempty"`    // source.geo.country_iso_code
}

// CitationOf returns what ev was, cited under ref.
func CitationOf(ref string, ev *Event) Citation {
	c := Citation{Ref: ref, Success: ev.IsActivity() && ev.Outcome != OutcomeFailure, Principal: ev.User.ID,
		Token: ev.Token.ID, Key: ev.Token.KeyID, ASN: ev.Source.ASN, UserAgent: ev.UserAgent, Country: ev.Source.Country}
	if ev.Source.IP.IsValid() {
		c.Source = ev.Source.IP.String()
	}
	return c
}

// FindingID identifies a finding (Finding.ID). Its text form is "fd-" and
// 16 hex digits; zero means none.
type FindingID uint64

// String renders "fd-" and 16 hex digits, "" for zero.
func (id FindingID) String() string {
	if id == 0 {
		return ""
	}
	return fmt.Sprintf("fd-%016x", uint64(id))
}

// MarshalText implements encoding.TextMarshaler.
func (id FindingID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; "" is zero.
func (id *FindingID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*id = 0
		return nil
	}
	s, ok := strings.CutPrefix(string(b), "fd-")
	v, err := strconv.ParseUint(s, 16, 64)
	if !ok || len(s) != 16 || err != nil {
		return fmt.Errorf("invalid finding id %q (want fd- and 16 hex digits)", b)
	}
	*id = FindingID(v)
	return nil
}

// ID is the finding's identity: a hash of Detector, Kind, Entity, Time and
// Evidence — what the detector sets and no later stage changes (the alert
// stage rewrites Explanation, Contribution and Immediate of a suppressed
// finding; JSON keeps Time to the nanosecond) — so it is the same in
// replay, serve and cluster mode. Two findings with all of these equal are
// one finding. Never zero.
func (f *Finding) ID() FindingID {
	h := sha256.New()
	var t [8]byte
	for _, s := range []string{f.Detector, f.Kind, string(f.Entity.Kind), f.Entity.ID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	binary.BigEndian.PutUint64(t[:], uint64(f.Time.UnixNano()))
	h.Write(t[:])
	for _, e := range f.Evidence {
		h.Write([]byte{0})
		h.Write([]byte(e))
	}
	id := FindingID(binary.BigEndian.Uint64(h.Sum(nil)))
	if id == 0 {
		id = 1
	}
	return id
}

// Figure is one named number behind a finding.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// AlertState is an alert's lifecycle state.
type AlertState string

const (
	AlertOpen AlertState = "open"
	// AlertWithdrawn: the alert's findings were withdrawn (Finding.Withdraws)
	// until nothing standing was left — no finding, or none immediate and
	// less risk than the threshold. Its explanation says why; it is final
	// unless a new finding falls in its window and reopens it.
	AlertWithdrawn AlertState = "withdrawn"
)

// Alert is what the alert stage raises from findings. Its JSON form is the
// one `haechi replay` prints and `GET /v1/alerts` returns (docs/alerts.md).
type Alert struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"` // event time of the finding that raised it
	Entity   EntityKey `json:"entity"`
	Severity Severity  `json:"severity"`
	Score    float64   `json:"score"`
	// Risk is the entity's accumulated risk when the alert was raised
	// (and as findings joined): the sum over detectors of their decayed,
	// capped contributions (docs/alerts.md).
	Risk        float64    `json:"risk"`
	Title       string     `json:"title"`
	Explanation string     `json:"explanation"`
	State       AlertState `json:"state"`
	Detector    string     `json:"detector"`
	// WindowStart and WindowEnd bound the dedup window in event time.
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// FindingCount counts every finding folded into the alert, including
	// those beyond the stored cap.
	FindingCount int       `json:"finding_count"`
	LastTime     time.Time `json:"last_time"` // event time of the latest finding
	Findings     []Finding `json:"findings"`
}
