package lifecycle_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/lifecycle"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{lifecycle.New(lifecycle.Options{})}
	})
}

func TestKeyDoesNotAllocate(t *testing.T) {
	d := lifecycle.New(lifecycle.Options{})
	ev := &event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}}
	if n := testing.AllocsPerRun(100, func() { d.Key(ev) }); n != 0 {
		t.Fatalf("Key allocates %.0f times", n)
	}
}
