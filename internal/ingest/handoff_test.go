package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/spool"
)

// decodeLikeAPI decodes body as the API's validation does (input index
// 7, lines after notAfter rejected): the events it hands to the spool.
func decodeLikeAPI(t testing.TB, body []byte, notAfter time.Time) []event.Event {
	t.Helper()
	rd, err := defaultInputs.Open("ecs", bytes.NewReader(body), 7)
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	for {
		var ev event.Event
		err := rd.Next(&ev)
		var le *decode.LineError
		switch {
		case err == nil && !notAfter.IsZero() && ev.Time.After(notAfter):
		case err == nil:
			evs = append(evs, ev)
		case errors.As(err, &le):
		case errors.Is(err, io.EOF):
			return evs
		default:
			t.Fatal(err)
		}
	}
}

// consume runs the consumer until it has handed over want events.
func consume(t *testing.T, in *Ingester, want int) *recordingPipeline {
	t.Helper()
	p := &recordingPipeline{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx, p) }()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		p.mu.Lock()
		n := len(p.events)
		p.mu.Unlock()
		if n >= want {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.events) != want {
		t.Fatalf("%d events consumed, want %d", len(p.events), want)
	}
	return p
}

func handOffLine(i int, ts string) string {
	return fmt.Sprintf(`{"@timestamp":%q,"event":{"id":"e-%d","dataset":"gateway.access","action":"read"},"user":{"id":"u-%d"},"source":{"ip":"10.0.0.%d"}}`, ts, i, i%7, i%250) + "\n"
}

// A request stored with its decoded events (api.Stored.Events) reaches the
// pipeline exactly as the same request stored without them, whose body the
// consumer decodes: same events, same input index (the spool offset), same
// lines, rejected and too-late lines left out, in batches of the
// pipeline's size.
func TestHandOffEqualsDecoding(t *testing.T) {
	notAfter := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	many := strings.Builder{}
	for i := range 40 { // more than recordingPipeline's batch of 16
		many.WriteString(handOffLine(i, "2026-01-01T00:00:00Z"))
	}
	cases := []struct {
		name     string
		body     string
		notAfter time.Time
	}{
		{"one", handOffLine(1, "2026-01-01T00:00:00Z"), time.Time{}},
		{"batches", many.String(), time.Time{}},
		{"rejected lines", handOffLine(1, "2026-01-01T00:00:00Z") + "{not json\n" + `{"event":{}}` + "\n" + handOffLine(2, "2026-01-01T00:00:01Z"), time.Time{}},
		{"after not-after", handOffLine(1, "2026-01-01T00:00:00Z") + handOffLine(2, "2026-01-03T00:00:00Z") + handOffLine(3, "2026-01-01T00:00:02Z"), notAfter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := decodeLikeAPI(t, []byte(tc.body), tc.notAfter)
			run := func(handOff bool) []event.Event {
				in, err := Open(Options{Spool: spool.Options{Dir: t.TempDir(), NoSync: true}})
				if err != nil {
					t.Fatal(err)
				}
				defer in.Close()
				// A first record without events, so offsets and input
				// indexes differ from the API's.
				if _, err := in.Append(t.Context(), api.Stored{Scope: "tok-1", Body: []byte(handOffLine(0, "2026-01-01T00:00:00Z"))}); err != nil {
					t.Fatal(err)
				}
				req := api.Stored{Scope: "tok-1", Key: "k", Body: []byte(tc.body), NotAfter: tc.notAfter}
				if handOff {
					req.Events = append([]event.Event(nil), evs...)
				}
				if _, err := in.Append(t.Context(), req); err != nil {
					t.Fatal(err)
				}
				return consume(t, in, 1+len(evs)).events[1:]
			}
			decoded, handed := run(false), run(true)
			if len(decoded) == 0 || decoded[0].Input == 7 {
				t.Fatalf("decoded events %+v", decoded)
			}
			if !reflect.DeepEqual(decoded, handed) {
				t.Errorf("handed over:\n%+v\ndecoded from the spool:\n%+v", handed, decoded)
			}
		})
	}
}

// The consumer feeds a record from the events stored with it, not from
// its body, while at most HandOffEvents wait; past that, and for records
// stored without events, it decodes the body.
func TestHandOffUsedWithinBound(t *testing.T) {
	body := []byte(handOffLine(1, "2026-01-01T00:00:00Z") + handOffLine(2, "2026-01-01T00:00:00Z"))
	marked := func() []event.Event {
		evs := decodeLikeAPI(t, body, time.Time{})
		for i := range evs {
			evs[i].UserAgent = "handed-over" // tells which way the events came
		}
		return evs
	}
	for _, tc := range []struct {
		name   string
		bound  int
		handed []bool // per request: fed from its events
	}{
		{"default", 0, []bool{true, true, true}},
		{"bound of 4", 4, []bool{true, true, false}},
		{"bound of 1", 1, []bool{false, false, false}},
		{"none", -1, []bool{false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := Open(Options{Spool: spool.Options{Dir: t.TempDir(), NoSync: true}, HandOffEvents: tc.bound})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			for range tc.handed {
				if _, err := in.Append(t.Context(), api.Stored{Body: body, Events: marked()}); err != nil {
					t.Fatal(err)
				}
			}
			p := consume(t, in, 2*len(tc.handed))
			for i, want := range tc.handed {
				if got := p.events[2*i].UserAgent == "handed-over"; got != want {
					t.Errorf("request %d fed from its events: %v, want %v", i, got, want)
				}
			}
			if in.handEvents != 0 || len(in.handed) != 0 {
				t.Errorf("%d events of %d records still held after consumption", in.handEvents, len(in.handed))
			}
		})
	}
}

// A request whose append failed was not acknowledged; its offset is given
// to the next record stored, which must be fed from what was stored there,
// never from the failed request's events.
func TestHandOffOfFailedAppendDropped(t *testing.T) {
	var full atomic.Bool
	in, err := Open(Options{Spool: spool.Options{Dir: t.TempDir(), FS: faultyFS{full: &full}}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	failed := []byte(handOffLine(1, "2026-01-01T00:00:00Z"))
	full.Store(true)
	if _, err := in.Append(t.Context(), api.Stored{Body: failed, Events: decodeLikeAPI(t, failed, time.Time{})}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("append on a full disk: %v", err)
	}
	full.Store(false)
	stored := []byte(handOffLine(2, "2026-01-01T00:00:00Z"))
	if _, err := in.Append(t.Context(), api.Stored{Scope: tailScope, Key: "tail:f:1:0-100", Body: stored}); err != nil {
		t.Fatal(err)
	}
	p := consume(t, in, 1)
	if got := p.events[0].ID; got != "e-2" {
		t.Errorf("the consumer was fed event %q, want e-2 (the record stored)", got)
	}
}

// countingPipeline counts what the consumer hands it, and closes full once
// it has been handed want events.
type countingPipeline struct {
	n    int64
	want int64
	full chan struct{}
}

func (p *countingPipeline) NewBatch() []event.Event { return make([]event.Event, 0, 512) }
func (p *countingPipeline) SubmitFrom(_ context.Context, _ string, _ time.Time, evs []event.Event) error {
	if p.n += int64(len(evs)); p.n == p.want {
		close(p.full)
	}
	return nil
}
func (p *countingPipeline) Mark(context.Context, uint64) error       { return nil }
func (p *countingPipeline) Checkpoint(context.Context, uint64) error { return nil }

// BenchmarkConsume is the spool consumer's cost per event (ns/event) for
// requests of about 1,000 contract events: decoding each stored body
// ("decode", as after a restart) or feeding the events the API decoded
// when it validated the request ("hand-off", all of them held). The
// appends are not timed.
func BenchmarkConsume(b *testing.B) {
	line, err := os.ReadFile("../../testdata/contract-events.ndjson")
	if err != nil {
		b.Fatal(err)
	}
	var body []byte
	for bytes.Count(body, []byte("\n")) < 1000 {
		body = append(body, line...)
	}
	n := bytes.Count(body, []byte("\n"))
	for _, handOff := range []bool{false, true} {
		name := map[bool]string{false: "decode", true: "hand-off"}[handOff]
		b.Run(name, func(b *testing.B) {
			const perRound = 20
			evs := decodeLikeAPI(b, body, time.Time{})
			b.ReportAllocs()
			b.SetBytes(int64(perRound * len(body)))
			for b.Loop() {
				b.StopTimer()
				in, err := Open(Options{Spool: spool.Options{Dir: b.TempDir(), NoSync: true}, HandOffEvents: perRound * len(evs)})
				if err != nil {
					b.Fatal(err)
				}
				for range perRound {
					req := api.Stored{Body: body}
					if handOff {
						req.Events = slices.Clone(evs)
					}
					if _, err := in.Append(b.Context(), req); err != nil {
						b.Fatal(err)
					}
				}
				p := &countingPipeline{want: int64(perRound * len(evs)), full: make(chan struct{})}
				ctx, cancel := context.WithCancel(b.Context())
				done := make(chan error, 1)
				b.StartTimer()
				go func() { done <- in.Run(ctx, p) }()
				<-p.full
				b.StopTimer()
				cancel()
				<-done
				in.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perRound*n), "ns/event")
		})
	}
}
