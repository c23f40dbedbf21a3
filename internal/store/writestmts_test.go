package store

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/event"
)

// volatileColumns are the wall-time columns of a write, and the random
// incident generation: left out of dumpTables.
var volatileColumns = map[string]bool{"updated_at": true, "created_at": true, "saved_at": true, "applied_at": true}

// dumpTables returns every row of every table of s, each as text, sorted
// per table; on SQLite with its rowid first (so the order rows were
// inserted in counts too). The wall times of writes are left out, and so
// is the incident generation's row.
func dumpTables(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	ctx := t.Context()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if s.dialect.postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, tbl := range tables {
		sel := "SELECT * FROM " + tbl
		if !s.dialect.postgres {
			var withoutRowid int
			if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = ? AND sql LIKE '%WITHOUT ROWID%'`, tbl).Scan(&withoutRowid); err != nil {
				t.Fatal(err)
			}
			if withoutRowid == 0 {
				sel = "SELECT rowid AS rowid_, * FROM " + tbl
			}
		}
		rows, err := s.db.QueryContext(ctx, sel)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			skip := false
			for i, c := range cols {
				if volatileColumns[c] {
					continue
				}
				if c == "name" && vals[i] == incidentGenerationName {
					skip = true
				}
				v := vals[i]
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%s=%#v ", c, v)
			}
			if !skip {
				out[tbl] = append(out[tbl], b.String())
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out[tbl])
	}
	return out
}

// randomWrites returns rounds of alerts and scored findings: alerts new
// and saved again (grown, shrunk, changed), with 0 to 150 findings, and
// findings new and stored again with another scoring — batch sizes that
// cross saveChunk and leave every remainder.
func randomWrites(r *rand.Rand, rounds int) (alerts [][]event.Alert, findings [][]ScoredFinding) {
	base := time.Date(2025, 6, 2, 3, 4, 5, 6, time.UTC)
	var stored []ScoredFinding
	for round := range rounds {
		var as []event.Alert
		for range r.IntN(90) {
			id := fmt.Sprintf("al-%03d", r.IntN(150))
			a := testAlert(id, base.Add(time.Duration(r.IntN(5000))*time.Minute), event.EntityKey{Kind: event.EntityPrincipal, ID: fmt.Sprint("p", r.IntN(20))}, r.IntN(151))
			a.Score, a.Risk = float64(r.IntN(100)), float64(r.IntN(300))
			for i := range a.Findings {
				f := &a.Findings[i]
				f.Tags = []string{"t" + fmt.Sprint(r.IntN(3))}
				if r.IntN(3) == 0 {
					f.Related = []event.EntityKey{{Kind: event.EntityToken, ID: fmt.Sprint("tok-", r.IntN(9))}}
					f.Figures = []event.Figure{{Name: "n", Value: float64(r.IntN(50))}}
				}
				f.Contribution = float64(r.IntN(40))
			}
			as = append(as, a)
		}
		fs := benchFindings(r.IntN(260))
		for i := range fs {
			fs[i].Time = fs[i].Time.Add(time.Duration(round*r.IntN(100000)) * time.Second)
			fs[i].ID = ""
		}
		for range r.IntN(40) {
			if len(stored) == 0 {
				break
			}
			sf := stored[r.IntN(len(stored))]
			sf.Risk += float64(r.IntN(3))
			fs = append(fs, sf)
		}
		r.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
		stored = append(stored, fs...)
		alerts, findings = append(alerts, as), append(findings, fs)
	}
	return alerts, findings
}

// TestWriterStatementsEqualPerTx: the alert writer's statements from the
// cache, remainders written as statements of powers of two rows, in a
// transaction keeping its statement journal in memory, store exactly the
// rows — rowids included — that the statements prepared per transaction
// and run at their own length stored, over random batches.
func TestWriterStatementsEqualPerTx(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		for seed := range uint64(3) {
			r := rand.New(rand.NewPCG(seed, 22))
			alerts, findings := randomWrites(r, 12)
			old, cur := b.open(t), b.open(t)
			old.stmts.perTx = true
			for _, s := range []*Store{old, cur} {
				for i := range alerts {
					var err error
					switch i % 4 {
					case 1:
						err = s.SaveAlerts(t.Context(), alerts[i])
						if err == nil {
							err = s.SaveFindings(t.Context(), findings[i])
						}
					default:
						err = s.saveBatch(t.Context(), alerts[i], findings[i])
					}
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			want, got := dumpTables(t, old), dumpTables(t, cur)
			if len(want["findings"]) == 0 || len(want["finding_log"]) == 0 {
				t.Fatalf("seed %d: nothing stored", seed)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("seed %d: rows differ (-per transaction +cached):\n%s", seed, diff)
			}
		}
	})
}

// TestWriterTxResetsTempStore: the connection a writer transaction set to
// keep temporary files in memory goes back to the pool as it was.
func TestWriterTxResetsTempStore(t *testing.T) {
	s := sqliteBackend.open(t)
	a := testAlert("al-1", t0, alice, 200)
	for i := range 3 {
		if err := s.saveBatch(t.Context(), []event.Alert{a}, benchFindings(300)); err != nil {
			t.Fatal(err)
		}
		// The ledger's flushes and the shared dictionary's assignments run
		// on such connections too.
		row := LedgerRow{Dim: "key", Value: fmt.Sprint("k", i), Day: 20000, RType: "customer", Bitmap: bm(t, 1, 2), First: 1, Last: 2}
		if err := s.MergeLedger(t.Context(), []LedgerDictEntry{{ID: 1<<31 + 1000 + uint32(i), RID: fmt.Sprint("a:", i)}}, []LedgerRow{row}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AssignLedgerDict(t.Context(), []string{"b:1", "b:2"}, 1<<30); err != nil {
		t.Fatal(err)
	}
	// Every pooled connection at once: the one the writer used is among them.
	var conns []int
	held := 0
	for range maxOpenConns {
		c, err := s.db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var ts int
		if err := c.QueryRowContext(t.Context(), "PRAGMA temp_store").Scan(&ts); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, ts)
		held++
	}
	for i, ts := range conns {
		if ts != 0 {
			t.Errorf("connection %d of %d: temp_store %d after the writer's and the ledger's transactions, want 0 (default)", i, held, ts)
		}
	}
}

// TestIncidentTxListsEqualPerTx: the keeper's reads with IN lists padded
// to a power of two, and its multi-row inserts as statements of powers of
// two rows, answer as the statements of their own length do — and as the
// citations stored say (the first of a reference wins) — for lists of 1
// to 700 references, past one chunk.
func TestIncidentTxListsEqualPerTx(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		r := rand.New(rand.NewPCG(38, 7))
		var puts [][]event.Citation
		first := map[string]event.Citation{}
		for range 6 {
			var cs []event.Citation
			for range 1 + r.IntN(700) {
				c := event.Citation{Ref: fmt.Sprint("ref-", r.IntN(1500)), Success: r.IntN(2) == 0,
					Principal: fmt.Sprint("p-", r.IntN(50)), Source: fmt.Sprint("10.0.0.", r.IntN(60)), ASN: uint32(r.IntN(9))}
				if _, ok := first[c.Ref]; !ok {
					first[c.Ref] = c
				}
				cs = append(cs, c)
			}
			puts = append(puts, cs)
		}
		var asks [][]string
		for range 40 {
			var refs []string
			for range 1 + r.IntN(700) {
				refs = append(refs, fmt.Sprint("ref-", r.IntN(1600)))
			}
			asks = append(asks, refs)
		}
		answers := func(s *Store) (cits []map[string]event.Citation, srcs []map[string]int) {
			err := s.writeTx(t.Context(), func(tx *sql.Tx) error {
				it := &IncidentTx{s: s, tx: tx}
				for _, cs := range puts {
					if err := it.PutCitations(t.Context(), cs); err != nil {
						return err
					}
				}
				for _, refs := range asks {
					got, err := it.Citations(t.Context(), refs)
					if err != nil {
						return err
					}
					cits = append(cits, got)
					ips := make([]string, len(refs))
					for i, ref := range refs {
						ips[i] = "10.0.0." + strings.TrimPrefix(ref, "ref-")
					}
					n, err := it.SourcePrincipals(t.Context(), ips)
					if err != nil {
						return err
					}
					srcs = append(srcs, n)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return cits, srcs
		}
		old, cur := b.open(t), b.open(t)
		old.stmts.perTx = true
		wantC, wantS := answers(old)
		gotC, gotS := answers(cur)
		for i, refs := range asks {
			truth := map[string]event.Citation{}
			for _, ref := range refs {
				if c, ok := first[ref]; ok {
					truth[ref] = c
				}
			}
			if diff := cmp.Diff(truth, wantC[i]); diff != "" {
				t.Fatalf("ask %d (%d refs), per transaction: citations differ from those stored (-stored +read):\n%s", i, len(refs), diff)
			}
			if diff := cmp.Diff(truth, gotC[i]); diff != "" {
				t.Fatalf("ask %d (%d refs), cached: citations differ from those stored (-stored +read):\n%s", i, len(refs), diff)
			}
			if diff := cmp.Diff(wantS[i], gotS[i]); diff != "" {
				t.Fatalf("ask %d: source principals differ (-per transaction +cached):\n%s", i, diff)
			}
		}
	})
}

// TestWriterTxPanic: a writer transaction whose work panics is rolled
// back and its connection released (it is not closed under the open
// transaction, which would wait forever); the store writes on.
func TestWriterTxPanic(t *testing.T) {
	s := sqliteBackend.open(t)
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		_ = s.writerTx(t.Context(), func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(t.Context(), "DELETE FROM alerts"); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	select {
	case p := <-done:
		if p != "boom" {
			t.Fatalf("recovered %v, want the panic", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the panicking transaction did not return")
	}
	if err := s.SaveAlerts(t.Context(), []event.Alert{testAlert("al-1", t0, alice, 3)}); err != nil {
		t.Fatal(err)
	}
	if n := s.db.Stats().InUse; n != 0 {
		t.Fatalf("%d connections in use after the writes", n)
	}
}
