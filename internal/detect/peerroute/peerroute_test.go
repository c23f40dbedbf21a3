package peerroute_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/peerroute"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{peerroute.New(peerroute.Options{})}
	})
}

func TestTemplate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/admin/tickets/T-4100023/customers/10042", "/admin/tickets/{}/customers/{}"},
		{"/partner/v1/customers/7?fields=all", "/partner/{}/customers/{}"},
		{"/internal/customers/batch", "/internal/customers/batch"},
		{"", ""},
		{"/a/b/c/d/e/f/g/h/i/j/k/l/m/n", "/a/b/c/d/e/f/g/h/i/j/k/…"},
		{"/files/3f2a9c1e-0000-4b5e-9d2c-1a2b3c4d5e6f", "/files/{}"},
	} {
		if got := peerroute.Template(tc.in); got != tc.want {
			t.Errorf("Template(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	ev := &event.Event{Action: "admin.customer.view", HTTP: event.HTTP{Method: "GET"}, URLPath: "/admin/customers/7"}
	if got := peerroute.Route(ev); got != "admin.customer.view GET /admin/customers/{}" {
		t.Errorf("Route = %q", got)
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"/admin/tickets/T-1/customers/2", "/a?b#c", "////", "/ü/1/🙂"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := peerroute.Template(path)
		if peerroute.Template(path) != got {
			t.Fatal("not deterministic")
		}
		if len(got) > len(path)+16 {
			t.Fatalf("template %q longer than its path %q", got, path)
		}
	})
}

func TestKey(t *testing.T) {
	d := peerroute.New(peerroute.Options{})
	staff := &event.Event{Dataset: "gateway.access", User: event.User{ID: "e:1", Roles: []string{"cs-agent"}}, Records: event.Records{IDs: []string{"1"}}}
	if k, ok := d.Key(staff); !ok || k.ID != "cs-agent" {
		t.Errorf("staff keyed %v %v", k, ok)
	}
	customer := &event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}, Records: event.Records{IDs: []string{"1"}}}
	if _, ok := d.Key(customer); ok {
		t.Error("a customer (no roles) was keyed")
	}
	noRecords := &event.Event{Dataset: "gateway.access", User: event.User{ID: "e:1", Roles: []string{"cs-agent"}}}
	if _, ok := d.Key(noRecords); ok {
		t.Error("a request that touched no records was keyed")
	}
}
