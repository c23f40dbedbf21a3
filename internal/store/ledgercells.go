package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A ledger day — every cell one value of one dimension touched on one UTC
// day — is stored as one row of ledger_days whose cells column holds them
// all, so that a customer's day is one row rather than one per record type
// and field category. The encoding:
//
//	version   byte (1)
//	count     uvarint
//	count cells, sorted by (record type, field):
//	  rtype   uvarint length, bytes
//	  field   uvarint length, bytes ("" for all records of the type)
//	  first   varint (UTC unix nanoseconds)
//	  span    uvarint (last − first)
//	  bitmap  uvarint ref: 0 → uvarint length and the portable roaring
//	          serialization follow; k > 0 → the same bitmap as cell k−1
//
// A cell whose bitmap is byte-for-byte an earlier cell's refers to it: a
// type's whole set, its names and its phone numbers are usually the same
// records, so a day's cells mostly share one or two bitmaps.
const cellsVersion = 1

// maxCells bounds the cells of one day (record types × field categories)
// that DecodeLedgerCells accepts.
const maxCells = 1 << 16

// ledgerCell is one cell of a day: LedgerRow without the day's key.
type ledgerCell struct {
	rtype, field string
	bitmap       []byte
	first, last  int64
}

func compareCells(a, b *ledgerCell) int {
	return cmp.Or(strings.Compare(a.rtype, b.rtype), strings.Compare(a.field, b.field))
}

// encodeCells encodes cells, which must be sorted by (rtype, field)
// without repeats.
func encodeCells(cells []ledgerCell) []byte {
	n := 1 + binary.MaxVarintLen64
	for i := range cells {
		n += len(cells[i].rtype) + len(cells[i].field) + len(cells[i].bitmap) + 6*binary.MaxVarintLen64
	}
	out := make([]byte, 0, n)
	out = append(out, cellsVersion)
	out = binary.AppendUvarint(out, uint64(len(cells)))
	for i := range cells {
		c := &cells[i]
		out = binary.AppendUvarint(out, uint64(len(c.rtype)))
		out = append(out, c.rtype...)
		out = binary.AppendUvarint(out, uint64(len(c.field)))
		out = append(out, c.field...)
		out = binary.AppendVarint(out, c.first)
		var span uint64
		if c.last > c.first {
			span = uint64(c.last) - uint64(c.first)
		}
		out = binary.AppendUvarint(out, span)
		ref := 0
		for j := range i {
			if len(cells[j].bitmap) == len(c.bitmap) && bytes.Equal(cells[j].bitmap, c.bitmap) {
				ref = j + 1
				break
			}
		}
		out = binary.AppendUvarint(out, uint64(ref))
		if ref == 0 {
			out = binary.AppendUvarint(out, uint64(len(c.bitmap)))
			out = append(out, c.bitmap...)
		}
	}
	return out
}

var errCells = errors.New("malformed ledger cells")

// decodeCells decodes what encodeCells wrote. The cells' bitmaps alias b.
func decodeCells(b []byte) ([]ledgerCell, error) {
	if len(b) == 0 || b[0] != cellsVersion {
		return nil, fmt.Errorf("%w: unknown version", errCells)
	}
	b = b[1:]
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, fmt.Errorf("%w: truncated", errCells)
		}
		b = b[n:]
		return v, nil
	}
	bytesOf := func() ([]byte, error) {
		l, err := uv()
		if err != nil {
			return nil, err
		}
		if l > uint64(len(b)) {
			return nil, fmt.Errorf("%w: length %d past the end", errCells, l)
		}
		out := b[:l:l]
		b = b[l:]
		return out, nil
	}
	count, err := uv()
	if err != nil {
		return nil, err
	}
	if count > maxCells || count > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d cells", errCells, count)
	}
	cells := make([]ledgerCell, count)
	for i := range cells {
		c := &cells[i]
		rt, err := bytesOf()
		if err != nil {
			return nil, err
		}
		f, err := bytesOf()
		if err != nil {
			return nil, err
		}
		c.rtype, c.field = string(rt), string(f)
		first, n := binary.Varint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: truncated", errCells)
		}
		b = b[n:]
		span, err := uv()
		if err != nil {
			return nil, err
		}
		last := int64(uint64(first) + span)
		if last < first || uint64(last)-uint64(first) != span {
			return nil, fmt.Errorf("%w: span %d overflows", errCells, span)
		}
		c.first, c.last = first, last
		ref, err := uv()
		if err != nil {
			return nil, err
		}
		switch {
		case ref == 0:
			if c.bitmap, err = bytesOf(); err != nil {
				return nil, err
			}
		case ref <= uint64(i):
			c.bitmap = cells[ref-1].bitmap
		default:
			return nil, fmt.Errorf("%w: cell %d refers to cell %d", errCells, i, ref-1)
		}
		if i > 0 && compareCells(&cells[i-1], c) >= 0 {
			return nil, fmt.Errorf("%w: cells out of order", errCells)
		}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCells, len(b))
	}
	return cells, nil
}

// DecodeLedgerCells returns the rows of one stored ledger day (the cells
// column of ledger_days), sorted by record type and field, for tools that
// read the table directly.
func DecodeLedgerCells(dim, value string, day int64, cells []byte) ([]LedgerRow, error) {
	cs, err := decodeCells(cells)
	if err != nil {
		return nil, err
	}
	out := make([]LedgerRow, len(cs))
	for i, c := range cs {
		out[i] = LedgerRow{Dim: dim, Value: value, Day: day, RType: c.rtype, Field: c.field, Bitmap: c.bitmap, First: c.first, Last: c.last}
	}
	return out, nil
}

// mergeCells ORs rows (cells of one day, sorted by rtype and field
// without repeats) into the stored cells old (nil when the day is new) and
// returns the result, sorted.
func mergeCells(old []ledgerCell, rows []LedgerRow) ([]ledgerCell, error) {
	out := make([]ledgerCell, 0, len(old)+len(rows))
	i := 0
	for j := range rows {
		r := &rows[j]
		c := ledgerCell{rtype: r.RType, field: r.Field, bitmap: r.Bitmap, first: r.First, last: r.Last}
		for i < len(old) && compareCells(&old[i], &c) < 0 {
			out = append(out, old[i])
			i++
		}
		if i < len(old) && compareCells(&old[i], &c) == 0 {
			m, err := mergeLedgerRow(r, old[i].bitmap, old[i].first, old[i].last)
			if err != nil {
				return nil, err
			}
			c.bitmap, c.first, c.last = m.Bitmap, m.First, m.Last
			i++
		}
		out = append(out, c)
	}
	return append(out, old[i:]...), nil
}

// convertBatch is how many old rows convertLedgerCells reads at a time (a
// variable for tests).
var convertBatch = 20000

// convertLedgerCells is migration 8's step: it moves the rows of the
// per-cell ledger table (0003) into ledger_days, a batch of days at a time
// (memory stays bounded on a large store), and drops the old table.
func convertLedgerCells(ctx context.Context, s *Store, tx *sql.Tx) error {
	ins, err := tx.PrepareContext(ctx, `INSERT INTO ledger_days (dim, value, day, cells) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	var (
		after       *dayKey
		days, cells int
	)
	for {
		q := `SELECT dim, value, day, rtype, field, bitmap, first, last FROM ledger`
		var args []any
		if after != nil {
			q += ` WHERE dim > ? OR (dim = ? AND value > ?) OR (dim = ? AND value = ? AND day > ?)`
			args = []any{after.dim, after.dim, after.value, after.dim, after.value, after.day}
		}
		q += ` ORDER BY dim, value, day, rtype, field LIMIT ` + strconv.Itoa(convertBatch)
		rows, err := scanOldLedger(ctx, tx, q, args)
		if err != nil {
			return err
		}
		batch := groupDays(rows)
		if len(rows) == convertBatch {
			if len(batch) == 1 {
				return fmt.Errorf("ledger %s=%s day %d: more than %d cells", batch[0].key.dim, batch[0].key.value, batch[0].key.day, convertBatch)
			}
			batch = batch[:len(batch)-1] // the last day may go on in the next batch
		}
		for _, d := range batch {
			cs, err := mergeCells(nil, d.rows)
			if err != nil {
				return err
			}
			if _, err := ins.ExecContext(ctx, d.key.dim, d.key.value, d.key.day, encodeCells(cs)); err != nil {
				return err
			}
			days++
			cells += len(cs)
		}
		if len(rows) < convertBatch {
			break
		}
		k := batch[len(batch)-1].key
		after = &k
	}
	if days > 0 {
		s.logger.Info("store: ledger converted to one row per day", "cells", cells, "days", days)
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE ledger`)
	return err
}

// scanOldLedger reads rows of the 0003 ledger table.
func scanOldLedger(ctx context.Context, tx *sql.Tx, q string, args []any) ([]LedgerRow, error) {
	rs, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var rows []LedgerRow
	for rs.Next() {
		var r LedgerRow
		if err := rs.Scan(&r.Dim, &r.Value, &r.Day, &r.RType, &r.Field, &r.Bitmap, &r.First, &r.Last); err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, rs.Err()
}
