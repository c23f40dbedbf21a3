package faulttrial

import (
	"context"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// TestReadStoreLedgerByRecordID checks the trial's ledger comparison on
// both engines: cells are compared by record id through the dictionary,
// whose numbers may differ between runs, so a record stored under another
// record's number, or a number without its dictionary entry, is a
// difference even when every cell holds as many records.
func TestReadStoreLedgerByRecordID(t *testing.T) {
	const a, b = ledger.DictBase, ledger.DictBase + 1
	row := func(ids ...uint32) store.LedgerRow {
		bm := roaring.BitmapOf(ids...)
		buf, err := bm.ToBytes()
		if err != nil {
			t.Fatal(err)
		}
		return store.LedgerRow{Dim: "principal", Value: "customer:1", Day: 20000, RType: "order", Bitmap: buf, First: 10, Last: 20}
	}
	type stored struct {
		dict []store.LedgerDictEntry
		rows []store.LedgerRow
	}
	read := func(t *testing.T, engine string, s stored) outcome {
		dir := t.TempDir()
		st, err := store.Open(context.Background(), dir, store.Options{LedgerEngine: engine})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.MergeLedger(context.Background(), s.dict, s.rows); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		var o outcome
		readStore(t, dir, &o)
		return o
	}
	clean := stored{dict: []store.LedgerDictEntry{{ID: a, RID: "o:1:0"}, {ID: b, RID: "o:1:1"}}, rows: []store.LedgerRow{row(7, a, b)}}
	for _, engine := range []string{store.LedgerSQLite, store.LedgerPebble} {
		t.Run(engine, func(t *testing.T) {
			want := read(t, engine, clean)
			for _, c := range []struct {
				name      string
				run       stored
				same      bool
				problems  int
				dictEqual bool
			}{
				{"numbered the other way", stored{dict: []store.LedgerDictEntry{{ID: a, RID: "o:1:1"}, {ID: b, RID: "o:1:0"}}, rows: []store.LedgerRow{row(7, a, b)}}, true, 0, true},
				{"another record, as many", stored{dict: []store.LedgerDictEntry{{ID: a, RID: "o:1:0"}, {ID: b, RID: "o:1:1"}}, rows: []store.LedgerRow{row(8, a, b)}}, false, 0, true},
				{"another record's number", stored{dict: []store.LedgerDictEntry{{ID: a, RID: "o:1:0"}, {ID: b, RID: "o:1:1"}, {ID: b + 1, RID: "o:1:2"}}, rows: []store.LedgerRow{row(7, a, b+1)}}, false, 0, false},
				{"entry lost", stored{dict: []store.LedgerDictEntry{{ID: a, RID: "o:1:0"}}, rows: []store.LedgerRow{row(7, a, b)}}, false, 1, false},
			} {
				got := read(t, engine, c.run)
				if same := strings.Join(got.ledger, "\n") == strings.Join(want.ledger, "\n"); same != c.same {
					t.Errorf("%s: ledger equal = %v, want %v:\n%v\n%v", c.name, same, c.same, want.ledger, got.ledger)
				}
				if len(got.dictErrs) != c.problems {
					t.Errorf("%s: %d dictionary problems %v, want %d", c.name, len(got.dictErrs), got.dictErrs, c.problems)
				}
				if eq := strings.Join(got.dict, " ") == strings.Join(want.dict, " "); eq != c.dictEqual {
					t.Errorf("%s: dictionaries equal = %v, want %v (%v, %v)", c.name, eq, c.dictEqual, want.dict, got.dict)
				}
			}
		})
	}
}
