package alertfmt

import (
	"strings"

	"github.com/haechi-sec/haechi/internal/event"
)

// OCSFVersion is the OCSF schema version the documents follow
// (metadata.version).
const OCSFVersion = "1.3.0"

// OCSF Detection Finding identifiers.
const (
	ocsfCategory = 2    // Findings
	ocsfClass    = 2004 // Detection Finding
)

// OCSF severity_id for haechi's severities: 2 Low, 3 Medium, 4 High,
// 5 Critical.
var ocsfSeverity = [...]struct {
	id   int
	name string
}{{0, "Unknown"}, {2, "Low"}, {3, "Medium"}, {4, "High"}, {5, "Critical"}}

// OCSFFinding is one alert as an OCSF Detection Finding (class_uid 2004,
// category_uid 2): finding_info with the ATT&CK attacks and the analytic
// (the detector), severity_id, time, metadata.product, observables, the
// actor and source endpoint when the alert names one, and haechi's own
// fields under unmapped.haechi.alert.
type OCSFFinding struct {
	ActivityID   int              `json:"activity_id"`
	ActivityName string           `json:"activity_name"`
	CategoryUID  int              `json:"category_uid"`
	CategoryName string           `json:"category_name"`
	ClassUID     int              `json:"class_uid"`
	ClassName    string           `json:"class_name"`
	TypeUID      int              `json:"type_uid"`
	TypeName     string           `json:"type_name"`
	Time         int64            `json:"time"`
	StartTime    int64            `json:"start_time"`
	EndTime      int64            `json:"end_time"`
	SeverityID   int              `json:"severity_id"`
	Severity     string           `json:"severity"`
	StatusID     int              `json:"status_id"`
	Status       string           `json:"status"`
	IsAlert      bool             `json:"is_alert"`
	RiskScore    int              `json:"risk_score"`
	Message      string           `json:"message"`
	Metadata     ocsfMetadata     `json:"metadata"`
	FindingInfo  ocsfFindingInfo  `json:"finding_info"`
	Actor        *ocsfActor       `json:"actor,omitempty"`
	SrcEndpoint  *ocsfEndpoint    `json:"src_endpoint,omitempty"`
	Observables  []ocsfObservable `json:"observables,omitempty"`
	Unmapped     ocsfUnmapped     `json:"unmapped"`
}

type ocsfProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version,omitempty"`
}

type ocsfMetadata struct {
	Version string      `json:"version"`
	Product ocsfProduct `json:"product"`
	UID     string      `json:"uid"`
}

type ocsfAnalytic struct {
	UID    string `json:"uid"`
	Name   string `json:"name"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type"`
}

type ocsfRef struct {
	UID  string `json:"uid"`
	Name string `json:"name,omitempty"`
}

type ocsfAttack struct {
	Version      string   `json:"version"`
	Tactic       *ocsfRef `json:"tactic,omitempty"`
	Technique    *ocsfRef `json:"technique,omitempty"`
	SubTechnique *ocsfRef `json:"sub_technique,omitempty"`
}

type ocsfFindingInfo struct {
	UID           string       `json:"uid"`
	Title         string       `json:"title"`
	Desc          string       `json:"desc"`
	Types         []string     `json:"types"`
	FirstSeenTime int64        `json:"first_seen_time"`
	LastSeenTime  int64        `json:"last_seen_time"`
	Analytic      ocsfAnalytic `json:"analytic"`
	Attacks       []ocsfAttack `json:"attacks,omitempty"`
}

type ocsfUser struct {
	UID string `json:"uid"`
}

type ocsfActor struct {
	User ocsfUser `json:"user"`
}

type ocsfAS struct {
	Number uint32 `json:"number"`
}

type ocsfEndpoint struct {
	IP               string  `json:"ip,omitempty"`
	AutonomousSystem *ocsfAS `json:"autonomous_system,omitempty"`
}

type ocsfObservable struct {
	Name   string `json:"name"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type"`
	Value  string `json:"value"`
}

type ocsfUnmapped struct {
	Haechi ecsHaechi `json:"haechi"`
}

// ToOCSF returns a as an OCSF Detection Finding.
func ToOCSF(a *event.Alert, o Options) OCSFFinding {
	ents := entitiesOf(a)
	ch := o.change(a)
	act, actName := 1, "Create"
	switch ch {
	case Updated:
		act, actName = 2, "Update"
	case Closed:
		act, actName = 3, "Close"
	}
	sev := ocsfSeverity[min(int(a.Severity), len(ocsfSeverity)-1)]
	status, statusName := 1, "New"
	if a.State == event.AlertWithdrawn {
		status, statusName = 99, "Withdrawn"
	}
	ms := func(t interface{ UnixMilli() int64 }) int64 { return t.UnixMilli() }
	f := OCSFFinding{
		ActivityID: act, ActivityName: actName,
		CategoryUID: ocsfCategory, CategoryName: "Findings",
		ClassUID: ocsfClass, ClassName: "Detection Finding",
		TypeUID: ocsfClass*100 + act, TypeName: "Detection Finding: " + actName,
		Time: ms(a.Time), StartTime: ms(a.WindowStart), EndTime: ms(a.LastTime),
		SeverityID: sev.id, Severity: sev.name, StatusID: status, Status: statusName,
		IsAlert: ch != Closed, RiskScore: int(a.Risk + 0.5), Message: a.Explanation,
		Metadata: ocsfMetadata{Version: OCSFVersion, UID: a.ID,
			Product: ocsfProduct{Name: "haechi", VendorName: "haechi", Version: o.Version}},
		FindingInfo: ocsfFindingInfo{
			UID: a.ID, Title: a.Title, Desc: a.Explanation, Types: findingKinds(a),
			FirstSeenTime: ms(a.Time), LastSeenTime: ms(a.LastTime),
			Analytic: ocsfAnalytic{UID: a.Detector, Name: ruleID(a.Detector), TypeID: 2, Type: "Behavioral"},
		},
	}
	if strings.HasPrefix(a.Detector, "rule:") {
		f.FindingInfo.Analytic.TypeID, f.FindingInfo.Analytic.Type = 1, "Rule"
	}
	th := ThreatOf(a)
	for _, tq := range th.Techniques {
		tech, sub := &ocsfRef{UID: tq.ID, Name: tq.Name}, (*ocsfRef)(nil)
		if p := tq.Parent(); p != "" {
			sub = tech
			tech = &ocsfRef{UID: p, Name: techniques[p].Name}
		}
		if len(tq.Tactics) == 0 {
			f.FindingInfo.Attacks = append(f.FindingInfo.Attacks, ocsfAttack{Version: ATTACKVersion, Technique: tech, SubTechnique: sub})
		}
		for _, tc := range tq.Tactics {
			f.FindingInfo.Attacks = append(f.FindingInfo.Attacks, ocsfAttack{Version: ATTACKVersion,
				Tactic: &ocsfRef{UID: tc.ID, Name: tc.Name}, Technique: tech, SubTechnique: sub})
		}
	}
	// Tactics named by tag with no technique under them.
	for _, tc := range th.Tactics {
		covered := false
		for _, at := range f.FindingInfo.Attacks {
			if at.Tactic != nil && at.Tactic.UID == tc.ID {
				covered = true
			}
		}
		if !covered {
			f.FindingInfo.Attacks = append(f.FindingInfo.Attacks, ocsfAttack{Version: ATTACKVersion, Tactic: &ocsfRef{UID: tc.ID, Name: tc.Name}})
		}
	}
	if u := one(a, event.EntityPrincipal, ents.principals); u != "" {
		f.Actor = &ocsfActor{User: ocsfUser{UID: u}}
	}
	src := &ocsfEndpoint{IP: one(a, event.EntitySource, ents.sources)}
	if n, ok := ents.asn[src.IP]; ok && src.IP != "" {
		src.AutonomousSystem = &ocsfAS{n}
	} else if len(ents.networks) == 1 {
		if n, ok := asNumber(ents.networks[0]); ok {
			src.AutonomousSystem = &ocsfAS{n}
		}
	}
	if src.IP != "" || src.AutonomousSystem != nil {
		f.SrcEndpoint = src
	}
	obs := func(name string, typeID int, typ string, values []string) {
		for _, v := range values {
			f.Observables = append(f.Observables, ocsfObservable{Name: name, TypeID: typeID, Type: typ, Value: v})
		}
	}
	obs("actor.user.uid", 99, "User UID", ents.principals)
	obs("src_endpoint.ip", 2, "IP Address", ents.sources)
	obs("unmapped.haechi.alert.tokens", 99, "Token UID", ents.tokens)
	obs("unmapped.haechi.alert.keys", 99, "Signing Key UID", ents.keys)
	obs("unmapped.haechi.alert.networks", 99, "Network", ents.networks)
	obs("http_request.user_agent", 16, "HTTP User-Agent", ents.agents)
	f.Unmapped.Haechi = ToECS(a, o).Haechi
	return f
}

// OCSF returns a as one line of OCSF JSON (no trailing newline).
func OCSF(a *event.Alert, o Options) ([]byte, error) {
	return marshal(ToOCSF(a, o))
}

// Encode renders a in format (FormatHaechi, FormatECS or FormatOCSF) as
// one JSON line without the trailing newline.
func Encode(format string, a *event.Alert, o Options) ([]byte, error) {
	switch format {
	case FormatECS:
		return ECS(a, o)
	case FormatOCSF:
		return OCSF(a, o)
	case FormatHaechi, "":
		return marshal(a)
	}
	return nil, &FormatError{Format: format}
}

// Formats lists the formats Encode knows.
func Formats() []string { return []string{FormatHaechi, FormatECS, FormatOCSF} }

// FormatError is an unknown format.
type FormatError struct{ Format string }

func (e *FormatError) Error() string {
	return "unknown alert format " + `"` + e.Format + `"` + " (want haechi, ecs or ocsf)"
}
