package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/haechi-sec/haechi/internal/event"
)

// alertCmp compares alerts as stored: Immediate is not persisted, and nil
// and empty slices are the same.
var alertCmp = []cmp.Option{
	cmpopts.IgnoreFields(event.Finding{}, "Immediate"),
	cmpopts.EquateEmpty(),
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

func testAlert(id string, at time.Time, entity event.EntityKey, nFindings int) event.Alert {
	a := event.Alert{
		ID:           id,
		Time:         at,
		Entity:       entity,
		Severity:     event.SeverityHigh,
		Score:        77.5,
		Title:        "Activity after termination",
		Explanation:  "principal " + entity.ID + " acted after being terminated",
		State:        event.AlertOpen,
		Detector:     "terminated",
		WindowStart:  at.Add(-time.Hour),
		WindowEnd:    at.Add(time.Hour),
		FindingCount: nFindings + 2,
		LastTime:     at.Add(time.Minute),
	}
	for i := range nFindings {
		a.Findings = append(a.Findings, event.Finding{
			Detector:    "terminated",
			Kind:        fmt.Sprintf("kind-%d", i),
			Title:       "finding " + id,
			Entity:      entity,
			Time:        at.Add(time.Duration(i) * time.Second),
			Score:       float64(10 * i),
			Severity:    event.SeverityForScore(float64(10 * i)),
			Explanation: fmt.Sprintf("finding %d of %s", i, id),
			Evidence:    []string{fmt.Sprintf("gw:%s:%d", id, i), "auth:\"quoted\"\n"},
		})
	}
	return a
}

var alice = event.EntityKey{Kind: event.EntityPrincipal, ID: "alice"}

func TestOpenMigrateReopen(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "nested", "state?#%dir")
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if want := filepath.Join(dir, FileName); s.Path() != want {
		t.Errorf("Path() = %q, want %q", s.Path(), want)
	}
	if SchemaVersion() < 1 {
		t.Fatalf("SchemaVersion() = %d", SchemaVersion())
	}
	checkPragma := func(name, want string) {
		t.Helper()
		var got string
		if err := s.db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		if !strings.EqualFold(got, want) {
			t.Errorf("PRAGMA %s = %q, want %q", name, got, want)
		}
	}
	checkPragma("journal_mode", "wal")
	checkPragma("foreign_keys", "1")
	checkPragma("synchronous", "1") // NORMAL
	checkPragma("busy_timeout", "5000")

	if err := s.SaveAlerts(ctx, []event.Alert{testAlert("a1", t0, alice, 2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("database file mode %v is accessible to group/others", perm)
	}

	for range 2 { // reopening migrates nothing and keeps the data
		s, err = Open(ctx, dir, Options{})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		var n, v int
		if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*), MAX(version) FROM schema_migrations").Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != SchemaVersion() || v != SchemaVersion() {
			t.Errorf("schema_migrations: %d rows, max version %d; want %d", n, v, SchemaVersion())
		}
		if c, err := s.CountAlerts(ctx); err != nil || c != 1 {
			t.Errorf("CountAlerts = %d, %v; want 1", c, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), file, Options{})
	if err == nil || !strings.Contains(err.Error(), "open store in "+file) {
		t.Errorf("Open(file) error = %v, want one naming the directory", err)
	}
	if _, err := Open(t.Context(), "", Options{}); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}

func TestFutureVersionRefused(t *testing.T) {
	eachBackend(t, testFutureVersionRefused)
}

func testFutureVersionRefused(t *testing.T, b backend) {
	ctx := t.Context()
	dir := b.target(t)
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	future := SchemaVersion() + 1
	if _, err := s.db.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)", future); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, dir, Options{})
	want := fmt.Sprintf("store schema version %d is newer than this haechi (%d); upgrade haechi", future, SchemaVersion())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open error = %v, want it to contain %q", err, want)
	}
}

func TestLoadMigrations(t *testing.T) {
	ms, err := loadMigrations(fstest.MapFS{
		"migrations/0002_more.sql": {Data: []byte("SELECT 2")},
		"migrations/0001_init.sql": {Data: []byte("SELECT 1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].version != 1 || ms[1].version != 2 || ms[1].sql != "SELECT 2" {
		t.Errorf("loadMigrations = %+v", ms)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"migrations/0001_a.sql": {}, "migrations/0003_c.sql": {}},
		"bad name": {"migrations/init.sql": {}},
		"zero":     {"migrations/0000_a.sql": {}},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations succeeded", name)
		}
	}
}

func TestSaveGetRoundtrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		zone := time.FixedZone("KST", 9*3600)

		full := testAlert("full", t0.In(zone), alice, 3)
		full.Findings[1].Immediate = true   // not stored
		full.Findings[2].Evidence = nil     // reads back empty
		full.Findings[0].Time = time.Time{} // zero time
		full.Findings[1].Tags = []string{"attack.t1530", "mission"}
		full.Findings[1].Related = []event.EntityKey{{Kind: event.EntitySource, ID: "198.51.100.9"}}
		zero := event.Alert{ID: "zero"} // every time zero, no findings
		monotonic := testAlert("mono", time.Now(), event.EntityKey{Kind: event.EntitySource, ID: "203.0.113.7"}, 1)

		in := []event.Alert{full, zero, monotonic}
		if err := s.SaveAlerts(ctx, in); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		for _, want := range in {
			got, err := s.GetAlert(ctx, want.ID)
			if err != nil {
				t.Fatalf("GetAlert(%s): %v", want.ID, err)
			}
			if diff := cmp.Diff(want, got, alertCmp...); diff != "" {
				t.Errorf("GetAlert(%s) mismatch (-want +got):\n%s", want.ID, diff)
			}
			if got.Findings == nil {
				t.Errorf("GetAlert(%s).Findings is nil", want.ID)
			}
			for _, tm := range []time.Time{got.Time, got.WindowStart, got.WindowEnd, got.LastTime} {
				if !tm.IsZero() && tm.Location() != time.UTC {
					t.Errorf("GetAlert(%s): time %v not UTC", want.ID, tm)
				}
			}
			for _, f := range got.Findings {
				if f.Evidence == nil {
					t.Errorf("GetAlert(%s): nil Evidence", want.ID)
				}
				if f.Immediate {
					t.Errorf("GetAlert(%s): Immediate read back true", want.ID)
				}
			}
		}
		got, err := s.GetAlert(ctx, "zero")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Time.IsZero() || !got.WindowStart.IsZero() || !got.LastTime.IsZero() {
			t.Errorf("zero times did not read back zero: %+v", got)
		}

		list, err := s.ListAlerts(ctx, AlertQuery{WithFindings: true})
		if err != nil {
			t.Fatal(err)
		}
		wantList := []event.Alert{monotonic, full, zero} // newest first
		if diff := cmp.Diff(wantList, list, alertCmp...); diff != "" {
			t.Errorf("ListAlerts mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestSaveAlertsEdgeCases(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		if err := s.SaveAlerts(ctx, nil); err != nil {
			t.Errorf("SaveAlerts(nil) = %v", err)
		}
		if err := s.SaveAlerts(ctx, []event.Alert{{ID: "ok"}, {ID: ""}}); err == nil {
			t.Error("SaveAlerts with an empty id succeeded")
		}
		if n, _ := s.CountAlerts(ctx); n != 0 {
			t.Errorf("a rejected batch stored %d alerts", n)
		}

		// Duplicate ids in one batch: the later one wins.
		a1 := testAlert("dup", t0, alice, 1)
		a2 := testAlert("dup", t0.Add(time.Second), alice, 2)
		a2.Title = "second"
		if err := s.SaveAlerts(ctx, []event.Alert{a1, a2}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAlert(ctx, "dup")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a2, got, alertCmp...); diff != "" {
			t.Errorf("duplicate ids (-want +got):\n%s", diff)
		}

		// A NaN score is stored as NULL and reads back 0.
		nan := testAlert("nan", t0, alice, 1)
		nan.Score = math.NaN()
		nan.Findings[0].Score = math.NaN()
		if err := s.SaveAlerts(ctx, []event.Alert{nan}); err != nil {
			t.Fatal(err)
		}
		got, err = s.GetAlert(ctx, "nan")
		if err != nil {
			t.Fatal(err)
		}
		if got.Score != 0 || got.Findings[0].Score != 0 {
			t.Errorf("NaN scores read back %v, %v", got.Score, got.Findings[0].Score)
		}

		// A cancelled context fails the batch without storing it.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.SaveAlerts(cctx, []event.Alert{testAlert("cancelled", t0, alice, 1)}); err == nil {
			t.Error("SaveAlerts with a cancelled context succeeded")
		}
		if _, err := s.GetAlert(ctx, "cancelled"); !errors.Is(err, ErrNotFound) {
			t.Errorf("cancelled batch: GetAlert error = %v, want ErrNotFound", err)
		}
	})
}

func TestUpsertReplacesFindings(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		first := testAlert("a", t0, alice, 3)
		if err := s.SaveAlerts(ctx, []event.Alert{first}); err != nil {
			t.Fatal(err)
		}
		second := testAlert("a", t0.Add(time.Minute), alice, 1)
		second.Findings[0].Title = "replacement"
		second.State = "closed"
		second.FindingCount = 42
		if err := s.SaveAlerts(ctx, []event.Alert{second}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAlert(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(second, got, alertCmp...); diff != "" {
			t.Errorf("after upsert (-want +got):\n%s", diff)
		}
		countFindings := func() int {
			var n int
			if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM findings").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := countFindings(); n != 1 {
			t.Errorf("%d finding rows after upsert, want 1", n)
		}

		third := second
		third.Findings = nil
		if err := s.SaveAlerts(ctx, []event.Alert{third}); err != nil {
			t.Fatal(err)
		}
		got, err = s.GetAlert(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if got.Findings == nil || len(got.Findings) != 0 {
			t.Errorf("Findings = %#v, want non-nil empty", got.Findings)
		}
		if n := countFindings(); n != 0 {
			t.Errorf("%d finding rows, want 0", n)
		}
		if n, err := s.CountAlerts(ctx); err != nil || n != 1 {
			t.Errorf("CountAlerts = %d, %v; want 1", n, err)
		}

		// Findings cascade when an alert row is deleted.
		if err := s.SaveAlerts(ctx, []event.Alert{first}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.ExecContext(ctx, "DELETE FROM alerts WHERE id = 'a'"); err != nil {
			t.Fatal(err)
		}
		if n := countFindings(); n != 0 {
			t.Errorf("%d finding rows after deleting the alert, want 0 (cascade)", n)
		}
	})
}

func ids(alerts []event.Alert) []string {
	out := make([]string, len(alerts))
	for i, a := range alerts {
		out[i] = a.ID
	}
	return out
}

func TestListAlerts(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		bob := event.EntityKey{Kind: event.EntityPrincipal, ID: "bob"}
		src := event.EntityKey{Kind: event.EntitySource, ID: "alice"} // same id, other kind
		in := []event.Alert{
			testAlert("a0", t0, alice, 1),
			testAlert("a1", t0.Add(1*time.Minute), bob, 2),
			testAlert("a2", t0.Add(2*time.Minute), alice, 0),
			testAlert("a3", t0.Add(3*time.Minute), src, 1),
			testAlert("b3", t0.Add(3*time.Minute), alice, 1), // ties a3 on time
			testAlert("a5", t0.Add(5*time.Minute), bob, 1),
		}
		if err := s.SaveAlerts(ctx, in); err != nil {
			t.Fatal(err)
		}
		byID := map[string]event.Alert{}
		for _, a := range in {
			byID[a.ID] = a
		}

		tests := []struct {
			name string
			q    AlertQuery
			want []string
		}{
			{"all", AlertQuery{}, []string{"a5", "b3", "a3", "a2", "a1", "a0"}},
			{"limit", AlertQuery{Limit: 2}, []string{"a5", "b3"}},
			{"negative limit", AlertQuery{Limit: -1}, []string{"a5", "b3", "a3", "a2", "a1", "a0"}},
			{"since inclusive", AlertQuery{Since: t0.Add(3 * time.Minute)}, []string{"a5", "b3", "a3"}},
			{"before exclusive", AlertQuery{Before: t0.Add(3 * time.Minute)}, []string{"a2", "a1", "a0"}},
			{"since and before", AlertQuery{Since: t0.Add(time.Minute), Before: t0.Add(5 * time.Minute)}, []string{"b3", "a3", "a2", "a1"}},
			{"since in other zone", AlertQuery{Since: t0.Add(3 * time.Minute).In(time.FixedZone("X", -5*3600))}, []string{"a5", "b3", "a3"}},
			{"entity", AlertQuery{Entity: alice}, []string{"b3", "a2", "a0"}},
			{"entity kind matters", AlertQuery{Entity: src}, []string{"a3"}},
			{"entity and limit", AlertQuery{Entity: bob, Limit: 1}, []string{"a5"}},
			{"entity and window", AlertQuery{Entity: alice, Before: t0.Add(3 * time.Minute), Since: t0.Add(time.Second)}, []string{"a2"}},
			{"no match", AlertQuery{Entity: event.EntityKey{Kind: event.EntityToken, ID: "x"}}, []string{}},
			{"kind", AlertQuery{Kind: event.EntitySource}, []string{"a3"}},
			{"older", AlertQuery{Older: AlertCursor{t0.Add(3 * time.Minute), "b3"}}, []string{"a3", "a2", "a1", "a0"}},
			{"older breaks a time tie by id", AlertQuery{Older: AlertCursor{t0.Add(3 * time.Minute), "a3"}}, []string{"a2", "a1", "a0"}},
			{"older and limit", AlertQuery{Older: AlertCursor{t0.Add(3 * time.Minute), "b3"}, Limit: 2}, []string{"a3", "a2"}},
			{"older than a gone alert", AlertQuery{Older: AlertCursor{t0.Add(4 * time.Minute), "zz"}}, []string{"b3", "a3", "a2", "a1", "a0"}},
			{"older and entity", AlertQuery{Older: AlertCursor{t0.Add(3 * time.Minute), "b3"}, Entity: alice}, []string{"a2", "a0"}},
			{"newer", AlertQuery{Newer: AlertCursor{t0.Add(3 * time.Minute), "a3"}}, []string{"a5", "b3"}},
			{"newer keeps the nearest, newest first", AlertQuery{Newer: AlertCursor{t0.Add(time.Minute), "a1"}, Limit: 2}, []string{"a3", "a2"}},
			{"newer and entity", AlertQuery{Newer: AlertCursor{t0, "a0"}, Entity: alice}, []string{"b3", "a2"}},
			{"newer than the newest", AlertQuery{Newer: AlertCursor{t0.Add(5 * time.Minute), "a5"}}, []string{}},
		}
		for _, tt := range tests {
			for _, withFindings := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/findings=%v", tt.name, withFindings), func(t *testing.T) {
					q := tt.q
					q.WithFindings = withFindings
					got, err := s.ListAlerts(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if got == nil {
						t.Fatal("ListAlerts returned nil slice")
					}
					if diff := cmp.Diff(tt.want, ids(got), cmpopts.EquateEmpty()); diff != "" {
						t.Fatalf("ids (-want +got):\n%s", diff)
					}
					for _, a := range got {
						want := byID[a.ID]
						if !withFindings {
							want.Findings = nil
						}
						if diff := cmp.Diff(want, a, alertCmp...); diff != "" {
							t.Errorf("%s (-want +got):\n%s", a.ID, diff)
						}
						if a.Findings == nil {
							t.Errorf("%s: nil Findings", a.ID)
						}
					}
				})
			}
		}
	})
}

// TestListAlertsFilters: severity, state and detector are applied by the
// store, so a page of a filtered listing is full.
func TestListAlertsFilters(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		mk := func(id string, min int, sev event.Severity, state event.AlertState, det string) event.Alert {
			a := testAlert(id, t0.Add(time.Duration(min)*time.Minute), alice, 0)
			a.Severity, a.State, a.Detector = sev, state, det
			return a
		}
		if err := s.SaveAlerts(ctx, []event.Alert{
			mk("a", 0, event.SeverityLow, event.AlertOpen, "off_hours"),
			mk("b", 1, event.SeverityHigh, event.AlertWithdrawn, "off_hours"),
			mk("c", 2, event.SeverityCritical, event.AlertOpen, "token_provenance"),
			mk("d", 3, event.SeverityMedium, event.AlertOpen, "token_provenance"),
		}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name string
			q    AlertQuery
			want []string
		}{
			{"severity", AlertQuery{MinSeverity: event.SeverityHigh}, []string{"c", "b"}},
			{"state", AlertQuery{State: event.AlertOpen}, []string{"d", "c", "a"}},
			{"detector", AlertQuery{Detector: "off_hours"}, []string{"b", "a"}},
			{"all three", AlertQuery{MinSeverity: event.SeverityMedium, State: event.AlertOpen, Detector: "token_provenance"}, []string{"d", "c"}},
			{"filter and cursor", AlertQuery{MinSeverity: event.SeverityMedium, Older: AlertCursor{t0.Add(3 * time.Minute), "d"}, Limit: 1}, []string{"c"}},
		} {
			got, err := s.ListAlerts(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.name, diff)
			}
		}
		f, err := s.ListAlertFacets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(AlertFacets{Detectors: []string{"off_hours", "token_provenance"}, States: []string{"open", "withdrawn"}}, f); diff != "" {
			t.Errorf("facets (-want +got):\n%s", diff)
		}
		if _, err := s.ListAlerts(ctx, AlertQuery{Older: AlertCursor{t0, "a"}, Newer: AlertCursor{t0, "a"}}); err == nil {
			t.Error("both cursors: no error")
		}
	})
}

// TestListAlertsPaging walks a filtered listing page by page, older and
// then back newer, while alerts are raised in between (newer ones, and
// ones tying a page's last alert on time): every alert of the first
// snapshot is seen exactly once going down, in order, and no page shifts.
func TestListAlertsPaging(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		var in []event.Alert
		for i := range 130 {
			// Several alerts share each second, so pages end inside ties.
			a := testAlert(fmt.Sprintf("al-%03d", i), t0.Add(time.Duration(i/3)*time.Second), alice, 0)
			if i%4 == 0 {
				a.Severity = event.SeverityLow
			}
			in = append(in, a)
		}
		if err := s.SaveAlerts(ctx, in); err != nil {
			t.Fatal(err)
		}
		q := AlertQuery{MinSeverity: event.SeverityMedium, Limit: 20}
		snapshot, err := s.ListAlerts(ctx, AlertQuery{MinSeverity: event.SeverityMedium, Limit: MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		var (
			seen  []string
			pages [][]string
			page  []event.Alert
		)
		for n := 0; ; n++ {
			page, err = s.ListAlerts(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			if n > len(snapshot) {
				t.Fatalf("still paging after %d pages", n)
			}
			pages = append(pages, ids(page))
			seen = append(seen, ids(page)...)
			// Meanwhile: a newer alert, and one tying this page's last
			// alert on time with a larger ID (it sorts before the cursor:
			// the page already passed its place, so it is not seen).
			last := page[len(page)-1]
			if err := s.SaveAlerts(ctx, []event.Alert{
				testAlert(fmt.Sprintf("new-%d", n), t0.Add(time.Hour+time.Duration(n)*time.Second), alice, 0),
				testAlert(last.ID+"~tie", last.Time, alice, 0),
			}); err != nil {
				t.Fatal(err)
			}
			q.Older = CursorOf(&last)
		}
		if diff := cmp.Diff(ids(snapshot), seen); diff != "" {
			t.Fatalf("walked older (-snapshot +seen):\n%s", diff)
		}
		if len(pages) != (len(snapshot)+19)/20 {
			t.Fatalf("%d pages of 20 for %d alerts", len(pages), len(snapshot))
		}
		// Back from the last page: each previous page is the one seen,
		// with the alerts that tied its last one since.
		q.Older = AlertCursor{}
		for i := len(pages) - 1; i > 0; i-- {
			first := pages[i][0]
			var a event.Alert
			for _, x := range snapshot {
				if x.ID == first {
					a = x
				}
			}
			q.Newer = CursorOf(&a)
			got, err := s.ListAlerts(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want := pages[i-1]
			// The page before holds the tie raised after it, which sorts
			// just before its last alert, pushing its first one out.
			prevLast := want[len(want)-1]
			want = append(append([]string{}, want[1:]...), prevLast+"~tie")
			slices.Sort(want)
			slices.Reverse(want)
			if diff := cmp.Diff(want, ids(got)); diff != "" {
				t.Fatalf("page %d back (-want +got):\n%s", i-1, diff)
			}
		}
	})
}

func TestListAlertsLimitCap(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		s := b.open(t)
		var in []event.Alert
		for i := range MaxListLimit + 5 {
			in = append(in, event.Alert{ID: fmt.Sprintf("a%04d", i), Time: t0.Add(time.Duration(i) * time.Second)})
		}
		if err := s.SaveAlerts(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := s.ListAlerts(ctx, AlertQuery{Limit: 1 << 20, WithFindings: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != MaxListLimit {
			t.Errorf("Limit 1<<20 returned %d alerts, want %d", len(got), MaxListLimit)
		}
		got, err = s.ListAlerts(ctx, AlertQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != DefaultListLimit || got[0].ID != fmt.Sprintf("a%04d", MaxListLimit+4) {
			t.Errorf("default listing: %d alerts, first %s", len(got), got[0].ID)
		}
		if n, err := s.CountAlerts(ctx); err != nil || n != MaxListLimit+5 {
			t.Errorf("CountAlerts = %d, %v", n, err)
		}
	})
}

func TestGetAlertNotFound(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t)
		_, err := s.GetAlert(t.Context(), "missing")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetAlert(missing) error = %v, want ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), `"missing"`) {
			t.Errorf("error %q does not name the id", err)
		}
	})
}

func BenchmarkSaveAlerts(b *testing.B) {
	for _, be := range []backend{sqliteBackend, postgresBackend} {
		b.Run(be.name, func(b *testing.B) {
			if be.name == "postgres" {
				requirePostgres(b)
			}
			benchmarkSaveAlerts(b, be.open(b))
		})
	}
}

func benchmarkSaveAlerts(b *testing.B, s *Store) {
	ctx := b.Context()
	const batchSize = 256
	entity := event.EntityKey{Kind: event.EntityPrincipal, ID: "bench"}
	batch := make([]event.Alert, batchSize)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			batch[i] = testAlert(fmt.Sprintf("bench-%d", n), t0.Add(time.Duration(n)*time.Millisecond), entity, 3)
			n++
		}
		if err := s.SaveAlerts(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "alerts/s")
}
