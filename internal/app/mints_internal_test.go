package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/store"
)

// The saver stores the registry's snapshot in its own row at the
// checkpoint's mark, and restoreMints takes it only at the detectors' mark.
func TestMintCheckpointRestore(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	t0 := time.Now().UTC()
	src := mint.New(mint.Options{})
	src.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: t0})
	newSaver := newCheckpointSaver(st, log, nil, nil)
	newSaver.save(Checkpoint{Mark: 7, Shards: 1, Parts: map[string][][]byte{}, Mints: src.Snapshot()})

	for _, c := range []struct {
		mark uint64
		want int
	}{{7, 1}, {8, 0}} {
		reg := mint.New(mint.Options{})
		restoreMints(ctx, st, log, c.mark, reg)
		if reg.Len() != c.want {
			t.Errorf("mark %d: %d tokens restored, want %d", c.mark, reg.Len(), c.want)
		}
		if c.want == 1 {
			if a := reg.Verify(mint.Query{TokenID: "tok-a", KeyID: "k1", Now: t0}); a.Verdict != mint.Known {
				t.Errorf("restored registry: %+v", a)
			}
		}
	}
	// A damaged row: the registry starts empty.
	if err := st.SaveCheckpoint(ctx, store.StateCheckpoint{Name: mintCheckpointName, Mark: 9, Shards: 1, Data: []byte{1, 2, 3}, SavedAt: t0}); err != nil {
		t.Fatal(err)
	}
	reg := mint.New(mint.Options{})
	restoreMints(ctx, st, log, 9, reg)
	if reg.Len() != 0 {
		t.Errorf("damaged snapshot restored %d tokens", reg.Len())
	}
}

// Refusals become failed gateway.access events and one folded audit entry
// per flush, off the check's path; a full queue drops and says so.
func TestRefusals(t *testing.T) {
	var mu sync.Mutex
	var evs []event.Event
	var audits []map[string]any
	r := newRefusals(func(_ context.Context, b []event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		evs = append(evs, b...)
		return nil
	}, func(_ context.Context, _ time.Time, kind, _ string, detail any) error {
		mu.Lock()
		defer mu.Unlock()
		if kind != "verify_refused" {
			t.Errorf("audit kind %q", kind)
		}
		audits = append(audits, detail.(map[string]any))
		return nil
	}, slog.New(slog.DiscardHandler))
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range refusalQueue + 5 { // 5 beyond the queue: dropped
		r.Record(mint.Query{TokenID: fmt.Sprintf("forged-%d", i), KeyID: "k1", IssuedAt: t0, Source: "198.51.100.9", UserAgent: "curl/8", Now: t0},
			mint.Answer{Verdict: mint.NeverMinted})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run flushes what is queued and returns
	r.Run(ctx)
	if len(evs) != refusalQueue {
		t.Fatalf("%d events, want %d", len(evs), refusalQueue)
	}
	e := evs[0]
	if e.Dataset != event.DatasetGateway || e.Outcome != event.OutcomeFailure || e.Action != "verify.never_minted" ||
		e.Token.ID != "forged-0" || e.Token.KeyID != "k1" || e.Source.IP.String() != "198.51.100.9" || e.HTTP.StatusCode != 403 || !e.Time.Equal(t0) {
		t.Errorf("event %+v", e)
	}
	// One folded entry per flush (a flush every refusalBatch at most).
	refused, verdicts, dropped := 0, 0, uint64(0)
	for _, a := range audits {
		refused += a["refused"].(int)
		verdicts += a["by_verdict"].(map[string]int)["never_minted"]
		if d, ok := a["dropped"]; ok {
			dropped += d.(uint64)
		}
		if n := len(a["tokens"].([]string)); n > auditTokens {
			t.Errorf("an entry names %d tokens", n)
		}
	}
	if refused != refusalQueue || verdicts != refusalQueue || dropped != 5 || len(audits) > refusalQueue/refusalBatch {
		t.Errorf("%d audit entries: %d refused, %d never_minted, %d dropped", len(audits), refused, verdicts, dropped)
	}
}

// A refusal stored in the spool as a contract line decodes to the very
// event submitted directly (refusalEvent), whatever context it carried.
func TestRefusalLinesRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 123_000_000, time.UTC)
	var evs []event.Event
	for _, x := range []refusal{
		{q: mint.Query{TokenID: "forged-1", KeyID: "k1", IssuedAt: t0.Add(-time.Minute), Source: "198.51.100.9", Country: "NL", UserAgent: "python-requests/2.32", Now: t0}, v: mint.NeverMinted},
		{q: mint.Query{TokenID: "tok-a", Source: "2001:db8::7", Now: t0}, v: mint.Hijacked},
		{q: mint.Query{TokenID: "tok-b", KeyID: "k9", Source: "not an address", Now: t0}, v: mint.UnknownKey},
		{q: mint.Query{TokenID: "tok-\"quoted\"\t", Country: "KR", Now: t0}, v: mint.Revoked},
	} {
		evs = append(evs, refusalEvent(x))
	}
	body, err := refusalLines(evs)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d refusals:\n%s", len(lines), len(evs), body)
	}
	dec := decode.NewDecoder()
	for i, ln := range lines {
		var got event.Event
		if err := dec.Decode(ln, &got); err != nil {
			t.Fatalf("line %d %s: %v", i, ln, err)
		}
		want := evs[i]
		if !got.Time.Equal(want.Time) || got.Dataset != want.Dataset || got.Action != want.Action || got.Outcome != want.Outcome ||
			got.HTTP.StatusCode != want.HTTP.StatusCode || got.Token.ID != want.Token.ID || got.Token.KeyID != want.Token.KeyID ||
			!got.Token.IssuedAt.Equal(want.Token.IssuedAt) || got.Source.IP != want.Source.IP || got.Source.Country != want.Source.Country ||
			got.UserAgent != want.UserAgent {
			t.Errorf("line %d %s\ndecodes to %+v\nwant       %+v", i, ln, got, want)
		}
	}
}

// TestRefusalsBounded: the refused tokens' ids, key ids and user agents
// come from whoever sends a request through the gateway — anonymous, and
// a header holds kilobytes. A flood of refusals with a fresh long key id
// each must not make each folded audit entry (durable, chained) or each
// refusal event (detector state until its verdict) grow with them: ids
// are clamped (distinct ids stay distinct), and an entry counts at most
// auditKeys keys by name.
func TestRefusalsBounded(t *testing.T) {
	var evs []event.Event
	var size int
	r := newRefusals(func(_ context.Context, b []event.Event) error {
		evs = append(evs, b...)
		return nil
	}, func(_ context.Context, _ time.Time, _, _ string, detail any) error {
		b, err := json.Marshal(detail)
		if err != nil {
			t.Fatal(err)
		}
		size = max(size, len(b))
		return nil
	}, slog.New(slog.DiscardHandler))
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	long := strings.Repeat("x", 6000)
	for i := range refusalBatch {
		r.Record(mint.Query{TokenID: fmt.Sprintf("%s-tok-%d", long, i), KeyID: fmt.Sprintf("%s-key-%d", long, i), IssuedAt: t0,
			Source: "198.51.100.9", UserAgent: long, Now: t0}, mint.Answer{Verdict: mint.UnknownKey})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.Run(ctx)
	if size > 64<<10 {
		t.Errorf("a folded audit entry of %d bytes for %d refusals", size, refusalBatch)
	}
	ids := map[string]bool{}
	for _, e := range evs {
		if len(e.Token.ID) > maxRefusedID || len(e.Token.KeyID) > maxRefusedID || len(e.UserAgent) > maxRefusedUA {
			t.Fatalf("event with a token id of %d bytes, key id %d, user agent %d", len(e.Token.ID), len(e.Token.KeyID), len(e.UserAgent))
		}
		ids[e.Token.ID] = true
	}
	if len(ids) != refusalBatch {
		t.Errorf("%d distinct token ids after clamping, want %d", len(ids), refusalBatch)
	}
}

// Refusals recorded from many goroutines while Run flushes are each
// submitted once or counted as dropped, none lost (run with -race).
func TestRefusalsConcurrent(t *testing.T) {
	var mu sync.Mutex
	submitted, dropped := 0, uint64(0)
	r := newRefusals(func(_ context.Context, b []event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		submitted += len(b)
		return nil
	}, func(_ context.Context, _ time.Time, _, _ string, detail any) error {
		mu.Lock()
		defer mu.Unlock()
		if d, ok := detail.(map[string]any)["dropped"]; ok {
			dropped += d.(uint64)
		}
		return nil
	}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	const writers, each = 8, 3000
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r.Record(mint.Query{TokenID: fmt.Sprintf("f-%d-%d", w, i), KeyID: "k1", Now: t0}, mint.Answer{Verdict: mint.NeverMinted})
			}
		}()
	}
	wg.Wait()
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	// A drop not yet reported by a flush is still in the counter.
	if got := uint64(submitted) + dropped + r.dropped.Load(); got != writers*each {
		t.Fatalf("%d submitted + %d dropped, want %d", submitted, dropped+r.dropped.Load(), writers*each)
	}
}
