package store

import (
	"errors"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

func TestPartitionCheckpoints(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		if _, ok, err := s.LoadPartitionCheckpoint(ctx, "g", "ev-by-key", 1); ok || err != nil {
			t.Fatalf("empty store: ok=%v err=%v", ok, err)
		}
		at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		cs := []PartitionCheckpoint{
			{Group: "g", Topic: "ev-by-key", Partition: 1, NextOffset: 100, Data: []byte("a"), SavedAt: at},
			{Group: "g", Topic: "ev-by-role", Partition: 0, NextOffset: 7, Data: []byte("b"), SavedAt: at},
		}
		if err := s.SavePartitionCheckpoints(ctx, cs); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.LoadPartitionCheckpoint(ctx, "g", "ev-by-role", 0)
		if err != nil || !ok || got.NextOffset != 7 || string(got.Data) != "b" || !got.SavedAt.Equal(at) {
			t.Fatalf("loaded %+v ok=%v err=%v", got, ok, err)
		}
		// A late writer with an older offset does not undo a newer checkpoint.
		old := cs[0]
		old.NextOffset, old.Data = 50, []byte("stale")
		if err := s.SavePartitionCheckpoints(ctx, []PartitionCheckpoint{old}); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.LoadPartitionCheckpoint(ctx, "g", "ev-by-key", 1); got.NextOffset != 100 || string(got.Data) != "a" {
			t.Fatalf("a stale checkpoint replaced a newer one: %+v", got)
		}
		newer := cs[0]
		newer.NextOffset, newer.Data = 200, []byte("c")
		if err := s.SavePartitionCheckpoints(ctx, []PartitionCheckpoint{newer}); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.LoadPartitionCheckpoint(ctx, "g", "ev-by-key", 1); got.NextOffset != 200 || string(got.Data) != "c" {
			t.Fatalf("after a newer save: %+v", got)
		}
		if _, ok, _ := s.LoadPartitionCheckpoint(ctx, "other", "ev-by-key", 1); ok {
			t.Fatal("another group sees the checkpoint")
		}
		if err := s.SavePartitionCheckpoints(ctx, []PartitionCheckpoint{{Topic: "t"}}); err == nil {
			t.Fatal("a checkpoint without a group was saved")
		}
	})
}

func TestSaveAlertsWithCheckpoint(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		al := func(id, title string) event.Alert {
			return event.Alert{ID: id, Time: at, Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"},
				Detector: "d", Title: title, State: event.AlertOpen, WindowStart: at, WindowEnd: at.Add(time.Hour), LastTime: at,
				FindingCount: 1, Findings: []event.Finding{{Detector: "d", Kind: "k", Title: title, Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"}, Time: at, Score: 50}}}
		}
		c := PartitionCheckpoint{Group: "g", Topic: "ev-findings", Partition: 2, NextOffset: 10, Data: []byte("s1"), SavedAt: at}
		if err := s.SaveAlertsWithCheckpoint(ctx, []event.Alert{al("al-1", "first")}, c); err != nil {
			t.Fatal(err)
		}
		c.NextOffset, c.Data = 20, []byte("s2")
		if err := s.SaveAlertsWithCheckpoint(ctx, []event.Alert{al("al-1", "second"), al("al-2", "other")}, c); err != nil {
			t.Fatal(err)
		}
		// A worker that lost the partition writes neither its alerts nor its state.
		stale := c
		stale.NextOffset, stale.Data = 15, []byte("stale")
		if err := s.SaveAlertsWithCheckpoint(ctx, []event.Alert{al("al-1", "stale"), al("al-3", "stale")}, stale); !errors.Is(err, ErrStaleCheckpoint) {
			t.Fatalf("stale save: %v, want ErrStaleCheckpoint", err)
		}
		got, ok, err := s.LoadPartitionCheckpoint(ctx, "g", "ev-findings", 2)
		if err != nil || !ok || got.NextOffset != 20 || string(got.Data) != "s2" {
			t.Fatalf("checkpoint %+v ok=%v err=%v", got, ok, err)
		}
		as, err := s.ListAlerts(ctx, AlertQuery{WithFindings: true})
		if err != nil {
			t.Fatal(err)
		}
		titles := map[string]string{}
		for _, a := range as {
			titles[a.ID] = a.Title
			if len(a.Findings) != 1 {
				t.Errorf("alert %s has %d findings, want 1", a.ID, len(a.Findings))
			}
		}
		if want := map[string]string{"al-1": "second", "al-2": "other"}; len(titles) != 2 || titles["al-1"] != "second" || titles["al-2"] != "other" {
			t.Fatalf("alerts %v, want %v", titles, want)
		}
		// The same offset again (a successor replaying identically) is written.
		if err := s.SaveAlertsWithCheckpoint(ctx, nil, c); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveAlertsWithCheckpoint(ctx, []event.Alert{{}}, c); err == nil {
			t.Fatal("an alert without an id was saved")
		}
	})
}
