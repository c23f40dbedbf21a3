package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestAssignLedgerDictMultiRow: numbering more new record ids than one
// insert statement takes (with known ids, repeats, any order) gives the
// numbers one insert per id gave — the new ids sorted, numbered on from
// the largest stored — and on PostgreSQL takes one statement per
// ledgerDictInsertChunk of them (rows a statement inserts share a command
// id, cmin).
func TestAssignLedgerDictMultiRow(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		const first = 1 << 31
		pre := []LedgerDictEntry{{ID: first, RID: "rec-0100"}, {ID: first + 1, RID: "rec-0007"}}
		if err := s.SaveLedgerDict(ctx, pre); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(7, 22))
		const n = 2*ledgerDictInsertChunk + 234
		var rids []string
		for i := range n {
			rids = append(rids, fmt.Sprintf("rec-%04d", i))
		}
		rids = append(rids, "rec-0007", "rec-0100", "rec-0042") // known ones and a repeat
		rng.Shuffle(len(rids), func(i, j int) { rids[i], rids[j] = rids[j], rids[i] })
		es, err := s.AssignLedgerDict(ctx, rids, first)
		if err != nil {
			t.Fatal(err)
		}
		// The model: stored ids keep their numbers; the new ones, sorted,
		// take first+2, first+3, …
		want := map[string]uint32{"rec-0100": first, "rec-0007": first + 1}
		fresh := slices.Clone(rids)
		slices.Sort(fresh)
		fresh = slices.Compact(fresh)
		next := uint32(first + 2)
		for _, r := range fresh {
			if _, ok := want[r]; !ok {
				want[r] = next
				next++
			}
		}
		for i, e := range es {
			if e.RID != rids[i] || e.ID != want[e.RID] {
				t.Fatalf("entry %d: %q → %d, want %q → %d", i, e.RID, e.ID, rids[i], want[rids[i]])
			}
		}
		stored, err := s.LoadLedgerDict(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != len(want) {
			t.Fatalf("%d entries stored, want %d", len(stored), len(want))
		}
		for _, e := range stored {
			if want[e.RID] != e.ID {
				t.Errorf("stored %q → %d, want %d", e.RID, e.ID, want[e.RID])
			}
		}
		// Asked again, with one more new id: the same numbers, the next one.
		again, err := s.AssignLedgerDict(ctx, []string{"rec-0500", "rec-new", "rec-0007"}, first)
		if err != nil {
			t.Fatal(err)
		}
		if again[0].ID != want["rec-0500"] || again[1].ID != next || again[2].ID != first+1 {
			t.Errorf("asked again: %v, want %d, %d, %d", again, want["rec-0500"], next, uint32(first+1))
		}
		if b.name != "postgres" {
			return
		}
		var stmts int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT cmin::text) FROM ledger_dict WHERE id >= $1 AND id < $2`,
			int64(first+2), int64(next)).Scan(&stmts); err != nil {
			t.Fatal(err)
		}
		if wantStmts := (n + ledgerDictInsertChunk - 1) / ledgerDictInsertChunk; stmts != wantStmts {
			t.Errorf("%d new ids inserted by %d statements, want %d", n, stmts, wantStmts)
		}
	})
}
