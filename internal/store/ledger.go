package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/RoaringBitmap/roaring/v2"
	"modernc.org/sqlite"
)

// LedgerRow is one cell of the access ledger: the record ids of one type
// (and, when Field is set, that exposed one field category) touched on one
// UTC day by one value of one dimension. Bitmap is roaring's portable
// serialization. First and Last are UTC unix nanoseconds.
type LedgerRow struct {
	Dim    string
	Value  string
	Day    int64 // days since the Unix epoch, UTC
	RType  string
	Field  string // "" for all records of the type
	Bitmap []byte
	First  int64
	Last   int64
}

// LedgerDictEntry maps a record id that is not a small integer to the
// 32-bit number the ledger uses for it.
type LedgerDictEntry struct {
	ID  uint32
	RID string
}

// MergeLedger saves dictionary entries and ORs rows into the ledger in one
// transaction: a stored cell's bitmap becomes the union of the stored and
// the given one, its First the earlier and its Last the later. Dictionary
// entries already stored with the same id and rid are ignored; a conflict
// (same id, other rid, or same rid, other id) fails the batch.
//
// The rows of one (dimension, value, day) are stored together, as one row
// of ledger_days (see encodeCells). A flush is written a chunk of days at
// a time. On SQLite a chunk is one upsert whose conflict clause ORs a
// stored day's cells with the new ones inside SQLite (the function
// ledgerOrFunc), so stored days are not read back; the full-size statement
// is prepared once per flush. On PostgreSQL a chunk is three statements
// whatever its size: an insert of the days that are new (ON CONFLICT DO
// NOTHING RETURNING the keys it inserted), a SELECT of the others' stored
// cells, and an upsert of their unions.
//
// On PostgreSQL, concurrent merges from several processes are exact: the
// stored days are read FOR UPDATE before their unions are written back, so
// a second merger waits and then ORs into the first one's result (READ
// COMMITTED reads the newest version of a row it had to wait for). Days
// are locked in key order — the inserts in VALUES order, the SELECT by
// ORDER BY — so two merges of overlapping batches cannot deadlock.
func (s *Store) MergeLedger(ctx context.Context, dict []LedgerDictEntry, rows []LedgerRow) error {
	if len(dict) == 0 && len(rows) == 0 {
		return nil
	}
	if kv, err := s.ledgerKV(ctx); err != nil || kv != nil {
		if err != nil {
			return fmt.Errorf("merge ledger: %w", err)
		}
		return kv.MergeLedger(ctx, dict, rows)
	}
	dict = slices.Clone(dict)
	slices.SortFunc(dict, func(a, b LedgerDictEntry) int { return cmp.Compare(a.ID, b.ID) })
	rows, err := sortedLedgerRows(s.ledgerValuesInForm(rows))
	if err != nil {
		return fmt.Errorf("merge ledger: %w", err)
	}
	if err := s.writerTx(ctx, func(tx *sql.Tx) error { return s.mergeLedger(ctx, tx, dict, rows) }); err != nil {
		return fmt.Errorf("merge ledger: %w", err)
	}
	return nil
}

// ledgerValuesInForm returns rows with each value in the form the store
// holds it in (LedgerValueForm): rows itself when no value changes
// (always, on SQLite). Converted before the rows are sorted and merged,
// values the store holds alike are one day of one value, as a scope sees
// them, not two rows of one key in one statement.
func (s *Store) ledgerValuesInForm(rows []LedgerRow) []LedgerRow {
	form := s.LedgerValueForm()
	if form == nil {
		return rows
	}
	var out []LedgerRow
	for i := range rows {
		v := form(rows[i].Value)
		if v == rows[i].Value {
			continue
		}
		if out == nil {
			out = slices.Clone(rows)
		}
		out[i].Value = v
	}
	if out == nil {
		return rows
	}
	return out
}

// sortedLedgerRows returns a copy of rows sorted by key, with the rows of
// one key merged into one.
//
// It sorts indices, not rows: a row is 120 bytes, which a sort would move
// O(n log n) times (a ledger flush holds tens of thousands). And it sorts
// cells, not rows: the ledger hands the rows of a cell — one (dimension,
// value, day, record type) — one after another, one per field category, so
// runs of rows of one cell are sorted by the cell's key, then the rows of
// each cell by field (any order is accepted: a run may be one row). The
// sort need not be stable: rows of one key merge by OR, min and max, in
// any order.
func sortedLedgerRows(rows []LedgerRow) ([]LedgerRow, error) {
	type run struct{ start, end int32 }
	runs := make([]run, 0, len(rows)/2+1)
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && sameLedgerCell(&rows[i], &rows[j]) {
			j++
		}
		runs = append(runs, run{int32(i), int32(j)})
		i = j
	}
	slices.SortFunc(runs, func(a, b run) int { return compareLedgerCell(&rows[a.start], &rows[b.start]) })
	idx := make([]int32, 0, len(rows))
	for i := 0; i < len(runs); {
		j := i + 1 // the runs of one cell (handed off more than once)
		for j < len(runs) && sameLedgerCell(&rows[runs[i].start], &rows[runs[j].start]) {
			j++
		}
		from := len(idx)
		for _, r := range runs[i:j] {
			for k := r.start; k < r.end; k++ {
				idx = append(idx, k)
			}
		}
		if cell := idx[from:]; len(cell) > 1 {
			slices.SortFunc(cell, func(a, b int32) int { return strings.Compare(rows[a].Field, rows[b].Field) })
		}
		i = j
	}
	out := make([]LedgerRow, 0, len(rows))
	for _, i := range idx {
		r := &rows[i]
		if n := len(out); n > 0 && compareLedgerKey(&out[n-1], r) == 0 {
			m, err := mergeLedgerRow(r, out[n-1].Bitmap, out[n-1].First, out[n-1].Last)
			if err != nil {
				return nil, err
			}
			out[n-1] = m
			continue
		}
		out = append(out, *r)
	}
	return out, nil
}

// sameLedgerCell reports whether a and b are rows of one cell: the same
// dimension, value, day and record type.
func sameLedgerCell(a, b *LedgerRow) bool {
	return a.Day == b.Day && a.Dim == b.Dim && a.Value == b.Value && a.RType == b.RType
}

// compareLedgerCell orders rows by (dim, value, day, rtype), returning at
// the first that differs.
func compareLedgerCell(a, b *LedgerRow) int {
	if c := strings.Compare(a.Dim, b.Dim); c != 0 {
		return c
	}
	if c := strings.Compare(a.Value, b.Value); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Day, b.Day); c != 0 {
		return c
	}
	return strings.Compare(a.RType, b.RType)
}

// compareLedgerKey orders rows by (dim, value, day, rtype, field).
func compareLedgerKey(a, b *LedgerRow) int {
	if c := compareLedgerCell(a, b); c != 0 {
		return c
	}
	return strings.Compare(a.Field, b.Field)
}

// mergeLedgerRow returns r ORed into the stored bitmap old (with stored
// first and last).
func mergeLedgerRow(r *LedgerRow, old []byte, first, last int64) (LedgerRow, error) {
	a := roaring.New()
	if _, err := a.FromUnsafeBytes(old); err != nil {
		return LedgerRow{}, fmt.Errorf("row %s=%s day %d %s/%s: stored bitmap: %w", r.Dim, r.Value, r.Day, r.RType, r.Field, err)
	}
	b := roaring.New()
	if _, err := b.FromUnsafeBytes(r.Bitmap); err != nil {
		return LedgerRow{}, fmt.Errorf("row %s=%s day %d %s/%s: bitmap: %w", r.Dim, r.Value, r.Day, r.RType, r.Field, err)
	}
	m := roaring.Or(a, b)
	m.RunOptimize()
	blob, err := m.ToBytes()
	if err != nil {
		return LedgerRow{}, err
	}
	out := *r
	out.Bitmap, out.First, out.Last = blob, min(first, r.First), max(last, r.Last)
	return out, nil
}

// ledgerChunk is the most days one ledger statement carries (4 parameters
// each).
const ledgerChunk = 128

// dayKey names one stored ledger day.
type dayKey struct {
	dim, value string
	day        int64
}

// ledgerDay is the rows of one day to merge.
type ledgerDay struct {
	key  dayKey
	rows []LedgerRow // sorted by rtype, field
}

// groupDays splits rows (sorted, one per key) into days.
func groupDays(rows []LedgerRow) []ledgerDay {
	var out []ledgerDay
	for i := 0; i < len(rows); {
		k := dayKey{rows[i].Dim, rows[i].Value, rows[i].Day}
		j := i + 1
		for j < len(rows) && rows[j].Dim == k.dim && rows[j].Value == k.value && rows[j].Day == k.day {
			j++
		}
		out = append(out, ledgerDay{key: k, rows: rows[i:j:j]})
		i = j
	}
	return out
}

const ledgerDayColumns = `dim, value, day`

// mergeLedger writes dict and rows (sorted, one per key) inside tx.
func (s *Store) mergeLedger(ctx context.Context, tx *sql.Tx, dict []LedgerDictEntry, rows []LedgerRow) error {
	if err := mergeLedgerDict(ctx, tx, dict); err != nil {
		return err
	}
	days := groupDays(rows)
	if !s.dialect.postgres {
		return mergeLedgerDaysSQLite(ctx, tx, days)
	}
	args := make([]any, 0, ledgerChunk*4)
	for start := 0; start < len(days); start += ledgerChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := days[start:min(start+ledgerChunk, len(days))]

		// 1. The new days, in one insert; most days of a flush are new (a
		// new day, a new value). On PostgreSQL a day another process is
		// inserting meanwhile makes this wait for it, then skip the day,
		// which is merged below.
		args = args[:0]
		for i := range chunk {
			d := &chunk[i]
			cells, err := mergeCells(nil, d.rows)
			if err != nil {
				return err
			}
			args = append(args, d.key.dim, d.key.value, d.key.day, encodeCells(cells))
		}
		inserted := make(map[dayKey]bool, len(chunk))
		if err := queryDays(ctx, tx, `INSERT INTO ledger_days (`+ledgerDayColumns+`, cells) VALUES `+valueRows(4, len(chunk))+`
ON CONFLICT (`+ledgerDayColumns+`) DO NOTHING RETURNING `+ledgerDayColumns, args, func(k dayKey, _ []byte) error {
			inserted[k] = true
			return nil
		}); err != nil {
			return err
		}
		if len(inserted) == len(chunk) {
			continue
		}

		// 2. The stored cells of the others, row-locked in key order.
		var rest []*ledgerDay
		var where strings.Builder
		args = args[:0]
		for i := range chunk {
			d := &chunk[i]
			if inserted[d.key] {
				continue
			}
			if len(rest) > 0 {
				where.WriteString(" OR ")
			}
			where.WriteString("(dim = ? AND value = ? AND day = ?)")
			args = append(args, d.key.dim, d.key.value, d.key.day)
			rest = append(rest, d)
		}
		stored := make(map[dayKey][]byte, len(rest))
		if err := queryDays(ctx, tx, `SELECT `+ledgerDayColumns+`, cells FROM ledger_days WHERE `+where.String()+
			` ORDER BY `+ledgerDayColumns+s.dialect.forUpdate(), args, func(k dayKey, cells []byte) error {
			stored[k] = cells
			return nil
		}); err != nil {
			return err
		}

		// 3. Their unions, in one upsert. (A day that vanished meanwhile
		// is written as given.)
		args = args[:0]
		for _, d := range rest {
			var old []ledgerCell
			if b, ok := stored[d.key]; ok {
				var err error
				if old, err = decodeCells(b); err != nil {
					return fmt.Errorf("%s=%s day %d: %w", d.key.dim, d.key.value, d.key.day, err)
				}
			}
			cells, err := mergeCells(old, d.rows)
			if err != nil {
				return err
			}
			args = append(args, d.key.dim, d.key.value, d.key.day, encodeCells(cells))
		}
		// #nosec G202 -- a constant column list and placeholders
		q := `INSERT INTO ledger_days (` + ledgerDayColumns + `, cells) VALUES ` + valueRows(4, len(rest)) +
			` ON CONFLICT (` + ledgerDayColumns + `) DO UPDATE SET cells = excluded.cells`
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// ledgerOrFunc is the SQLite function (registered with the driver by this
// package's init) that the upsert of a stored ledger day calls:
// haechi_ledger_or(stored, new) is the union of two ledger days' cells
// (orCellBlobs). It is used only in writes; a database read by other tools
// does not need it.
const ledgerOrFunc = "haechi_ledger_or"

func init() {
	sqlite.MustRegisterFunction(ledgerOrFunc, &sqlite.FunctionImpl{
		NArgs:         2,
		Deterministic: true,
		Scalar: func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			stored, ok1 := args[0].([]byte)
			add, ok2 := args[1].([]byte)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: arguments must be blobs, not %T and %T", ledgerOrFunc, args[0], args[1])
			}
			return orCellBlobs(stored, add)
		},
	})
}

// upsertDaysSQL is the SQLite statement that merges n days (4 parameters
// each: dim, value, day, cells) into ledger_days.
func upsertDaysSQL(n int) string {
	return `INSERT INTO ledger_days (` + ledgerDayColumns + `, cells) VALUES ` + valueRows(4, n) +
		` ON CONFLICT (` + ledgerDayColumns + `) DO UPDATE SET cells = ` + ledgerOrFunc + `(cells, excluded.cells)`
}

// mergeLedgerDaysSQLite merges days into ledger_days inside tx (SQLite): a
// chunk of days per upsert, the full-size statement prepared once.
func mergeLedgerDaysSQLite(ctx context.Context, tx *sql.Tx, days []ledgerDay) error {
	var full *sql.Stmt
	defer func() {
		if full != nil {
			_ = full.Close()
		}
	}()
	args := make([]any, 0, ledgerChunk*4)
	for start := 0; start < len(days); start += ledgerChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := days[start:min(start+ledgerChunk, len(days))]
		args = args[:0]
		for i := range chunk {
			d := &chunk[i]
			cells, err := mergeCells(nil, d.rows)
			if err != nil {
				return err
			}
			args = append(args, d.key.dim, d.key.value, d.key.day, encodeCells(cells))
		}
		var err error
		if len(chunk) == ledgerChunk {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, upsertDaysSQL(ledgerChunk)); err != nil {
					return err
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, upsertDaysSQL(len(chunk)), args...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ledgerDictChunk is the most dictionary entries one insert carries (2
// parameters each).
const ledgerDictChunk = 256

// mergeLedgerDict stores dictionary entries (sorted by id) inside tx, a
// chunk per statement: a multi-row insert that skips stored entries (the
// full-size one prepared once), and, only when it inserted fewer rows than
// the chunk holds, one SELECT of the chunk's ids to check that each is
// stored with the same rid (the same id with another rid, or the rid under
// another id, is a conflict). A local dictionary's entries are new, so a
// flush is the inserts alone.
func mergeLedgerDict(ctx context.Context, tx *sql.Tx, dict []LedgerDictEntry) error {
	insert := func(n int) string {
		return `INSERT INTO ledger_dict (id, rid) VALUES ` + valueRows(2, n) + ` ON CONFLICT DO NOTHING`
	}
	var full *sql.Stmt
	defer func() {
		if full != nil {
			_ = full.Close()
		}
	}()
	args := make([]any, 0, 2*ledgerDictChunk)
	for start := 0; start < len(dict); start += ledgerDictChunk {
		chunk := dict[start:min(start+ledgerDictChunk, len(dict))]
		args = args[:0]
		for _, e := range chunk {
			args = append(args, int64(e.ID), e.RID)
		}
		var (
			res sql.Result
			err error
		)
		if len(chunk) == ledgerDictChunk {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, insert(ledgerDictChunk)); err != nil {
					return err
				}
			}
			res, err = full.ExecContext(ctx, args...)
		} else {
			res, err = tx.ExecContext(ctx, insert(len(chunk)), args...)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == int64(len(chunk)) {
			continue // every entry was new
		}
		args = args[:0]
		for _, e := range chunk {
			args = append(args, int64(e.ID))
		}
		stored := make(map[int64]string, len(args))
		// #nosec G202 -- only placeholders are concatenated
		if err := queryIDs(ctx, tx, `SELECT id, rid FROM ledger_dict WHERE id IN (`+placeholders(len(args))+`)`, args, func(id int64, rid string) {
			stored[id] = rid
		}); err != nil {
			return err
		}
		for _, e := range chunk {
			if rid := stored[int64(e.ID)]; rid != e.RID {
				return fmt.Errorf("dictionary conflict: id %d is %q, not %q", e.ID, rid, e.RID)
			}
		}
	}
	return nil
}

// queryIDs runs q, which selects an id and optionally a rid, and calls fn
// with each row.
func queryIDs(ctx context.Context, tx *sql.Tx, q string, args []any, fn func(id int64, rid string)) error {
	rs, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return err
	}
	for rs.Next() {
		var (
			id  int64
			rid string
		)
		dest := []any{&id}
		if len(cols) > 1 {
			dest = append(dest, &rid)
		}
		if err := rs.Scan(dest...); err != nil {
			return err
		}
		fn(id, rid)
	}
	if err := rs.Err(); err != nil {
		return err
	}
	return rs.Close()
}

// queryDays runs q and calls fn with each row's key and, when q selects
// it, cells.
func queryDays(ctx context.Context, tx *sql.Tx, q string, args []any, fn func(k dayKey, cells []byte) error) error {
	rs, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return err
	}
	for rs.Next() {
		var (
			k     dayKey
			cells []byte
		)
		dest := []any{&k.dim, &k.value, &k.day}
		if len(cols) > 3 {
			dest = append(dest, &cells)
		}
		if err := rs.Scan(dest...); err != nil {
			return err
		}
		if err := fn(k, cells); err != nil {
			return err
		}
	}
	if err := rs.Err(); err != nil {
		return err
	}
	return rs.Close()
}

// LedgerRows returns the rows of dim for the given values (all values when
// values is empty) with fromDay <= day <= toDay, sorted by value, day,
// record type and field. Values are looked up in the store's form
// (LedgerValueForm), and rows name them in it.
func (s *Store) LedgerRows(ctx context.Context, dim string, values []string, fromDay, toDay int64) ([]LedgerRow, error) {
	if kv, err := s.ledgerKV(ctx); err != nil || kv != nil {
		if err != nil {
			return nil, fmt.Errorf("ledger rows: %w", err)
		}
		return kv.LedgerRows(ctx, dim, values, fromDay, toDay)
	}
	var out []LedgerRow
	scan := func(q string, args ...any) error {
		rs, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var (
				value string
				day   int64
				cells []byte
			)
			if err := rs.Scan(&value, &day, &cells); err != nil {
				return err
			}
			rows, err := DecodeLedgerCells(dim, value, day, cells)
			if err != nil {
				return fmt.Errorf("%s=%s day %d: %w", dim, value, day, err)
			}
			out = append(out, rows...)
		}
		return rs.Err()
	}
	const cols = `SELECT value, day, cells FROM ledger_days WHERE dim = ? AND `
	if len(values) == 0 {
		if err := scan(cols+`day BETWEEN ? AND ? ORDER BY value, day`, dim, fromDay, toDay); err != nil {
			return nil, fmt.Errorf("ledger rows: %w", err)
		}
		return out, nil
	}
	if form := s.LedgerValueForm(); form != nil {
		in := values
		values = make([]string, 0, len(in))
		seen := make(map[string]bool, len(in))
		for _, v := range in {
			if v = form(v); !seen[v] {
				seen[v] = true
				values = append(values, v)
			}
		}
	}
	for _, v := range values {
		if err := scan(cols+`value = ? AND day BETWEEN ? AND ? ORDER BY day`, dim, v, fromDay, toDay); err != nil {
			return nil, fmt.Errorf("ledger rows: %w", err)
		}
	}
	return out, nil
}

// LedgerValues returns the distinct values of dim with rows on days in
// [fromDay, toDay], sorted.
func (s *Store) LedgerValues(ctx context.Context, dim string, fromDay, toDay int64) ([]string, error) {
	if kv, err := s.ledgerKV(ctx); err != nil || kv != nil {
		if err != nil {
			return nil, fmt.Errorf("ledger values: %w", err)
		}
		return kv.LedgerValues(ctx, dim, fromDay, toDay)
	}
	rs, err := s.db.QueryContext(ctx, `SELECT DISTINCT value FROM ledger_days WHERE dim = ? AND day BETWEEN ? AND ? ORDER BY value`, dim, fromDay, toDay)
	if err != nil {
		return nil, fmt.Errorf("ledger values: %w", err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var v string
		if err := rs.Scan(&v); err != nil {
			return nil, fmt.Errorf("ledger values: %w", err)
		}
		out = append(out, v)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("ledger values: %w", err)
	}
	return out, nil
}

// SaveLedgerDict stores dictionary entries (see MergeLedger).
func (s *Store) SaveLedgerDict(ctx context.Context, entries []LedgerDictEntry) error {
	return s.MergeLedger(ctx, entries, nil)
}

// LoadLedgerDict returns the whole dictionary, by id.
func (s *Store) LoadLedgerDict(ctx context.Context) ([]LedgerDictEntry, error) {
	if kv, err := s.ledgerKV(ctx); err != nil || kv != nil {
		if err != nil {
			return nil, fmt.Errorf("load ledger dictionary: %w", err)
		}
		return kv.LoadLedgerDict(ctx)
	}
	return s.loadLedgerDictSQL(ctx)
}

// loadLedgerDictSQL is LoadLedgerDict from ledger_dict.
func (s *Store) loadLedgerDictSQL(ctx context.Context) ([]LedgerDictEntry, error) {
	rs, err := s.db.QueryContext(ctx, `SELECT id, rid FROM ledger_dict ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load ledger dictionary: %w", err)
	}
	defer rs.Close()
	var out []LedgerDictEntry
	for rs.Next() {
		var (
			id  int64
			rid string
		)
		if err := rs.Scan(&id, &rid); err != nil {
			return nil, fmt.Errorf("load ledger dictionary: %w", err)
		}
		out = append(out, LedgerDictEntry{ID: uint32(id), RID: rid})
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("load ledger dictionary: %w", err)
	}
	return out, nil
}

// ScanLedgerDict calls fn with every dictionary entry, in order of
// number, without holding them all in memory; an error from fn stops the
// scan and is returned.
func (s *Store) ScanLedgerDict(ctx context.Context, fn func(id uint32, rid string) error) error {
	if kv, err := s.ledgerKV(ctx); err != nil || kv != nil {
		if err != nil {
			return fmt.Errorf("scan ledger dictionary: %w", err)
		}
		return kv.ScanLedgerDict(ctx, fn)
	}
	return s.queryDict(ctx, "scan ledger dictionary", `SELECT id, rid FROM ledger_dict ORDER BY id`, nil, fn)
}

// queryDict runs q, a query of ledger_dict's (id, rid) rows, and calls fn
// with each; an error from fn stops it and is returned as it is, its own
// errors are prefixed with what.
func (s *Store) queryDict(ctx context.Context, what, q string, args []any, fn func(id uint32, rid string) error) error {
	rs, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rs.Close()
	for rs.Next() {
		var (
			id  int64
			rid string
		)
		if err := rs.Scan(&id, &rid); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if id < 0 || id > math.MaxUint32 {
			return fmt.Errorf("%s: id %d out of range", what, id)
		}
		if err := fn(uint32(id), rid); err != nil {
			return err
		}
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// LedgerRIDForm returns the function that maps a record id to the form
// the ledger's dictionary stores it in, or nil when ids are stored as they
// are (SQLite, pebble). PostgreSQL's text holds no NUL byte nor invalid
// UTF-8: such an id is stored with U+FFFD (pgText), so "a\x00b" and
// "a\xffb" are one stored id; and its index of ledger_dict.rid holds at
// most ≈ 2.7 kB a name, so a longer id is stored shortened (pgLedgerRID).
// A dictionary numbers ids in this form, or it would give an id a second
// number (its look-ups answer with the stored form), two ids the store
// cannot tell apart two numbers, and a long id a flush that never stores.
func (s *Store) LedgerRIDForm() func(string) string {
	if s.ledgerDir != "" || !s.dialect.postgres {
		return nil
	}
	return pgLedgerRID
}

// LedgerValueForm returns the function that maps a ledger value (a
// principal, token, key, source, … of a (dimension, value, day) row) to
// the form the store holds it in, or nil when values are stored as they
// are (SQLite, pebble). On PostgreSQL it is pgTextKey: ledger_days'
// primary key indexes the value, and a btree entry holds at most
// ≈ 2.7 kB, so a longer value — an event's field, which an attacker
// chooses — is stored as its start and a hash of the whole. MergeLedger
// and LedgerRows convert the values they are given; LedgerValues answers
// with stored forms, so a caller that compares a value of its own with
// them converts it first.
func (s *Store) LedgerValueForm() func(string) string {
	if s.ledgerDir != "" || !s.dialect.postgres {
		return nil
	}
	return pgTextKey
}

// pgTextKey is the form PostgreSQL stores a text key an event fills in
// (a ledger value, an incident join key, a citation's ref): the text
// PostgreSQL holds for it (pgText), shortened as a record id is
// (pgLedgerRID) when longer than pgMaxLedgerRID bytes. The hash is of
// that text, not of the key as it came (as a record id's is), so that
// migration 18 can shorten a key stored whole before from what is stored;
// and so two long keys PostgreSQL's text cannot tell apart ("…\x00",
// "…\xff") are one key, as two short ones are.
func pgTextKey(s string) string {
	return pgLedgerRID(pgText(s))
}

// pgMaxLedgerRID is the longest record id, in bytes, a PostgreSQL ledger
// dictionary stores as it is: with its headers, under the 2,704 bytes a
// btree entry holds uncompressed, so that every id a PostgreSQL ledger
// could store before keeps its name (and number), but for compressible
// ones longer still.
const pgMaxLedgerRID = 2600

// pgLedgerRID is pgText, and for an id longer than pgMaxLedgerRID its
// start followed by "…sha256:" and the first 128 bits of the SHA-256 of
// the whole id (as it came), pgMaxLedgerRID bytes in all: long ids that
// differ anywhere stay apart.
func pgLedgerRID(s string) string {
	t := pgText(s)
	if len(t) <= pgMaxLedgerRID {
		return t
	}
	sum := sha256.Sum256([]byte(s))
	suffix := "…sha256:" + hex.EncodeToString(sum[:16])
	cut := pgMaxLedgerRID - len(suffix)
	for cut > 0 && !utf8.RuneStart(t[cut]) {
		cut--
	}
	return t[:cut] + suffix
}

// ledgerLookupChunk is the most record ids one dictionary look-up asks
// for.
const ledgerLookupChunk = 500

// LookupLedgerDict returns the stored numbers of those of rids the
// dictionary holds (absent: none stored).
func (s *Store) LookupLedgerDict(ctx context.Context, rids []string) (map[string]uint32, error) {
	if kv, err := s.ledgerKV(ctx); err != nil || kv != nil {
		if err != nil {
			return nil, fmt.Errorf("ledger dictionary: %w", err)
		}
		return kv.LookupLedgerDict(ctx, rids)
	}
	out := make(map[string]uint32, len(rids))
	args := make([]any, 0, min(len(rids), ledgerLookupChunk))
	for len(rids) > 0 {
		part := rids[:min(ledgerLookupChunk, len(rids))]
		rids = rids[len(part):]
		args = args[:0]
		for _, rid := range part {
			args = append(args, rid)
		}
		if err := s.scanDictIn(ctx, "rid", args, func(id uint32, rid string) { out[rid] = id }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scanDictIn calls fn with each ledger_dict entry whose column (id or
// rid) is one of args: the look-ups of LookupLedgerDict and
// LedgerDictNames.
func (s *Store) scanDictIn(ctx context.Context, column string, args []any, fn func(id uint32, rid string)) error {
	q := `SELECT id, rid FROM ledger_dict WHERE ` + column + ` IN (` + placeholders(len(args)) + `)` // #nosec G202 -- a constant column name and placeholders
	return s.queryDict(ctx, "ledger dictionary", q, args, func(id uint32, rid string) error {
		fn(id, rid)
		return nil
	})
}

// LedgerDictNames returns the record ids of the given dictionary numbers;
// numbers not in the dictionary are absent from the map.
func (s *Store) LedgerDictNames(ctx context.Context, ids []uint32) (map[uint32]string, error) {
	if kv, err := s.ledgerKV(ctx); err != nil || kv != nil {
		if err != nil {
			return nil, fmt.Errorf("ledger dictionary: %w", err)
		}
		return kv.LedgerDictNames(ctx, ids)
	}
	out := make(map[uint32]string, len(ids))
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		part := ids[:n]
		ids = ids[n:]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = int64(id)
		}
		if err := s.scanDictIn(ctx, "id", args, func(id uint32, rid string) { out[id] = rid }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AssignLedgerDict returns the dictionary numbers of rids (in their order;
// repeats allowed), numbering those not yet stored with the next numbers
// after the largest stored one (first when the dictionary is empty), in
// one transaction. It is the dictionary of processes that share the store
// (cluster workers): on PostgreSQL the transaction locks ledger_dict
// against every other writer first (SHARE ROW EXCLUSIVE conflicts with
// itself and with MergeLedger's inserts, not with readers), so two
// processes can never give one rid two numbers or one number to two rids,
// and the numbers stay contiguous. SQLite's write transactions are
// exclusive already.
func (s *Store) AssignLedgerDict(ctx context.Context, rids []string, first uint32) ([]LedgerDictEntry, error) {
	if s.ledgerDir != "" {
		return nil, errors.New("assign ledger dictionary: a pebble ledger has one writer, whose dictionary numbers ids itself (a shared dictionary needs a shared store)")
	}
	if len(rids) == 0 {
		return nil, nil
	}
	uniq := slices.Clone(rids)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	var got map[string]uint32
	err := s.writerTx(ctx, func(tx *sql.Tx) error {
		got = make(map[string]uint32, len(uniq))
		if s.dialect.postgres {
			if _, err := tx.ExecContext(ctx, `LOCK TABLE ledger_dict IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		const chunk = 500
		for start := 0; start < len(uniq); start += chunk {
			part := uniq[start:min(start+chunk, len(uniq))]
			args := make([]any, len(part))
			for i, r := range part {
				args[i] = r
			}
			rs, err := tx.QueryContext(ctx, `SELECT id, rid FROM ledger_dict WHERE rid IN (?`+strings.Repeat(",?", len(part)-1)+`)`, args...) // #nosec G202 -- only placeholders are concatenated
			if err != nil {
				return err
			}
			for rs.Next() {
				var (
					id  int64
					rid string
				)
				if err := rs.Scan(&id, &rid); err != nil {
					rs.Close()
					return err
				}
				got[rid] = uint32(id)
			}
			err = rs.Err()
			rs.Close()
			if err != nil {
				return err
			}
		}
		if len(got) == len(uniq) {
			return nil
		}
		var top sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(id) FROM ledger_dict`).Scan(&top); err != nil {
			return err
		}
		next := int64(first)
		if top.Valid && top.Int64 >= next {
			next = top.Int64 + 1
		}
		start := next
		fresh := make([]string, 0, len(uniq)-len(got))
		for _, rid := range uniq { // sorted: numbering does not depend on the caller's order
			if _, ok := got[rid]; ok {
				continue
			}
			if next > 1<<32-1 {
				return fmt.Errorf("dictionary full")
			}
			fresh = append(fresh, rid)
			got[rid] = uint32(next)
			next++
		}
		return insertLedgerDictRun(ctx, tx, start, fresh)
	})
	if err != nil {
		return nil, fmt.Errorf("assign ledger dictionary: %w", err)
	}
	out := make([]LedgerDictEntry, len(rids))
	for i, rid := range rids {
		out[i] = LedgerDictEntry{ID: got[rid], RID: rid}
	}
	return out, nil
}

// ledgerDictInsertChunk is the rows of one of insertLedgerDictRun's
// statements (two parameters a row: within SQLite's and PostgreSQL's
// limits).
const ledgerDictInsertChunk = 500

// insertLedgerDictRun inserts rids numbered first, first+1, … with one
// multi-row INSERT per ledgerDictInsertChunk of them (AssignLedgerDict: a
// statement, and on PostgreSQL a round trip, per new id was most of what
// numbering a poll's new ids cost a cluster worker).
func insertLedgerDictRun(ctx context.Context, tx *sql.Tx, first int64, rids []string) error {
	var full *sql.Stmt // the full-size statement, prepared on first use
	defer func() {
		if full != nil {
			_ = full.Close()
		}
	}()
	args := make([]any, 0, 2*min(len(rids), ledgerDictInsertChunk))
	for len(rids) > 0 {
		n := min(len(rids), ledgerDictInsertChunk)
		args = args[:0]
		for i, rid := range rids[:n] {
			args = append(args, first+int64(i), rid)
		}
		q := `INSERT INTO ledger_dict (id, rid) VALUES (?, ?)` + strings.Repeat(`, (?, ?)`, n-1) // #nosec G202 -- only placeholders are concatenated
		var err error
		switch {
		case n < ledgerDictInsertChunk:
			_, err = tx.ExecContext(ctx, q, args...)
		case full == nil:
			if full, err = tx.PrepareContext(ctx, q); err == nil {
				_, err = full.ExecContext(ctx, args...)
			}
		default:
			_, err = full.ExecContext(ctx, args...)
		}
		if err != nil {
			return err
		}
		first += int64(n)
		rids = rids[n:]
	}
	return nil
}

// LedgerBytes returns the bytes the access ledger stores: the keys and
// cells of every (dimension, value, day) row and the record-id dictionary
// (payload only, without SQLite's or PostgreSQL's page and index overhead).
// haechi bench divides it by the events replayed.
func (s *Store) LedgerBytes(ctx context.Context) (int64, error) {
	if kv, err := s.ledgerKV(ctx); err != nil || kv != nil {
		if err != nil {
			return 0, fmt.Errorf("ledger bytes: %w", err)
		}
		return kv.LedgerBytes(ctx)
	}
	var days, dict sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT SUM(LENGTH(dim) + LENGTH(value) + 8 + LENGTH(cells)) FROM ledger_days`).Scan(&days); err != nil {
		return 0, fmt.Errorf("ledger bytes: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT SUM(LENGTH(rid) + 8) FROM ledger_dict`).Scan(&dict); err != nil {
		return 0, fmt.Errorf("ledger bytes: %w", err)
	}
	return days.Int64 + dict.Int64, nil
}
