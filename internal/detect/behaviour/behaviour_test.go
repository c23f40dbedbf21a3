package behaviour_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/behaviour"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{behaviour.New(insiderOpts())}
	})
}

func TestKey(t *testing.T) {
	d := behaviour.New(behaviour.Options{})
	staff := &event.Event{Dataset: "gateway.access", User: event.User{ID: "e:1", Roles: []string{"cs-agent"}}}
	if k, ok := d.Key(staff); !ok || k.ID != "cs-agent" {
		t.Errorf("staff keyed %v %v", k, ok)
	}
	customer := &event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}, Records: event.Records{IDs: []string{"1"}}}
	if _, ok := d.Key(customer); ok {
		t.Error("a customer (no roles) was keyed")
	}
	roster := &event.Event{Dataset: event.DatasetRoster, User: event.User{ID: "e:1", Roles: []string{"cs-agent"}}}
	if _, ok := d.Key(roster); ok {
		t.Error("a roster entry was keyed")
	}
	if n := testing.AllocsPerRun(100, func() { d.Key(staff) }); n != 0 {
		t.Errorf("Key allocates %.0f times", n)
	}
}
