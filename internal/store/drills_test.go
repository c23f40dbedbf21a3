package store

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// Drill runs are stored, replaced by run id, and listed newest first, of one
// drill or all.
func TestDrillRuns(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t)
		t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
		runs := []DrillRun{
			{Run: "canary-1", Drill: "canary", Kind: "canary_read", Started: t0, Status: "running", Entity: "principal:haechi-drill-canary-1-user"},
			{Run: "forged-1", Drill: "forged", Kind: "forged_token", Started: t0.Add(time.Minute), Status: "failed", Reason: "no alert", Alerts: []string{}},
			{Drill: "forged", Kind: "forged_token", Started: t0.Add(2 * time.Minute), Status: "cannot_run", Reason: "cannot run: missing stream auth.token"},
			{Run: "canary-1", Drill: "canary", Kind: "canary_read", Started: t0, Status: "passed", TimeToAlert: 12 * time.Millisecond,
				Alerts: []string{"al-1", "al-2"}, Entity: "principal:haechi-drill-canary-1-user"},
		}
		for _, r := range runs {
			if err := s.PutDrillRun(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.ListDrillRuns(t.Context(), "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 || all[0].Status != "cannot_run" || all[0].Run == "" || all[2].Run != "canary-1" {
			t.Fatalf("all runs: %+v", all)
		}
		if want := runs[3]; !reflect.DeepEqual(all[2], want) {
			t.Errorf("replaced run\n got %+v\nwant %+v", all[2], want)
		}
		forged, err := s.ListDrillRuns(t.Context(), "forged", 1)
		if err != nil || len(forged) != 1 || forged[0].Status != "cannot_run" {
			t.Errorf("forged, limit 1: %+v %v", forged, err)
		}
	})
}

// A run's detail is stored with it and read back by GetDrillRun only;
// runs left running by a stopped process are marked interrupted.
func TestDrillRunDetail(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t)
		t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
		detail := `{"alerts":[{"id":"al-1"}],"actions":[{"kind":"revoke_key"}]}`
		for _, r := range []DrillRun{
			{Run: "canary-1", Drill: "canary", Started: t0, Status: "running"},
			{Run: "canary-1", Drill: "canary", Started: t0, Status: "passed", Detail: []byte(detail)},
			{Run: "canary-2", Drill: "canary", Started: t0.Add(time.Minute), Status: "running"},
		} {
			if err := s.PutDrillRun(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.GetDrillRun(t.Context(), "canary-1")
		if err != nil || got.Status != "passed" || string(got.Detail) != detail {
			t.Fatalf("GetDrillRun: %+v %s, %v", got, got.Detail, err)
		}
		if list, err := s.ListDrillRuns(t.Context(), "", 0); err != nil || len(list) != 2 || list[1].Detail != nil {
			t.Errorf("ListDrillRuns carries detail or lost a run: %+v %v", list, err)
		}
		if _, err := s.GetDrillRun(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing run: %v", err)
		}
		n, err := s.InterruptDrillRuns(t.Context(), "serve stopped")
		if err != nil || n != 1 {
			t.Fatalf("InterruptDrillRuns = %d, %v; want 1", n, err)
		}
		if r, _ := s.GetDrillRun(t.Context(), "canary-2"); r.Status != "interrupted" || r.Reason != "serve stopped" {
			t.Errorf("running run after interrupt: %+v", r)
		}
		if r, _ := s.GetDrillRun(t.Context(), "canary-1"); r.Status != "passed" {
			t.Errorf("decided run changed: %+v", r)
		}
	})
}
