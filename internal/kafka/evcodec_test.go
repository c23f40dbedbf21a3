package kafka

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/sim"
)

// fill sets every field of v (recursively) to a random value: strings,
// lists (nil, empty or not), times (zero, the epoch, the extremes the
// decoders allow, any), addresses of every form. It walks the type by
// reflection, so a field added to event.Event is filled too, and the
// round trip below fails until the binary form carries it.
func fill(t *testing.T, rng *rand.Rand, v reflect.Value) {
	t.Helper()
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		times := []time.Time{{}, time.Unix(0, 0).UTC(), event.MinTime(), event.MaxTime(),
			time.Unix(rng.Int64N(1<<34)-1<<33, rng.Int64N(1e9)).UTC()}
		v.Set(reflect.ValueOf(times[rng.IntN(len(times))]))
		return
	case reflect.TypeFor[netip.Addr]():
		addrs := []netip.Addr{{}, netip.AddrFrom4([4]byte{10, 1, byte(rng.IntN(256)), 7}),
			netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:192.0.2.1")}
		v.Set(reflect.ValueOf(addrs[rng.IntN(len(addrs))]))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(t, rng, v.Field(i))
		}
	case reflect.String:
		strs := []string{"", "gateway.access", "é\x00\xff", string(bytes.Repeat([]byte("x"), 70+rng.IntN(200)))}
		v.SetString(strs[rng.IntN(len(strs))])
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 1)
	case reflect.Uint8, reflect.Uint32, reflect.Uint64:
		v.SetUint(rng.Uint64() >> (64 - v.Type().Bits()) >> rng.IntN(v.Type().Bits()))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(rng.Uint64()) >> rng.IntN(64))
	case reflect.Float64:
		fs := []float64{0, math.Copysign(0, -1), -33.8688, 151.2093, math.Inf(1), rng.NormFloat64()}
		v.SetFloat(fs[rng.IntN(len(fs))])
	case reflect.Slice:
		switch n := rng.IntN(4) - 1; n {
		case -1:
			v.SetZero() // nil
		default:
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := range n {
				fill(t, rng, v.Index(i))
			}
		}
	default:
		t.Fatalf("fill: a field of kind %s: teach fill and appendEvent about it", v.Kind())
	}
}

// Every field of event.Event survives the binary form: random events
// (every field set at random, lists nil or not) read back equal.
func TestEventBinaryRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	er := newEventReader()
	for i := range 20000 {
		var ev event.Event
		fill(t, rng, reflect.ValueOf(&ev).Elem())
		b := appendEvent(nil, &ev)
		var got event.Event
		if err := er.read(b, &got); err != nil {
			t.Fatalf("event %d: %v\n%#v", i, err, ev)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Fatalf("event %d changed:\n got %#v\nwant %#v", i, got, ev)
		}
		for _, s := range [][]string{got.User.Roles, got.Records.IDs, got.Records.Fields, got.Identity.Roles, got.Key.Custodians} {
			if cap(s) != len(s) {
				t.Fatalf("event %d: a list of cap %d > len %d (an append would write into a shared array)", i, cap(s), len(s))
			}
		}
		if bytes.Equal(appendEvent(nil, &got), b) == false {
			t.Fatalf("event %d: re-encoding differs", i)
		}
	}
}

// What detection reads from a repartition record equals what it decoded
// from the JSON line before (the same decoder, the same enrichment): on
// the simulator's events and every contract and detector test file.
func TestEventBinaryEqualsJSON(t *testing.T) {
	var buf bytes.Buffer
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 3, Days: 2, Customers: 2000}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../testdata/*.ndjson")
	more, _ := filepath.Glob("../*/testdata/*.ndjson")
	files = append(files, more...)
	more, _ = filepath.Glob("../detect/*/testdata/*/events.ndjson")
	files = append(files, more...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	dec, er := decode.NewDecoder(), newEventReader()
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<22)
	n := 0
	for sc.Scan() {
		var want event.Event
		if dec.Decode(sc.Bytes(), &want) != nil {
			continue
		}
		var got event.Event
		if err := er.read(appendEvent(nil, &want), &got); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("line %q:\n got %#v\nwant %#v", sc.Text(), got, want)
		}
		n++
	}
	if n < 10000 || len(files) < 10 {
		t.Fatalf("only %d events from %d files", n, len(files))
	}
}

func FuzzReadEvent(f *testing.F) {
	ev := event.Event{Time: time.Unix(1700000000, 5).UTC(), Dataset: "gateway.access", Action: "read",
		User: event.User{ID: "u1", Roles: []string{"a", "b"}}, Records: event.Records{IDs: []string{"1", "o-2"}, Numbers: []uint32{}},
		Source: event.Source{IP: netip.MustParseAddr("192.0.2.1"), Located: true, Lat: 1.5}}
	f.Add(appendEvent(nil, &ev))
	f.Add(appendEvent(nil, &event.Event{}))
	f.Add([]byte{eventFormat})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		er := newEventReader()
		var ev event.Event
		if er.read(b, &ev) != nil {
			return
		}
		// Compared by their encodings: a float read from arbitrary bytes
		// may be NaN, which DeepEqual never finds equal to itself.
		var again event.Event
		enc := appendEvent(nil, &ev)
		if err := er.read(enc, &again); err != nil || !bytes.Equal(appendEvent(nil, &again), enc) {
			t.Fatalf("re-encoding changed it: %#v %#v %v", ev, again, err)
		}
	})
}

// The re-keying stage decodes and enriches each input event once; every
// copy of it in the repartition topics carries that event, and the
// detection partition reads it back equal to what decoding the JSON line
// and enriching it gives — without decoding or enriching it again (before
// version 4 each copy was decoded and enriched once more). A record with
// a version 3 header (a worker before the change) is still read as JSON.
func TestRepartitionCopyCarriesTheDecodedEvent(t *testing.T) {
	var buf bytes.Buffer
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 5, Days: 1, Customers: 300}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	enriched := 0
	enrich := func(ev *event.Event) {
		enriched++
		if ev.Source.Country == "" && ev.Source.IP.IsValid() {
			ev.Source.Country = "ZZ"
		}
	}
	kinds := []event.EntityKind{event.EntityPrincipal, event.EntitySource}
	w := &Worker{opts: Options{Logger: slog.New(slog.DiscardHandler), Lateness: time.Minute, Prefix: "in",
		Detectors: func() []engine.Detector { return nil }, Ledger: true, Enrich: enrich},
		kinds: kinds, counts: map[event.EntityKind]int32{event.EntityPrincipal: 3, event.EntitySource: 2}}
	rk := w.newRekeyer()
	d := &detector{w: w, dec: decode.NewDecoder(), er: newEventReader()}
	ref := decode.NewDecoder()
	st := &inState{}
	events, copies := 0, 0
	for i, line := range bytes.Split(buf.Bytes(), []byte("\n")) {
		var want event.Event
		if ref.Decode(line, &want) != nil {
			continue
		}
		enrich(&want)
		enriched--
		events++
		before := enriched
		out := rk.records(&kgo.Record{Partition: 0, Offset: int64(i), Value: line, Timestamp: time.Now()}, st, nil)
		if enriched != before+1 {
			t.Fatalf("line %d: enriched %d times by the re-keying stage, want once", i, enriched-before)
		}
		for _, o := range out {
			var pr prepared
			d.prepare(&pr, o)
			if pr.herr != nil || pr.h.Flags == 0 {
				continue
			}
			copies++
			if !pr.hasEv || !reflect.DeepEqual(pr.ev, want) {
				t.Fatalf("line %d, copy on %s/%d: %v\n got %#v\nwant %#v", i, o.Topic, o.Partition, pr.evErr, pr.ev, want)
			}
			// The same copy as a worker of version 3 wrote it.
			v3 := *o
			v3.Value = line
			v3.Headers = []kgo.RecordHeader{{Key: headerKey, Value: append([]byte{3}, o.Headers[0].Value[1:]...)}}
			var pr3 prepared
			if d.prepare(&pr3, &v3); !pr3.hasEv || !reflect.DeepEqual(pr3.ev, want) || pr3.h.version != 3 {
				t.Fatalf("line %d, version 3 copy: %v\n got %#v\nwant %#v", i, pr3.evErr, pr3.ev, want)
			}
			enriched-- // the version 3 copy was enriched on reading
		}
		if enriched != before+1 {
			t.Fatalf("line %d: enriched %d times in all, want once (detection enriched a version 4 copy again)", i, enriched-before)
		}
	}
	if events < 1000 || copies < events {
		t.Fatalf("%d events, %d copies", events, copies)
	}
}

// A poll's records are prepared in place, in the poll's slice: returned by
// value, a prepared record (an event.Event and more) was allocated on the
// heap for every record, ticks included.
func TestPrepareInPlace(t *testing.T) {
	w := &Worker{opts: Options{Logger: slog.New(slog.DiscardHandler), Prefix: "in"}, kinds: []event.EntityKind{event.EntityPrincipal}}
	d := &detector{w: w, dec: decode.NewDecoder(), er: newEventReader()}
	tick := &kgo.Record{Topic: "in-by-principal", Headers: []kgo.RecordHeader{{Key: headerKey,
		Value: header{Watermark: time.Unix(1700000000, 0).UTC()}.append(nil)}}}
	recs := make([]prepared, 1)
	if n := testing.AllocsPerRun(100, func() { d.prepare(&recs[0], tick) }); n != 0 {
		t.Fatalf("preparing a tick allocates %v times, want 0", n)
	}
	if recs[0].herr != nil || recs[0].r != tick || recs[0].h.Flags != 0 {
		t.Fatalf("prepared %+v", recs[0])
	}
}
