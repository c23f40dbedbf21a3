package event_test

import (
	"testing"

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
