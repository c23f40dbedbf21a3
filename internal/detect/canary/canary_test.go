package canary_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/canary"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{canary.New([]string{"70000003", " 90000001 ", ""})}
	})
}

func TestKeyWithoutCanaries(t *testing.T) {
	d := canary.New(nil)
	ev := &event.Event{User: event.User{ID: "m:1"}, Records: event.Records{IDs: []string{"70000003"}}}
	if _, ok := d.Key(ev); ok {
		t.Fatal("a detector without canary ids keyed an event")
	}
	if d.Len() != 0 {
		t.Fatalf("Len = %d", d.Len())
	}
}

func TestKeyDoesNotAllocate(t *testing.T) {
	d := canary.New([]string{"70000003"})
	ev := &event.Event{User: event.User{ID: "m:1"}, Records: event.Records{IDs: []string{"1", "2", "3"}}}
	if n := testing.AllocsPerRun(100, func() { d.Key(ev) }); n != 0 {
		t.Fatalf("Key allocates %.0f times per miss", n)
	}
}
