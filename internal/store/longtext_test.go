package store

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/longtext"
)

// Alerts, findings and suppressions of an entity whose id an attacker
// made 64 KiB long (a principal, a token) store — and the alerts batched
// with them too — and a listing by that entity finds them, and only them
// (two long ids that share their first 512 characters stay apart). On
// PostgreSQL the entity indexes held entity_id whole, over a btree
// entry's ≈ 2.7 kB: the batch failed with SQLSTATE 54000 (migration 0018).
func TestLongEntityAlertsAndFindings(t *testing.T) {
	long := longtext.Incompressible("P", 64<<10)
	ents := []event.EntityKey{
		{Kind: event.EntityPrincipal, ID: long},
		{Kind: event.EntityPrincipal, ID: long + "!"},
		{Kind: event.EntityToken, ID: longtext.Incompressible("T", 4000)},
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
		k := &citeKeeper{t: t, long: longtext.Incompressible("L", 64<<10)}
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

// funcKeeper runs fn inside the save transaction.
type funcKeeper func(ctx context.Context, tx *IncidentTx) error

func (f funcKeeper) AlertsSaved(ctx context.Context, tx *IncidentTx, _ []event.Alert) error {
	return f(ctx, tx)
}

// A PostgreSQL store written before migration 18 holds a long key whole
// when it compressed below a btree entry's limit (a repetitive 3 kB
// principal); the migration moves those rows to the form every write and
// look-up uses now, so a scope, a join and a citation still find them: a
// ledger day also stored under the form is ORed with it, a join key named
// and cited stays named. On SQLite the step does nothing (keys are stored
// as they are) and the same look-ups find the same rows.
func TestMigrationShortensStoredKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		var step funcKeeper = func(context.Context, *IncidentTx) error { return nil }
		var keeper funcKeeper = func(ctx context.Context, x *IncidentTx) error { return step(ctx, x) }
		target := b.target(t)
		open := func() *Store {
			s, err := Open(ctx, target, Options{Incidents: keeper})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		s := open()
		long := strings.Repeat("principal-", 320) + "1" // 3,201 bytes, compressible
		form := long
		if b.name == "postgres" {
			form = pgTextKey(long)
		}
		cells := func(ids ...uint32) []byte {
			c, err := mergeCells(nil, []LedgerRow{{Dim: "principal", Value: "x", Day: 20000, RType: "customer", Bitmap: bm(t, ids...), First: 1, Last: 2}})
			if err != nil {
				t.Fatal(err)
			}
			return encodeCells(c)
		}
		// As a build before 0018 stored them: the key whole.
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO ledger_days (dim, value, day, cells) VALUES (?, ?, ?, ?)`, []any{"principal", long, 20000, cells(1, 2)}},
			{`INSERT INTO ledger_days (dim, value, day, cells) VALUES (?, ?, ?, ?)`, []any{"principal", long, 20001, cells(3)}},
			{`INSERT INTO incident_keys (join_key, alert_id, cited) VALUES (?, ?, ?)`, []any{"entity\x00principal\x00" + long, "al-1", 1}},
			{`INSERT INTO incident_keys (join_key, alert_id, cited) VALUES (?, ?, ?)`, []any{"entity\x00principal\x00" + long, "al-2", 0}},
			{`INSERT INTO citations (ref, principal) VALUES (?, ?)`, []any{long, "p:1"}},
		} {
			if _, err := s.db.ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		if b.name == "postgres" {
			// And rows under the form already (planted by a later value
			// whose form is the same text): merged, not a failed upgrade.
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO ledger_days (dim, value, day, cells) VALUES (?, ?, ?, ?)`, []any{"principal", form, 20000, cells(2, 9)}},
				{`INSERT INTO incident_keys (join_key, alert_id, cited) VALUES (?, ?, ?)`, []any{pgTextKey("entity\x00principal\x00" + long), "al-2", 1}},
				{`INSERT INTO citations (ref, principal) VALUES (?, ?)`, []any{form, "p:2"}},
			} {
				if _, err := s.db.ExecContext(ctx, q.sql, q.args...); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.db.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version >= 18`); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open()
		defer s.Close()
		rows, err := s.LedgerRows(ctx, "principal", []string{long}, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := [][]uint32{{1, 2}, {3}}
		if b.name == "postgres" {
			want[0] = []uint32{1, 2, 9}
		}
		if len(rows) != 2 {
			t.Fatalf("%d ledger rows, want 2", len(rows))
		}
		for i, r := range rows {
			got := roaring.New()
			if _, err := got.FromBuffer(r.Bitmap); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.ToArray(), want[i]) || r.Value != form {
				t.Errorf("day %d: %v, want %v", r.Day, got.ToArray(), want[i])
			}
		}
		step = func(ctx context.Context, tx *IncidentTx) error {
			for _, tc := range []struct {
				named bool
				want  []string
			}{{false, []string{"al-1", "al-2"}}, {true, []string{"al-2"}}} {
				ids, err := tx.AlertsWithKeys(ctx, []string{"entity\x00principal\x00" + long}, tc.named)
				if err != nil {
					return err
				}
				if !slices.Equal(ids, tc.want) {
					t.Errorf("alerts with the key (named only %v): %v, want %v", tc.named, ids, tc.want)
				}
			}
			cs, err := tx.Citations(ctx, []string{long})
			if err != nil {
				return err
			}
			wantP := "p:1"
			if b.name == "postgres" {
				wantP = "p:2"
			}
			if c, ok := cs[long]; !ok || c.Principal != wantP {
				t.Errorf("citation %v %q, want %q", ok, c.Principal, wantP)
			}
			return nil
		}
		if err := s.SaveAlerts(ctx, []event.Alert{{ID: "x", Time: time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC)}}); err != nil {
			t.Fatal(err)
		}
	})
}
