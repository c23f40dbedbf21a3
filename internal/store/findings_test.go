package store

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

func scoredFinding(entity event.EntityKey, det, kind string, at time.Time, score, contribution, risk float64, alertID string) ScoredFinding {
	f := event.Finding{Detector: det, Kind: kind, Title: "t " + det, Entity: entity, Time: at, Score: score,
		Severity: event.SeverityForScore(score), Explanation: fmt.Sprintf("%s %v", det, score),
		Evidence: []string{fmt.Sprintf("in:%d", at.UnixNano())}, Contribution: contribution}
	return ScoredFinding{Finding: f, Risk: risk, Threshold: 90, Alert: alertID}
}

// Scored findings survive the store with every field, on both backends.
func TestFindingsRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		at := time.Date(2025, 6, 1, 2, 0, 0, 0, time.UTC)
		py := event.EntityKey{Kind: event.EntitySource, ID: "203.0.113.9"}
		sf := scoredFinding(py, "scripted_client", "scripted_user_agent", at, 30, 30, 30, "")
		sf.Tags = []string{"attack.t1059"}
		sf.Related = []event.EntityKey{{Kind: event.EntityPrincipal, ID: "p:1"}}
		sf.Figures = []event.Figure{{Name: "requests", Value: 12}, {Name: "bad", Value: 0}}
		sup := scoredFinding(py, "off_hours", "off_hours_access", at.Add(time.Minute), 45, 0, 30, "")
		sup.Suppressed = true
		// Its line of evidence and privilege, which explain rescores by.
		sup.Line, sup.Privileged = "hours", true
		if err := s.SaveFindings(ctx, []ScoredFinding{sf, sup}); err != nil {
			t.Fatal(err)
		}
		// Stored again (a replay): one row each, the latest scoring wins.
		sf2 := sf
		sf2.Alert, sf2.Risk = "al-x", 95
		if err := s.SaveFindings(ctx, []ScoredFinding{sf2}); err != nil {
			t.Fatal(err)
		}
		got, next, err := s.ListFindings(ctx, FindingQuery{})
		if err != nil || next != "" || len(got) != 2 {
			t.Fatalf("list: %d findings, next %q, %v", len(got), next, err)
		}
		sf2.ID = FindingID(&sf2.Finding)
		sup.ID = FindingID(&sup.Finding)
		if !reflect.DeepEqual(got[1], sf2) {
			t.Errorf("read back\n%+v\nwant\n%+v", got[1], sf2)
		}
		if !reflect.DeepEqual(got[0], sup) {
			t.Errorf("read back\n%+v\nwant\n%+v", got[0], sup)
		}
	})
}

// ListFindings filters by entity, detector, kind, time and threshold and
// pages with a cursor; a cursor it did not issue is ErrBadCursor.
func TestListFindingsFiltersAndPages(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		p1 := event.EntityKey{Kind: event.EntityPrincipal, ID: "p:1"}
		p2 := event.EntityKey{Kind: event.EntityPrincipal, ID: "p:2"}
		src := event.EntityKey{Kind: event.EntitySource, ID: "198.51.100.1"}
		var all []ScoredFinding
		for i := range 10 {
			all = append(all, scoredFinding(p1, "principal_geo", "new_country", at.Add(time.Duration(i)*time.Hour), 40, 40, 40, ""))
		}
		all = append(all,
			scoredFinding(p2, "principal_geo", "impossible_travel", at, 60, 60, 60, ""),
			scoredFinding(p2, "off_hours", "off_hours_access", at.Add(time.Minute), 45, 45, 105, "al-1"),
			scoredFinding(src, "scripted_client", "scripted_user_agent", at.Add(2*time.Hour), 30, 30, 30, ""),
		)
		if err := s.SaveFindings(ctx, all); err != nil {
			t.Fatal(err)
		}
		ids := func(fs []ScoredFinding) (out []string) {
			for _, f := range fs {
				out = append(out, fmt.Sprintf("%s/%s/%s", f.Entity.ID, f.Detector, f.Time.Format("15:04")))
			}
			return out
		}
		for _, c := range []struct {
			name string
			q    FindingQuery
			want int
		}{
			{"all", FindingQuery{}, 13},
			{"entity", FindingQuery{Entity: p2}, 2},
			{"entity kind", FindingQuery{Entity: event.EntityKey{Kind: event.EntitySource}}, 1},
			{"detector", FindingQuery{Detector: "principal_geo"}, 11},
			{"kind", FindingQuery{Kind: "impossible_travel"}, 1},
			{"since", FindingQuery{Since: at.Add(8 * time.Hour)}, 2},
			{"before", FindingQuery{Before: at.Add(time.Minute)}, 2},
			{"below threshold", FindingQuery{Entity: p2, BelowThreshold: true}, 1},
		} {
			got, _, err := s.ListFindings(ctx, c.q)
			if err != nil || len(got) != c.want {
				t.Errorf("%s: %d findings (%v), want %d: %v", c.name, len(got), err, c.want, ids(got))
			}
		}
		// Pages of 4 over p1's 10 findings, newest first, none twice.
		var seen []string
		q := FindingQuery{Entity: p1, Limit: 4}
		for page := 0; ; page++ {
			got, next, err := s.ListFindings(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, ids(got)...)
			if next == "" {
				break
			}
			if page > 3 {
				t.Fatal("too many pages")
			}
			q.Cursor = next
		}
		if len(seen) != 10 || seen[0] != "p:1/principal_geo/09:00" || seen[9] != "p:1/principal_geo/00:00" {
			t.Errorf("pages: %v", seen)
		}
		for _, bad := range []string{"x", "bm90LWEtY3Vyc29y", "MTIzOmFiYw"} {
			if _, _, err := s.ListFindings(ctx, FindingQuery{Cursor: bad}); !errors.Is(err, ErrBadCursor) {
				t.Errorf("cursor %q: %v, want ErrBadCursor", bad, err)
			}
		}
		// Retention: prune what is older than a moment.
		n, err := s.PruneFindings(ctx, at.Add(5*time.Hour))
		if err != nil || n != 8 {
			t.Fatalf("prune: %d, %v; want 8", n, err)
		}
		if got, _, _ := s.ListFindings(ctx, FindingQuery{}); len(got) != 5 {
			t.Errorf("after prune: %d findings, want 5", len(got))
		}
		if lt, err := s.LatestFindingTime(ctx); err != nil || !lt.Equal(at.Add(9*time.Hour)) {
			t.Errorf("latest: %v %v", lt, err)
		}
	})
}

// Findings put on the writer are committed with the alerts, deduplicated
// by their id.
func TestWriterStoresFindings(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		w := NewWriter(s, WriterOptions{MaxFindings: 7})
		wait := runWriter(t, ctx, w)
		at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		for i := range 20 {
			sf := scoredFinding(alice, "d", "k", at.Add(time.Duration(i)*time.Second), 10, 10, 10, "")
			if err := w.PutFinding(ctx, sf); err != nil {
				t.Fatal(err)
			}
			if i == 3 {
				if err := w.PutFinding(ctx, sf); err != nil { // a duplicate
					t.Fatal(err)
				}
				if err := w.Put(ctx, testAlert("al-w", at, alice, 1)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		got, _, err := s.ListFindings(ctx, FindingQuery{Limit: 100})
		if err != nil || len(got) != 20 {
			t.Fatalf("%d findings stored (%v), want 20", len(got), err)
		}
		if n, err := s.CountAlerts(ctx); err != nil || n != 1 {
			t.Fatalf("%d alerts (%v)", n, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	})
}

// Cluster mode stores a partition's scored findings with its alerts and
// checkpoint; a stale checkpoint stores none of them.
func TestSaveScoredWithCheckpoint(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		fs := []ScoredFinding{scoredFinding(alice, "d", "k", at, 40, 40, 40, "")}
		c := PartitionCheckpoint{Group: "g", Topic: "t-findings", Partition: 0, NextOffset: 10, Data: []byte("x"), SavedAt: at}
		if err := s.SaveScoredWithCheckpoint(ctx, nil, fs, c); err != nil {
			t.Fatal(err)
		}
		old := c
		old.NextOffset = 5
		fs2 := []ScoredFinding{scoredFinding(alice, "d", "k", at.Add(time.Hour), 40, 40, 40, "")}
		if err := s.SaveScoredWithCheckpoint(ctx, nil, fs2, old); !errors.Is(err, ErrStaleCheckpoint) {
			t.Fatalf("stale checkpoint: %v", err)
		}
		got, _, err := s.ListFindings(ctx, FindingQuery{})
		if err != nil || len(got) != 1 || !got[0].Time.Equal(at) {
			t.Fatalf("stored %+v, %v; want the first finding only", got, err)
		}
	})
}
