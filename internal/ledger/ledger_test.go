package ledger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

func openStore(t testing.TB) *store.Store {
	t.Helper()
	return openStoreEngine(t, store.LedgerSQLite)
}

// engines are the store's ledger engines the scope tests run on.
var engines = []string{store.LedgerSQLite, store.LedgerPebble}

func openStoreEngine(t testing.TB, engine string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir(), store.Options{LedgerEngine: engine})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// record runs the events in path through a real engine with the ledger
// detectors and closes the ledger.
func record(t testing.TB, st *store.Store, path string, shards int, opts ledger.Options) ledger.Stats {
	t.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(ctx) }()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := detecttest.Findings(t, f, shards, l.Detectors()...); len(got) != 0 {
		t.Errorf("ledger emitted %d findings", len(got))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	return l.Stats()
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func scope(t *testing.T, st *store.Store, q ledger.Query) *ledger.Result {
	t.Helper()
	r, err := ledger.Scope(context.Background(), st, q)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type want struct {
	Total       int64
	ByType      map[string]int64
	ByField     map[string]int64
	NameOnly    int64
	First, Last time.Time
	Export      string
}

func check(t *testing.T, name string, r *ledger.Result, w want) {
	t.Helper()
	var csv bytes.Buffer
	if err := r.WriteCSV(context.Background(), &csv); err != nil {
		t.Fatal(err)
	}
	got := want{r.Total, r.ByType, r.ByField, r.NameOnly, r.First, r.Last, strings.TrimPrefix(csv.String(), "record_type,record_id\n")}
	if w.ByType == nil {
		w.ByType = map[string]int64{}
	}
	if w.ByField == nil {
		w.ByField = map[string]int64{}
	}
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("%s: (-want +got)\n%s", name, diff)
	}
}

func k(dim ledger.Dimension, v ...string) ledger.Term { return ledger.Term{Dim: dim, Values: v} }

type variant struct {
	name   string
	engine string // "": sqlite
	shards int
	opts   ledger.Options
}

var variants = []variant{
	{"default", "", 1, ledger.Options{}},
	{"3shards", "", 3, ledger.Options{}},
	{"flush-every-advance", "", 3, ledger.Options{FlushEvery: time.Nanosecond, MinInterval: -1, QueueSize: 1}},
	{"flush-every-touch", "", 2, ledger.Options{MaxDirty: 1}},
}

// engineVariants is every variant on every engine.
func engineVariants() []variant {
	var out []variant
	for _, e := range engines {
		for _, v := range variants {
			v.name, v.engine = e+"/"+v.name, e
			out = append(out, v)
		}
	}
	return out
}

func TestScopeHandmade(t *testing.T) {
	for _, v := range engineVariants() {
		t.Run(v.name, func(t *testing.T) {
			st := openStoreEngine(t, v.engine)
			stats := record(t, st, "testdata/scope.ndjson", v.shards, v.opts)
			if stats.Touches != 50 || stats.Lost != 0 || stats.DictLength != 2 {
				t.Errorf("stats %+v", stats)
			}
			k1 := want{
				Total: 5, ByType: map[string]int64{"customer": 5},
				ByField: map[string]int64{"name": 4, "address": 2}, NameOnly: 2,
				First: ts("2025-07-01T10:00:00Z"), Last: ts("2025-07-05T12:00:00Z"),
				Export: "customer,1\ncustomer,2\ncustomer,3\ncustomer,5\ncustomer,007\n",
			}
			check(t, "k1", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Key, "k1")}}), k1)
			check(t, "source cidr", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Source, "198.51.100.0/25")}}), k1)
			check(t, "network", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Network, "198.51.100.0/24")}}), k1)
			check(t, "k1 window", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Key, "k1")}, From: day("2025-07-01"), To: ts("2025-07-01T12:00:00Z")}), want{
				Total: 4, ByType: map[string]int64{"customer": 4},
				ByField: map[string]int64{"name": 4, "address": 2}, NameOnly: 2,
				First: ts("2025-07-01T10:00:00Z"), Last: ts("2025-07-01T23:59:59Z"),
				Export: "customer,1\ncustomer,2\ncustomer,3\ncustomer,007\n",
			})
			check(t, "k1 empty window", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Key, "k1")}, From: day("2025-07-02"), To: day("2025-07-04")}), want{})
			union := want{
				Total: 7, ByType: map[string]int64{"customer": 6, "address": 1},
				ByField: map[string]int64{"name": 5, "address": 3, "entrance_code": 3}, NameOnly: 2,
				First: ts("2025-07-01T10:00:00Z"), Last: ts("2025-07-05T12:00:00Z"),
				Export: "address,a:3:1\ncustomer,1\ncustomer,2\ncustomer,3\ncustomer,4\ncustomer,5\ncustomer,007\n",
			}
			check(t, "k1|k2 values", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Key, "k1", "k2")}}), union)
			check(t, "k1|k2 terms", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Key, "k1"), k(ledger.Key, "k2")}}), union)
			check(t, "k1&k2", scope(t, st, ledger.Query{Intersect: true, Terms: []ledger.Term{k(ledger.Key, "k1"), k(ledger.Key, "k2")}}), want{
				Total: 1, ByType: map[string]int64{"customer": 1},
				ByField: map[string]int64{"name": 1, "address": 1, "entrance_code": 1},
				First:   ts("2025-07-01T10:00:00Z"), Last: ts("2025-07-05T12:00:00Z"),
				Export: "customer,3\n",
			})
			check(t, "m:2&k1", scope(t, st, ledger.Query{Intersect: true, Terms: []ledger.Term{k(ledger.Principal, "m:2"), k(ledger.Key, "k1")}}), want{
				Total: 2, ByType: map[string]int64{"customer": 2},
				ByField: map[string]int64{"name": 2, "address": 2, "entrance_code": 1},
				First:   ts("2025-07-01T10:00:00Z"), Last: ts("2025-07-05T12:00:00Z"),
				Export: "customer,2\ncustomer,3\n",
			})
			check(t, "KR", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Country, "KR")}}), want{
				Total: 3, ByType: map[string]int64{"customer": 3},
				ByField: map[string]int64{"name": 3}, NameOnly: 3,
				First: ts("2025-07-01T10:00:00Z"), Last: ts("2025-07-01T10:00:00Z"),
				Export: "customer,1\ncustomer,2\ncustomer,007\n",
			})
			// token.id (a gateway token, an access key): its own records,
			// not its key's; a refused request (t4's 403) exposed nothing.
			check(t, "token t3", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Token, "t3")}}), want{
				Total: 3, ByType: map[string]int64{"customer": 2, "address": 1},
				ByField: map[string]int64{"name": 2, "address": 1, "entrance_code": 3},
				First:   ts("2025-07-02T00:00:01Z"), Last: ts("2025-07-02T00:00:02Z"),
				Export: "address,a:3:1\ncustomer,3\ncustomer,4\n",
			})
			check(t, "token t4", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Token, "t4")}}), want{
				Total: 1, ByType: map[string]int64{"customer": 1},
				First: ts("2025-07-05T12:00:00Z"), Last: ts("2025-07-05T12:00:00Z"),
				Export: "customer,5\n",
			})
			// Within: m:2's records also read with key k2 (t3's): not
			// customer 2 (k1's alone); the fields are m:2's on those
			// records, the bounds those of k2's rows.
			m2k2 := want{
				Total: 3, ByType: map[string]int64{"customer": 2, "address": 1},
				ByField: map[string]int64{"name": 2, "address": 2, "entrance_code": 3},
				First:   ts("2025-07-02T00:00:01Z"), Last: ts("2025-07-02T00:00:02Z"),
				Export: "address,a:3:1\ncustomer,3\ncustomer,4\n",
			}
			within := ledger.Term{Dim: ledger.Principal, Values: []string{"m:2"}, Within: []ledger.Term{k(ledger.Key, "k2")}}
			check(t, "m:2 within k2", scope(t, st, ledger.Query{Terms: []ledger.Term{within}}), m2k2)
			// A term's own days: k1 on 07-05 alone, whatever the query's.
			k1late := ledger.Term{Dim: ledger.Key, Values: []string{"k1"}, From: day("2025-07-05"), To: day("2025-07-05")}
			check(t, "k1 own days", scope(t, st, ledger.Query{Terms: []ledger.Term{k1late}}), want{
				Total: 1, ByType: map[string]int64{"customer": 1},
				First: ts("2025-07-05T12:00:00Z"), Last: ts("2025-07-05T12:00:00Z"),
				Export: "customer,5\n",
			})
			// Within over days that miss the records: nothing; a Within's
			// own days narrow it (k2 read only on 07-02).
			late := ledger.Term{Dim: ledger.Principal, Values: []string{"m:2"},
				Within: []ledger.Term{{Dim: ledger.Key, Values: []string{"k2"}, From: day("2025-07-03")}}}
			check(t, "m:2 within k2 from 07-03", scope(t, st, ledger.Query{Terms: []ledger.Term{late}}), want{})
			// The union of a within term and a plain one.
			check(t, "m:2 within k2, or t4", scope(t, st, ledger.Query{Terms: []ledger.Term{within, k(ledger.Token, "t4")}}), want{
				Total: 4, ByType: map[string]int64{"customer": 3, "address": 1},
				ByField: map[string]int64{"name": 2, "address": 2, "entrance_code": 3},
				First:   ts("2025-07-02T00:00:01Z"), Last: ts("2025-07-05T12:00:00Z"),
				Export: "address,a:3:1\ncustomer,3\ncustomer,4\ncustomer,5\n",
			})
			if res := scope(t, st, ledger.Query{Terms: []ledger.Term{within, k1late}}); res.Terms[1].FromDay != "2025-07-05" || res.Terms[0].Within[0].Dim != ledger.Key {
				t.Errorf("answer's terms %+v do not echo the days and within", res.Terms)
			}
			check(t, "roster and user-less ignored", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Principal, "m:9")}}), want{})

			// A second run over the same store reuses the persisted
			// dictionary: ids keep their numbers and nothing is counted twice.
			record(t, st, "testdata/scope.ndjson", v.shards, v.opts)
			check(t, "k1|k2 rerun", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Key, "k1", "k2")}}), union)
		})
	}
}

func TestScopeContract(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) { testScopeContract(t, openStoreEngine(t, eng)) })
	}
}

func testScopeContract(t *testing.T, st *store.Store) {
	record(t, st, "../../testdata/contract-events.ndjson", 3, ledger.Options{})
	check(t, "auth-2025-03", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Key, "auth-2025-03")}}), want{
		Total: 3, ByType: map[string]int64{"customer": 1, "address": 2},
		ByField: map[string]int64{"name": 3, "email": 1, "phone": 3, "address": 2, "entrance_code": 2},
		First:   ts("2025-06-24T09:00:03Z"), Last: ts("2025-06-24T09:00:05Z"),
		Export: "address,a:48213377:1\naddress,a:48213377:2\ncustomer,48213377\n",
	})
	check(t, "e:1042", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Principal, "e:1042")}, From: day("2025-06-25"), To: day("2025-06-25")}), want{
		Total: 5, ByType: map[string]int64{"customer": 5},
		ByField: map[string]int64{"name": 5, "email": 5, "phone": 5, "address": 5},
		First:   ts("2025-06-25T10:07:30Z"), Last: ts("2025-06-25T10:07:30Z"),
		Export: "customer,70000001\ncustomer,70000002\ncustomer,70000003\ncustomer,70000004\ncustomer,70000005\n",
	})
	check(t, "AS4766", scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Network, "AS4766")}}), want{
		Total: 1, ByType: map[string]int64{"customer": 1},
		ByField: map[string]int64{"name": 1, "email": 1, "phone": 1},
		First:   ts("2025-06-24T09:00:03Z"), Last: ts("2025-06-24T09:00:03Z"),
		Export: "customer,48213377\n",
	})
	var nd bytes.Buffer
	r := scope(t, st, ledger.Query{Terms: []ledger.Term{k(ledger.Source, "211.234.10.9")}})
	if err := r.WriteNDJSON(context.Background(), &nd); err != nil {
		t.Fatal(err)
	}
	wantND := `{"record_type":"address","record_id":"a:48213377:1"}
{"record_type":"address","record_id":"a:48213377:2"}
{"record_type":"customer","record_id":"48213377"}
`
	if nd.String() != wantND {
		t.Errorf("ndjson:\n%s", nd.String())
	}
}

func TestScopeErrors(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	for _, q := range []ledger.Query{
		{},
		{Terms: []ledger.Term{{Dim: "nope", Values: []string{"x"}}}},
		{Terms: []ledger.Term{{Dim: ledger.Key}}},
		{Terms: []ledger.Term{k(ledger.Source, "1.2.3.4/99")}},
		{Terms: []ledger.Term{k(ledger.Key, "k")}, From: day("2025-01-02"), To: day("2025-01-01")},
		{Terms: []ledger.Term{{Dim: ledger.Key, Values: []string{"k"}, Within: []ledger.Term{{Dim: "nope", Values: []string{"x"}}}}}},
		{Terms: []ledger.Term{{Dim: ledger.Key, Values: []string{"k"}, Within: []ledger.Term{
			{Dim: ledger.Key, Values: []string{"k"}, Within: []ledger.Term{k(ledger.Key, "k")}}}}}},
	} {
		if _, err := ledger.Scope(ctx, st, q); err == nil {
			t.Errorf("%+v: no error", q)
		}
	}
}

func TestDict(t *testing.T) {
	d := ledger.NewDict()
	a, _ := d.ID("a:1")
	b, _ := d.ID("007")
	a2, _ := d.ID("a:1")
	if a != ledger.DictBase || b != ledger.DictBase+1 || a2 != a {
		t.Fatalf("ids %d %d %d", a, b, a2)
	}
	if n, ok := d.Name(b); !ok || n != "007" {
		t.Fatalf("Name(%d) = %q %v", b, n, ok)
	}
	d2 := ledger.NewDict()
	if err := d2.Load([]store.LedgerDictEntry{{ID: ledger.DictBase + 1, RID: "007"}, {ID: ledger.DictBase, RID: "a:1"}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := d2.ID("new"); c != ledger.DictBase+2 {
		t.Fatalf("next id %d", c)
	}
	if err := ledger.NewDict().Load([]store.LedgerDictEntry{{ID: ledger.DictBase + 1, RID: "x"}}); err == nil {
		t.Fatal("gap accepted")
	}
}

func TestKeyDoesNotAllocate(t *testing.T) {
	l := ledger.New(nil, nil, ledger.Options{})
	ev := &event.Event{Dataset: event.DatasetGateway, User: event.User{ID: "m:1"}, Token: event.Token{KeyID: "k"},
		Records: event.Records{Type: "customer", IDs: []string{"1"}}}
	ev.Source.IP = mustAddr("203.0.113.9")
	ev.Source.Country = "KR"
	for _, d := range l.Detectors() {
		d.Key(ev)
		if n := testing.AllocsPerRun(100, func() { d.Key(ev) }); n != 0 {
			t.Errorf("%s: %v allocs", d.Name(), n)
		}
	}
	_ = engine.EndOfTime
}

// A mark passed through the engine is reported durable once every shard's
// state up to it is stored — long before the ledger's own flush interval.
func TestMarkMakesStateDurable(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	durable := make(chan uint64, 4)
	l, err := ledger.Open(ctx, st, ledger.Options{FlushEvery: 24 * time.Hour, OnDurable: func(m uint64) { durable <- m }})
	if err != nil {
		t.Fatal(err)
	}
	go l.Run(ctx)
	eng, err := engine.New(engine.Options{Detectors: l.Detectors(), Shards: 3})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range eng.Output() {
		}
	}()
	go eng.Run(ctx)
	var evs []event.Event
	for i := range 50 {
		evs = append(evs, event.Event{Time: ts("2025-06-24T09:00:00Z").Add(time.Duration(i) * time.Second),
			Dataset: event.DatasetGateway, Action: "read", User: event.User{ID: fmt.Sprintf("m:%d", i%7)},
			Records: event.Records{Type: "customer", IDs: []string{strconv.Itoa(i)}}})
	}
	if err := eng.Submit(ctx, engine.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Mark(ctx, 42); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-durable:
		if m != 42 || l.Durable() != 42 {
			t.Fatalf("durable mark %d (Durable %d), want 42", m, l.Durable())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the mark never became durable")
	}
	// Everything submitted before the mark is in the store now.
	r := scope(t, st, ledger.Query{Terms: []ledger.Term{{Dim: ledger.Principal, Values: []string{"m:0", "m:1", "m:2", "m:3", "m:4", "m:5", "m:6"}}}})
	if r.Total != 50 {
		t.Errorf("stored %d records before the flush interval, want 50", r.Total)
	}
	eng.Close()
	l.Close()
}

// OnFlush hears of every stored batch: as many calls as committed
// batches, their rows adding up to the rows merged.
func TestOnFlush(t *testing.T) {
	st := openStore(t)
	var calls, rows int64
	stats := record(t, st, "../../testdata/contract-events.ndjson", 3, ledger.Options{OnFlush: func(took time.Duration, n int) {
		if took < 0 {
			t.Errorf("negative flush time %s", took)
		}
		calls++
		rows += int64(n)
	}})
	if calls == 0 || calls != stats.Batches || rows != stats.Rows {
		t.Errorf("OnFlush: %d calls, %d rows; stats %d batches, %d rows", calls, rows, stats.Batches, stats.Rows)
	}
}

// Scope answers are the same whether the dictionary remembers a handful
// of ids or all of them: events with many non-integer record ids, met
// again long after, through a real engine (several shards numbering
// concurrently, frequent hand-offs), scoped per principal, per token and
// over everything.
func TestScopeWithSmallDictionary(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var b strings.Builder
	var pool []string
	at := day("2025-07-01")
	for i := range 3000 {
		var ids []string
		for range 1 + r.IntN(4) {
			if len(pool) == 0 || r.IntN(3) == 0 {
				pool = append(pool, fmt.Sprintf("o:%d:%d", 1000+len(pool)/2, len(pool)%2))
				ids = append(ids, pool[len(pool)-1])
			} else {
				ids = append(ids, pool[r.IntN(len(pool))])
			}
		}
		if r.IntN(10) == 0 {
			ids = append(ids, fmt.Sprint(r.IntN(50)))
		}
		q, _ := json.Marshal(ids)
		fmt.Fprintf(&b, `{"@timestamp":%q,"event":{"dataset":"gateway.access","action":"member.read","outcome":"success"},"user":{"id":"m:%d"},"token":{"id":"t%d","key_id":"k1"},"source":{"ip":"198.51.100.%d"},"records":{"type":"order","ids":%s,"fields":["name"]}}`+"\n",
			at.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), i%13, i%29, i%7, q)
	}
	path := filepath.Join(t.TempDir(), "orders.ndjson")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	small := openStore(t)
	st := record(t, small, path, 4, ledger.Options{MaxDirty: 40, Dict: ledger.DictOptions{CacheEntries: 4, FilterBytes: 64}})
	if st.DictLookups == 0 {
		t.Fatal("the small dictionary never asked the store")
	}
	full := openStore(t)
	record(t, full, path, 4, ledger.Options{MaxDirty: 40})
	export := func(s *store.Store, q ledger.Query) string {
		t.Helper()
		r := scope(t, s, q)
		var out bytes.Buffer
		if err := r.WriteCSV(context.Background(), &out); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(out.String(), "\n")
		slices.Sort(lines)
		return fmt.Sprint(r.Total, r.ByField, strings.Join(lines, "\n"))
	}
	queries := []ledger.Query{{Terms: []ledger.Term{{Dim: ledger.Key, Values: []string{"k1"}}}}}
	for i := range 13 {
		queries = append(queries, ledger.Query{Terms: []ledger.Term{{Dim: ledger.Principal, Values: []string{fmt.Sprintf("m:%d", i)}}}})
	}
	for i := range 29 {
		queries = append(queries, ledger.Query{Terms: []ledger.Term{{Dim: ledger.Token, Values: []string{fmt.Sprintf("t%d", i)}}}})
	}
	for _, q := range queries {
		if got, want := export(small, q), export(full, q); got != want {
			t.Fatalf("%+v: small dictionary\n%.300s\nfull dictionary\n%.300s", q.Terms, got, want)
		}
	}
}
