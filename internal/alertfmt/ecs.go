package alertfmt

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// ECSVersion is the ECS version the documents follow (ecs.version).
const ECSVersion = "8.11.0"

// ECS severities (event.severity) for haechi's four, as Elastic's
// detection rules number low, medium, high and critical.
var ecsSeverity = [...]int{0, 21, 47, 73, 99}

// ECSAlert is one alert as an ECS document: event.kind "alert", rule.*,
// threat.* (MITRE ATT&CK), the entities it names (user.*, source.*,
// user_agent.*, related.*) and haechi's own fields under haechi.alert.
// Fields are ECS's except haechi.*, a custom field set.
type ECSAlert struct {
	Timestamp time.Time   `json:"@timestamp"`
	Message   string      `json:"message"`
	ECS       ecsVersion  `json:"ecs"`
	Event     ecsEvent    `json:"event"`
	Rule      ecsRule     `json:"rule"`
	Threat    *ecsThreat  `json:"threat,omitempty"`
	Observer  ecsObserver `json:"observer"`
	User      *ecsID      `json:"user,omitempty"`
	Source    *ecsSource  `json:"source,omitempty"`
	UserAgent *ecsAgent   `json:"user_agent,omitempty"`
	Related   *ecsRelated `json:"related,omitempty"`
	Tags      []string    `json:"tags,omitempty"`
	Haechi    ecsHaechi   `json:"haechi"`
}

type ecsVersion struct {
	Version string `json:"version"`
}

type ecsEvent struct {
	Kind          string    `json:"kind"`
	ID            string    `json:"id"`
	Action        string    `json:"action"`
	Provider      string    `json:"provider"`
	Module        string    `json:"module"`
	Dataset       string    `json:"dataset"`
	Severity      int       `json:"severity"`
	RiskScore     float64   `json:"risk_score"`
	RiskScoreNorm float64   `json:"risk_score_norm"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	Reason        string    `json:"reason,omitempty"`
}

type ecsRule struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Ruleset  string   `json:"ruleset"`
	Category string   `json:"category,omitempty"`
	Author   []string `json:"author"`
}

type ecsRef struct {
	ID        []string `json:"id"`
	Name      []string `json:"name"`
	Reference []string `json:"reference"`
}

type ecsTechnique struct {
	ecsRef
	Subtechnique *ecsRef `json:"subtechnique,omitempty"`
}

type ecsThreat struct {
	Framework string        `json:"framework"`
	Tactic    *ecsRef       `json:"tactic,omitempty"`
	Technique *ecsTechnique `json:"technique,omitempty"`
}

type ecsObserver struct {
	Vendor  string `json:"vendor"`
	Product string `json:"product"`
	Type    string `json:"type"`
	Version string `json:"version,omitempty"`
}

type ecsID struct {
	ID string `json:"id"`
}

type ecsAS struct {
	Number uint32 `json:"number"`
}

type ecsSource struct {
	IP string `json:"ip,omitempty"`
	AS *ecsAS `json:"as,omitempty"`
}

type ecsAgent struct {
	Original string `json:"original"`
}

type ecsRelated struct {
	User []string `json:"user,omitempty"`
	IP   []string `json:"ip,omitempty"`
}

type ecsHaechi struct {
	Alert  ecsHaechiAlert `json:"alert"`
	Action any            `json:"action,omitempty"`
}

type ecsHaechiAlert struct {
	ID           string          `json:"id"`
	State        string          `json:"state"`
	Entity       event.EntityKey `json:"entity"`
	Severity     string          `json:"severity"`
	Score        float64         `json:"score"`
	Risk         float64         `json:"risk"`
	FindingCount int             `json:"finding_count"`
	Kinds        []string        `json:"kinds"`
	Tokens       []string        `json:"tokens,omitempty"`
	Keys         []string        `json:"keys,omitempty"`
	Networks     []string        `json:"networks,omitempty"`
	Findings     []ecsFinding    `json:"findings"`
}

type ecsFinding struct {
	ID          string          `json:"id"`
	Detector    string          `json:"detector"`
	Kind        string          `json:"kind"`
	Title       string          `json:"title"`
	Entity      event.EntityKey `json:"entity"`
	Time        time.Time       `json:"time"`
	Score       float64         `json:"score"`
	Explanation string          `json:"explanation"`
	Evidence    []string        `json:"evidence,omitempty"`
	Withdraws   string          `json:"withdraws,omitempty"`
}

// ToECS returns a as an ECS document.
func ToECS(a *event.Alert, o Options) ECSAlert {
	ents := entitiesOf(a)
	state := string(a.State)
	if o.change(a) == Closed && a.State != event.AlertWithdrawn {
		state = "closed"
	}
	d := ECSAlert{
		Timestamp: a.Time.UTC(),
		Message:   a.Explanation,
		ECS:       ecsVersion{ECSVersion},
		Event: ecsEvent{
			Kind: "alert", ID: a.ID, Action: "alert-" + string(o.change(a)), Provider: "haechi", Module: "haechi",
			Dataset: "haechi.alert", Severity: ecsSeverity[min(int(a.Severity), len(ecsSeverity)-1)],
			RiskScore: a.Score, RiskScoreNorm: min(a.Score, 100), Start: a.WindowStart.UTC(), End: a.LastTime.UTC(),
			Reason: a.Title,
		},
		Rule:     ecsRule{ID: ruleID(a.Detector), Name: a.Title, Ruleset: "haechi", Author: []string{"haechi"}},
		Observer: ecsObserver{Vendor: "haechi", Product: "haechi", Type: "detection", Version: o.Version},
		Tags:     tags(a),
		Haechi: ecsHaechi{Action: o.Action, Alert: ecsHaechiAlert{
			ID: a.ID, State: state, Entity: a.Entity, Severity: a.Severity.String(), Score: a.Score, Risk: a.Risk,
			FindingCount: a.FindingCount, Kinds: findingKinds(a), Tokens: ents.tokens, Keys: ents.keys,
			Networks: ents.networks, Findings: []ecsFinding{},
		}},
	}
	if k := findingKinds(a); len(k) > 0 {
		d.Rule.Category = k[0]
	}
	for i := range a.Findings {
		f := &a.Findings[i]
		d.Haechi.Alert.Findings = append(d.Haechi.Alert.Findings, ecsFinding{
			ID: f.ID().String(), Detector: f.Detector, Kind: f.Kind, Title: f.Title, Entity: f.Entity, Time: f.Time.UTC(),
			Score: f.Score, Explanation: f.Explanation, Evidence: f.Evidence, Withdraws: f.Withdraws.String(),
		})
	}
	if th := ThreatOf(a); !th.Empty() {
		t := &ecsThreat{Framework: "MITRE ATT&CK"}
		if len(th.Tactics) > 0 {
			t.Tactic = &ecsRef{}
			for _, tc := range th.Tactics {
				t.Tactic.ID = append(t.Tactic.ID, tc.ID)
				t.Tactic.Name = append(t.Tactic.Name, tc.Name)
				t.Tactic.Reference = append(t.Tactic.Reference, tc.Reference())
			}
		}
		// ECS lists techniques and sub-techniques apart: a sub-technique's
		// parent is a technique of the alert too.
		var tech, sub ecsRef
		addRef := func(r *ecsRef, t Technique) {
			if !contains(r.ID, t.ID) {
				r.ID = append(r.ID, t.ID)
				r.Name = append(r.Name, t.Name)
				r.Reference = append(r.Reference, t.Reference())
			}
		}
		for _, tq := range th.Techniques {
			if p := tq.Parent(); p != "" {
				addRef(&sub, tq)
				pt, ok := techniques[p]
				if !ok {
					pt = Technique{ID: p}
				}
				addRef(&tech, pt)
			} else {
				addRef(&tech, tq)
			}
		}
		if len(tech.ID) > 0 {
			t.Technique = &ecsTechnique{ecsRef: tech}
			if len(sub.ID) > 0 {
				t.Technique.Subtechnique = &sub
			}
		}
		d.Threat = t
	}
	if u := one(a, event.EntityPrincipal, ents.principals); u != "" {
		d.User = &ecsID{u}
	}
	src := &ecsSource{IP: one(a, event.EntitySource, ents.sources)}
	if n, ok := ents.asn[src.IP]; ok && src.IP != "" {
		src.AS = &ecsAS{n}
	} else if len(ents.networks) == 1 {
		if n, ok := asNumber(ents.networks[0]); ok {
			src.AS = &ecsAS{n}
		}
	}
	if src.IP != "" || src.AS != nil {
		d.Source = src
	}
	if len(ents.agents) == 1 {
		d.UserAgent = &ecsAgent{ents.agents[0]}
	}
	if len(ents.principals) > 0 || len(ents.sources) > 0 {
		d.Related = &ecsRelated{User: ents.principals, IP: ents.sources}
	}
	return d
}

// ECS returns a as one line of ECS JSON (no trailing newline).
func ECS(a *event.Alert, o Options) ([]byte, error) {
	return marshal(ToECS(a, o))
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// marshal renders v as one JSON line without HTML escaping ("ATT&CK"
// stays readable) and without the trailing newline.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
