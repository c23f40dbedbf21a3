package store

import (
	"cmp"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// findingKey orders as the ids' texts order, and findingIDOfKey inverts it.
func TestFindingKeyOrder(t *testing.T) {
	ids := []event.FindingID{1, 2, 0x7fffffffffffffff, 0x8000000000000000, 0x8000000000000001, 0xfffffffffffffffe, 0xffffffffffffffff}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		ids = append(ids, event.FindingID(r.Uint64()|1))
	}
	for _, a := range ids {
		if got := findingIDOfKey(findingKey(a)); got != a {
			t.Fatalf("findingIDOfKey(findingKey(%v)) = %v", a, got)
		}
		for _, b := range ids {
			if got, want := cmp.Compare(findingKey(a), findingKey(b)), strings.Compare(a.String(), b.String()); got != want {
				t.Fatalf("keys of %v and %v compare %d, texts %d", a, b, got, want)
			}
		}
	}
}

// A finding id that is no FindingID is refused, not stored under another
// key.
func TestSaveFindingsBadID(t *testing.T) {
	s := sqliteBackend.open(t)
	sf := scoredFinding(event.EntityKey{Kind: event.EntityPrincipal, ID: "p"}, "d", "k", t0, 40, 40, 40, "")
	for _, id := range []string{"f1", "fd-12", "fd-00000000000000000", "fd-0000000000000000"} {
		sf.ID = id
		if err := s.SaveFindings(t.Context(), []ScoredFinding{sf}); err == nil || !strings.Contains(err.Error(), id) {
			t.Errorf("SaveFindings with id %q: %v, want an error naming it", id, err)
		}
	}
}

// Saving the same findings with the same scoring again rewrites no row;
// a changed scoring rewrites the row (the upsert's WHERE).
func TestSaveFindingsUnchangedNotRewritten(t *testing.T) {
	s := sqliteBackend.open(t)
	ctx := t.Context()
	fs := benchFindings(100)
	if err := s.SaveFindings(ctx, fs); err != nil {
		t.Fatal(err)
	}
	changes := func() int64 {
		var n int64
		if err := s.db.QueryRowContext(ctx, "SELECT total_changes()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := changes()
	if err := s.SaveFindings(ctx, fs); err != nil {
		t.Fatal(err)
	}
	if n := changes() - before; n != 0 {
		t.Errorf("saving the same findings again changed %d rows, want 0", n)
	}
	fs[3].Risk++
	fs[7].Alert = "al-new"
	before = changes()
	if err := s.SaveFindings(ctx, fs); err != nil {
		t.Fatal(err)
	}
	if n := changes() - before; n != 2 {
		t.Errorf("two rescored findings changed %d rows, want 2", n)
	}
	got, _, err := s.ListFindings(ctx, FindingQuery{Limit: MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, g := range got {
		if g.Evidence[0] == fs[3].Evidence[0] && g.Risk == fs[3].Risk {
			seen++
		}
		if g.Evidence[0] == fs[7].Evidence[0] && g.Alert == "al-new" {
			seen++
		}
	}
	if seen != 2 {
		t.Errorf("rescorings read back: %d of 2", seen)
	}
}

// A store written before migration 17 (text ids, finding_log_v16's shape)
// migrates with every finding, id, field and the listing's order kept,
// rows stored under other ids included.
func TestFindingLogKeysMigration(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		target := b.target(t)
		s := openAt(t, target)
		fs := benchFindings(300)
		// Ties in time, and both halves of the key space.
		for i := range fs {
			fs[i].Time = t0.Add(time.Duration(i/10) * time.Second)
		}
		if err := s.SaveFindings(ctx, fs); err != nil {
			t.Fatal(err)
		}
		want := listAllFindings(t, s)
		if len(want) != len(fs) {
			t.Fatalf("stored %d findings, want %d", len(want), len(fs))
		}
		toV16(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openAt(t, target)
		if got := listAllFindings(t, s); !reflect.DeepEqual(got, want) {
			t.Fatalf("after migrating: %d findings, want %d (first %+v, want %+v)", len(got), len(want), got[0], want[0])
		}
		var n int
		if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM finding_log WHERE id = ?", findingKey(want[5].Finding.ID())).Scan(&n); err != nil || n != 1 {
			t.Errorf("key of %s: %d rows, %v", want[5].ID, n, err)
		}

		// Ids no FindingID: rows a build that hashed findings otherwise
		// wrote ("fd-" and 20 hex digits) are keyed by their finding's id
		// now, and one whose finding is also stored under its own id is
		// dropped.
		toV16(t, s)
		for i, id := range []string{"fd-0123456789abcdef0123", "fd-00000000000000zz", "f1"} {
			if _, err := s.db.ExecContext(ctx, "UPDATE finding_log SET id = ? WHERE id = ?", id, want[i].ID); err != nil {
				t.Fatal(err)
			}
		}
		dup := want[3]
		if _, err := s.db.ExecContext(ctx, "INSERT INTO finding_log ("+findingLogColumns+") SELECT 'fd-ffffffffffffffffffff', "+
			strings.TrimPrefix(findingLogColumns, "id, ")+" FROM finding_log WHERE id = ?", dup.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openAt(t, target)
		if got := listAllFindings(t, s); !reflect.DeepEqual(got, want) {
			t.Fatalf("after migrating other ids: %d findings, want %d", len(got), len(want))
		}
	})
}

// listAllFindings lists every stored finding, a page of 7 at a time (the
// cursor's order too).
func listAllFindings(t *testing.T, s *Store) []ScoredFinding {
	t.Helper()
	var out []ScoredFinding
	q := FindingQuery{Limit: 7}
	for {
		page, next, err := s.ListFindings(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		q.Cursor = next
	}
}

// toV16 turns s's finding_log back into migration 16's (0011 and 0012:
// text ids), its rows as version 16 stored them, and its schema version
// to 16.
func toV16(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	rest := strings.TrimPrefix(findingLogColumns, "id, ")
	rows, err := s.db.QueryContext(ctx, "SELECT id, "+rest+" FROM finding_log")
	if err != nil {
		t.Fatal(err)
	}
	var stored [][]any
	for rows.Next() {
		row := make([]any, findingLogParams)
		ptrs := make([]any, len(row))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row[0] = findingIDOfKey(row[0].(int64)).String()
		stored = append(stored, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{"DROP TABLE finding_log", s.dialect.translateMigration(ms[10].sql), s.dialect.translateMigration(ms[11].sql),
		"DELETE FROM schema_migrations WHERE version >= 17"}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	ins := fmt.Sprintf("INSERT INTO finding_log (%s) VALUES (%s)", findingLogColumns, placeholders(findingLogParams))
	for _, row := range stored {
		if _, err := s.db.ExecContext(ctx, ins, row...); err != nil {
			t.Fatal(err)
		}
	}
	var n sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&n); err != nil || n.Int64 != 16 {
		t.Fatalf("schema version %v, %v; want 16", n, err)
	}
}
