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

// Every string field has a getter that agrees with Field.
func TestStringGetters(t *testing.T) {
	e := Event{Dataset: "d", Action: "a", ID: "i", Outcome: OutcomeSuccess, Provider: "p",
		User: User{ID: "u", Name: "n"}, Source: Source{Country: "KR", ASOrg: "o"}, UserAgent: "ua",
		HTTP: HTTP{Method: "GET"}, URLPath: "/x", Token: Token{ID: "t", KeyID: "k", Issuer: "is"},
		Records: Records{Type: "r"}, Identity: Identity{ID: "e:1", Kind: "employee", Status: "active", Country: "KR"},
		Key: Key{ID: "key", Status: "active"}}
	for _, n := range FieldNames() {
		kind, _ := FieldKindOf(n)
		get, ok := StringGetter(n)
		if ok != (kind == KindString) {
			t.Errorf("StringGetter(%q): ok %v for kind %v", n, ok, kind)
			continue
		}
		if !ok {
			continue
		}
		want, _ := e.Field(n)
		if got := get(&e); got != want {
			t.Errorf("StringGetter(%q) = %q, Field = %q", n, got, want)
		}
		if got := get(&Event{}); got != "" {
			t.Errorf("StringGetter(%q) on a zero event = %q", n, got)
		}
	}
}

func TestIntAndStringsGetters(t *testing.T) {
	e := Event{HTTP: HTTP{StatusCode: 404, BodyBytes: 9}, Source: Source{ASN: 7},
		User: User{Roles: []string{"a"}}, Records: Records{IDs: []string{"1"}, Fields: []string{"f"}},
		Identity: Identity{Roles: []string{"r"}}, Key: Key{Custodians: []string{"c"}}}
	for _, n := range FieldNames() {
		kind, _ := FieldKindOf(n)
		if get, ok := IntGetter(n); ok != (kind == KindInt) {
			t.Errorf("IntGetter(%q): ok %v for kind %v", n, ok, kind)
		} else if ok {
			if want, _ := e.Field(n); get(&e) != want {
				t.Errorf("IntGetter(%q) = %d, Field %v", n, get(&e), want)
			}
		}
		if get, ok := StringsGetter(n); ok != (kind == KindStrings) {
			t.Errorf("StringsGetter(%q): ok %v for kind %v", n, ok, kind)
		} else if ok {
			if want, _ := e.Field(n); !reflect.DeepEqual(get(&e), want) {
				t.Errorf("StringsGetter(%q) = %v, Field %v", n, get(&e), want)
			}
		}
	}
}
