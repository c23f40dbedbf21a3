package store

import (
	"context"
	"database/sql"
	"fmt"
)

// shortenStoredKeys is migration 18's Go step (PostgreSQL only): the rows
// a PostgreSQL store holds under a text key longer than pgMaxLedgerRID —
// stored whole before, when it compressed below a btree entry's limit —
// move to the key's form (pgTextKey: pgLedgerRID of the stored
// text, which is pgText already), which every write and look-up uses now: ledger days (their value; a day also stored under the form
// is ORed with it), incident join keys (a key named and cited stays
// named) and citations (the one stored under the form, if any, is kept,
// as a ref stored before keeps its first citation).
func shortenStoredKeys(ctx context.Context, s *Store, tx *sql.Tx) error {
	if !s.dialect.postgres {
		return nil
	}
	long := fmt.Sprintf("octet_length(%%s) > %d", pgMaxLedgerRID)

	// Ledger days.
	type day struct {
		dim, value string
		day        int64
		cells      []byte
	}
	var days []day
	if err := scanAll(ctx, tx, `SELECT dim, value, day, cells FROM ledger_days WHERE `+fmt.Sprintf(long, "value"), func(rs *sql.Rows) error {
		var d day
		err := rs.Scan(&d.dim, &d.value, &d.day, &d.cells)
		days = append(days, d)
		return err
	}); err != nil {
		return fmt.Errorf("ledger days: %w", err)
	}
	for _, d := range days {
		form := pgTextKey(d.value)
		if _, err := tx.ExecContext(ctx, `DELETE FROM ledger_days WHERE dim = ? AND value = ? AND day = ?`, d.dim, d.value, d.day); err != nil {
			return fmt.Errorf("ledger days: %w", err)
		}
		var stored []byte
		err := tx.QueryRowContext(ctx, `SELECT cells FROM ledger_days WHERE dim = ? AND value = ? AND day = ?`, d.dim, form, d.day).Scan(&stored)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return fmt.Errorf("ledger days: %w", err)
		default:
			if d.cells, err = orCellBlobs(stored, d.cells); err != nil {
				return fmt.Errorf("ledger days: %s day %d: %w", d.dim, d.day, err)
			}
		}
		if _, err := tx.ExecContext(ctx, upsertDaysReplaceSQL, d.dim, form, d.day, d.cells); err != nil {
			return fmt.Errorf("ledger days: %w", err)
		}
	}

	// Incident join keys.
	type key struct {
		k, id string
		cited int64
	}
	var keys []key
	if err := scanAll(ctx, tx, `SELECT join_key, alert_id, cited FROM incident_keys WHERE `+fmt.Sprintf(long, "join_key"), func(rs *sql.Rows) error {
		var k key
		err := rs.Scan(&k.k, &k.id, &k.cited)
		keys = append(keys, k)
		return err
	}); err != nil {
		return fmt.Errorf("incident keys: %w", err)
	}
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `DELETE FROM incident_keys WHERE join_key = ? AND alert_id = ?`, k.k, k.id); err != nil {
			return fmt.Errorf("incident keys: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO incident_keys (join_key, alert_id, cited) VALUES (?, ?, ?)
ON CONFLICT (join_key, alert_id) DO UPDATE SET cited = LEAST(incident_keys.cited, excluded.cited)`, pgTextKey(k.k), k.id, k.cited); err != nil {
			return fmt.Errorf("incident keys: %w", err)
		}
	}

	// Citations.
	var refs []string
	if err := scanAll(ctx, tx, `SELECT ref FROM citations WHERE `+fmt.Sprintf(long, "ref"), func(rs *sql.Rows) error {
		var r string
		err := rs.Scan(&r)
		refs = append(refs, r)
		return err
	}); err != nil {
		return fmt.Errorf("citations: %w", err)
	}
	for _, r := range refs {
		form := pgTextKey(r)
		if _, err := tx.ExecContext(ctx, `UPDATE citations SET ref = ? WHERE ref = ? AND NOT EXISTS (SELECT 1 FROM citations WHERE ref = ?)`, form, r, form); err != nil {
			return fmt.Errorf("citations: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM citations WHERE ref = ?`, r); err != nil {
			return fmt.Errorf("citations: %w", err)
		}
	}
	return nil
}

// upsertDaysReplaceSQL stores one ledger day, replacing a stored one.
const upsertDaysReplaceSQL = `INSERT INTO ledger_days (` + ledgerDayColumns + `, cells) VALUES (?, ?, ?, ?)
ON CONFLICT (` + ledgerDayColumns + `) DO UPDATE SET cells = excluded.cells`

// scanAll runs q in tx and calls fn with each row, all read before it
// returns (so that tx can run other statements after).
func scanAll(ctx context.Context, tx *sql.Tx, q string, fn func(*sql.Rows) error) error {
	rs, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		if err := fn(rs); err != nil {
			return err
		}
	}
	if err := rs.Err(); err != nil {
		return err
	}
	return rs.Close()
}
