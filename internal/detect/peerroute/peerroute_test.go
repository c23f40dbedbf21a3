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

func TestRoute(t *testing.T) {
	ev := &event.Event{Action: "admin.customer.view", HTTP: event.HTTP{Method: "GET"}, URLPath: "/admin/customers/7"}
	if got := peerroute.Route(ev); got != "admin.customer.view GET /admin/customers/{}" {
		t.Errorf("Route = %q", got)
	}
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
