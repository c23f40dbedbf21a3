package geo_test

import (
	"os"
	"testing"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/geo"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{geo.New(geo.Options{HostingMarkers: config.DefaultHostingMarkers})}
	})
}

func TestKey(t *testing.T) {
	d := geo.New(geo.Options{})
	located := &event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}, Source: event.Source{Country: "KR"}}
	if _, ok := d.Key(located); !ok {
		t.Error("located activity not keyed")
	}
	if _, ok := d.Key(&event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}}); ok {
		t.Error("unlocated activity keyed")
	}
	if n := testing.AllocsPerRun(100, func() { d.Key(located) }); n != 0 {
		t.Errorf("Key allocates %.0f times", n)
	}
}

func TestNoHostingMarkers(t *testing.T) {
	f, err := os.Open("testdata/hosting/events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := detecttest.Findings(t, f, 1, geo.New(geo.Options{HostingMarkers: []string{}})); len(got) != 0 {
		t.Fatalf("an empty marker list still reported hosting: %+v", got)
	}
}
