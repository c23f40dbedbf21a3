package scripted_test

import (
	"net/netip"
	"testing"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/scripted"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{scripted.New(scripted.Options{UserAgents: config.DefaultScriptedUserAgents})}
	})
}

func TestKey(t *testing.T) {
	d := scripted.New(scripted.Options{UserAgents: []string{" Curl/ ", "", "*HeadlessChrome"}})
	ip := netip.MustParseAddr("198.51.100.1")
	for _, tc := range []struct {
		name string
		ev   event.Event
		want event.EntityKey
		ok   bool
	}{
		{"scripted with source", event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}, UserAgent: "curl/8", Source: event.Source{IP: ip}}, event.EntityKey{Kind: event.EntitySource, ID: "198.51.100.1"}, true},
		{"scripted without source", event.Event{Dataset: "auth.login", User: event.User{ID: "m:1"}, UserAgent: "CURL/8"}, event.EntityKey{Kind: event.EntityPrincipal, ID: "m:1"}, true},
		{"app built on a library", event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}, UserAgent: "ExampleShop/8.4.1 (Android 14) curl/8"}, event.EntityKey{}, false},
		{"browser", event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}, UserAgent: "Mozilla/5.0"}, event.EntityKey{}, false},
		{"headless anywhere", event.Event{Dataset: "auth.login", User: event.User{ID: "m:2"}, UserAgent: "Mozilla/5.0 (X11) HeadlessChrome/120.0"}, event.EntityKey{Kind: event.EntityPrincipal, ID: "m:2"}, true},
		{"no ua", event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}}, event.EntityKey{}, false},
		{"staff roles", event.Event{Dataset: "gateway.access", User: event.User{ID: "e:1", Roles: []string{"cs"}}, UserAgent: "curl/8"}, event.EntityKey{}, false},
		{"no principal", event.Event{Dataset: "gateway.access", UserAgent: "curl/8"}, event.EntityKey{}, false},
	} {
		got, ok := d.Key(&tc.ev)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: Key = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	roster := &event.Event{Dataset: "hr.roster", Identity: event.Identity{ID: "e:1"}}
	if !d.Broadcast(roster) {
		t.Error("roster events are not broadcast")
	}
	ev := &event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}, UserAgent: "Mozilla/5.0 (X11)"}
	if n := testing.AllocsPerRun(100, func() { d.Key(ev) }); n != 0 {
		t.Errorf("Key allocates %.0f times on ordinary traffic", n)
	}
	if _, ok := scripted.New(scripted.Options{}).Key(ev); ok {
		t.Error("a detector without markers keyed an event")
	}
}
