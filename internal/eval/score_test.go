package eval_test

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/eval"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

var t0 = ts("2025-06-25T10:00:00Z")

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func principal(id string) event.EntityKey {
	return event.EntityKey{Kind: event.EntityPrincipal, ID: id}
}

func source(ip string) event.EntityKey { return event.EntityKey{Kind: event.EntitySource, ID: ip} }

func mkAlert(id string, sec int, detector string, entity event.EntityKey, evidence ...string) event.Alert {
	return event.Alert{
		ID: id, Time: at(sec), Detector: detector, Entity: entity, Severity: event.SeverityHigh, Title: id,
		Findings: []event.Finding{{Detector: detector, Entity: entity, Time: at(sec), Evidence: evidence}},
	}
}

func mkEvent(id string, sec int, user string, records ...string) event.Event {
	return event.Event{
		ID: id, Time: at(sec), Dataset: event.DatasetGateway, Action: "read",
		User: event.User{ID: user}, Records: event.Records{Type: "customer", IDs: records},
	}
}

// synthTruth: scenario a (attacker principal:x, events a1..a3), scenario
// b (attacker source:10.0.0.2, events b1, b2), hard-benign "backup" (entity
// principal:svc-backup) and "audit" (event h1).
func synthTruth() *truth.Truth {
	return &truth.Truth{
		Scenarios: []truth.Scenario{
			{Name: "a", AttackerEntities: []event.EntityKey{principal("x")}, MaliciousEventIDs: []string{"a1", "a2", "a3"}, FirstMalicious: at(0), RecordsTouched: 5},
			{Name: "b", AttackerEntities: []event.EntityKey{source("10.0.0.2")}, MaliciousEventIDs: []string{"b1", "b2"}, FirstMalicious: at(100), RecordsTouched: 99},
		},
		HardBenign: []truth.Benign{
			{Name: "backup", Entities: []event.EntityKey{principal("svc-backup")}},
			{Name: "audit", EventIDs: []string{"h1"}},
		},
	}
}

func synthObserver(tr *truth.Truth) *eval.Observer {
	obs := eval.NewObserver(tr)
	evs := []event.Event{
		mkEvent("a1", 0, "x", "1", "2"),
		mkEvent("n1", 5, "y", "1", "2", "3"), // not malicious: its records do not count
		mkEvent("a2", 60, "x", "2", "3"),
		mkEvent("a3", 120, "x", "4", "5"),
		mkEvent("b1", 100, "z", "7"),
		mkEvent("b2", 200, "z", "8", "9"),
		mkEvent("h1", 300, "svc-backup"),
		// Roster identity and a key event far in the past: the identity
		// counts, the span is of activity only.
		{Time: at(-86400 * 365), Dataset: event.DatasetRoster, Action: event.ActionIdentityUpsert, Identity: event.Identity{ID: "e:1"}},
		{Time: at(-86400 * 800), Dataset: event.DatasetKeys, Action: event.ActionKeyCreated, User: event.User{ID: "not-counted"}},
		mkEvent("last", 86400, "y"),
	}
	for i := range evs {
		obs.Observe(&evs[i])
	}
	return obs
}

// lasting sets the alert's latest finding at offset seconds.
func lasting(a event.Alert, offset int) event.Alert {
	a.LastTime = at(offset)
	return a
}

// joined adds a finding of the alert's detector and entity at offset.
func joined(a event.Alert, offset int) event.Alert {
	a.Findings = append(a.Findings, event.Finding{Detector: a.Detector, Entity: a.Entity, Time: at(offset)})
	return a
}

func TestScore(t *testing.T) {
	type scen struct {
		detected bool
		ttd      float64 // -1: null
		exposed  int
		touched  int
		alerts   []string
	}
	tests := []struct {
		name       string
		alerts     []event.Alert
		a, b       scen
		ordinary   int
		byDetector map[string]int
		hard       int
		byName     map[string]int
	}{{
		name: "none",
		a:    scen{false, -1, 5, 5, nil},
		b:    scen{false, -1, 3, 3, nil},
	}, {
		name:   "by entity at a2: records of a1 and a2",
		alerts: []event.Alert{mkAlert("al1", 60, "d1", principal("x"))},
		a:      scen{true, 60, 3, 5, []string{"al1"}},
		b:      scen{false, -1, 3, 3, nil},
	}, {
		name: "by evidence; earliest attributed alert wins",
		alerts: []event.Alert{
			mkAlert("late", 150, "d1", principal("x")),
			mkAlert("ev", 130, "d2", source("1.2.3.4"), "zzz", "a3"),
		},
		a: scen{true, 130, 5, 5, []string{"ev", "late"}},
		b: scen{false, -1, 3, 3, nil},
	}, {
		name:       "alert about an attacker entity, over before the attack: a false positive",
		alerts:     []event.Alert{mkAlert("early", 50, "d1", source("10.0.0.2"))},
		a:          scen{false, -1, 5, 5, nil},
		b:          scen{false, -1, 3, 3, nil},
		ordinary:   1,
		byDetector: map[string]int{"d1": 1},
	}, {
		// Not its Time (the window's start, before the attack: that
		// measured 0 s, with nothing exposed) but when it first held the
		// attack: its latest finding's time when none it keeps is from the
		// attack's start on.
		name:   "alert opened before the attack and still open in it: detected at its latest finding",
		alerts: []event.Alert{lasting(mkAlert("early", 50, "d1", source("10.0.0.2")), 150)},
		a:      scen{false, -1, 5, 5, nil},
		b:      scen{true, 50, 1, 3, []string{"early"}},
	}, {
		name:   "alert opened before the attack and still open in it: detected when the attack's first finding joined",
		alerts: []event.Alert{joined(lasting(mkAlert("early", 50, "d1", source("10.0.0.2")), 150), 120)},
		a:      scen{false, -1, 5, 5, nil},
		b:      scen{true, 20, 1, 3, []string{"early"}},
	}, {
		name:   "one alert attributed to two scenarios",
		alerts: []event.Alert{mkAlert("both", 100, "d1", principal("x"), "b1")},
		a:      scen{true, 100, 3, 5, []string{"both"}},
		b:      scen{true, 0, 1, 3, []string{"both"}},
	}, {
		name: "same id closed twice: the last form counts",
		alerts: []event.Alert{
			mkAlert("re", 200, "d1", principal("y"), "n1"),
			mkAlert("re", 200, "d1", principal("y"), "n1", "b2"),
		},
		a: scen{false, -1, 5, 5, nil},
		b: scen{true, 100, 3, 3, []string{"re"}},
	}, {
		name: "false positives",
		alerts: []event.Alert{
			mkAlert("o1", 10, "d1", principal("y"), "n1"),
			mkAlert("o2", 20, "d2", source("9.9.9.9")),
			mkAlert("o3", 30, "d2", source("9.9.9.8")),
			mkAlert("hb-ent", 40, "d1", principal("svc-backup")),
			mkAlert("hb-ev", 300, "d3", principal("w"), "h1"),
			mkAlert("hb-both", 300, "d3", principal("svc-backup"), "h1"),
		},
		a:          scen{false, -1, 5, 5, nil},
		b:          scen{false, -1, 3, 3, nil},
		ordinary:   3,
		byDetector: map[string]int{"d1": 1, "d2": 2},
		hard:       3,
		byName:     map[string]int{"backup": 2, "audit": 2},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := synthTruth()
			sc := eval.Score(tr, synthObserver(tr), tc.alerts)
			for i, w := range []scen{tc.a, tc.b} {
				s := sc.Scenarios[i]
				var ids []string
				for _, a := range s.Alerts {
					ids = append(ids, a.ID)
				}
				ttd := -1.0
				if s.TimeToDetectSeconds != nil {
					ttd = *s.TimeToDetectSeconds
				}
				if s.Detected != w.detected || ttd != w.ttd || s.RecordsExposedBeforeContainment != w.exposed ||
					s.RecordsTouched != w.touched || strings.Join(ids, ",") != strings.Join(w.alerts, ",") {
					t.Errorf("%s: got detected=%v ttd=%v exposed=%d touched=%d alerts=%v, want %+v",
						s.Name, s.Detected, ttd, s.RecordsExposedBeforeContainment, s.RecordsTouched, ids, w)
				}
			}
			fp := sc.FalsePositives
			if fp.Ordinary != tc.ordinary || fp.HardBenign.Alerts != tc.hard {
				t.Errorf("fp = %d ordinary, %d hard-benign; want %d, %d", fp.Ordinary, fp.HardBenign.Alerts, tc.ordinary, tc.hard)
			}
			if !sameCounts(fp.ByDetector, tc.byDetector) || !sameCounts(fp.HardBenign.ByName, tc.byName) {
				t.Errorf("by detector %v, by name %v", fp.ByDetector, fp.HardBenign.ByName)
			}
			// Identities: x, y, z, svc-backup, e:1 (the key event's user.id
			// is not activity); activity spans one day.
			if sc.Identities != 5 || sc.Days != 1 || sc.Events != 10 {
				t.Errorf("identities %d, days %v, events %d", sc.Identities, sc.Days, sc.Events)
			}
			if want := float64(tc.ordinary) * 10000 / 5; fp.PerTenKIdentitiesPerDay != want {
				t.Errorf("rate %v, want %v", fp.PerTenKIdentitiesPerDay, want)
			}
			var buf bytes.Buffer
			if err := sc.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			if err := sc.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func sameCounts(got, want map[string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestScoreNoEvents: without observed events the truth's counts stand in,
// the rate is 0 rather than infinite, and the scorecard still encodes.
func TestScoreNoEvents(t *testing.T) {
	tr := synthTruth()
	for _, obs := range []*eval.Observer{nil, eval.NewObserver(tr)} {
		sc := eval.Score(tr, obs, []event.Alert{
			mkAlert("al", 10, "d", principal("x")),
			mkAlert("fp", 10, "d", principal("nobody")),
		})
		a, b := sc.Scenarios[0], sc.Scenarios[1]
		if !a.Detected || *a.TimeToDetectSeconds != 10 || a.RecordsExposedBeforeContainment != 5 || a.RecordsTouched != 5 {
			t.Errorf("a = %+v", a)
		}
		if b.Detected || b.RecordsExposedBeforeContainment != 99 || b.RecordsTouched != 99 {
			t.Errorf("b = %+v", b)
		}
		if sc.FalsePositives.Ordinary != 1 || sc.FalsePositives.PerTenKIdentitiesPerDay != 0 {
			t.Errorf("fp = %+v", sc.FalsePositives)
		}
		if _, err := json.Marshal(sc); err != nil {
			t.Fatal(err)
		}
	}
	if sc := eval.Score(nil, nil, nil); len(sc.Scenarios) != 0 || sc.Alerts != 0 {
		t.Errorf("empty = %+v", sc)
	}
}

// TestScoreShortSpan: a span under an hour is floored at an hour.
func TestScoreShortSpan(t *testing.T) {
	tr := &truth.Truth{}
	obs := eval.NewObserver(tr)
	for i, u := range []string{"u1", "u2"} {
		ev := mkEvent("", i, u)
		obs.Observe(&ev)
	}
	sc := eval.Score(tr, obs, []event.Alert{mkAlert("fp", 0, "d", principal("u1"))})
	if want := 1 * 10000 / 2.0 / (1.0 / 24); sc.FalsePositives.PerTenKIdentitiesPerDay != want {
		t.Errorf("rate %v, want %v", sc.FalsePositives.PerTenKIdentitiesPerDay, want)
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		s    float64
		want string
	}{
		{0, "0s"}, {0.35, "350ms"}, {42, "42s"}, {60, "1m"}, {190, "3m10s"},
		{7500, "2h5m"}, {3600, "1h"}, {86400 + 3*3600 + 59, "1d3h"}, {-5, "0s"},
	} {
		if got := eval.HumanDuration(tc.s); got != tc.want {
			t.Errorf("HumanDuration(%v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestWriteText(t *testing.T) {
	tr := synthTruth()
	sc := eval.Score(tr, synthObserver(tr), []event.Alert{
		mkAlert("al1", 190, "terminated_identity", principal("x")),
		mkAlert("fp", 10, "scripted_client", source("9.9.9.9")),
		mkAlert("hb", 10, "scripted_client", principal("svc-backup")),
	})
	var buf bytes.Buffer
	if err := sc.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"Scenarios: 1 of 2 detected",
		"a  ", "yes", "3m10s", "5/5", "terminated_identity principal:x",
		"b  ", "no", "—", "3/3",
		"False positives (ordinary): 1 alert, 2000 per 10k identities per day",
		"by detector: scripted_client 1",
		"False positives (hard-benign): 1 alert,",
		"by name: backup 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}

func TestScoreWithResponse(t *testing.T) {
	tr := synthTruth()
	obs := synthObserver(tr)
	alerts := []event.Alert{mkAlert("al1", 60, "d1", principal("x"))}
	// x is disabled at 60 s: a1 and a2 (at the containment's own instant,
	// already served) read 1, 2, 3; a3 is refused. The block of 10.9.9.9
	// covers nobody's requests. Scenario b is not contained.
	gate := eval.NewGate([]eval.Containment{
		{Time: at(500), Kind: "block_source", Target: source("10.9.9.9")},
		{Time: at(60), Kind: "disable_identity", Target: principal("x")},
	})
	gated := eval.NewObserver(tr)
	for _, ev := range []event.Event{
		mkEvent("a1", 0, "x", "1", "2"), mkEvent("a2", 60, "x", "2", "3"), mkEvent("a3", 120, "x", "4", "5"),
		mkEvent("b1", 100, "z", "7"), mkEvent("b2", 200, "z", "8", "9"),
	} {
		if c, ok := gate.Refuse(&ev); ok {
			gated.Refused(&ev, c)
			eval.Apply(&ev)
		}
		gated.Observe(&ev)
	}
	sc := eval.ScoreWithResponse(tr, obs, gated, alerts)
	a := sc.Scenarios[0]
	if a.ContainedAt == nil || !a.ContainedAt.Equal(at(60)) || a.ContainedBy != "disable_identity" || a.RecordsExposedBeforeContainment != 3 || a.RecordsExposedBeforeDetection != 3 || a.RecordsTouched != 5 {
		t.Errorf("a: %+v", a)
	}
	// Not contained: every record touched was exposed.
	b := sc.Scenarios[1]
	if b.ContainedAt != nil || b.RecordsExposedBeforeContainment != b.RecordsTouched || b.RecordsTouched != 3 {
		t.Errorf("b: %+v", b)
	}
	if !sc.Response {
		t.Error("Response not set")
	}
}

func TestGate(t *testing.T) {
	gate := eval.NewGate([]eval.Containment{
		{Time: at(100), Kind: "revoke_key", Target: event.EntityKey{Kind: event.EntitySigningKey, ID: "k-old"}},
		{Time: at(100), Kind: "revoke_token", Target: event.EntityKey{Kind: event.EntityToken, ID: "tok-1"}},
		{Time: at(100), Until: at(200), Kind: "block_source", Target: source("203.0.113.9")},
		{Time: at(150), Until: at(400), Kind: "block_source", Target: source("203.0.113.9")}, // a repeat, longer
		{Time: at(100), Kind: "block_source", Target: source("198.51.100.0/24")},
		{Time: at(100), Kind: "block_source", Target: source("AS64500")},
		{Time: at(100), Kind: "disable_identity", Target: principal("e:1")},
		{Time: at(300), Kind: "disable_identity", Target: principal("e:2")},
	})
	ev := func(sec int, mod func(*event.Event)) event.Event {
		e := mkEvent("", sec, "", "1")
		mod(&e)
		return e
	}
	addr := func(s string) func(*event.Event) {
		return func(e *event.Event) { e.Source.IP = netip.MustParseAddr(s) }
	}
	tests := []struct {
		name   string
		ev     event.Event
		by     string
		byTime time.Time
	}{
		{"key, before", ev(99, func(e *event.Event) { e.Token.KeyID = "k-old" }), "", time.Time{}},
		{"key, at the instant", ev(100, func(e *event.Event) { e.Token.KeyID = "k-old" }), "", time.Time{}},
		{"key, after", ev(101, func(e *event.Event) { e.Token.KeyID = "k-old" }), "revoke_key", at(100)},
		{"other key", ev(101, func(e *event.Event) { e.Token.KeyID = "k-new" }), "", time.Time{}},
		{"token", ev(101, func(e *event.Event) { e.Token.ID = "tok-1" }), "revoke_token", at(100)},
		{"token mint", ev(101, func(e *event.Event) { e.Token.ID = "tok-1"; e.Dataset = event.DatasetToken }), "revoke_token", at(100)},
		{"cloud API call with revoked temporary credentials", ev(101, func(e *event.Event) { e.Token.ID = "tok-1"; e.Dataset = "aws.cloudtrail" }), "revoke_token", at(100)},
		{"cloud API call from a blocked address", ev(150, func(e *event.Event) { e.Source.IP = netip.MustParseAddr("203.0.113.9"); e.Dataset = "aws.cloudtrail" }), "block_source", at(100)},
		{"login is not through the gateway", ev(101, func(e *event.Event) { e.User.ID = "e:1"; e.Dataset = event.DatasetLogin }), "", time.Time{}},
		{"principal", ev(101, func(e *event.Event) { e.User.ID = "e:1" }), "disable_identity", at(100)},
		{"principal, earliest of two", ev(301, func(e *event.Event) { e.User.ID = "e:2"; e.Token.KeyID = "k-old" }), "revoke_key", at(100)},
		{"address", ev(150, addr("203.0.113.9")), "block_source", at(100)},
		{"address, as the first block expires", ev(200, addr("203.0.113.9")), "block_source", at(150)},
		{"address, first block expired, repeat in force", ev(250, addr("203.0.113.9")), "block_source", at(150)},
		{"address, both expired", ev(400, addr("203.0.113.9")), "", time.Time{}},
		{"mapped address", ev(151, addr("::ffff:203.0.113.9")), "block_source", at(100)},
		{"prefix", ev(101, addr("198.51.100.77")), "block_source", at(100)},
		{"outside the prefix", ev(101, addr("198.51.101.77")), "", time.Time{}},
		{"AS", ev(101, func(e *event.Event) { e.Source.IP = netip.MustParseAddr("192.0.2.1"); e.Source.ASN = 64500 }), "block_source", at(100)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := gate.Refuse(&tc.ev)
			if ok != (tc.by != "") || c.Kind != tc.by || !c.Time.Equal(tc.byTime) {
				t.Errorf("Refuse = %+v, %v; want %q at %v", c, ok, tc.by, tc.byTime)
			}
		})
	}
	e := ev(101, func(e *event.Event) { e.HTTP.StatusCode = 200; e.Outcome = event.OutcomeSuccess })
	eval.Apply(&e)
	if e.Outcome != event.OutcomeFailure || e.HTTP.StatusCode != 401 || len(e.Records.IDs) != 0 {
		t.Errorf("Apply: %+v", e)
	}
}

// TestScoreWithdrawn: withdrawn alerts are not scored — no detection, no
// false positive — and are counted apart, attributed like standing ones.
func TestScoreWithdrawn(t *testing.T) {
	tr := synthTruth()
	withdraw := func(a event.Alert) event.Alert {
		a.State = event.AlertWithdrawn
		return a
	}
	sc := eval.Score(tr, synthObserver(tr), []event.Alert{
		withdraw(mkAlert("w-hb", 300, "token_provenance", source("1.1.1.1"), "h1")),
		withdraw(mkAlert("w-fp", 10, "token_provenance", source("9.9.9.9"))),
		withdraw(mkAlert("w-b", 150, "token_provenance", source("8.8.8.8"), "b1")),
		mkAlert("fp", 10, "scripted_client", source("9.9.9.9")),
	})
	w := sc.Withdrawn
	if w.Alerts != 3 || w.HardBenign != 1 || w.Ordinary != 1 || w.Scenario != 1 || w.ByName["audit"] != 1 {
		t.Errorf("withdrawn %+v, want 3: 1 hard-benign (audit), 1 ordinary, 1 scenario", w)
	}
	if sc.Alerts != 1 || sc.FalsePositives.Ordinary != 1 || sc.FalsePositives.HardBenign.Alerts != 0 || sc.Scenarios[1].Detected {
		t.Errorf("withdrawn alerts were scored: %d alerts, %d ordinary FP, %d hard-benign, b detected %v",
			sc.Alerts, sc.FalsePositives.Ordinary, sc.FalsePositives.HardBenign.Alerts, sc.Scenarios[1].Detected)
	}
}

// TestTimeToFinding: per detector, the earliest finding citing the
// scenario's malicious events, from its first malicious event — not the
// alert's time, which is that of the finding that raised it.
func TestTimeToFinding(t *testing.T) {
	tr := synthTruth()
	a := mkAlert("al1", 190, "token_provenance", principal("x"), "a2")
	a.Findings = append(a.Findings,
		event.Finding{Detector: "token_provenance", Entity: principal("x"), Time: at(30), Evidence: []string{"a1"}},
		event.Finding{Detector: "key_posture", Entity: principal("x"), Time: at(-500), Evidence: []string{"k1"}}) // cites nothing malicious
	sc := eval.Score(tr, synthObserver(tr), []event.Alert{a, mkAlert("al2", 400, "geo", principal("x"), "a3")})
	got := sc.Scenarios[0].TimeToFindingSeconds
	if len(got) != 2 || got["token_provenance"] != 30 || got["geo"] != 400 {
		t.Errorf("time to finding %v, want token_provenance 30, geo 400", got)
	}
	if ttd := sc.Scenarios[0].TimeToDetectSeconds; ttd == nil || *ttd != 190 {
		t.Errorf("time to detect %v, want 190 (the first alert's time)", ttd)
	}
	if sc.Scenarios[1].TimeToFindingSeconds != nil {
		t.Errorf("undetected scenario: %v", sc.Scenarios[1].TimeToFindingSeconds)
	}
}
