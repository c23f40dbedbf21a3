package behaviour_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/detect/behaviour"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
)

func readEvents(t testing.TB, paths ...string) []event.Event {
	t.Helper()
	var evs []event.Event
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rd := decode.NewReader(bytes.NewReader(b), 0, 0)
		for {
			var ev event.Event
			err := rd.Next(&ev)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

// run feeds evs (those before restoredBefore marked Restored) to an engine
// started from restore; with checkpointAt > 0 it takes a checkpoint after
// that many events and returns it with the findings emitted up to it.
func run(t testing.TB, shards int, evs []event.Event, restore [][]byte, restoredBefore, checkpointAt int) ([]event.Finding, [][]byte) {
	t.Helper()
	det := behaviour.New(behaviour.Options{Model: true})
	opts := engine.Options{Detectors: []engine.Detector{det}, Shards: shards, InputName: func(uint32) string { return "events.ndjson" }}
	if restore != nil {
		opts.Restore = map[string][][]byte{behaviour.Name: restore}
	}
	eng, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Finding
	parts := make([][]byte, shards)
	snapped := make([]bool, shards)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for out := range eng.Output() {
			if checkpointAt > 0 && snapped[out.Shard] {
				continue // after the checkpoint: the restored run's to find
			}
			got = append(got, out.Findings...)
			if out.Snapshot != nil {
				snapped[out.Shard] = true
				for _, p := range out.Snapshot.Parts {
					parts[out.Shard] = p.Data
				}
			}
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- eng.Run(context.Background()) }()
	ctx := context.Background()
	n := len(evs)
	if checkpointAt > 0 {
		n = checkpointAt
	}
	for i := range n {
		ev := evs[i]
		ev.Restored = i < restoredBefore
		if err := eng.Submit(ctx, engine.Batch{Events: []event.Event{ev}}); err != nil {
			t.Fatal(err)
		}
	}
	if checkpointAt > 0 {
		if err := eng.Checkpoint(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	eng.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	<-done
	detecttest.Sort(got)
	return got, parts
}

// A checkpoint taken mid-stream (mid-hour, with open windows) and restored
// into a new engine gives the same findings as an uninterrupted run.
func TestCheckpointRoundTrip(t *testing.T) {
	evs := readEvents(t, "testdata/multivariate/events.ndjson", "testdata/slow_exfiltration/events.ndjson", "testdata/new_identity_vs_peers/events.ndjson")
	// One time-ordered stream of three unrelated roles.
	slicesSortByTime(evs)
	for _, shards := range []int{1, 3} {
		full, _ := run(t, shards, evs, nil, 0, 0)
		if len(full) < 3 {
			t.Fatalf("only %d findings in the full run", len(full))
		}
		for _, at := range []int{len(evs) / 3, len(evs) * 2 / 3} {
			before, parts := run(t, shards, evs, nil, 0, at)
			after, _ := run(t, shards, evs, parts, at, 0)
			got := append(before, after...)
			detecttest.Sort(got)
			a, _ := json.Marshal(full)
			b, _ := json.Marshal(got)
			if !bytes.Equal(a, b) {
				t.Errorf("shards=%d, checkpoint after %d events: restored run differs\nfull:     %s\nrestored: %s", shards, at, a, b)
			}
		}
	}
}

// A corrupt snapshot is refused and the shard stays cold and usable.
func TestRestoreCorrupt(t *testing.T) {
	evs := readEvents(t, "testdata/slow_exfiltration/events.ndjson")
	_, parts := run(t, 1, evs, nil, 0, len(evs)/2)
	good := parts[0]
	for _, bad := range [][]byte{nil, {}, {99}, good[:len(good)/2], append(append([]byte(nil), good...), 0)} {
		s := behaviour.New(behaviour.Options{Model: true}).NewShard().(engine.Snapshotter)
		if err := s.Restore(snap.NewReader(bad)); err == nil {
			t.Errorf("snapshot of %d bytes accepted", len(bad))
		}
		var w snap.Writer
		s.AppendSnapshot(&w)
		cold := behaviour.New(behaviour.Options{Model: true}).NewShard().(engine.Snapshotter)
		var w0 snap.Writer
		cold.AppendSnapshot(&w0)
		if !bytes.Equal(w.B, w0.B) {
			t.Errorf("refused snapshot left state behind")
		}
	}
	other := behaviour.New(behaviour.Options{Model: false}).NewShard().(engine.Snapshotter)
	if err := other.Restore(snap.NewReader(good)); err == nil {
		t.Error("a model snapshot was accepted without the model")
	}
	s := behaviour.New(behaviour.Options{Model: true}).NewShard().(engine.Snapshotter)
	if err := s.Restore(snap.NewReader(good)); err != nil {
		t.Fatalf("good snapshot refused: %v", err)
	}
	var w snap.Writer
	s.AppendSnapshot(&w)
	if !bytes.Equal(w.B, good) {
		t.Error("snapshot does not round-trip byte for byte")
	}
}

func FuzzRestore(f *testing.F) {
	evs := readEvents(f, "testdata/new_identity_vs_peers/events.ndjson")
	_, parts := run(f, 1, evs, nil, 0, len(evs)-5)
	f.Add(parts[0])
	f.Add([]byte{1, 1, 0})
	f.Add([]byte{1, 0, 1, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, model := range []bool{true, false} {
			s := behaviour.New(behaviour.Options{Model: model}).NewShard()
			sn := s.(engine.Snapshotter)
			if err := sn.Restore(snap.NewReader(b)); err != nil {
				return
			}
			var w snap.Writer
			sn.AppendSnapshot(&w)
			s2 := behaviour.New(behaviour.Options{Model: model}).NewShard().(engine.Snapshotter)
			if err := s2.Restore(snap.NewReader(w.B)); err != nil {
				t.Fatalf("re-snapshot refused: %v", err)
			}
		}
	})
}

func slicesSortByTime(evs []event.Event) {
	slices.SortStableFunc(evs, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
}
