package ledger

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// keepSink keeps what the writer merges: each key's records, as a string.
type keepSink struct {
	mu   sync.Mutex
	rows map[string]string
	dict []store.LedgerDictEntry
}

func (k *keepSink) MergeLedger(_ context.Context, dict []store.LedgerDictEntry, rows []store.LedgerRow) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dict = append(k.dict, dict...)
	for _, r := range rows {
		bm := roaring.New()
		if _, err := bm.FromBuffer(r.Bitmap); err != nil {
			return err
		}
		key := fmt.Sprintf("%s|%s|%d|%s|%s", r.Dim, r.Value, r.Day, r.RType, r.Field)
		if _, dup := k.rows[key]; dup {
			return fmt.Errorf("row %s merged twice", key)
		}
		k.rows[key] = fmt.Sprintf("%v %d–%d", bm.ToArray(), r.First, r.Last)
	}
	return nil
}

// TestNumber: numbering a batch once (Number, as the pipeline does before
// routing) records exactly what the shards record numbering each id
// themselves, numbers only the ids of events the ledger records (not a
// failed request's, a drill's or one without a principal), and leaves no
// numbers on those events.
func TestNumber(t *testing.T) {
	at := time.Date(2025, 7, 1, 10, 0, 0, 0, time.UTC)
	ev := func(user string, outcome event.Outcome, drill bool, ids ...string) event.Event {
		return event.Event{Time: at, Dataset: "gateway.access", Outcome: outcome, Drill: drill,
			User:    event.User{ID: user},
			Token:   event.Token{ID: "t-" + user, KeyID: "k1"},
			Source:  event.Source{IP: netip.MustParseAddr("198.51.100.7"), Country: "KR"},
			Records: event.Records{Type: "order", IDs: ids, Fields: []string{"order_history"}}}
	}
	batch := func() []event.Event {
		return []event.Event{
			ev("c:1", event.OutcomeSuccess, false, "o:1:1", "o:1:2", "17"),
			ev("c:2", event.OutcomeFailure, false, "o:2:1"), // refused: exposed nothing
			ev("c:3", event.OutcomeUnset, true, "o:3:1"),    // a drill's
			ev("", event.OutcomeSuccess, false, "o:4:1"),    // no principal: not activity
			ev("c:1", event.OutcomeUnknown, false, "o:1:2", "o:1:3"),
			ev("c:5", event.OutcomeSuccess, false),
		}
	}
	run := func(number bool) (*keepSink, []event.Event) {
		sink := &keepSink{rows: map[string]string{}}
		l := New(sink, nil, Options{})
		done := make(chan error, 1)
		go func() { done <- l.Run(context.Background()) }()
		evs := batch()
		if number {
			evs[1].Records.Numbers = []uint32{99} // stale: cleared
			l.Number(evs)
		}
		var shards []*shard
		var dets []*Detector
		for _, dim := range Dimensions {
			d := l.Detector(dim)
			dets, shards = append(dets, d), append(shards, d.NewShard().(*shard))
		}
		for i := range evs {
			for j, d := range dets {
				if k, ok := d.Key(&evs[i]); ok {
					shards[j].Process(nil, k, &evs[i])
				}
			}
		}
		for _, s := range shards {
			s.handoff()
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return sink, evs
	}
	each, _ := run(false)
	once, evs := run(true)
	if fmt.Sprint(once.rows) != fmt.Sprint(each.rows) {
		t.Errorf("rows numbered once:\n%v\nnumbered by each shard:\n%v", once.rows, each.rows)
	}
	rids := func(d []store.LedgerDictEntry) []string {
		var out []string
		for _, e := range d {
			out = append(out, e.RID)
		}
		slices.Sort(out)
		return out
	}
	if got, want := rids(once.dict), []string{"o:1:1", "o:1:2", "o:1:3"}; !slices.Equal(got, want) {
		t.Errorf("dictionary %v, want %v", got, want)
	}
	if got, want := rids(each.dict), rids(once.dict); !slices.Equal(got, want) {
		t.Errorf("dictionary numbered by the shards %v, once %v", got, want)
	}
	for i, n := range []int{3, -1, -1, -1, 2, -1} {
		got := evs[i].Records.Numbers
		if n < 0 && got != nil || n >= 0 && len(got) != n {
			t.Errorf("event %d: numbers %v, want %d", i, got, n)
		}
	}
	if got := evs[0].Records.Numbers[2]; got != 17 {
		t.Errorf("a small numeric id is numbered %d, want 17", got)
	}
}
