package event_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

func TestPrincipalKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   event.Event
		want string
		ok   bool
	}{
		{"roster", event.Event{Dataset: event.DatasetRoster, User: event.User{ID: "e:hr"}, Identity: event.Identity{ID: "e:1"}}, "e:1", true},
		{"roster without identity", event.Event{Dataset: event.DatasetRoster, User: event.User{ID: "e:hr"}}, "", false},
		{"activity", event.Event{Dataset: event.DatasetGateway, User: event.User{ID: "m:1"}}, "m:1", true},
		{"keys", event.Event{Dataset: event.DatasetKeys, User: event.User{ID: "e:2"}}, "", false},
		{"no principal", event.Event{Dataset: event.DatasetGateway}, "", false},
	} {
		k, ok := tc.ev.PrincipalKey()
		if ok != tc.ok || k.ID != tc.want || (ok && k.Kind != event.EntityPrincipal) {
			t.Errorf("%s: %v %v", tc.name, k, ok)
		}
	}
}

func TestRefWith(t *testing.T) {
	e := event.Event{Line: 14}
	if got := e.RefWith("events.ndjson"); got != "events.ndjson:14" {
		t.Errorf("RefWith = %q", got)
	}
	e.ID = "ev-1"
	if got := e.RefWith("events.ndjson"); got != "ev-1" {
		t.Errorf("RefWith = %q", got)
	}
}

func TestSeverity(t *testing.T) {
	for score, want := range map[float64]string{0: "low", 39.9: "low", 40: "medium", 70: "high", 90: "critical", 100: "critical"} {
		if got := event.SeverityForScore(score).String(); got != want {
			t.Errorf("SeverityForScore(%v) = %s, want %s", score, got, want)
		}
	}
	var s event.Severity
	if err := s.UnmarshalText([]byte("high")); err != nil || s != event.SeverityHigh {
		t.Errorf("UnmarshalText: %v %v", s, err)
	}
	if _, err := event.ParseSeverity("loud"); err == nil {
		t.Error("ParseSeverity accepted loud")
	}
	if _, err := event.Severity(0).MarshalText(); err == nil {
		t.Error("an unset severity marshalled")
	}
}

func TestFindingID(t *testing.T) {
	f := event.Finding{Detector: "d", Kind: "k", Entity: event.EntityKey{Kind: event.EntityToken, ID: "t"},
		Time: time.Date(2025, 6, 24, 10, 0, 0, 123, time.UTC), Evidence: []string{"a", "b"}}
	id := f.ID()
	g := f
	g.Explanation, g.Contribution, g.Score, g.Immediate = "changed", 3, 1, true
	if g.ID() != id {
		t.Error("ID depends on fields the alert stage changes")
	}
	for _, h := range []event.Finding{
		{Detector: "d", Kind: "k", Entity: f.Entity, Time: f.Time, Evidence: []string{"a"}},
		{Detector: "d", Kind: "k", Entity: f.Entity, Time: f.Time.Add(1), Evidence: f.Evidence},
		{Detector: "d", Kind: "k2", Entity: f.Entity, Time: f.Time, Evidence: f.Evidence},
		{Detector: "d", Kind: "k", Entity: event.EntityKey{Kind: event.EntitySigningKey, ID: "t"}, Time: f.Time, Evidence: f.Evidence},
	} {
		if h.ID() == id {
			t.Errorf("%+v has the ID of %+v", h, f)
		}
	}
	w := event.Finding{Severity: event.SeverityLow, Withdraws: id}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var back event.Finding
	if err := json.Unmarshal(b, &back); err != nil || back.Withdraws != id {
		t.Fatalf("round trip of %s: %v, %s", b, err, back.Withdraws)
	}
	if b, _ := json.Marshal(event.Finding{Severity: event.SeverityLow}); strings.Contains(string(b), "withdraws") {
		t.Errorf("zero Withdraws not omitted: %s", b)
	}
	for _, bad := range []string{`"fd-1"`, `"xx-0123456789abcdef"`, `"fd-0123456789abcdeg"`} {
		var x event.FindingID
		if err := json.Unmarshal([]byte(bad), &x); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
