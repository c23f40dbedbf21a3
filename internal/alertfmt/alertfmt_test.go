package alertfmt

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/behaviour"
	"github.com/haechi-sec/haechi/internal/detect/binding"
	"github.com/haechi-sec/haechi/internal/detect/canary"
	"github.com/haechi-sec/haechi/internal/detect/cloudcred"
	"github.com/haechi-sec/haechi/internal/detect/credential"
	"github.com/haechi-sec/haechi/internal/detect/fanout"
	"github.com/haechi-sec/haechi/internal/detect/geo"
	"github.com/haechi-sec/haechi/internal/detect/keyposture"
	"github.com/haechi-sec/haechi/internal/detect/lifecycle"
	"github.com/haechi-sec/haechi/internal/detect/offhours"
	"github.com/haechi-sec/haechi/internal/detect/peerroute"
	"github.com/haechi-sec/haechi/internal/detect/privileged"
	"github.com/haechi-sec/haechi/internal/detect/scripted"
	"github.com/haechi-sec/haechi/internal/detect/stuffing"
	"github.com/haechi-sec/haechi/internal/detect/terminated"
	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/detect/volume"
	"github.com/haechi-sec/haechi/internal/event"
)

func ids(th Threat) (tech, tac []string) {
	for _, t := range th.Techniques {
		tech = append(tech, t.ID)
	}
	for _, t := range th.Tactics {
		tac = append(tac, t.ID)
	}
	return
}

func TestThreatOf(t *testing.T) {
	for _, c := range []struct {
		detector, kind string
		tags           []string
		tech, tactics  []string
	}{
		{token.Name, token.KindNeverMinted, nil, []string{"T1606", "T1550.001"}, []string{"TA0006", "TA0005", "TA0008"}},
		{token.Name, token.KindUsedAfterExpiry, nil, []string{"T1550.001"}, []string{"TA0005", "TA0008"}},
		{token.Name, "a_kind_added_later", nil, []string{"T1550.001"}, []string{"TA0005", "TA0008"}},
		{binding.Name, binding.KindCountry, nil, []string{"T1539", "T1550.001"}, []string{"TA0006", "TA0005", "TA0008"}},
		{terminated.Name, terminated.Kind, nil, []string{"T1078"}, []string{"TA0005", "TA0003", "TA0004", "TA0001"}},
		{stuffing.Name, stuffing.Kind, nil, []string{"T1110.004"}, []string{"TA0006"}},
		{cloudcred.Name, cloudcred.KindOutside, nil, []string{"T1552.005", "T1078.004"}, []string{"TA0006", "TA0005", "TA0003", "TA0004", "TA0001"}},
		{behaviour.Name, behaviour.KindSlow, nil, []string{"T1213", "T1030"}, []string{"TA0009", "TA0010"}},
		{volume.Name, volume.KindEnumeration, nil, []string{"T1119", "T1213"}, []string{"TA0009"}},
		// A posture finding is no attack.
		{keyposture.Name, keyposture.KindRotationOverdue, nil, nil, nil},
		{keyposture.Name, keyposture.KindCustodianTerminated, nil, []string{"T1552.004"}, []string{"TA0006"}},
		// Rules: by their tags, known names or not; tactics by tag too.
		{"rule:s3_exfil", "rule", []string{"attack.t1530", "attack.exfiltration", "attack.T9999.001", "attack.t12", "haechi.contain"},
			[]string{"T1530", "T9999.001"}, []string{"TA0009", "TA0010"}},
		{"some_other_detector", "x", nil, nil, nil},
	} {
		a := event.Alert{Findings: []event.Finding{{Detector: c.detector, Kind: c.kind, Tags: c.tags}}}
		tech, tac := ids(ThreatOf(&a))
		if !slices.Equal(tech, c.tech) || !slices.Equal(tac, c.tactics) {
			t.Errorf("%s/%s %v: techniques %v tactics %v, want %v %v", c.detector, c.kind, c.tags, tech, tac, c.tech, c.tactics)
		}
	}
}

// Every detector has a row, and every technique a row names has a name
// and tactics (a typo in an id would otherwise go out nameless).
func TestTableComplete(t *testing.T) {
	for _, d := range []string{behaviour.Name, binding.Name, canary.Name, cloudcred.Name, credential.Name, fanout.Name,
		geo.Name, keyposture.Name, lifecycle.Name, offhours.Name, peerroute.Name, privileged.Name, scripted.Name,
		stuffing.Name, terminated.Name, token.Name, volume.Name} {
		if _, ok := mapping[d]; !ok {
			t.Errorf("detector %s has no ATT&CK row", d)
		}
	}
	for d, byKind := range mapping {
		for k, ids := range byKind {
			for _, id := range ids {
				tq, ok := techniques[id]
				if !ok || tq.Name == "" || len(tq.Tactics) == 0 {
					t.Errorf("%s/%s: technique %s has no name or tactics", d, k, id)
				}
				if p := tq.Parent(); p != "" && techniques[p].Name == "" {
					t.Errorf("%s: parent %s has no name", id, p)
				}
			}
		}
	}
}

func testAlert() event.Alert {
	t0 := time.Date(2025, 6, 24, 18, 43, 11, 0, time.UTC)
	return event.Alert{
		ID: "al-1", Time: t0, Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "u:7"},
		Severity: event.SeverityCritical, Score: 95, Risk: 120.4, Title: "Session used from a second country",
		Explanation: "why", State: event.AlertOpen, Detector: binding.Name, WindowStart: t0, WindowEnd: t0.Add(time.Hour),
		FindingCount: 1, LastTime: t0.Add(time.Minute),
		Findings: []event.Finding{{
			Detector: binding.Name, Kind: binding.KindCountry, Title: "Session used from a second country",
			Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "u:7"}, Time: t0, Score: 95,
			Related: []event.EntityKey{{Kind: event.EntitySource, ID: "198.51.100.9"}, {Kind: event.EntityToken, ID: "tk-1"}},
			Cited: []event.Citation{{Ref: "f:1", Success: true, Principal: "u:7", Token: "tk-1", Source: "198.51.100.9",
				ASN: 64500, UserAgent: "curl/8"}},
		}},
	}
}

func TestECSEntities(t *testing.T) {
	a := testAlert()
	d := ToECS(&a, Options{Version: "v1"})
	if d.User == nil || d.User.ID != "u:7" || d.Source == nil || d.Source.IP != "198.51.100.9" || d.Source.AS == nil ||
		d.Source.AS.Number != 64500 || d.UserAgent == nil || d.UserAgent.Original != "curl/8" {
		t.Fatalf("entities: %+v %+v %+v", d.User, d.Source, d.UserAgent)
	}
	if d.Event.Kind != "alert" || d.Event.Severity != 99 || d.Event.Action != "alert-created" || d.Rule.ID != binding.Name {
		t.Errorf("event/rule: %+v %+v", d.Event, d.Rule)
	}
	if !slices.Equal(d.Haechi.Alert.Tokens, []string{"tk-1"}) {
		t.Errorf("tokens %v", d.Haechi.Alert.Tokens)
	}
	b, err := ECS(&a, Options{})
	if err != nil || !strings.Contains(string(b), `"framework":"MITRE ATT&CK"`) || strings.HasSuffix(string(b), "\n") {
		t.Errorf("ECS: %v %s", err, b)
	}
	// Two sources: neither is source.ip; both are related.ip.
	a.Findings[0].Related = append(a.Findings[0].Related, event.EntityKey{Kind: event.EntitySource, ID: "203.0.113.1"})
	d = ToECS(&a, Options{})
	if d.Source != nil || !slices.Equal(d.Related.IP, []string{"198.51.100.9", "203.0.113.1"}) {
		t.Errorf("two sources: %+v %+v", d.Source, d.Related)
	}
}

func TestOCSFLifecycle(t *testing.T) {
	a := testAlert()
	for _, c := range []struct {
		state    event.AlertState
		change   Change
		activity int
		alert    bool
		status   int
	}{
		{event.AlertOpen, "", 1, true, 1},
		{event.AlertOpen, Updated, 2, true, 1},
		{"closed", Updated, 3, false, 1},
		{event.AlertWithdrawn, Created, 3, false, 99},
	} {
		a.State = c.state
		f := ToOCSF(&a, Options{Change: c.change})
		if f.ActivityID != c.activity || f.TypeUID != 200400+c.activity || f.IsAlert != c.alert || f.StatusID != c.status {
			t.Errorf("%s/%s: activity %d type %d alert %v status %d", c.state, c.change, f.ActivityID, f.TypeUID, f.IsAlert, f.StatusID)
		}
	}
	a.State = event.AlertOpen
	f := ToOCSF(&a, Options{})
	if f.SeverityID != 5 || f.ClassUID != 2004 || f.CategoryUID != 2 || f.Time != a.Time.UnixMilli() ||
		f.Actor == nil || f.Actor.User.UID != "u:7" || f.SrcEndpoint == nil || f.SrcEndpoint.AutonomousSystem.Number != 64500 {
		t.Errorf("finding: %+v", f)
	}
	var subs []string
	for _, at := range f.FindingInfo.Attacks {
		if at.SubTechnique != nil {
			subs = append(subs, at.Technique.UID+"/"+at.SubTechnique.UID+"@"+at.Tactic.UID)
		}
	}
	if !slices.Equal(subs, []string{"T1550/T1550.001@TA0005", "T1550/T1550.001@TA0008"}) {
		t.Errorf("attacks %v", subs)
	}
	b, _ := OCSF(&a, Options{})
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["finding_info"] == nil {
		t.Errorf("OCSF JSON: %v %s", err, b)
	}
	if _, err := Encode("cef", &a, Options{}); err == nil {
		t.Error("Encode(cef) succeeded")
	}
}
