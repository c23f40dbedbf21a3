package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// Alerts, findings and suppressions of an entity whose id an attacker
// made 64 KiB long (a principal, a token) store — and the alerts batched
// with them too — and a listing by that entity finds them, and only them
// (two long ids that share their first 512 characters stay apart). On
// PostgreSQL the entity indexes held entity_id whole, over a btree
// entry's ≈ 2.7 kB: the batch failed with SQLSTATE 54000 (migration 0018).
func TestLongEntityAlertsAndFindings(t *testing.T) {
	long := incompressible("P", 64<<10)
	ents := []event.EntityKey{
		{Kind: event.EntityPrincipal, ID: long},
		{Kind: event.EntityPrincipal, ID: long + "!"},
		{Kind: event.EntityToken, ID: incompressible("T", 4000)},
		{Kind: event.EntityPrincipal, ID: "p:1"},
	}
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := b.open(t)
		at := time.Date(2025, 6, 1, 2, 0, 0, 0, time.UTC)
		var alerts []event.Alert
		var fs []ScoredFinding
		for i, e := range ents {
			at := at.Add(time.Duration(i) * time.Minute)
			sf := scoredFinding(e, "d", "k", at, 80, 80, 95, "")
			sf.ID = FindingID(&sf.Finding)
			fs = append(fs, sf)
			alerts = append(alerts, event.Alert{ID: "al-" + string(rune('a'+i)), Time: at, Entity: e, Detector: "d",
				Severity: event.SeverityHigh, Title: "t", State: event.AlertOpen, Findings: []event.Finding{sf.Finding}})
		}
		if err := s.SaveAlerts(ctx, alerts); err != nil {
			t.Fatalf("save alerts: %v", err)
		}
		if err := s.SaveFindings(ctx, fs); err != nil {
			t.Fatalf("save findings: %v", err)
		}
		for i, e := range ents {
			got, err := s.ListAlerts(ctx, AlertQuery{Entity: e})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != alerts[i].ID || got[0].Entity != e {
				t.Errorf("alerts of entity %d: %d, want only %s", i, len(got), alerts[i].ID)
			}
			found, _, err := s.ListFindings(ctx, FindingQuery{Entity: e})
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != 1 || found[0].ID != fs[i].ID || found[0].Entity != e {
				t.Errorf("findings of entity %d: %d, want only %s", i, len(found), fs[i].ID)
			}
			found, _, err = s.ListFindings(ctx, FindingQuery{Entity: event.EntityKey{ID: e.ID}})
			if err != nil || len(found) != 1 || found[0].ID != fs[i].ID {
				t.Errorf("findings of id %d (any kind): %d %v", i, len(found), err)
			}
		}
		sp, err := s.AddSuppression(ctx, Suppression{Entity: ents[0], Until: at.Add(time.Hour), Reason: "r", By: "b", Created: at})
		if err != nil {
			t.Fatalf("suppress: %v", err)
		}
		sps, err := s.ListSuppressions(ctx, at, false)
		if err != nil || len(sps) != 1 || sps[0].ID != sp.ID || sps[0].Entity != ents[0] {
			t.Errorf("suppressions %d %v", len(sps), err)
		}
	})
}

// citeKeeper stores citations and join keys an attacker's events fill
// whole (an event.id as a citation's ref, a principal in a join key)
// inside the save transaction, then reads them back.
type citeKeeper struct {
	t    *testing.T
	long string
	done bool
}

func (k *citeKeeper) AlertsSaved(ctx context.Context, tx *IncidentTx, _ []event.Alert) error {
	t, long := k.t, k.long
	refs := []string{long, long + "!", "in:7", "a\x00b"}
	var cs []event.Citation
	for i, r := range refs {
		cs = append(cs, event.Citation{Ref: r, Success: true, Principal: long + string(rune('a'+i)), Source: "198.51.100.7", UserAgent: long})
	}
	if err := tx.PutCitations(ctx, cs); err != nil {
		return err
	}
	got, err := tx.Citations(ctx, append(slices.Clone(refs), "unknown"))
	if err != nil {
		return err
	}
	if len(got) != len(refs) {
		t.Errorf("%d citations, want %d", len(got), len(refs))
	}
	for i, r := range refs {
		if c, ok := got[r]; !ok || c.Ref != r || c.Principal != cs[i].Principal || c.UserAgent != long {
			t.Errorf("citation %d: %v, ref %.12q principal %.12q", i, ok, c.Ref, c.Principal)
		}
	}
	if n, err := tx.SourcePrincipals(ctx, []string{"198.51.100.7"}); err != nil || n["198.51.100.7"] != len(refs) {
		t.Errorf("source principals %v %v", n, err)
	}
	key := "entity\x00principal\x00" + long
	if err := tx.SetAlertKeys(ctx, "al-1", []string{key, "entity\x00principal\x00p:1"}, []string{key + "!"}); err != nil {
		return err
	}
	if err := tx.SetAlertsKeys(ctx, []AlertKeys{
		{ID: "al-2", Named: []string{key + "!"}, Cited: []string{key}},
		{ID: "al-3", Named: []string{key + "?"}, Stored: &AlertKeys{ID: "al-3", Named: []string{key}}},
	}); err != nil {
		return err
	}
	for _, tc := range []struct {
		key   string
		named bool
		want  []string
	}{
		{key, false, []string{"al-1", "al-2"}},
		{key, true, []string{"al-1"}},
		{key + "!", true, []string{"al-2"}},
		{key + "!", false, []string{"al-1", "al-2"}},
		{key + "?", false, []string{"al-3"}},
	} {
		ids, err := tx.AlertsWithKeys(ctx, []string{tc.key}, tc.named)
		if err != nil {
			return err
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("alerts with %.24q… (named only %v): %v, want %v", tc.key[len(tc.key)-1:], tc.named, ids, tc.want)
		}
	}
	k.done = true
	return nil
}

// Citations and incident join keys an attacker fills whole — a 64 KiB
// event.id (a citation's ref), a 64 KiB principal (in a join key) — store,
// and are found by the value as given; long ones that differ anywhere
// stay apart. On PostgreSQL both are primary keys, a btree entry of
// ≈ 2.7 kB at most: the save (its alerts, findings and incidents) failed
// with SQLSTATE 54000.
func TestLongCitationsAndJoinKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		k := &citeKeeper{t: t, long: incompressible("L", 64<<10)}
		s, err := Open(t.Context(), b.target(t), Options{Incidents: k})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.SaveAlerts(t.Context(), []event.Alert{{ID: "x", Time: time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC)}}); err != nil {
			t.Fatal(err)
		}
		if !k.done {
			t.Fatal("the keeper did not run")
		}
	})
}
