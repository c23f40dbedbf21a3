package offhours_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/offhours"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{offhours.New(offhours.Options{})}
	})
}

func TestKeyDoesNotAllocate(t *testing.T) {
	d := offhours.New(offhours.Options{})
	ev := &event.Event{Dataset: "gateway.access", User: event.User{ID: "e:1", Roles: []string{"cs-agent"}}}
	if k, ok := d.Key(ev); !ok || k.ID != "cs-agent" {
		t.Fatalf("Key = %v %v", k, ok)
	}
	if n := testing.AllocsPerRun(100, func() { d.Key(ev) }); n != 0 {
		t.Fatalf("Key allocates %.0f times", n)
	}
}
