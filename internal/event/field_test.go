package event

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestFieldCoversEveryName(t *testing.T) {
	var e Event
	for _, n := range FieldNames() {
		if _, ok := e.Field(n); ok {
			t.Errorf("Field(%q) on a zero event: ok, want absent", n)
		}
	}
	if _, ok := e.Field("no.such"); ok {
		t.Error("unknown name accepted")
	}
}

func TestFieldValues(t *testing.T) {
	ts := time.Date(2025, 6, 24, 9, 0, 0, 0, time.UTC)
	e := Event{Time: ts, Dataset: "d", Outcome: OutcomeFailure, User: User{ID: "u", Roles: []string{"r"}},
		Source: Source{IP: netip.MustParseAddr("203.0.113.9"), ASN: 64500, Located: true},
		HTTP:   HTTP{StatusCode: 404}}
	tests := []struct {
		name string
		want any
		kind FieldKind
	}{
		{"@timestamp", ts, KindTime},
		{"event.dataset", "d", KindString},
		{"event.outcome", "failure", KindString},
		{"user.id", "u", KindString},
		{"user.roles", []string{"r"}, KindStrings},
		{"source.ip", netip.MustParseAddr("203.0.113.9"), KindIP},
		{"source.as.number", int64(64500), KindInt},
		{"source.geo.location.lat", 0.0, KindFloat},
		{"http.response.status_code", int64(404), KindInt},
	}
	for _, tt := range tests {
		got, ok := e.Field(tt.name)
		if !ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Field(%q) = %v, %v; want %v", tt.name, got, ok, tt.want)
		}
		if k, _ := FieldKindOf(tt.name); k != tt.kind {
			t.Errorf("FieldKindOf(%q) = %v, want %v", tt.name, k, tt.kind)
		}
	}
}
