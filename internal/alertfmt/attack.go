package alertfmt

import (
	"slices"
	"strings"

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

// ATTACKVersion is the MITRE ATT&CK (Enterprise) version the table below
// was checked against.
const ATTACKVersion = "16"

// Tactic is a MITRE ATT&CK tactic.
type Tactic struct {
	ID, Name string
}

// Reference is the tactic's page on attack.mitre.org.
func (t Tactic) Reference() string { return "https://attack.mitre.org/tactics/" + t.ID + "/" }

// The Enterprise tactics the table uses.
var (
	InitialAccess       = Tactic{"TA0001", "Initial Access"}
	Persistence         = Tactic{"TA0003", "Persistence"}
	PrivilegeEscalation = Tactic{"TA0004", "Privilege Escalation"}
	DefenseEvasion      = Tactic{"TA0005", "Defense Evasion"}
	CredentialAccess    = Tactic{"TA0006", "Credential Access"}
	Discovery           = Tactic{"TA0007", "Discovery"}
	LateralMovement     = Tactic{"TA0008", "Lateral Movement"}
	Collection          = Tactic{"TA0009", "Collection"}
	Exfiltration        = Tactic{"TA0010", "Exfiltration"}
	CommandAndControl   = Tactic{"TA0011", "Command and Control"}
	Impact              = Tactic{"TA0040", "Impact"}
)

// tacticByTag maps the Sigma tag spelling of each tactic to it.
var tacticByTag = map[string]Tactic{
	"initial_access": InitialAccess, "persistence": Persistence, "privilege_escalation": PrivilegeEscalation,
	"defense_evasion": DefenseEvasion, "credential_access": CredentialAccess, "discovery": Discovery,
	"lateral_movement": LateralMovement, "collection": Collection, "exfiltration": Exfiltration,
	"command_and_control": CommandAndControl, "impact": Impact,
}

// Technique is a MITRE ATT&CK technique or sub-technique (ID "T1550.001").
// Name is the technique's own name (a sub-technique's, not its parent's);
// Tactics are those ATT&CK lists it under.
type Technique struct {
	ID      string
	Name    string
	Tactics []Tactic
}

// Parent returns the technique id of a sub-technique ("T1550" for
// "T1550.001") and "" for a technique.
func (t Technique) Parent() string {
	p, _, ok := strings.Cut(t.ID, ".")
	if !ok {
		return ""
	}
	return p
}

// Reference is the technique's page on attack.mitre.org.
func (t Technique) Reference() string {
	return "https://attack.mitre.org/techniques/" + strings.ReplaceAll(t.ID, ".", "/") + "/"
}

// techniques: every technique the detectors map to, and those rules name
// often enough to be worth a name. Checked against ATT&CK Enterprise.
var techniques = index([]Technique{
	{"T1078", "Valid Accounts", []Tactic{DefenseEvasion, Persistence, PrivilegeEscalation, InitialAccess}},
	{"T1078.004", "Cloud Accounts", []Tactic{DefenseEvasion, Persistence, PrivilegeEscalation, InitialAccess}},
	{"T1110", "Brute Force", []Tactic{CredentialAccess}},
	{"T1110.003", "Password Spraying", []Tactic{CredentialAccess}},
	{"T1110.004", "Credential Stuffing", []Tactic{CredentialAccess}},
	{"T1119", "Automated Collection", []Tactic{Collection}},
	{"T1030", "Data Transfer Size Limits", []Tactic{Exfiltration}},
	{"T1213", "Data from Information Repositories", []Tactic{Collection}},
	{"T1530", "Data from Cloud Storage", []Tactic{Collection}},
	{"T1539", "Steal Web Session Cookie", []Tactic{CredentialAccess}},
	{"T1550", "Use Alternate Authentication Material", []Tactic{DefenseEvasion, LateralMovement}},
	{"T1550.001", "Application Access Token", []Tactic{DefenseEvasion, LateralMovement}},
	{"T1552", "Unsecured Credentials", []Tactic{CredentialAccess}},
	{"T1552.004", "Private Keys", []Tactic{CredentialAccess}},
	{"T1552.005", "Cloud Instance Metadata API", []Tactic{CredentialAccess}},
	{"T1567", "Exfiltration Over Web Service", []Tactic{Exfiltration}},
	{"T1606", "Forge Web Credentials", []Tactic{CredentialAccess}},
	{"T1190", "Exploit Public-Facing Application", []Tactic{InitialAccess}},
	{"T1087", "Account Discovery", []Tactic{Discovery}},
	{"T1098", "Account Manipulation", []Tactic{Persistence, PrivilegeEscalation}},
	{"T1485", "Data Destruction", []Tactic{Impact}},
	{"T1562", "Impair Defenses", []Tactic{DefenseEvasion}},
})

func index(ts []Technique) map[string]Technique {
	m := make(map[string]Technique, len(ts))
	for _, t := range ts {
		m[t.ID] = t
	}
	return m
}

// mapping: the techniques of a detector's findings, by kind; the entry
// under "" is the detector's default for kinds not listed. A kind mapped
// to nothing (a posture finding, not an attack) names no technique.
var mapping = map[string]map[string][]string{
	token.Name: {
		"":                        {"T1550.001"},
		token.KindNeverMinted:     {"T1606", "T1550.001"},
		token.KindKeyRetired:      {"T1606", "T1550.001"},
		token.KindUnknownKey:      {"T1606", "T1550.001"},
		token.KindIssuedInFuture:  {"T1606", "T1550.001"},
		token.KindLifetime:        {"T1606", "T1550.001"},
		token.KindMultiLocation:   {"T1539", "T1550.001"},
		token.KindUsedAfterExpiry: {"T1550.001"},
	},
	binding.Name:    {"": {"T1539", "T1550.001"}},
	terminated.Name: {"": {"T1078"}},
	canary.Name:     {"": {"T1213"}},
	cloudcred.Name:  {"": {"T1552.005", "T1078.004"}},
	credential.Name: {"": {"T1078"}},
	fanout.Name: {
		"":                       {"T1078", "T1119"},
		fanout.KindLoginFailures: {"T1110.003", "T1110.004"},
	},
	stuffing.Name: {"": {"T1110.004"}},
	geo.Name:      {"": {"T1078"}},
	keyposture.Name: {
		"":                                 nil,
		keyposture.KindCustodianTerminated: {"T1552.004"},
	},
	lifecycle.Name: {"": {"T1078"}},
	offhours.Name:  {"": {"T1078"}},
	peerroute.Name: {"": {"T1213"}},
	privileged.Name: {
		"":                        {"T1078"},
		privileged.KindBulkExport: {"T1078", "T1213"},
	},
	scripted.Name: {"": {"T1119"}},
	behaviour.Name: {
		"":                 {"T1213"},
		behaviour.KindSlow: {"T1213", "T1030"},
	},
	volume.Name: {
		"":                     {"T1213"},
		volume.KindEnumeration: {"T1119", "T1213"},
	},
}

// Threat is what an alert's findings map to in ATT&CK: techniques (and
// sub-techniques) in the order first met, and the tactics they serve plus
// those rules name by tag.
type Threat struct {
	Techniques []Technique
	Tactics    []Tactic
}

// Empty reports whether nothing was mapped.
func (t Threat) Empty() bool { return len(t.Techniques) == 0 && len(t.Tactics) == 0 }

// ThreatOf maps a's findings: each detector's findings by the table
// (docs/sinks.md lists it), and rules' findings by their ATT&CK tags
// ("attack.t1530", "attack.t1078.004", "attack.collection"). Withdrawn
// and withdrawing findings count like any other: the alert's state says
// whether it stands.
func ThreatOf(a *event.Alert) Threat {
	var th Threat
	addTech := func(id string) {
		if slices.ContainsFunc(th.Techniques, func(t Technique) bool { return t.ID == id }) {
			return
		}
		t, ok := techniques[id]
		if !ok {
			t = Technique{ID: id}
		}
		th.Techniques = append(th.Techniques, t)
		for _, tc := range t.Tactics {
			addTactic(&th, tc)
		}
	}
	for i := range a.Findings {
		f := &a.Findings[i]
		if byKind, ok := mapping[f.Detector]; ok {
			ids, ok := byKind[f.Kind]
			if !ok {
				ids = byKind[""]
			}
			for _, id := range ids {
				addTech(id)
			}
		}
		for _, tag := range f.Tags {
			rest, ok := strings.CutPrefix(strings.ToLower(tag), "attack.")
			if !ok {
				continue
			}
			if isTechniqueID(rest) {
				addTech(strings.ToUpper(rest))
			} else if tc, ok := tacticByTag[rest]; ok {
				addTactic(&th, tc)
			}
		}
	}
	return th
}

func addTactic(th *Threat, tc Tactic) {
	if !slices.Contains(th.Tactics, tc) {
		th.Tactics = append(th.Tactics, tc)
	}
}

// isTechniqueID reports whether s is "t" and four digits, optionally "."
// and three digits (lower case, as Sigma tags spell it).
func isTechniqueID(s string) bool {
	digits := func(s string, n int) bool {
		if len(s) != n {
			return false
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	main, sub, hasSub := strings.Cut(s, ".")
	if len(main) != 5 || main[0] != 't' || !digits(main[1:], 4) {
		return false
	}
	return !hasSub || digits(sub, 3)
}
