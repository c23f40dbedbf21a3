package ledger_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

func TestCSVField(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"70000003", "70000003"},
		{"customer", "customer"},
		{"a b", "a b"},
		{"=HYPERLINK(\"http://evil\",\"x\")", `"'=HYPERLINK(""http://evil"",""x"")"`},
		{"=1+1", `"'=1+1"`},
		{"+1", `"'+1"`},
		{"-5", `"'-5"`},
		{"@SUM(A1)", `"'@SUM(A1)"`},
		{"\t=1", "\"'\t=1\""},
		{"\r=1", "\"'\r=1\""},
		{"a=1", "a=1"}, // only at the start of the cell
		{"a,=1", `"a,=1"`},
		{"a;=1", `"a;=1"`}, // the separator of some locales
		{"a\t=1", "\"a\t=1\""},
		{`say "hi"`, `"say ""hi"""`},
		{"two\nlines", "\"two\nlines\""},
		{" lead", `" lead"`},
		{"trail ", `"trail "`},
		{"'=1", "'=1"}, // already text to a spreadsheet
	} {
		if got := ledger.CSVField(tc.in); got != tc.want {
			t.Errorf("CSVField(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzCSVField: whatever the value, the cell is one RFC 4180 field that
// reads back as the value (with a single quote before a formula
// character), and never begins with a formula character.
func FuzzCSVField(f *testing.F) {
	for _, s := range []string{"", "=1+1", "-5", "@x", "\t", "\r\n", `"`, "a,b", "a;=b", " x "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cell := ledger.CSVField(s)
		recs, err := csv.NewReader(strings.NewReader("x," + cell + "\n")).ReadAll()
		if err != nil || len(recs) != 1 || len(recs[0]) != 2 {
			t.Fatalf("CSVField(%q) = %q: %d records, %v", s, cell, len(recs), err)
		}
		got := recs[0][1]
		want := s
		if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
			want = "'" + s
		}
		// encoding/csv reads a quoted \r\n as \n.
		if want = strings.ReplaceAll(want, "\r\n", "\n"); got != want {
			t.Fatalf("CSVField(%q) = %q reads back as %q, want %q", s, cell, got, want)
		}
		if got != "" && strings.IndexByte("=+-@\t\r", got[0]) >= 0 {
			t.Fatalf("CSVField(%q) = %q: the cell begins with %q", s, cell, got[0])
		}
	})
}

// rowsReader is a ledger with one key, "k", that touched records of type
// rtype: the numbers in ids and the names in dict.
type rowsReader struct {
	rtype string
	ids   []uint32
	dict  map[uint32]string
}

func (r rowsReader) LedgerRows(_ context.Context, dim string, values []string, _, _ int64) ([]store.LedgerRow, error) {
	if dim != string(ledger.Key) || len(values) != 1 || values[0] != "k" {
		return nil, nil
	}
	b, err := roaring.BitmapOf(r.ids...).ToBytes()
	if err != nil {
		return nil, err
	}
	now := time.Date(2025, 6, 25, 0, 0, 0, 0, time.UTC)
	return []store.LedgerRow{{Dim: dim, Value: "k", Day: ledger.Day(now), RType: r.rtype, Bitmap: b,
		First: now.UnixNano(), Last: now.UnixNano()}}, nil
}

func (rowsReader) LedgerValues(context.Context, string, int64, int64) ([]string, error) {
	return nil, nil
}

func (r rowsReader) LedgerDictNames(_ context.Context, ids []uint32) (map[uint32]string, error) {
	out := map[uint32]string{}
	for _, id := range ids {
		if n, ok := r.dict[id]; ok {
			out[id] = n
		}
	}
	return out, nil
}

// Record ids and types come from events: an export opened in a
// spreadsheet runs none of them as a formula.
func TestWriteCSVNeutralisesFormulas(t *testing.T) {
	rd := rowsReader{rtype: "=cmd|' /C calc'!A0", ids: []uint32{7, ledger.DictBase, ledger.DictBase + 1},
		dict: map[uint32]string{ledger.DictBase: `=HYPERLINK("http://evil","x")`, ledger.DictBase + 1: "@SUM(1)"}}
	res, err := ledger.Scope(context.Background(), rd, ledger.Query{Terms: []ledger.Term{{Dim: ledger.Key, Values: []string{"k"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := res.WriteCSV(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	want := "record_type,record_id\n" +
		`"'=cmd|' /C calc'!A0",7` + "\n" +
		`"'=cmd|' /C calc'!A0","'=HYPERLINK(""http://evil"",""x"")"` + "\n" +
		`"'=cmd|' /C calc'!A0","'@SUM(1)"` + "\n"
	if b.String() != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", b.String(), want)
	}
}

// A query the ledger cannot answer as asked is ErrInvalidQuery (the API
// answers 400), not a failure of the ledger.
func TestScopeInvalidQuery(t *testing.T) {
	rd := rowsReader{rtype: "customer", ids: []uint32{1}}
	for name, q := range map[string]ledger.Query{
		"no terms":      {},
		"bad prefix":    {Terms: []ledger.Term{{Dim: ledger.Source, Values: []string{"10.0.0.0/99"}}}},
		"bad dimension": {Terms: []ledger.Term{{Dim: "planet", Values: []string{"x"}}}},
		"no values":     {Terms: []ledger.Term{{Dim: ledger.Key}}},
		"to before from": {Terms: []ledger.Term{{Dim: ledger.Key, Values: []string{"k"}}},
			From: time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := ledger.Scope(context.Background(), rd, q); !errors.Is(err, ledger.ErrInvalidQuery) {
			t.Errorf("%s: %v, want ErrInvalidQuery", name, err)
		}
	}
}
