package store

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/event"
)

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT ? , ?", "SELECT $1 , $2"},
		{"INSERT INTO t VALUES (?, '?', \"?\", ?)", "INSERT INTO t VALUES ($1, '?', \"?\", $2)"},
		{"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{"SELECT /* a ? /* nested ? */ ? */ ?", "SELECT /* a ? /* nested ? */ ? */ $1"},
		{"SELECT $tag$ ? $tag$, $$?$$, ?", "SELECT $tag$ ? $tag$, $$?$$, $1"},
		{"SELECT $1, ?", "SELECT $1, $1"}, // mixing is the caller's mistake; $1 is not a quote
		{"SELECT ?::bigint, 'unterminated ?", "SELECT $1::bigint, 'unterminated ?"},
	} {
		if got := rebindDollar(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if q := sqliteDialect.rebind("SELECT ?"); q != "SELECT ?" {
		t.Errorf("sqlite rebind = %q", q)
	}
	d := &dialect{postgres: true}
	for range 2 { // the second call is served from the cache
		if q := d.rebind("SELECT ?, ?"); q != "SELECT $1, $2" {
			t.Errorf("postgres rebind = %q", q)
		}
	}
	if d.nRebound != 1 {
		t.Errorf("cache holds %d statements, want 1", d.nRebound)
	}
}

func TestTranslateMigration(t *testing.T) {
	src := `-- 00xx: a comment naming INTEGER and TEXT stays
CREATE TABLE t (
	-- postgres: rowid INTEGER GENERATED ALWAYS AS IDENTITY,
	id    TEXT PRIMARY KEY,
	n     INTEGER NOT NULL DEFAULT 0,
	score REAL,
	b     BLOB NOT NULL,
	text  TEXT NOT NULL DEFAULT 'INTEGER TEXT', /* BLOB */
	"REAL" INTEGER
) WITHOUT ROWID;
CREATE TABLE u (x INTEGER) WITHOUT
	ROWID;`
	want := `-- 00xx: a comment naming INTEGER and TEXT stays
CREATE TABLE t (
	rowid BIGINT GENERATED ALWAYS AS IDENTITY,
	id    TEXT COLLATE "C" PRIMARY KEY,
	n     BIGINT NOT NULL DEFAULT 0,
	score DOUBLE PRECISION,
	b     BYTEA NOT NULL,
	text  TEXT COLLATE "C" NOT NULL DEFAULT 'INTEGER TEXT', /* BLOB */
	"REAL" BIGINT
) ;
CREATE TABLE u (x BIGINT) ;`
	if got := postgresDialect.translateMigration(src); got != want {
		t.Errorf("translated:\n%s\nwant:\n%s", got, want)
	}
	if got := sqliteDialect.translateMigration(src); got != src {
		t.Errorf("sqlite changed the migration:\n%s", got)
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db?password=secret":             "postgres://u@h/db?password=xxxxx",
		"postgresql://h/db":                             "postgresql://h/db",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPostgresOpenMigrateReopen(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	ctx := t.Context()
	target := postgresTarget(t)
	s := openAt(t, target)
	if s.Backend() != "postgres" || strings.Contains(s.Path(), "search_path") == false {
		t.Errorf("Backend() = %q, Path() = %q", s.Backend(), s.Path())
	}
	// Every integer column is 64 bits, every real one double precision,
	// every text column bytewise ("C") — the translation took effect.
	var narrow int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.columns
WHERE table_schema = current_schema() AND data_type IN ('integer', 'real', 'smallint')`).Scan(&narrow); err != nil {
		t.Fatal(err)
	}
	if narrow != 0 {
		t.Errorf("%d columns are narrower than SQLite's", narrow)
	}
	var notC int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.columns
WHERE table_schema = current_schema() AND data_type = 'text' AND collation_name IS DISTINCT FROM 'C'`).Scan(&notC); err != nil {
		t.Fatal(err)
	}
	if notC != 0 {
		t.Errorf("%d text columns without COLLATE \"C\"", notC)
	}
	if err := s.SaveAlerts(ctx, []event.Alert{testAlert("a1", t0, alice, 2)}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // reopening migrates nothing and keeps the data
		s2 := openAt(t, target)
		var n, v int
		if err := s2.db.QueryRowContext(ctx, "SELECT COUNT(*), MAX(version) FROM schema_migrations").Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != SchemaVersion() || v != SchemaVersion() {
			t.Errorf("schema_migrations: %d rows, max version %d; want %d", n, v, SchemaVersion())
		}
		if c, err := s2.CountAlerts(ctx); err != nil || c != 1 {
			t.Errorf("CountAlerts = %d, %v; want 1", c, err)
		}
	}

	// A schema that does not exist is named in the error.
	u, _ := url.Parse(target)
	q := u.Query()
	q.Set("search_path", "haechi_no_such_schema")
	u.RawQuery = q.Encode()
	if _, err := Open(ctx, u.String(), Options{}); err == nil || !strings.Contains(err.Error(), "search_path") {
		t.Errorf("Open(missing schema) error = %v", err)
	}
	if _, err := Open(ctx, "postgres://u:secret@127.0.0.1:1/db?connect_timeout=1", Options{}); err == nil ||
		strings.Contains(err.Error(), "secret") {
		t.Errorf("Open(unreachable) error = %v, want one without the password", err)
	}
}

// TestPostgresConcurrentMigrate starts several workers on one empty schema
// at once: each migration is applied exactly once and every worker opens.
func TestPostgresConcurrentMigrate(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	target := postgresTarget(t)
	const workers = 6
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := make(chan struct{})
	for range workers {
		wg.Go(func() {
			<-start
			s, err := Open(t.Context(), target, Options{})
			if err != nil {
				errs <- err
				return
			}
			errs <- s.Close()
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("worker: %v", err)
		}
	}
	s := openAt(t, target)
	var n, distinct int
	if err := s.db.QueryRowContext(t.Context(), "SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion() || distinct != SchemaVersion() {
		t.Errorf("schema_migrations: %d rows, %d versions; want %d", n, distinct, SchemaVersion())
	}
}

// TestTriageAndOrder covers feedback (its insertion order, which PostgreSQL
// keeps in the rowid column migration 0005 gives it), suppressions, and
// bytewise ordering of text on both backends.
func TestTriageAndOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		// "B" < "a" < "b" < "é" bytewise; a locale collation sorts otherwise.
		var in []event.Alert
		for _, id := range []string{"b", "é", "B", "a"} {
			in = append(in, event.Alert{ID: id, Time: t0})
		}
		if err := s.SaveAlerts(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := s.ListAlerts(ctx, AlertQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(ids(got), ","); g != "é,b,a,B" {
			t.Errorf("ListAlerts order = %s, want é,b,a,B (bytewise, descending)", g)
		}
		for i, v := range []string{VerdictBenign, VerdictTruePositive, VerdictFalsePositive} {
			// The same instant: insertion order decides.
			if _, err := s.AddFeedback(ctx, Feedback{AlertID: "a", Verdict: v, By: fmt.Sprint("analyst", i), At: t0}); err != nil {
				t.Fatal(err)
			}
		}
		fb, err := s.ListFeedback(ctx, "a")
		if err != nil || len(fb) != 3 || fb[0].Verdict != VerdictBenign || fb[2].Verdict != VerdictFalsePositive {
			t.Errorf("ListFeedback = %+v, %v", fb, err)
		}
		sp, err := s.AddSuppression(ctx, Suppression{Entity: alice, Until: t0.Add(time.Hour), Created: t0, By: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if l, err := s.ListSuppressions(ctx, t0, false); err != nil || len(l) != 1 || l[0].ID != sp.ID {
			t.Errorf("ListSuppressions = %+v, %v", l, err)
		}
		if err := s.RemoveSuppression(ctx, sp.ID, "x", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if l, _ := s.ListSuppressions(ctx, t0, false); len(l) != 0 {
			t.Errorf("lifted suppression listed: %+v", l)
		}
		verifyAuditChain(t, s, 5)
	})
}

// verifyAuditChain checks the whole audit log: sequence 1…n without gaps,
// each entry chained to the one before and hashed correctly.
func verifyAuditChain(t *testing.T, s *Store, want int) {
	t.Helper()
	log, err := s.AuditLog(t.Context(), 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != want {
		t.Errorf("audit log has %d entries, want %d", len(log), want)
	}
	prev := AuditGenesis
	for i, r := range log {
		if r.Seq != int64(i+1) || r.PrevHash != prev ||
			r.Hash != AuditHash(r.Seq, r.Time, r.Kind, r.ActionID, r.Detail, r.PrevHash) {
			t.Fatalf("audit entry %d breaks the chain: %+v", i, r)
		}
		prev = r.Hash
	}
}

// TestPostgresConcurrentWorkers runs several Stores on one schema, as
// separate haechi workers would, all writing at once: alerts (some IDs
// shared), ledger merges into the same rows, actions (some IDs shared)
// with claims and deliveries, and audit entries. Afterwards every count is
// exact, every ledger bitmap is the union of what was merged, no action
// was delivered twice and the audit chain verifies.
func TestPostgresConcurrentWorkers(t *testing.T) {
	requirePostgres(t)
	t.Parallel()
	ctx := t.Context()
	target := postgresTarget(t)
	const (
		workers = 4
		rounds  = 25
	)
	stores := make([]*Store, workers)
	for i := range stores {
		stores[i] = openAt(t, target)
	}
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	ledgerKeys := []string{"k1", "k2", "k3"}
	var (
		mu        sync.Mutex
		delivered = map[string]int{}
		planned   int // "planned" audit entries = actions actually inserted
		appended  int // AppendAudit calls
		attempts  int // claims (each appends "attempted")
		finished  int // FinishAction calls that applied
	)
	bitmaps := make([][][]byte, workers)
	for w := range bitmaps {
		for r := range rounds {
			id := uint32(w*1000 + r)
			bitmaps[w] = append(bitmaps[w], bm(t, id, 1<<31+id))
		}
	}
	var wg sync.WaitGroup
	errc := make(chan error, workers*4)
	for w, s := range stores {
		wg.Go(func() { // alerts: own IDs plus shared ones, in varying order
			for r := range rounds {
				batch := []event.Alert{
					testAlert(fmt.Sprintf("w%d-r%d", w, r), t0.Add(time.Duration(r)*time.Second), alice, 2),
					testAlert(fmt.Sprintf("shared-%d", r%5), t0, alice, w+1),
					testAlert(fmt.Sprintf("shared-%d", (r+w)%5), t0, alice, 1),
				}
				if err := s.SaveAlerts(ctx, batch); err != nil {
					errc <- err
					return
				}
			}
		})
		wg.Go(func() { // ledger: every worker ORs its own ids into the same rows
			for r := range rounds {
				var rows []LedgerRow
				for i := range ledgerKeys { // each worker in its own order
					rows = append(rows, LedgerRow{Dim: "key", Value: ledgerKeys[(i+w)%len(ledgerKeys)], Day: 20000,
						RType: "customer", Bitmap: bitmaps[w][r],
						First: int64(100 + r - w), Last: int64(200 + r + w)})
				}
				dict := []LedgerDictEntry{{ID: 1<<31 + uint32(w*1000+r), RID: fmt.Sprintf("rid-%d", w*1000+r)}, {ID: 7, RID: "seven"}}
				if err := s.MergeLedger(ctx, dict, rows); err != nil {
					errc <- err
					return
				}
			}
		})
		wg.Go(func() { // actions: shared IDs (inserted once), claims, deliveries
			for r := range rounds {
				acts := []Action{
					{ID: fmt.Sprintf("act-%d", r), Kind: "notify", State: ActionPlanned, CreatedAt: now},
					{ID: fmt.Sprintf("act-w%d-%d", w, r), Kind: "notify", State: ActionPlanned, CreatedAt: now},
				}
				ins, err := s.InsertActions(ctx, acts, now)
				if err != nil {
					errc <- err
					return
				}
				claimed, err := s.ClaimDueActions(ctx, now, time.Hour, 3)
				if err != nil {
					errc <- err
					return
				}
				nfin := 0
				for _, a := range claimed {
					ok, err := s.FinishAction(ctx, ActionResult{ID: a.ID, Attempt: a.Attempts, State: ActionDelivered}, now)
					if err != nil {
						errc <- err
						return
					}
					if ok {
						nfin++
						mu.Lock()
						delivered[a.ID]++
						mu.Unlock()
					}
				}
				mu.Lock()
				planned += len(ins)
				attempts += len(claimed)
				finished += nfin
				mu.Unlock()
			}
		})
		wg.Go(func() { // plain audit entries
			for r := range rounds {
				if err := s.AppendAudit(ctx, now, "note", "", map[string]any{"worker": w, "round": r}); err != nil {
					errc <- err
					return
				}
				mu.Lock()
				appended++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	s := stores[0]

	// Alerts: every worker's own, plus the 5 shared ones.
	if n, err := s.CountAlerts(ctx); err != nil || n != workers*rounds+5 {
		t.Errorf("CountAlerts = %d, %v; want %d", n, err, workers*rounds+5)
	}
	var orphans int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM findings f WHERE seq >= (SELECT COUNT(*) FROM findings g WHERE g.alert_id = f.alert_id)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d findings from interleaved saves (seq beyond the alert's own findings)", orphans)
	}

	// Ledger: each row is the union of every worker's ids.
	rows, err := s.LedgerRows(ctx, "key", nil, 0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(ledgerKeys) {
		t.Fatalf("%d ledger rows, want %d", len(rows), len(ledgerKeys))
	}
	for _, r := range rows {
		got := roaring.New()
		if _, err := got.FromBuffer(r.Bitmap); err != nil {
			t.Fatal(err)
		}
		if got.GetCardinality() != 2*workers*rounds {
			t.Errorf("ledger %s has %d ids, want %d (a merge was lost)", r.Value, got.GetCardinality(), 2*workers*rounds)
		}
		if r.First != int64(100-(workers-1)) || r.Last != int64(200+rounds-1+workers-1) {
			t.Errorf("ledger %s first %d last %d", r.Value, r.First, r.Last)
		}
	}
	dict, err := s.LoadLedgerDict(ctx)
	if err != nil || len(dict) != workers*rounds+1 {
		t.Errorf("dictionary has %d entries (%v), want %d", len(dict), err, workers*rounds+1)
	}

	// Actions: shared ones inserted once; nothing delivered twice.
	wantActions := rounds + workers*rounds
	if planned != wantActions {
		t.Errorf("%d actions inserted, want %d", planned, wantActions)
	}
	for id, n := range delivered {
		if n != 1 {
			t.Errorf("action %s delivered %d times", id, n)
		}
	}
	if attempts != finished {
		t.Errorf("%d claims but %d finishes applied: a claim was taken twice", attempts, finished)
	}
	verifyAuditChain(t, s, planned+attempts+finished+appended)
}

// TestUnstorableText saves strings PostgreSQL's text cannot hold (a NUL
// byte, invalid UTF-8): the batch must not fail, and the alert is found by
// the same id. SQLite keeps them as written; PostgreSQL stores U+FFFD.
func TestUnstorableText(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		id := "nul\x00id\xff"
		a := testAlert(id, t0, event.EntityKey{Kind: event.EntityPrincipal, ID: "p\x00"}, 1)
		a.Title = "bad \xc3\x28 utf8"
		if err := s.SaveAlerts(ctx, []event.Alert{a}); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		got, err := s.GetAlert(ctx, id)
		if err != nil {
			t.Fatalf("GetAlert: %v", err)
		}
		conv := func(s string) string { return s }
		if b.name == "postgres" {
			conv = pgText
			if pgText(id) != "nul\uFFFDid\uFFFD" {
				t.Errorf("pgText = %q", pgText(id))
			}
		}
		for _, f := range []struct{ got, in string }{
			{got.ID, a.ID}, {got.Entity.ID, a.Entity.ID}, {got.Title, a.Title}, {got.Explanation, a.Explanation},
			{got.Findings[0].Title, a.Findings[0].Title}, {got.Findings[0].Entity.ID, a.Findings[0].Entity.ID},
		} {
			if f.got != conv(f.in) {
				t.Errorf("read back %q, want %q", f.got, conv(f.in))
			}
		}
	})
}

// TestSaveAlertsChunks saves a batch spanning several multi-row statements
// (alerts and findings), with a repeated ID across a chunk boundary, and
// reads every alert back whole.
func TestSaveAlertsChunks(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		var in []event.Alert
		for i := range 2*saveChunk + 7 {
			in = append(in, testAlert(fmt.Sprintf("c%03d", i), t0.Add(time.Duration(i)*time.Second), alice, i%4))
		}
		again := testAlert("c001", t0.Add(time.Hour), alice, 5) // later entry wins
		in = append(in, again)
		if err := s.SaveAlerts(ctx, in); err != nil {
			t.Fatal(err)
		}
		want := map[string]event.Alert{}
		for _, a := range in {
			want[a.ID] = a
		}
		got, err := s.ListAlerts(ctx, AlertQuery{Limit: MaxListLimit, WithFindings: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d alerts, want %d", len(got), len(want))
		}
		for _, a := range got {
			if diff := cmp.Diff(want[a.ID], a, alertCmp...); diff != "" {
				t.Errorf("%s (-want +got):\n%s", a.ID, diff)
			}
		}
	})
}

// TestMergeLedgerBatches merges batches spanning several chunks, mixing
// new and stored rows and repeating keys within a batch.
func TestMergeLedgerBatches(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		const n = 2*ledgerChunk + 9
		row := func(i int, ids ...uint32) LedgerRow {
			return LedgerRow{Dim: "source", Value: fmt.Sprintf("198.51.100.%d", i), Day: 20000, RType: "customer",
				Bitmap: bm(t, ids...), First: int64(100 + len(ids)), Last: int64(200 + len(ids))}
		}
		var first []LedgerRow
		for i := 0; i < n; i += 2 { // every other key stored first
			first = append(first, row(i, 1))
		}
		if err := s.MergeLedger(ctx, nil, first); err != nil {
			t.Fatal(err)
		}
		var second []LedgerRow
		for i := n - 1; i >= 0; i-- { // every key, in reverse, each twice
			second = append(second, row(i, 2, 3), row(i, uint32(1000+i)))
		}
		if err := s.MergeLedger(ctx, nil, second); err != nil {
			t.Fatal(err)
		}
		got, err := s.LedgerRows(ctx, "source", nil, 0, 1<<40)
		if err != nil || len(got) != n {
			t.Fatalf("%d rows, %v; want %d", len(got), err, n)
		}
		for _, r := range got {
			var i int
			fmt.Sscanf(r.Value, "198.51.100.%d", &i)
			want := roaring.BitmapOf(2, 3, uint32(1000+i))
			wantFirst, wantLast := int64(101), int64(202)
			if i%2 == 0 {
				want.Add(1)
			}
			bmp := roaring.New()
			if _, err := bmp.FromBuffer(r.Bitmap); err != nil {
				t.Fatal(err)
			}
			if !bmp.Equals(want) || r.First != wantFirst || r.Last != wantLast {
				t.Errorf("%s: %v first %d last %d; want %v %d %d", r.Value, bmp.ToArray(), r.First, r.Last, want.ToArray(), wantFirst, wantLast)
			}
		}
	})
}
