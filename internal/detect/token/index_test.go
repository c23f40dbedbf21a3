package token

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// maxBytesPerToken is the memory budget of one live minted token.
const maxBytesPerToken = 64

// splitmix64 spreads i over 64 bits like a hash of a token id would.
func splitmix64(i uint64) uint64 {
	i += 0x9e3779b97f4a7c15
	i = (i ^ i>>30) * 0xbf58476d1ce4e5b9
	i = (i ^ i>>27) * 0x94d049bb133111eb
	return i ^ i>>31
}

// fillIndex inserts n live tokens into a mint index, as a shard grows it.
func fillIndex(n int) *mintIndex {
	x := newMintIndex()
	exp := toSec(time.Date(2025, 6, 24, 12, 0, 0, 0, time.UTC))
	for i := range n {
		e := mintEntry{exp: exp + uint32(i%86400), key: uint16(1 + i%4)}
		e.setLoc(loc{cc: packCountry("KR"), asn: 4766, at: exp})
		x.put(splitmix64(uint64(i)), e)
	}
	return &x
}

// bytesPerToken measures the heap the index holds per token.
func bytesPerToken(n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := fillIndex(n)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if x.len() != n {
		panic("lost tokens")
	}
	runtime.KeepAlive(x)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

func TestMintIndexMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~60 MB")
	}
	const n = 1_000_000
	bpt := bytesPerToken(n)
	t.Logf("%d live tokens: %.1f B/token", n, bpt)
	if bpt > maxBytesPerToken {
		t.Fatalf("mint index holds %.1f B per live token, budget %d", bpt, maxBytesPerToken)
	}
}

// BenchmarkMintIndex measures the memory of ten million live tokens. Run it
// once: go test -run '^$' -bench MintIndex -benchtime=1x ./internal/detect/token/
func BenchmarkMintIndex(b *testing.B) {
	const n = 10_000_000
	for b.Loop() {
		b.ReportMetric(bytesPerToken(n), "B/token")
	}
}

func TestMintIndexSweep(t *testing.T) {
	x := newMintIndex()
	for i := range 1 << 15 {
		x.put(uint64(i), mintEntry{exp: uint32(i)})
	}
	if n := x.sweep(1<<15 - 100); n != 1<<15-100 || x.len() != 100 {
		t.Fatalf("swept %d, %d left", n, x.len())
	}
	if x.peak != 100 {
		t.Fatalf("map not rebuilt after shrinking: peak %d", x.peak)
	}
	if _, ok := x.get(1<<15 - 1); !ok {
		t.Fatal("live token swept")
	}
}

func TestMintEntryPacking(t *testing.T) {
	var e mintEntry
	e.setFired(fMulti | fExpired | fRetired)
	for _, cc := range []string{"KR", "us", "ZZ", "AA"} {
		l := loc{cc: packCountry(cc), asn: 4200000001, at: 12345}
		e.setLoc(l)
		if e.loc() != l || e.fired() != fMulti|fExpired|fRetired {
			t.Fatalf("%s: loc %+v fired %b", cc, e.loc(), e.fired())
		}
		if got := unpackCountry(e.loc().cc); got != string([]byte{cc[0] &^ 0x20, cc[1] &^ 0x20}) {
			t.Fatalf("country %q → %q", cc, got)
		}
	}
	for _, cc := range []string{"", "K", "KOR", "1A", "K-"} {
		if packCountry(cc) != 0 {
			t.Errorf("packCountry(%q) != 0", cc)
		}
	}
	for _, tc := range []struct {
		t    time.Time
		want uint32
	}{
		{time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{time.Date(2000, 1, 1, 0, 0, 1, 0, time.UTC), 1},
		{engine.EndOfTime, 1<<32 - 1},
	} {
		if got := toSec(tc.t); got != tc.want {
			t.Errorf("toSec(%v) = %d, want %d", tc.t, got, tc.want)
		}
	}
	if ts := time.Date(2025, 6, 24, 18, 38, 11, 0, time.UTC); !fromSec(toSec(ts)).Equal(ts) {
		t.Error("toSec/fromSec do not round-trip")
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 40 * time.Second: "40s", 4 * time.Minute: "4m", 5*time.Minute + 30*time.Second: "5m 30s",
		2 * time.Hour: "2h", 2*time.Hour + 59*time.Minute: "2h 59m", 48 * time.Hour: "2d", 75 * time.Hour: "3d 3h",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{24 * time.Hour: "24h", 90 * time.Minute: "1h30m", time.Minute: "1m", 90 * time.Second: "1m30s"} {
		if got := policy(d); got != want {
			t.Errorf("policy(%v) = %q, want %q", d, got, want)
		}
	}
}

// stream builds a realistic token stream: 10% mints, 90% uses of tokens
// minted in the last few minutes, one forged use in 10,000, geo on most
// uses, one event per millisecond of event time.
func stream(n int) []event.Event {
	start := time.Date(2025, 6, 24, 0, 0, 0, 0, time.UTC)
	evs := make([]event.Event, 0, n+2)
	for _, k := range []string{"auth-2025-03", "auth-2025-06"} {
		evs = append(evs, event.Event{Time: start.Add(-time.Hour), Dataset: event.DatasetKeys, Action: event.ActionKeyCreated, Key: event.Key{ID: k, Status: "active"}})
	}
	ids := make([]string, 0, n/10+1)
	users := make([]string, 0, n/10+1)
	ip := netip.MustParseAddr("211.234.10.9")
	for i := range n {
		t := start.Add(time.Duration(i) * time.Millisecond)
		r := splitmix64(uint64(i))
		switch {
		case i%10 == 0 || len(ids) == 0:
			id := fmt.Sprintf("tk-%016x", r)
			u := fmt.Sprintf("m:%d", r%50_000_000)
			ids, users = append(ids, id), append(users, u)
			evs = append(evs, event.Event{Time: t, Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Outcome: event.OutcomeSuccess,
				User: event.User{ID: u}, Token: event.Token{ID: id, KeyID: "auth-2025-06", IssuedAt: t, ExpiresAt: t.Add(12 * time.Hour)}})
		case i%10_000 == 5:
			evs = append(evs, event.Event{Time: t, Dataset: event.DatasetGateway, Action: "member.profile.read", Outcome: event.OutcomeSuccess,
				User: event.User{ID: fmt.Sprintf("m:%d", r%50_000_000)}, Token: event.Token{ID: fmt.Sprintf("tk-%016x", r), KeyID: "auth-2022-11", IssuedAt: t},
				Source: event.Source{IP: netip.MustParseAddr("45.77.201.13")}})
		default:
			j := len(ids) - 1 - int(r%uint64(min(len(ids), 20_000))) // a token minted in the last ~3 minutes
			src := event.Source{IP: ip, Country: "KR", ASN: 4766}
			if r&3 == 0 {
				src = event.Source{IP: ip}
			}
			evs = append(evs, event.Event{Time: t, Dataset: event.DatasetGateway, Action: "member.profile.read", Outcome: event.OutcomeSuccess,
				User: event.User{ID: users[j]}, Token: event.Token{ID: ids[j], KeyID: "auth-2025-06", IssuedAt: t.Add(-time.Minute)}, Source: src})
		}
	}
	return evs
}

// BenchmarkDetector runs a stream through one shard's Process and Advance
// (a batch of 1,000 events between watermark moves), as the engine's shard
// goroutine would. Run with GOMAXPROCS=1.
func BenchmarkDetector(b *testing.B) {
	const n = 1_000_000
	evs := stream(n)
	d := New(Options{ClockSkew: 5 * time.Minute})
	var findings int
	runtime.GC() // the generated stream is not the detector's garbage
	b.ResetTimer()
	for b.Loop() {
		s := d.NewShard().(*shard)
		c := &engine.Context{}
		var maxSeen time.Time
		for i := range evs {
			ev := &evs[i]
			if d.Broadcast(ev) {
				s.Process(c, event.EntityKey{}, ev)
			} else if key, ok := d.Key(ev); ok {
				s.Process(c, key, ev)
			}
			if ev.Time.After(maxSeen) {
				maxSeen = ev.Time
			}
			if i%1000 == 999 {
				s.Advance(c, maxSeen.Add(-d.opts.Lateness))
			}
		}
		s.Advance(c, engine.EndOfTime)
		findings = len(s.flagged)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(findings), "forged")
}
