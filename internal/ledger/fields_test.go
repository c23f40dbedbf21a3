package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// rowSink keeps every merged row, ORed by key, as the store would.
type rowSink struct {
	mu   sync.Mutex
	rows map[string]*store.LedgerRow
	bms  map[string]*roaring.Bitmap
}

func (s *rowSink) MergeLedger(_ context.Context, _ []store.LedgerDictEntry, rows []store.LedgerRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		k := fmt.Sprintf("%s|%s|%d|%s|%s", r.Dim, r.Value, r.Day, r.RType, r.Field)
		bm := roaring.New()
		if _, err := bm.FromBuffer(r.Bitmap); err != nil {
			return err
		}
		if old, ok := s.rows[k]; ok {
			old.First, old.Last = min(old.First, r.First), max(old.Last, r.Last)
			s.bms[k].Or(bm)
			continue
		}
		r.Bitmap = nil
		s.rows[k] = &r
		s.bms[k] = bm
	}
	return nil
}

// TestFieldRows: a cell's field rows hold exactly the records and times of
// the events that exposed the field, whichever fields the cell's events
// share (kept with the cell's records) or do not (kept apart), and however
// often the ledger hands the cell off. The model is computed event by
// event.
func TestFieldRows(t *testing.T) {
	type ev struct {
		ids    []int
		fields []string
	}
	cases := map[string][]ev{
		"same fields every time":  {{[]int{1, 2}, []string{"name", "phone"}}, {[]int{3}, []string{"name", "phone"}}, {[]int{4}, []string{"name", "phone"}}},
		"one field dropped later": {{[]int{1, 2}, []string{"name", "phone"}}, {[]int{3}, []string{"name"}}, {[]int{4, 1}, []string{"name", "phone"}}},
		"new field later":         {{[]int{1}, []string{"name"}}, {[]int{2}, []string{"name", "address"}}, {[]int{3}, []string{"name"}}},
		"no fields first":         {{[]int{1}, nil}, {[]int{2}, []string{"name"}}, {[]int{3}, []string{"name"}}},
		"no fields later":         {{[]int{1}, []string{"name"}}, {[]int{2}, nil}, {[]int{3}, []string{"name"}}},
		"reordered, repeated and empty": {{[]int{1}, []string{"name", "phone", "name"}}, {[]int{2}, []string{"phone", "", "name"}},
			{[]int{3}, []string{"phone"}}, {[]int{4}, []string{"name", "phone"}}},
		"disjoint": {{[]int{1}, []string{"a"}}, {[]int{2}, []string{"b"}}, {[]int{3}, []string{"c"}}, {[]int{4}, []string{"a", "b", "c"}}},
	}
	for name, evs := range cases {
		for _, maxDirty := range []int{1, 2, 1 << 20} { // hand-offs after every event, every other, at the end
			t.Run(fmt.Sprintf("%s/maxdirty=%d", name, maxDirty), func(t *testing.T) {
				base := time.Date(2025, 7, 1, 10, 0, 0, 0, time.UTC)
				var in strings.Builder
				type acc struct {
					ids         map[uint32]bool
					first, last int64
				}
				want := map[string]*acc{}
				add := func(field string, ids []int, t int64) {
					a := want[field]
					if a == nil {
						a = &acc{ids: map[uint32]bool{}, first: t, last: t}
						want[field] = a
					}
					a.first, a.last = min(a.first, t), max(a.last, t)
					for _, id := range ids {
						a.ids[uint32(id)] = true
					}
				}
				for i, e := range evs {
					at := base.Add(time.Duration(i) * time.Minute)
					ids := make([]string, len(e.ids))
					for j, id := range e.ids {
						ids[j] = fmt.Sprint(id)
					}
					idsJSON, _ := json.Marshal(ids)
					fieldsJSON, _ := json.Marshal(e.fields)
					fmt.Fprintf(&in, `{"@timestamp":%q,"event":{"dataset":"gateway.access","action":"member.read","outcome":"success"},"user":{"id":"m:1"},"records":{"type":"customer","ids":%s,"fields":%s}}`+"\n",
						at.Format(time.RFC3339), idsJSON, fieldsJSON)
					add("", e.ids, at.UnixNano())
					seen := map[string]bool{}
					for _, f := range e.fields {
						if f != "" && !seen[f] {
							seen[f] = true
							add(f, e.ids, at.UnixNano())
						}
					}
				}
				sink := &rowSink{rows: map[string]*store.LedgerRow{}, bms: map[string]*roaring.Bitmap{}}
				l := ledger.New(sink, nil, ledger.Options{MaxDirty: maxDirty})
				done := make(chan error, 1)
				go func() { done <- l.Run(context.Background()) }()
				detecttest.Findings(t, strings.NewReader(in.String()), 1, l.Detector(ledger.Principal))
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				got := map[string]*acc{}
				for k, r := range sink.rows {
					a := &acc{ids: map[uint32]bool{}, first: r.First, last: r.Last}
					for _, id := range sink.bms[k].ToArray() {
						a.ids[id] = true
					}
					got[r.Field] = a
				}
				if len(got) != len(want) {
					t.Errorf("fields %v, want %v", keys(got), keys(want))
				}
				for f, w := range want {
					g := got[f]
					if g == nil {
						t.Errorf("field %q: no row", f)
						continue
					}
					if fmt.Sprint(sorted(g.ids)) != fmt.Sprint(sorted(w.ids)) || g.first != w.first || g.last != w.last {
						t.Errorf("field %q: records %v %d–%d, want %v %d–%d", f, sorted(g.ids), g.first, g.last, sorted(w.ids), w.first, w.last)
					}
				}
			})
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sorted(m map[uint32]bool) []uint32 {
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
