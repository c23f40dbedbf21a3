package store

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCellsRoundTrip(t *testing.T) {
	all := []byte("bitmap-of-all")
	tests := []struct {
		name  string
		cells []ledgerCell
		refs  int // cells stored as a reference to an earlier one
	}{
		{"none", nil, 0},
		{"one", []ledgerCell{{rtype: "customer", bitmap: all, first: 5, last: 9}}, 0},
		{"shared bitmaps", []ledgerCell{
			{rtype: "address", bitmap: []byte("addr"), first: -3, last: 4},
			{rtype: "address", field: "address", bitmap: []byte("addr"), first: 1, last: 1},
			{rtype: "customer", bitmap: all, first: 1, last: 2},
			{rtype: "customer", field: "email", bitmap: []byte("one"), first: 2, last: 2},
			{rtype: "customer", field: "name", bitmap: all, first: 1, last: 2},
			{rtype: "customer", field: "phone", bitmap: all, first: 1, last: 2},
		}, 3},
		{"extreme times", []ledgerCell{{rtype: "x", bitmap: all, first: math.MinInt64, last: math.MaxInt64}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeCells(tc.cells)
			got, err := decodeCells(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.cells, got, cmp.AllowUnexported(ledgerCell{}), cmp.Comparer(bytes.Equal)); diff != "" && len(tc.cells) > 0 {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if tc.refs > 0 && bytes.Count(b, all) != 1 {
				t.Errorf("the shared bitmap is stored %d times", bytes.Count(b, all))
			}
		})
	}
}

func TestCellsMalformed(t *testing.T) {
	good := encodeCells([]ledgerCell{
		{rtype: "customer", bitmap: []byte("a"), first: 1, last: 2},
		{rtype: "customer", field: "name", bitmap: []byte("a"), first: 1, last: 2},
	})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version", append([]byte{2}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"forward reference", []byte{1, 1, 1, 'x', 0, 2, 0, 1}},
		{"too many cells", []byte{1, 0xff, 0xff, 0xff, 0x0f}},
		{"length past the end", []byte{1, 1, 9, 'x'}},
		{"out of order", encodeUnsorted()},
		{"span overflows", []byte{1, 1, 1, 'x', 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if cs, err := decodeCells(tc.b); err == nil {
				t.Errorf("accepted: %+v", cs)
			}
		})
	}
}

func encodeUnsorted() []byte {
	return encodeCells([]ledgerCell{{rtype: "b", bitmap: []byte("1")}, {rtype: "a", bitmap: []byte("2")}})
}

// FuzzDecodeLedgerCells: the decoder never panics, and what it accepts
// encodes back to the same bytes (the encoding is canonical).
func FuzzDecodeLedgerCells(f *testing.F) {
	f.Add(encodeCells(nil))
	f.Add(encodeCells([]ledgerCell{
		{rtype: "customer", bitmap: []byte("a"), first: 1, last: 2},
		{rtype: "customer", field: "name", bitmap: []byte("a"), first: 1, last: 2},
		{rtype: "customer", field: "phone", bitmap: []byte("bb"), first: -1, last: 7},
	}))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := decodeCells(b)
		if err != nil {
			return
		}
		if again := encodeCells(cs); !bytes.Equal(again, b) {
			// Refs are chosen by the encoder: an inline copy of an earlier
			// bitmap is legal input but not canonical. The cells must
			// still be the same.
			cs2, err := decodeCells(again)
			if err != nil {
				t.Fatalf("re-encoded cells do not decode: %v", err)
			}
			if diff := cmp.Diff(cs, cs2, cmp.AllowUnexported(ledgerCell{}), cmp.Comparer(bytes.Equal)); diff != "" {
				t.Fatalf("re-encoding changed the cells: %s", diff)
			}
		}
	})
}

// TestMigrateLedgerCells: a store written by the per-cell schema (0003–0007)
// is converted by migration 8 with every cell intact, in batches that do
// not split a day.
func TestMigrateLedgerCells(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		target := b.target(t)
		s, err := Open(ctx, target, Options{})
		if err != nil {
			t.Fatal(err)
		}
		// Back to version 7, with the old table and rows in it.
		for _, q := range []string{
			`DROP TABLE ledger_days`,
			`ALTER TABLE audit DROP COLUMN scheme`, // migration 9
			`ALTER TABLE actions DROP COLUMN hold`, // migration 10
			`DROP TABLE finding_log`,               // migration 11
			`DROP TABLE incidents`,                 // migration 13
			`DROP TABLE incident_alerts`,
			`DROP TABLE incident_keys`,
			`DROP TABLE incident_aliases`,
			`DROP TABLE citations`,
			`DROP TABLE drill_runs`, // migration 15
			`DELETE FROM schema_migrations WHERE version >= 8`,
			s.dialect.translateMigration(`CREATE TABLE ledger (
	dim    TEXT NOT NULL,
	value  TEXT NOT NULL,
	day    INTEGER NOT NULL,
	rtype  TEXT NOT NULL,
	field  TEXT NOT NULL,
	bitmap BLOB NOT NULL,
	first  INTEGER NOT NULL,
	last   INTEGER NOT NULL,
	PRIMARY KEY (dim, value, day, rtype, field)
) WITHOUT ROWID`),
		} {
			if _, err := s.db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		var want []LedgerRow
		for v := range 7 {
			for day := range int64(3) {
				for _, f := range []string{"", "name", "phone"} {
					ids := []uint32{uint32(v), uint32(v * 10)}
					if f == "phone" {
						ids = ids[:1]
					}
					r := LedgerRow{Dim: "principal", Value: fmt.Sprintf("m:%d", v), Day: 20000 + day, RType: "customer", Field: f,
						Bitmap: bm(t, ids...), First: int64(v) + day, Last: int64(v) + day + 1}
					want = append(want, r)
					if _, err := s.db.ExecContext(ctx, `INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
						r.Dim, r.Value, r.Day, r.RType, r.Field, r.Bitmap, r.First, r.Last); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		defer func(n int) { convertBatch = n }(convertBatch)
		convertBatch = 7 // days of three cells: every batch ends inside a day
		s = openAt(t, target)
		got, err := s.LedgerRows(ctx, "principal", nil, 0, math.MaxInt32)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got)\n%s", diff)
		}
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ledger_days`).Scan(&n); err != nil || n != 21 {
			t.Errorf("%d days stored (%v), want 21", n, err)
		}
		if _, err := s.db.ExecContext(ctx, `SELECT 1 FROM ledger`); err == nil {
			t.Error("the old table is still there")
		}
	})
}
