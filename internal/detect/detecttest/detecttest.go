// Package detecttest runs detector golden tests: every directory under a
// detector's testdata/ holds events.ndjson (contract NDJSON) and want.json
// (the findings expected, in a stable order). The events go through the
// real decoder and the real engine — several shards, the default lateness —
// so a golden test exercises exactly the path production takes.
//
// Run the tests with -update to rewrite want.json from what the detector
// produces; review the diff before committing it.
package detecttest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

var update = flag.Bool("update", false, "rewrite golden want.json files")

// Findings runs events through an engine with the given detectors and
// returns every finding, sorted by time, detector, entity, kind and
// evidence. Lines that fail to decode fail the test.
func Findings(t testing.TB, events io.Reader, shards int, dets ...engine.Detector) []event.Finding {
	t.Helper()
	eng, err := engine.New(engine.Options{Detectors: dets, Shards: shards, InputName: func(uint32) string { return "events.ndjson" }})
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Finding
	done := make(chan struct{})
	go func() {
		defer close(done)
		for out := range eng.Output() {
			got = append(got, out.Findings...)
		}
	}()
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(context.Background()) }()
	rd := decode.NewReader(events, 0, 0)
	var evs []event.Event
	for {
		var ev event.Event
		err := rd.Next(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("events: %v", err)
		}
		evs = append(evs, ev)
	}
	// One event per batch: the engine sees the stream as a live source would.
	for i := range evs {
		if err := eng.Submit(context.Background(), engine.Batch{Events: evs[i : i+1 : i+1]}); err != nil {
			t.Fatal(err)
		}
	}
	eng.Close()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	<-done
	Sort(got)
	return got
}

// Sort orders findings stably for comparison.
func Sort(fs []event.Finding) {
	slices.SortStableFunc(fs, func(a, b event.Finding) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Detector, b.Detector),
			strings.Compare(a.Entity.String(), b.Entity.String()), strings.Compare(a.Kind, b.Kind),
			strings.Compare(strings.Join(a.Evidence, ","), strings.Join(b.Evidence, ",")))
	})
}

// Golden runs every case directory under dir (usually "testdata") as a
// subtest, building the detectors afresh for each case with mk.
func Golden(t *testing.T, dir string, mk func() []engine.Detector) {
	t.Helper()
	cases, err := filepath.Glob(filepath.Join(dir, "*", "events.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatalf("no golden cases under %s", dir)
	}
	for _, evPath := range cases {
		caseDir := filepath.Dir(evPath)
		t.Run(filepath.Base(caseDir), func(t *testing.T) {
			for _, shards := range []int{1, 3} {
				f, err := os.Open(evPath)
				if err != nil {
					t.Fatal(err)
				}
				got := Findings(t, f, shards, mk()...)
				f.Close()
				if got == nil {
					got = []event.Finding{}
				}
				b, err := json.MarshalIndent(got, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				b = append(b, '\n')
				wantPath := filepath.Join(caseDir, "want.json")
				if *update && shards == 1 {
					if err := os.WriteFile(wantPath, b, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(wantPath)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(want, b) {
					t.Errorf("shards=%d: findings differ from %s (run with -update to accept)\n--- got\n%s", shards, wantPath, b)
				}
			}
		})
	}
}
