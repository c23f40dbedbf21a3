package kafka

import (
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

// A producer sets an input record's timestamp (CreateTime): one stamped in
// the future must not carry that time as its arrival (header.Arrived), or
// it moves every partition engine's arrival clock there, every input
// partition looks idle and the wall advance of idle origins pushes event
// time ahead by the skew — every later event late.
func TestRekeyArrivedNotInTheFuture(t *testing.T) {
	w := &Worker{opts: Options{Logger: slog.New(slog.DiscardHandler), Lateness: time.Minute},
		kinds: []event.EntityKind{event.EntityPrincipal}, counts: map[event.EntityKind]int32{event.EntityPrincipal: 1}}
	r := &rekeyer{w: w, dec: decode.NewDecoder(), dests: map[dest]destInfo{}}
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	future := time.Now().Add(100 * 365 * 24 * time.Hour)
	for _, tc := range []struct {
		name string
		rec  *kgo.Record
	}{
		{"watermark record", &kgo.Record{Headers: []kgo.RecordHeader{{Key: WatermarkHeader, Value: []byte("2026-01-01T00:00:00Z")}}}},
	} {
		for _, ts := range []time.Time{past, future} {
			rec := *tc.rec
			rec.Timestamp = ts
			out := r.records(&rec, &inState{}, nil)
			if len(out) == 0 {
				t.Fatalf("%s: no repartition record", tc.name)
			}
			now := time.Now()
			for _, o := range out {
				h, err := parseHeader(o.Headers[0].Value)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case ts.Before(now) && !h.Arrived.Equal(ts):
					t.Errorf("%s at %v: arrived %v, want the record's timestamp", tc.name, ts, h.Arrived)
				case h.Arrived.After(now):
					t.Errorf("%s at %v: arrived %v, in the future", tc.name, ts, h.Arrived)
				}
			}
		}
	}
}
