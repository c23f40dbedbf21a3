package app_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// TestPruneFindings: the retention counts back from the newest stored
// finding's event time, not the wall clock — findings of a replay of old
// logs (years before now) within the retention of the newest stay, older
// ones go, a finding exactly at the cut stays; a zero retention or an
// empty store prunes nothing.
func TestPruneFindings(t *testing.T) {
	newest := time.Date(2020, 3, 1, 12, 0, 0, 0, time.UTC) // years before the wall clock
	ages := map[string]time.Duration{
		"newest": 0, "1h": time.Hour, "23h": 23 * time.Hour, "at-cut": 24 * time.Hour,
		"25h": 25 * time.Hour, "30d": 30 * 24 * time.Hour,
	}
	for _, c := range []struct {
		name      string
		retention time.Duration
		empty     bool
		pruned    int64
		kept      []string
	}{
		{"a day", 24 * time.Hour, false, 2, []string{"1h", "23h", "at-cut", "newest"}},
		{"an hour", time.Hour, false, 4, []string{"1h", "newest"}},
		{"a year", 365 * 24 * time.Hour, false, 0, []string{"1h", "23h", "25h", "30d", "at-cut", "newest"}},
		{"no retention", 0, false, 0, []string{"1h", "23h", "25h", "30d", "at-cut", "newest"}},
		{"empty store", 24 * time.Hour, true, 0, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, t.TempDir(), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if !c.empty {
				var fs []store.ScoredFinding
				for name, age := range ages {
					fs = append(fs, store.ScoredFinding{Finding: event.Finding{Detector: "off_hours", Kind: "off_hours", Title: name,
						Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:7"}, Time: newest.Add(-age), Score: 45,
						Severity: event.SeverityMedium, Evidence: []string{"replay.jsonl:" + name}}, Threshold: 90})
				}
				if err := st.SaveFindings(ctx, fs); err != nil {
					t.Fatal(err)
				}
			}
			n, err := app.PruneFindings(ctx, st, c.retention)
			if err != nil || n != c.pruned {
				t.Errorf("PruneFindings = %d, %v; want %d pruned", n, err, c.pruned)
			}
			left, _, err := st.ListFindings(ctx, store.FindingQuery{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, f := range left {
				kept = append(kept, f.Title)
			}
			slices.Sort(kept)
			if !slices.Equal(kept, c.kept) {
				t.Errorf("kept %v, want %v", kept, c.kept)
			}
			// Pruning again removes nothing more: the newest finding, the
			// origin of the count, stays.
			if n, err := app.PruneFindings(ctx, st, c.retention); n != 0 || err != nil {
				t.Errorf("second PruneFindings = %d, %v; want 0", n, err)
			}
		})
	}
}
