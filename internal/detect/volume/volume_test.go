package volume_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/volume"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{volume.New(volume.Options{})}
	})
}

func TestKey(t *testing.T) {
	d := volume.New(volume.Options{})
	staff := &event.Event{Dataset: "gateway.access", User: event.User{ID: "e:1", Roles: []string{"cs-agent"}}, Records: event.Records{IDs: []string{"1"}}}
	if k, ok := d.Key(staff); !ok || k.ID != "cs-agent" {
		t.Errorf("staff keyed %v %v", k, ok)
	}
	customer := &event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}, Records: event.Records{IDs: []string{"1"}}}
	if _, ok := d.Key(customer); ok {
		t.Error("a customer (no roles) was keyed")
	}
	if n := testing.AllocsPerRun(100, func() { d.Key(staff) }); n != 0 {
		t.Errorf("Key allocates %.0f times", n)
	}
}
