package token_test

import (
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// refusedEvent is a presentation the inline check refused as never
// minted (the event serve submits for it, docs/verify.md).
func refusedEvent(at time.Time, tok, kid string, ip netip.Addr) *event.Event {
	return &event.Event{Time: at, Dataset: event.DatasetGateway, Action: "verify.never_minted", Outcome: event.OutcomeFailure,
		Token: event.Token{ID: tok, KeyID: kid, IssuedAt: at.Add(-time.Hour)}, Source: event.Source{IP: ip, Country: "KR", ASN: 4766}}
}

// feed drives one shard of d as the engine would: inventory events to
// it, the rest by key, and Advance with the watermark at each event's time
// every 256 events (the lateness rule decides: no issuer stream here).
type feed struct {
	d  *token.Detector
	sh engine.Shard
	c  *engine.Context
	n  int
}

func newFeed(d *token.Detector) *feed {
	return &feed{d: d, sh: d.NewShard(), c: engine.NewTestContext(0, 1)}
}

func (f *feed) process(ev *event.Event) {
	if f.d.Broadcast(ev) {
		f.sh.Process(f.c, event.EntityKey{}, ev)
		return
	}
	k, ok := f.d.Key(ev)
	if !ok {
		panic("not keyed")
	}
	f.sh.Process(f.c, k, ev)
	if f.n++; f.n%256 == 0 {
		f.sh.(engine.Advancer).Advance(f.c, ev.Time)
	}
}

func (f *feed) advance(wm time.Time) { f.sh.(engine.Advancer).Advance(f.c, wm) }

func (f *feed) footprint() (int, int64) { return f.sh.(engine.Footprinter).Footprint() }

// neverMinted returns the token_never_minted findings of fs about key kid.
func neverMinted(fs []event.Finding, kid string) []event.Finding {
	var out []event.Finding
	for _, f := range fs {
		if f.Kind == token.KindNeverMinted && f.Entity.ID == kid {
			out = append(out, f)
		}
	}
	return out
}

// TestRefusedSprayBounded: an attacker spraying 100,000 distinct junk
// token ids naming a live key, each refused by the inline check, must not
// make the detector keep state per token id (it would wait for a mint
// that never comes, then remember each verdict for MaxLifetime): the
// shard's footprint stays within MaxRefused pending and MaxRefused
// reported tokens, while the spray is still reported, and a forger of
// another listed key refused during the spray is reported too.
func TestRefusedSprayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("feeds 100,000 events")
	}
	t0 := time.Date(2026, 6, 2, 9, 0, 0, 0, time.UTC)
	nat := netip.MustParseAddr("100.64.7.9")
	f := newFeed(token.New(token.Options{}))
	for _, k := range []string{"auth-2026", "auth-2025"} {
		f.process(&event.Event{Time: t0.Add(-72 * time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: k, Status: "active"}})
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 100000
	var found []event.Finding
	nfound := 0
	// keep counts the findings and keeps the first about each entity, so
	// the heap measured is the detector's.
	keep := func(found, fs []event.Finding) []event.Finding {
		nfound += len(fs)
		for _, x := range fs {
			if !slices.ContainsFunc(found, func(y event.Finding) bool { return y.Entity == x.Entity && y.Kind == x.Kind }) {
				found = append(found, x)
			}
		}
		return found
	}
	var last time.Time
	for i := range n {
		last = t0.Add(time.Duration(i) * 50 * time.Millisecond) // 20/s for 83 minutes
		f.process(refusedEvent(last, "junk-"+strconv.Itoa(i), "auth-2026", nat))
		if i == n/2 {
			// A forger of the other key, refused in the middle of it.
			f.process(refusedEvent(last, "forged-1", "auth-2025", netip.MustParseAddr("203.0.113.50")))
		}
		found = keep(found, f.c.TakeFindings())
	}
	f.advance(last.Add(token.DefaultLateness + time.Minute))
	found = keep(found, f.c.TakeFindings())
	runtime.GC()
	runtime.ReadMemStats(&after)
	entities, bytes := f.footprint()
	t.Logf("%d refused token ids: %d entities, %d bytes estimated, %d bytes of heap kept; %d findings",
		n, entities, bytes, int64(after.HeapAlloc)-int64(before.HeapAlloc), nfound)
	if limit := 2 * token.DefaultMaxRefused; entities > limit {
		t.Errorf("%d entities kept after %d refused token ids, want at most %d", entities, n, limit)
	}
	if limit := int64(2 << 20); bytes > limit {
		t.Errorf("footprint %d bytes after %d refused token ids, want at most %d", bytes, n, limit)
	}
	if limit := int64(4 << 20); int64(after.HeapAlloc)-int64(before.HeapAlloc) > limit {
		t.Errorf("%d bytes of heap kept after %d refused token ids, want at most %d", int64(after.HeapAlloc)-int64(before.HeapAlloc), n, limit)
	}
	junk := neverMinted(found, "auth-2026")
	if len(junk) == 0 {
		t.Fatal("the spray of refused never-minted tokens was not reported")
	}
	if !slices.Contains(junk[0].Tags, token.TagRefusedOnly) {
		t.Errorf("refused spray's finding %v not tagged %s", junk[0].Tags, token.TagRefusedOnly)
	}
	if forged := neverMinted(found, "auth-2025"); len(forged) != 1 || !slices.Contains(forged[0].Tags, token.TagRefusedOnly) {
		t.Errorf("forger of the other key refused during the spray: %d findings %+v, want 1 tagged refused-only", len(forged), forged)
	}
}

// TestServedAfterRefusal: a forged token reported never minted on refused
// presentations only, and later served (haechi unreachable with the
// gateway failing open, a gateway without the check), is reported again
// without the refused-only tag: the forgery got through, and the
// response must contain it as any served forgery. A refused presentation
// again is not reported twice.
func TestServedAfterRefusal(t *testing.T) {
	t0 := time.Date(2026, 6, 2, 9, 0, 0, 0, time.UTC)
	ip := netip.MustParseAddr("203.0.113.50")
	f := newFeed(token.New(token.Options{}))
	f.process(&event.Event{Time: t0.Add(-72 * time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "auth-2026", Status: "active"}})
	f.process(refusedEvent(t0, "forged-1", "auth-2026", ip))
	f.advance(t0.Add(token.DefaultLateness + time.Second))
	first := neverMinted(f.c.TakeFindings(), "auth-2026")
	if len(first) != 1 || !slices.Contains(first[0].Tags, token.TagRefusedOnly) {
		t.Fatalf("refused forgery: %+v, want one refused-only finding", first)
	}
	f.process(refusedEvent(t0.Add(10*time.Minute), "forged-1", "auth-2026", ip))
	if again := neverMinted(f.c.TakeFindings(), "auth-2026"); len(again) != 0 {
		t.Errorf("refused again: %+v, want no new finding", again)
	}
	served := refusedEvent(t0.Add(20*time.Minute), "forged-1", "auth-2026", ip)
	served.Action, served.Outcome = "member.profile.read", event.OutcomeSuccess
	f.process(served)
	got := neverMinted(f.c.TakeFindings(), "auth-2026")
	if len(got) != 1 || slices.Contains(got[0].Tags, token.TagRefusedOnly) || !got[0].Time.Equal(served.Time) {
		t.Fatalf("served after refusal: %+v, want one untagged finding at %s", got, served.Time)
	}
	if len(got[0].Related) != 1 || got[0].Related[0].ID != ip.String() {
		t.Errorf("related %v, want the source %s", got[0].Related, ip)
	}
	f.process(served)
	if again := neverMinted(f.c.TakeFindings(), "auth-2026"); len(again) != 0 {
		t.Errorf("served again: %+v, want no new finding", again)
	}
}

// TestRefusedRandomKeysCannotCrowdOut: a spray of refused tokens naming
// random key ids fills the shard's refused budget, but a refused forgery
// naming a key the inventory lists is still judged and reported.
func TestRefusedRandomKeysCannotCrowdOut(t *testing.T) {
	t0 := time.Date(2026, 6, 2, 9, 0, 0, 0, time.UTC)
	spray := netip.MustParseAddr("100.64.7.9")
	f := newFeed(token.New(token.Options{MaxRefused: 64}))
	f.process(&event.Event{Time: t0.Add(-72 * time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "auth-2026", Status: "active"}})
	for i := range 1000 {
		f.process(refusedEvent(t0.Add(time.Duration(i)*time.Millisecond), "junk-"+strconv.Itoa(i), "kid-"+strconv.Itoa(i), spray))
	}
	f.process(refusedEvent(t0.Add(time.Second), "forged-1", "auth-2026", netip.MustParseAddr("203.0.113.50")))
	if entities, _ := f.footprint(); entities > 64+1 {
		t.Errorf("%d entities pending, want at most 65", entities)
	}
	f.advance(t0.Add(token.DefaultLateness + 2*time.Second))
	fs := f.c.TakeFindings()
	if got := neverMinted(fs, "auth-2026"); len(got) != 1 {
		t.Errorf("forgery of a listed key during the spray: %d findings, want 1", len(got))
	}
	if got := neverMinted(fs, "kid-999"); len(got) != 0 {
		t.Errorf("spray beyond the budget judged: %+v", got)
	}
	if got := neverMinted(fs, "kid-0"); len(got) != 1 {
		t.Errorf("spray within the budget: %d findings, want 1", len(got))
	}
}
