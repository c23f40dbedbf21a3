package eval_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/eval"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// line renders one contract event. user, ua, ip and records may be empty.
func line(id, at, dataset, action, user, ua, ip string, records ...string) string {
	m := map[string]any{
		"@timestamp": at,
		"event":      map[string]any{"id": id, "dataset": dataset, "action": action, "outcome": "success"},
	}
	if user != "" {
		m["user"] = map[string]any{"id": user}
	}
	if ua != "" {
		m["user_agent"] = map[string]any{"original": ua}
	}
	if ip != "" {
		m["source"] = map[string]any{"ip": ip}
	}
	if len(records) > 0 {
		m["records"] = map[string]any{"type": "customer", "ids": records, "fields": []string{"name", "phone"}}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

const (
	browser  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
	attackIP = "103.152.112.40"
)

// events is a hand-made day of traffic:
//   - insider: an unauthenticated read from the attacker's address at
//     10:00:00 (m1, undetectable on its own), then the terminated employee
//     e:1042 acting from it at 10:07:30 (m2, detected: the terminated-identity
//     finding's time is the event's time) and 10:20:00 (m3, after detection);
//   - quiet-scrape: a customer reading records from a browser (undetected);
//   - scripted-takeover: a scripted client on customer c:300's session; the
//     alert is about the source address, attributed by evidence (s1);
//   - b0: a scripted client nobody labelled — an ordinary false positive;
//   - hb1: a curl uptime probe, labelled hard-benign by event id.
//
// Activity spans exactly one day; identities are e:1042, c:100, c:900,
// c:200 and c:300.
func events() string {
	lines := []string{
		`{"@timestamp":"2025-06-24T09:00:00Z","event":{"id":"r1","dataset":"hr.roster","action":"identity.upsert","outcome":"success"},"identity":{"id":"e:1042","kind":"employee","roles":["cs-agent"],"status":"active","country":"KR"}}`,
		`{"@timestamp":"2025-06-24T18:00:00Z","event":{"id":"r2","dataset":"hr.roster","action":"identity.terminated","outcome":"success"},"identity":{"id":"e:1042","kind":"employee","roles":["cs-agent"],"status":"terminated","terminated_at":"2025-06-24T18:00:00Z","country":"KR"}}`,
		line("b0", "2025-06-25T00:00:00Z", "gateway.access", "member.profile.read", "c:100", "python-requests/2.31.0", "198.51.100.7", "100"),
		line("m1", "2025-06-25T10:00:00Z", "gateway.access", "public.customer.read", "", browser, attackIP, "70000001", "70000002"),
		line("m2", "2025-06-25T10:07:30Z", "gateway.access", "admin.customer.export", "e:1042", browser, attackIP, "70000002", "70000003", "70000004"),
		`{"bad json`,
		line("m3", "2025-06-25T10:20:00Z", "gateway.access", "admin.customer.export", "e:1042", browser, attackIP, "70000005", "70000006"),
		line("q1", "2025-06-25T11:00:00Z", "gateway.access", "member.profile.read", "c:900", browser, "211.234.10.9", "900"),
		line("q2", "2025-06-25T11:30:00Z", "gateway.access", "member.profile.read", "c:900", browser, "211.234.10.9", "901", "902"),
		line("hb1", "2025-06-25T12:00:00Z", "gateway.access", "member.profile.read", "c:200", "curl/8.4.0", "198.51.100.8", "200"),
		line("s1", "2025-06-25T13:00:00Z", "gateway.access", "member.profile.read", "c:300", "python-httpx/0.27", "203.0.113.9", "300", "301"),
		line("e1", "2025-06-26T00:00:00Z", "gateway.access", "member.profile.read", "c:900", browser, "211.234.10.9"),
	}
	return strings.Join(lines, "\n") + "\n"
}

func groundTruth() *truth.Truth {
	return &truth.Truth{
		Seed: 1,
		Scenarios: []truth.Scenario{{
			Name: "insider",
			AttackerEntities: []event.EntityKey{
				{Kind: event.EntityPrincipal, ID: "e:1042"},
				{Kind: event.EntitySource, ID: attackIP},
			},
			MaliciousEventIDs: []string{"m1", "m2", "m3"},
			FirstMalicious:    ts("2025-06-25T10:00:00Z"),
			LastMalicious:     ts("2025-06-25T10:20:00Z"),
			RecordsTouched:    6,
		}, {
			Name:              "quiet-scrape",
			AttackerEntities:  []event.EntityKey{{Kind: event.EntityPrincipal, ID: "c:900"}},
			MaliciousEventIDs: []string{"q1", "q2"},
			FirstMalicious:    ts("2025-06-25T11:00:00Z"),
			LastMalicious:     ts("2025-06-25T11:30:00Z"),
			RecordsTouched:    3,
		}, {
			Name:              "scripted-takeover",
			AttackerEntities:  []event.EntityKey{{Kind: event.EntityPrincipal, ID: "c:300"}},
			MaliciousEventIDs: []string{"s1"},
			FirstMalicious:    ts("2025-06-25T13:00:00Z"),
			LastMalicious:     ts("2025-06-25T13:00:00Z"),
			RecordsTouched:    2,
		}},
		HardBenign: []truth.Benign{{Name: "uptime-probe", EventIDs: []string{"hb1"}}},
	}
}

// lowThreshold is the default config with a risk threshold low enough that
// one scripted-client finding (score 45) alerts: these tests are about the
// scoring of alerts, not the risk policy that raises them.
func lowThreshold() config.Config {
	cfg := config.Default()
	cfg.Alerts.RiskThreshold = 40
	return cfg
}

func ptr(f float64) *float64 { return &f }

func TestRun(t *testing.T) {
	type want struct {
		detected       bool
		ttd            *float64
		exposed        int
		touched        int
		firstDetector  string
		firstEntity    event.EntityKey
		minAlerts      int
		firstAlertTime time.Time
	}
	byEvidence := groundTruth()
	byEntity := groundTruth()
	byEntity.HardBenign = []truth.Benign{{Name: "uptime-probe", Entities: []event.EntityKey{{Kind: event.EntitySource, ID: "198.51.100.8"}}}}
	unlabelled := groundTruth()
	unlabelled.HardBenign = nil
	unlabelled.Scenarios = unlabelled.Scenarios[:2] // s1's alert becomes an ordinary FP

	scen := map[string]want{
		"insider": {
			detected: true, ttd: ptr(450), exposed: 4, touched: 6,
			firstDetector: "terminated_identity", firstEntity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1042"},
			minAlerts: 1, firstAlertTime: ts("2025-06-25T10:07:30Z"),
		},
		"quiet-scrape": {detected: false, ttd: nil, exposed: 3, touched: 3},
		"scripted-takeover": {
			detected: true, ttd: ptr(0), exposed: 2, touched: 2,
			firstDetector: "scripted_client", firstEntity: event.EntityKey{Kind: event.EntitySource, ID: "203.0.113.9"},
			minAlerts: 1, firstAlertTime: ts("2025-06-25T13:00:00Z"),
		},
	}
	tests := []struct {
		name       string
		truth      *truth.Truth
		ordinary   int
		hardBenign int
		byName     map[string]int
	}{
		{"hard-benign by event id", byEvidence, 1, 1, map[string]int{"uptime-probe": 1}},
		{"hard-benign by entity", byEntity, 1, 1, map[string]int{"uptime-probe": 1}},
		{"unlabelled", unlabelled, 3, 0, map[string]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rejects []int
			var lastProgress int64
			sc, err := eval.Run(context.Background(), lowThreshold(), nil, tc.truth, text(events()),
				func(le *decode.LineError) { rejects = append(rejects, le.Line) },
				func(n int64) { lastProgress = n })
			if err != nil {
				t.Fatal(err)
			}
			if len(rejects) != 1 || rejects[0] != 6 {
				t.Errorf("rejects = %v, want [6]", rejects)
			}
			if sc.Events != 11 || lastProgress != 11 {
				t.Errorf("events = %d, progress = %d, want 11", sc.Events, lastProgress)
			}
			if sc.Identities != 5 || sc.Days != 1 {
				t.Errorf("identities = %d, days = %v, want 5 and 1", sc.Identities, sc.Days)
			}
			if len(sc.Scenarios) != len(tc.truth.Scenarios) {
				t.Fatalf("scenarios = %d", len(sc.Scenarios))
			}
			for _, s := range sc.Scenarios {
				w := scen[s.Name]
				if s.Detected != w.detected {
					t.Errorf("%s: detected = %v", s.Name, s.Detected)
				}
				if (s.TimeToDetectSeconds == nil) != (w.ttd == nil) ||
					s.TimeToDetectSeconds != nil && *s.TimeToDetectSeconds != *w.ttd {
					t.Errorf("%s: ttd = %v, want %v", s.Name, fmtPtr(s.TimeToDetectSeconds), fmtPtr(w.ttd))
				}
				if s.RecordsExposedBeforeContainment != w.exposed || s.RecordsTouched != w.touched {
					t.Errorf("%s: exposed/touched = %d/%d, want %d/%d", s.Name,
						s.RecordsExposedBeforeContainment, s.RecordsTouched, w.exposed, w.touched)
				}
				if len(s.Alerts) < w.minAlerts || !w.detected && len(s.Alerts) != 0 {
					t.Errorf("%s: %d alerts: %+v", s.Name, len(s.Alerts), s.Alerts)
				}
				if len(s.Alerts) > 0 {
					a := s.Alerts[0]
					if a.Detector != w.firstDetector || a.Entity != w.firstEntity || !a.Time.Equal(w.firstAlertTime) {
						t.Errorf("%s: first alert %+v", s.Name, a)
					}
				}
			}
			fp := sc.FalsePositives
			if fp.Ordinary != tc.ordinary || fp.HardBenign.Alerts != tc.hardBenign {
				t.Errorf("fp ordinary/hard = %d/%d, want %d/%d", fp.Ordinary, fp.HardBenign.Alerts, tc.ordinary, tc.hardBenign)
			}
			// n alerts / (5 identities / 10,000) / 1 day.
			if want := float64(tc.ordinary) * 2000; fp.PerTenKIdentitiesPerDay != want {
				t.Errorf("ordinary rate = %v, want %v", fp.PerTenKIdentitiesPerDay, want)
			}
			if want := float64(tc.hardBenign) * 2000; fp.HardBenign.PerTenKIdentitiesPerDay != want {
				t.Errorf("hard-benign rate = %v, want %v", fp.HardBenign.PerTenKIdentitiesPerDay, want)
			}
			if fmt.Sprint(fp.HardBenign.ByName) != fmt.Sprint(tc.byName) {
				t.Errorf("by name = %v, want %v", fp.HardBenign.ByName, tc.byName)
			}
			if fp.ByDetector["scripted_client"] != tc.ordinary {
				t.Errorf("by detector = %v", fp.ByDetector)
			}

			// The JSON form has the keys the issue names.
			var buf bytes.Buffer
			if err := sc.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			s0 := got["scenarios"].([]any)[1].(map[string]any)
			for _, k := range []string{"name", "detected", "time_to_detect_seconds", "records_exposed_before_containment", "alerts"} {
				if _, ok := s0[k]; !ok {
					t.Errorf("scenario JSON lacks %q: %s", k, buf.String())
				}
			}
			if s0["time_to_detect_seconds"] != nil || s0["alerts"] == nil {
				t.Errorf("undetected scenario JSON: %v", s0)
			}
			fpj := got["false_positives"].(map[string]any)
			if _, ok := fpj["per_10k_identities_per_day"]; !ok {
				t.Errorf("false_positives JSON: %v", fpj)
			}
			if _, ok := fpj["hard_benign"].(map[string]any); !ok {
				t.Errorf("false_positives JSON: %v", fpj)
			}
		})
	}
}

// text opens s, as often as asked.
func text(s string) eval.Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

// TestRunWithResponse checks the scorecard with the response in force: the
// stream is read again through the gateway enforcing what the playbooks
// would deliver, and what the attacker still read is what counts.
func TestRunWithResponse(t *testing.T) {
	cfg := lowThreshold()
	cfg.Respond.Mode = "enforce"
	evs := strings.Join([]string{
		`{"@timestamp":"2025-06-24T18:00:00Z","event":{"id":"r1","dataset":"hr.roster","action":"identity.terminated","outcome":"success"},"identity":{"id":"e:1042","kind":"employee","roles":["cs-agent"],"status":"terminated","terminated_at":"2025-06-24T18:00:00Z","country":"KR"}}`,
		// Detected (terminated identity): e:1042 is disabled from 10:07:30.
		line("m1", "2025-06-25T10:07:30Z", "gateway.access", "admin.customer.export", "e:1042", browser, attackIP, "1", "2"),
		// The same instant: already answered.
		line("m2", "2025-06-25T10:07:30Z", "gateway.access", "admin.customer.export", "e:1042", browser, attackIP, "3"),
		// Refused: the identity is disabled.
		line("m3", "2025-06-25T10:20:00Z", "gateway.access", "admin.customer.export", "e:1042", browser, attackIP, "4", "5"),
		// Not covered by any containment: the attacker still reads.
		line("m4", "2025-06-25T10:30:00Z", "gateway.access", "public.customer.read", "", browser, "192.0.2.77", "6"),
		// A failed request exposes nothing, contained or not.
		strings.Replace(line("m5", "2025-06-25T10:31:00Z", "gateway.access", "public.customer.read", "", browser, "192.0.2.77", "7"), `"success"`, `"failure"`, 1),
	}, "\n") + "\n"
	tr := &truth.Truth{Scenarios: []truth.Scenario{{
		Name:              "insider",
		AttackerEntities:  []event.EntityKey{{Kind: event.EntityPrincipal, ID: "e:1042"}},
		MaliciousEventIDs: []string{"m1", "m2", "m3", "m4", "m5"},
		FirstMalicious:    ts("2025-06-25T10:07:30Z"),
		RecordsTouched:    6,
	}}}
	opened := 0
	open := func() (io.ReadCloser, error) { opened++; return text(evs)() }
	sc, err := eval.Run(context.Background(), cfg, nil, tr, open, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := sc.Scenarios[0]
	if !sc.Response || opened != 2 {
		t.Errorf("response %v, stream opened %d times", sc.Response, opened)
	}
	if !s.Detected || s.ContainedAt == nil || !s.ContainedAt.Equal(ts("2025-06-25T10:07:30Z")) || s.ContainedBy != "disable_identity" {
		t.Fatalf("%+v", s)
	}
	// Touched without response: 1–6 (m5 failed). Exposed with it: 1, 2,
	// 3 and 6.
	if s.RecordsTouched != 6 || s.RecordsExposedBeforeContainment != 4 || s.RecordsExposedBeforeDetection != 3 {
		t.Errorf("touched/exposed/before detection = %d/%d/%d, want 6/4/3", s.RecordsTouched, s.RecordsExposedBeforeContainment, s.RecordsExposedBeforeDetection)
	}
}

func fmtPtr(f *float64) string {
	if f == nil {
		return "nil"
	}
	return fmt.Sprint(*f)
}

// TestRunCancelled checks that a cancelled context stops the feed with an
// error (after draining the pipeline).
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := eval.Run(ctx, lowThreshold(), nil, groundTruth(), text(events()), nil, nil)
	if err == nil {
		t.Fatal("want an error from a cancelled run")
	}
}
