package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"
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
// transaction: a stored row's bitmap becomes the union of the stored and
// the given one, its First the earlier and its Last the later. Dictionary
// entries already stored with the same id and rid are ignored; a conflict
// (same id, other rid, or same rid, other id) fails the batch.
func (s *Store) MergeLedger(ctx context.Context, dict []LedgerDictEntry, rows []LedgerRow) (err error) {
	if len(dict) == 0 && len(rows) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("merge ledger: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
			err = fmt.Errorf("merge ledger: %w", err)
		}
	}()
	if len(dict) > 0 {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO ledger_dict (id, rid) VALUES (?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		defer ins.Close()
		get, err := tx.PrepareContext(ctx, `SELECT rid FROM ledger_dict WHERE id = ?`)
		if err != nil {
			return err
		}
		defer get.Close()
		for _, e := range dict {
			res, err := ins.ExecContext(ctx, int64(e.ID), e.RID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				continue
			}
			var rid string
			err = get.QueryRowContext(ctx, int64(e.ID)).Scan(&rid)
			if err != nil && err != sql.ErrNoRows {
				return err
			}
			if rid != e.RID {
				return fmt.Errorf("dictionary conflict: id %d is %q, not %q", e.ID, rid, e.RID)
			}
		}
	}
	if len(rows) == 0 {
		return tx.Commit()
	}
	sel, err := tx.PrepareContext(ctx, `SELECT bitmap, first, last FROM ledger WHERE dim = ? AND value = ? AND day = ? AND rtype = ? AND field = ?`)
	if err != nil {
		return err
	}
	defer sel.Close()
	up, err := tx.PrepareContext(ctx, `INSERT INTO ledger (dim, value, day, rtype, field, bitmap, first, last)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (dim, value, day, rtype, field) DO UPDATE SET bitmap = excluded.bitmap, first = excluded.first, last = excluded.last`)
	if err != nil {
		return err
	}
	defer up.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO ledger (dim, value, day, rtype, field, bitmap, first, last)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dim, value, day, rtype, field) DO NOTHING`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for i := range rows {
		r := &rows[i]
		// Most rows of a flush are new (a new day, a new value): one insert.
		res, err := ins.ExecContext(ctx, r.Dim, r.Value, r.Day, r.RType, r.Field, r.Bitmap, r.First, r.Last)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			continue
		}
		var (
			old         []byte
			first, last int64
		)
		err = sel.QueryRowContext(ctx, r.Dim, r.Value, r.Day, r.RType, r.Field).Scan(&old, &first, &last)
		blob := r.Bitmap
		switch {
		case err == sql.ErrNoRows:
			first, last = r.First, r.Last
		case err != nil:
			return err
		default:
			a := roaring.New()
			if _, err := a.FromUnsafeBytes(old); err != nil {
				return fmt.Errorf("row %s=%s day %d %s/%s: stored bitmap: %w", r.Dim, r.Value, r.Day, r.RType, r.Field, err)
			}
			b := roaring.New()
			if _, err := b.FromUnsafeBytes(r.Bitmap); err != nil {
				return fmt.Errorf("row %s=%s day %d %s/%s: bitmap: %w", r.Dim, r.Value, r.Day, r.RType, r.Field, err)
			}
			m := roaring.Or(a, b)
			m.RunOptimize()
			if blob, err = m.ToBytes(); err != nil {
				return err
			}
			first, last = min(first, r.First), max(last, r.Last)
		}
		if _, err := up.ExecContext(ctx, r.Dim, r.Value, r.Day, r.RType, r.Field, blob, first, last); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// LedgerRows returns the rows of dim for the given values (all values when
// values is empty) with fromDay <= day <= toDay.
func (s *Store) LedgerRows(ctx context.Context, dim string, values []string, fromDay, toDay int64) ([]LedgerRow, error) {
	var out []LedgerRow
	scan := func(q string, args ...any) error {
		rs, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			r := LedgerRow{Dim: dim}
			if err := rs.Scan(&r.Value, &r.Day, &r.RType, &r.Field, &r.Bitmap, &r.First, &r.Last); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rs.Err()
	}
	const cols = `SELECT value, day, rtype, field, bitmap, first, last FROM ledger WHERE dim = ? AND `
	if len(values) == 0 {
		if err := scan(cols+`day BETWEEN ? AND ? ORDER BY value, day, rtype, field`, dim, fromDay, toDay); err != nil {
			return nil, fmt.Errorf("ledger rows: %w", err)
		}
		return out, nil
	}
	for _, v := range values {
		if err := scan(cols+`value = ? AND day BETWEEN ? AND ? ORDER BY day, rtype, field`, dim, v, fromDay, toDay); err != nil {
			return nil, fmt.Errorf("ledger rows: %w", err)
		}
	}
	return out, nil
}

// LedgerValues returns the distinct values of dim with rows on days in
// [fromDay, toDay], sorted.
func (s *Store) LedgerValues(ctx context.Context, dim string, fromDay, toDay int64) ([]string, error) {
	rs, err := s.db.QueryContext(ctx, `SELECT DISTINCT value FROM ledger WHERE dim = ? AND day BETWEEN ? AND ? ORDER BY value`, dim, fromDay, toDay)
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

// LedgerDictNames returns the record ids of the given dictionary numbers;
// numbers not in the dictionary are absent from the map.
func (s *Store) LedgerDictNames(ctx context.Context, ids []uint32) (map[uint32]string, error) {
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
		q := `SELECT id, rid FROM ledger_dict WHERE id IN (?` + strings.Repeat(",?", len(part)-1) + `)`
		rs, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("ledger dictionary: %w", err)
		}
		for rs.Next() {
			var (
				id  int64
				rid string
			)
			if err := rs.Scan(&id, &rid); err != nil {
				rs.Close()
				return nil, fmt.Errorf("ledger dictionary: %w", err)
			}
			out[uint32(id)] = rid
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return nil, fmt.Errorf("ledger dictionary: %w", err)
		}
	}
	return out, nil
}
