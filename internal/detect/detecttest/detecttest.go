// Package detecttest runs detector golden tests: every directory under a
// detector's testdata/ holds events.ndjson (contract NDJSON) or
// events.cloudtrail.json (AWS CloudTrail records, a {"Records":[...]} file
// or one record per line) and want.json (the findings expected, in a
// stable order). The events go through the real decoder of their format
// and the real engine — several shards, the default lateness — so a
// golden test exercises exactly the path production takes.
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
	"github.com/haechi-sec/haechi/internal/input/cloudtrail"
	"github.com/haechi-sec/haechi/internal/snap"
)

var update = flag.Bool("update", false, "rewrite golden want.json files")

// Findings runs events through an engine with the given detectors and
// returns every finding, sorted by time, detector, entity, kind and
// evidence. Lines that fail to decode fail the test.
func Findings(t testing.TB, events io.Reader, shards int, dets ...engine.Detector) []event.Finding {
	t.Helper()
	return findings(t, readEvents(t, events), shards, dets...)
}

// DrillFindings is Findings with the events drill reports true for marked
// event.Event.Drill, as serve's ingest marks a drill run's events: for
// tests that drill traffic is judged but leaves company-wide learning
// alone.
func DrillFindings(t testing.TB, events io.Reader, drill func(*event.Event) bool, shards int, dets ...engine.Detector) []event.Finding {
	t.Helper()
	evs := readEvents(t, events)
	for i := range evs {
		evs[i].Drill = drill(&evs[i])
	}
	return findings(t, evs, shards, dets...)
}

// CloudTrailFile is the name of a golden case's events in CloudTrail form.
const CloudTrailFile = "events.cloudtrail.json"

// ReadFile decodes a case's events with the decoder its name says:
// CloudTrail for names ending in .cloudtrail.json, the event contract
// otherwise. Entries that fail to decode fail the test.
func ReadFile(t testing.TB, path string) []event.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !strings.HasSuffix(path, ".cloudtrail.json") {
		return readEvents(t, f)
	}
	rd := cloudtrail.NewReader(f, 0, cloudtrail.Options{})
	var evs []event.Event
	for {
		var ev event.Event
		err := rd.Next(&ev)
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		evs = append(evs, ev)
	}
}

func findings(t testing.TB, evs []event.Event, shards int, dets ...engine.Detector) []event.Finding {
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
			got = append(got, uncited(out.Findings)...)
		}
	}()
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(context.Background()) }()
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

// uncited drops the citations the engine adds (event.Finding.Cited):
// golden files hold what detectors emit, and the engine's citing is the
// engine's to test.
func uncited(fs []event.Finding) []event.Finding {
	for i := range fs {
		fs[i].Cited = nil
	}
	return fs
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
	ct, err := filepath.Glob(filepath.Join(dir, "*", CloudTrailFile))
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, ct...)
	if len(cases) == 0 {
		t.Fatalf("no golden cases under %s", dir)
	}
	for _, evPath := range cases {
		caseDir := filepath.Dir(evPath)
		t.Run(filepath.Base(caseDir), func(t *testing.T) {
			evs := ReadFile(t, evPath)
			for _, shards := range []int{1, 3} {
				got := findings(t, evs, shards, mk()...)
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
					if err := os.WriteFile(wantPath, b, 0o644); err != nil { // #nosec G306 -- a golden file in the source tree (go test -update), readable like the rest of it
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
			if snapshots(mk()) {
				checkRestart(t, evPath, mk)
			}
		})
	}
}

// snapshots reports whether every detector's shard implements
// engine.Snapshotter.
func snapshots(dets []engine.Detector) bool {
	for _, d := range dets {
		if _, ok := d.NewShard().(engine.Snapshotter); !ok {
			return false
		}
	}
	return len(dets) > 0
}

// checkRestart cuts the case's events at a third and at two thirds: a
// checkpoint taken at the cut and restored into a fresh engine, which then
// sees the whole stream with the events before the cut marked Restored (as
// serve replays its spool), must produce exactly the findings of an
// uninterrupted run.
func checkRestart(t *testing.T, evPath string, mk func() []engine.Detector) {
	t.Helper()
	evs := ReadFile(t, evPath)
	want := findings(t, evs, 3, mk()...)
	if want == nil {
		want = []event.Finding{}
	}
	for _, cut := range []int{len(evs) / 3, 2 * len(evs) / 3} {
		before, after := Restart(t, evs, cut, 3, mk)
		got := append(append([]event.Finding{}, before...), after...)
		Sort(got)
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if !bytes.Equal(wb, gb) {
			t.Errorf("restart from a checkpoint after %d of %d events: findings differ from an uninterrupted run\n--- got\n%s\n--- want\n%s", cut, len(evs), gb, wb)
		}
	}
}

func readEvents(t testing.TB, r io.Reader) []event.Event {
	t.Helper()
	rd := decode.NewReader(r, 0, 0)
	var evs []event.Event
	for {
		var ev event.Event
		err := rd.Next(&ev)
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatalf("events: %v", err)
		}
		evs = append(evs, ev)
	}
}

// Restart runs evs[:cut] through an engine, takes a checkpoint, restores
// it into a fresh engine and runs the whole of evs through that one with
// the events before the cut marked Restored, as serve does after a
// restart. It returns what the first engine emitted before its checkpoint
// and everything the second emitted, each sorted. Detectors that do not
// implement Snapshotter start cold in the second engine and re-emit what
// they found before the cut.
func Restart(t testing.TB, evs []event.Event, cut, shards int, mk func() []engine.Detector) (before, after []event.Finding) {
	t.Helper()
	ctx := context.Background()
	name := func(uint32) string { return "events.ndjson" }
	// Before the cut: everything each shard emitted before its snapshot.
	eng, err := engine.New(engine.Options{Detectors: mk(), Shards: shards, InputName: name})
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Finding
	restore := map[string][][]byte{}
	// Batches of up to 64 events, cut exactly at cut.
	submit := func(eng *engine.Engine, evs []event.Event, restoredBelow int) {
		for i := 0; i < len(evs); i += 64 {
			end := min(i+64, len(evs))
			if i < restoredBelow && end > restoredBelow {
				end = restoredBelow
			}
			b := make([]event.Event, end-i)
			copy(b, evs[i:end])
			for j := range b {
				b[j].Restored = i+j < restoredBelow
			}
			if err := eng.Submit(ctx, engine.Batch{Events: b}); err != nil {
				t.Fatal(err)
			}
			i = end - 64
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		snapped := make([]bool, shards)
		for out := range eng.Output() {
			if snapped[out.Shard] {
				continue // the end-of-input flush of a stream that goes on
			}
			got = append(got, uncited(out.Findings)...)
			if out.Snapshot != nil {
				snapped[out.Shard] = true
				for _, p := range out.Snapshot.Parts {
					if restore[p.Detector] == nil {
						restore[p.Detector] = make([][]byte, shards)
					}
					restore[p.Detector][out.Shard] = p.Data
				}
			}
		}
	}()
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(ctx) }()
	submit(eng, evs[:cut], 0)
	if err := eng.Checkpoint(ctx, 1); err != nil {
		t.Fatal(err)
	}
	eng.Close()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	<-done
	before, got = got, nil
	// After the restart: the whole stream, the part before the cut marked
	// Restored.
	eng, err = engine.New(engine.Options{Detectors: mk(), Shards: shards, InputName: name, Restore: restore})
	if err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() {
		defer close(done)
		for out := range eng.Output() {
			got = append(got, uncited(out.Findings)...)
		}
	}()
	go func() { runErr <- eng.Run(ctx) }()
	submit(eng, evs, cut)
	eng.Close()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	<-done
	Sort(before)
	Sort(got)
	return before, got
}

// FuzzRestore fuzzes the detector's Snapshotter.Restore: it must never
// panic, and a snapshot it accepts must be usable (processing the events
// of the case after it must not panic either). The corpus is seeded with
// real snapshots taken over the case's events.
func FuzzRestore(f *testing.F, evPath string, det engine.Detector) {
	evs := ReadFile(f, evPath)
	for _, cut := range []int{0, len(evs) / 2, len(evs)} {
		sh := det.NewShard()
		c := engine.NewTestContext(0, 1)
		for i := range evs[:cut] {
			if k, ok := det.Key(&evs[i]); ok {
				sh.Process(c, k, &evs[i])
				c.TakeFindings()
			}
		}
		var w snap.Writer
		sh.(engine.Snapshotter).AppendSnapshot(&w)
		f.Add(w.B)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sh := det.NewShard()
		if err := sh.(engine.Snapshotter).Restore(snap.NewReader(b)); err != nil {
			return
		}
		c := engine.NewTestContext(0, 1)
		for i := range evs {
			ev := evs[i]
			if k, ok := det.Key(&ev); ok {
				sh.Process(c, k, &ev)
				c.TakeFindings()
			}
		}
		var w snap.Writer
		sh.(engine.Snapshotter).AppendSnapshot(&w)
	})
}
