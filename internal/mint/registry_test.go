package mint

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/tokenuse"
	"github.com/haechi-sec/haechi/internal/event"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	chromeWin = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
	edgeWin   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0"
	curl      = "curl/8.5.0"
)

// fixture: key k1 active, k2 retired at t0, inventory seen; mints made an
// hour before t0 (coverage began then).
func fixture(t *testing.T) *Registry {
	t.Helper()
	r := New(Options{MaxLifetime: 12 * time.Hour, ClockSkew: time.Minute})
	r.Observe(&event.Event{Time: t0.Add(-48 * time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1", Status: "active"}})
	r.Observe(&event.Event{Time: t0.Add(-48 * time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k2", Status: "active"}})
	r.Observe(&event.Event{Time: t0, Dataset: event.DatasetKeys, Action: event.ActionKeyRetired, Key: event.Key{ID: "k2", Status: "retired"}})
	mint := func(id, kid string, at time.Time, cc, ua string) {
		r.Observe(&event.Event{Time: at, Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Outcome: event.OutcomeSuccess,
			Token:  event.Token{ID: id, KeyID: kid, IssuedAt: at, ExpiresAt: at.Add(2 * time.Hour)},
			Source: event.Source{Country: cc}, UserAgent: ua})
	}
	mint("tok-a", "k1", t0.Add(-time.Hour), "KR", chromeWin)
	mint("tok-old", "k2", t0.Add(-30*time.Minute), "KR", chromeWin) // before k2's retirement
	mint("tok-late", "k2", t0.Add(10*time.Minute), "", "")          // after it
	mint("tok-bare", "k1", t0.Add(-10*time.Minute), "", "")         // no context
	// A failed issuance is not a mint.
	r.Observe(&event.Event{Time: t0, Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Outcome: event.OutcomeFailure,
		Token: event.Token{ID: "tok-failed", KeyID: "k1", IssuedAt: t0}})
	r.Revoke("tok-rev", t0)
	return r
}

func TestVerify(t *testing.T) {
	r := fixture(t)
	now := t0.Add(15 * time.Minute)
	tests := []struct {
		name string
		q    Query
		want Verdict
	}{
		{"minted", Query{TokenID: "tok-a", KeyID: "k1", IssuedAt: t0.Add(-time.Hour)}, Known},
		{"minted, no key named", Query{TokenID: "tok-a"}, Known},
		{"forged", Query{TokenID: "tok-forged", KeyID: "k1", IssuedAt: now}, NeverMinted},
		{"failed issuance is no mint", Query{TokenID: "tok-failed", KeyID: "k1", IssuedAt: now}, NeverMinted},
		{"minted id under another key", Query{TokenID: "tok-a", KeyID: "k2"}, NeverMinted},
		{"unknown key", Query{TokenID: "tok-a", KeyID: "k9"}, UnknownKey},
		{"revoked", Query{TokenID: "tok-rev", KeyID: "k1"}, Revoked},
		// Hard-benign twin of retired_key: issued before the retirement,
		// used after it, within its lifetime.
		{"retired key vouches for its earlier tokens", Query{TokenID: "tok-old", KeyID: "k2", IssuedAt: t0.Add(-30 * time.Minute)}, Known},
		{"minted after retirement", Query{TokenID: "tok-late", KeyID: "k2"}, RetiredKey},
		{"unminted, claims issuance after retirement", Query{TokenID: "tok-x", KeyID: "k2", IssuedAt: t0.Add(5 * time.Minute)}, RetiredKey},
		{"unminted, claims issuance before retirement", Query{TokenID: "tok-x", KeyID: "k2", IssuedAt: t0.Add(-5 * time.Minute)}, NeverMinted},
		// Binding: both country and UA family must differ.
		{"hijacked", Query{TokenID: "tok-a", KeyID: "k1", Country: "NL", UserAgent: curl}, Hijacked},
		{"travel, same browser family (twin)", Query{TokenID: "tok-a", KeyID: "k1", Country: "JP", UserAgent: chromeWin}, Known},
		{"other client, same country (twin)", Query{TokenID: "tok-a", KeyID: "k1", Country: "KR", UserAgent: curl}, Known},
		{"other browser, other country (twin: families differ only if recognised)", Query{TokenID: "tok-a", KeyID: "k1", Country: "NL", UserAgent: ""}, Known},
		{"no mint context", Query{TokenID: "tok-bare", KeyID: "k1", Country: "NL", UserAgent: curl}, Known},
		{"edge vs chrome abroad", Query{TokenID: "tok-a", KeyID: "k1", Country: "US", UserAgent: edgeWin}, Hijacked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Now = now
			a := r.Verify(tc.q)
			if a.Verdict != tc.want {
				t.Fatalf("verdict %s (%v), want %s", a.Verdict, a.Reasons, tc.want)
			}
			if a.Allow != tc.want.Allowed() || len(a.Reasons) == 0 {
				t.Errorf("answer %+v: allow must follow the verdict, with reasons", a)
			}
		})
	}
}

func TestExpiryAndSweep(t *testing.T) {
	r := fixture(t)
	// tok-a, issued at t0-1h, expires at t0+1h; ClockSkew 1m.
	exp := t0.Add(time.Hour)
	iss := t0.Add(-time.Hour)
	if a := r.Verify(Query{TokenID: "tok-a", KeyID: "k1", IssuedAt: iss, Now: exp.Add(30 * time.Second)}); a.Verdict != Known {
		t.Fatalf("within skew of expiry: %+v", a)
	}
	after := exp.Add(2 * time.Minute)
	if a := r.Verify(Query{TokenID: "tok-a", KeyID: "k1", IssuedAt: iss, Now: after}); a.Verdict != NeverMinted {
		// Issued within coverage: an expired token is no longer minted.
		t.Fatalf("expired, not yet swept: %+v", a)
	}
	before := r.Len()
	if n := r.Sweep(after); n != 1 || r.Len() != before-1 {
		t.Fatalf("swept %d, len %d → %d", n, before, r.Len())
	}
	if a := r.Verify(Query{TokenID: "tok-bare", KeyID: "k1", IssuedAt: t0.Add(-10 * time.Minute), Now: after}); a.Verdict != Known {
		t.Fatalf("a live token lost by the sweep: %+v", a)
	}
	if a := r.Verify(Query{TokenID: "tok-old", KeyID: "k2", Now: after}); a.Verdict != Known {
		t.Fatalf("a live token lost by the sweep: %+v", a)
	}
}

func TestCoverage(t *testing.T) {
	r := New(Options{MaxLifetime: 12 * time.Hour, ClockSkew: time.Minute})
	q := Query{TokenID: "tok-x", KeyID: "k1", IssuedAt: t0, Now: t0}
	if a := r.Verify(q); a.Verdict != Uncovered || !a.Allow {
		t.Fatalf("empty registry: %+v", a)
	}
	r.Add(Mint{TokenID: "tok-a", KeyID: "k1", At: t0})
	// A token claiming issuance before coverage, within MaxLifetime of it:
	// may be a genuine session older than the registry.
	q.IssuedAt, q.Now = t0.Add(-time.Hour), t0.Add(time.Hour)
	if a := r.Verify(q); a.Verdict != Uncovered {
		t.Fatalf("old session early in coverage: %+v", a)
	}
	// Claiming issuance after coverage began: must have been registered.
	q.IssuedAt = t0.Add(30 * time.Minute)
	if a := r.Verify(q); a.Verdict != NeverMinted {
		t.Fatalf("new token unregistered: %+v", a)
	}
	// MaxLifetime after coverage began, an old claim buys nothing.
	q.IssuedAt, q.Now = t0.Add(-time.Hour), t0.Add(13*time.Hour)
	if a := r.Verify(q); a.Verdict != NeverMinted {
		t.Fatalf("old claim after a lifetime of coverage: %+v", a)
	}
}

func TestAddBothDoorsIdempotent(t *testing.T) {
	r := New(Options{})
	m := Mint{TokenID: "tok-a", KeyID: "k1", At: t0, ExpiresAt: t0.Add(time.Hour)}
	r.Add(m)
	r.Observe(&event.Event{Time: t0, Dataset: event.DatasetToken, Action: event.ActionTokenIssued,
		Token: event.Token{ID: "tok-a", KeyID: "k1", ExpiresAt: t0.Add(2 * time.Hour)}})
	if r.Len() != 1 {
		t.Fatalf("len %d after one mint through both doors", r.Len())
	}
	if a := r.Verify(Query{TokenID: "tok-a", KeyID: "k1", Now: t0.Add(90 * time.Minute)}); a.Verdict != Known {
		t.Fatalf("later expiry not kept: %+v", a)
	}
}

func TestExpiryBoundedByMaxLifetime(t *testing.T) {
	r := New(Options{MaxLifetime: time.Hour, ClockSkew: time.Minute})
	r.Add(Mint{TokenID: "tok-a", At: t0, ExpiresAt: t0.Add(24 * 365 * time.Hour)})
	if a := r.Verify(Query{TokenID: "tok-a", Now: t0.Add(2 * time.Hour)}); a.Verdict != NeverMinted {
		t.Fatalf("a year-long token outlived MaxLifetime: %+v", a)
	}
	if n := r.Sweep(t0.Add(2 * time.Hour)); n != 1 {
		t.Fatalf("swept %d", n)
	}
}

// TestRevokeKey: once a key is revoked, every token of it is refused as
// revoked — presented with the key, or minted by it and presented without
// a key id, minted or forged — and tokens of other keys are not.
func TestRevokeKey(t *testing.T) {
	r := fixture(t)
	now := t0.Add(15 * time.Minute)
	r.RevokeKey("k1", t0.Add(5*time.Minute))
	r.RevokeKey("k1", t0.Add(9*time.Minute)) // a later repeat keeps the first time
	tests := []struct {
		name string
		q    Query
		want Verdict
	}{
		{"minted by the revoked key", Query{TokenID: "tok-a", KeyID: "k1", IssuedAt: t0.Add(-time.Hour)}, Revoked},
		{"minted by it, no key named", Query{TokenID: "tok-a"}, Revoked},
		{"forged under it", Query{TokenID: "tok-forged", KeyID: "k1", IssuedAt: now}, Revoked},
		{"other key's token unaffected", Query{TokenID: "tok-old", KeyID: "k2", IssuedAt: t0.Add(-30 * time.Minute)}, Known},
		{"forged, no key named", Query{TokenID: "tok-forged2", IssuedAt: now}, NeverMinted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Now = now
			a := r.Verify(tt.q)
			if a.Verdict != tt.want || a.Allow != tt.want.Allowed() {
				t.Fatalf("got %+v, want %s", a, tt.want)
			}
		})
	}
	if a := r.Verify(Query{TokenID: "tok-a", KeyID: "k1", Now: now}); len(a.Reasons) != 1 || a.Reasons[0] != `key "k1" was revoked at 2026-06-01T12:05:00Z` {
		t.Errorf("reasons %q", a.Reasons)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	r := fixture(t)
	r.RevokeKey("k2", t0.Add(20*time.Minute))
	for i := range 5000 {
		r.Add(Mint{TokenID: fmt.Sprintf("bulk-%d", i), KeyID: "k1", At: t0, Country: "KR", UserAgent: chromeWin, UserID: fmt.Sprintf("c:%d", i)})
	}
	b := r.Snapshot()
	c := New(r.opts)
	if err := c.Restore(b); err != nil {
		t.Fatal(err)
	}
	if c.Len() != r.Len() || !c.Since().Equal(r.Since()) {
		t.Fatalf("restored len %d since %s, want %d %s", c.Len(), c.Since(), r.Len(), r.Since())
	}
	now := t0.Add(30 * time.Minute) // after k2's revocation
	for _, id := range []string{"tok-a", "tok-old", "tok-late", "tok-rev", "tok-forged", "bulk-17", "bulk-4999"} {
		for _, kid := range []string{"k1", "k2", "k9", ""} {
			q := Query{TokenID: id, KeyID: kid, Now: now, Country: "NL", UserAgent: curl}
			if a, b := r.Verify(q), c.Verify(q); a.Verdict != b.Verdict {
				t.Errorf("%s/%s: restored says %s, original %s", id, kid, b.Verdict, a.Verdict)
			}
		}
	}
	// The binding survives: bulk-17 was minted for c:17.
	for _, tc := range []struct {
		user string
		want Verdict
	}{{"c:17", Known}, {"c:18", UserMismatch}, {"", Known}} {
		if v := c.Verify(Query{TokenID: "bulk-17", KeyID: "k1", User: tc.user, Now: now}).Verdict; v != tc.want {
			t.Errorf("restored: bulk-17 presented for %q: %s, want %s", tc.user, v, tc.want)
		}
	}
	if v := c.Verify(Query{TokenID: "tok-old", Now: now}).Verdict; v != Revoked {
		t.Errorf("restored registry forgot k2's revocation: %s", v)
	}
	if string(c.Snapshot()) == "" || len(c.Snapshot()) != len(b) {
		t.Errorf("snapshot of the restored registry differs in size: %d vs %d", len(c.Snapshot()), len(b))
	}
	if err := c.Restore(b[:len(b)-1]); err == nil {
		t.Error("truncated snapshot accepted")
	}
}

// TestMemoryPerToken measures the heap a million live tokens take: the
// budget is 64 bytes each.
func TestMemoryPerToken(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~60 MB")
	}
	const n = 1 << 20
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	r := New(Options{MaxLifetime: 24 * time.Hour})
	for i := range n {
		// Bound to a user, as a JWT's sub: the binding costs no byte.
		r.Add(Mint{TokenID: fmt.Sprintf("tok-%d", i), KeyID: "k1", At: t0, UserID: fmt.Sprintf("c:%d", i)})
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	per := float64(m1.HeapAlloc-m0.HeapAlloc) / n
	t.Logf("%.1f bytes per live token (%d tokens)", per, r.Len())
	if per > 64 {
		t.Errorf("%.1f bytes per live token, budget 64", per)
	}
	runtime.KeepAlive(r)
	// After the burst expires, a sweep gives the memory back.
	r.Add(Mint{TokenID: "survivor", At: t0.Add(48 * time.Hour)})
	if n := r.Sweep(t0.Add(25 * time.Hour)); n != 1<<20 {
		t.Fatalf("swept %d", n)
	}
	runtime.GC()
	var m2 runtime.MemStats
	runtime.ReadMemStats(&m2)
	if m2.HeapAlloc > m0.HeapAlloc+1<<20 {
		t.Errorf("after the sweep the heap is %d bytes above the start", m2.HeapAlloc-m0.HeapAlloc)
	}
	runtime.KeepAlive(r)
}

// TestConcurrent runs Verify against Add, Revoke and Sweep (for -race).
func TestConcurrent(t *testing.T) {
	r := fixture(t)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range 20000 {
			r.Add(Mint{TokenID: fmt.Sprintf("c-%d", i), KeyID: "k1", At: t0})
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 200 {
			r.Sweep(t0)
			r.Revoke(fmt.Sprintf("r-%d", i), t0)
			_ = r.Snapshot()
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 20000 {
			if a := r.Verify(Query{TokenID: "tok-old", KeyID: "k2", Now: t0}); a.Verdict != Known {
				t.Errorf("verify %d: %+v", i, a)
				return
			}
		}
	}()
	wg.Wait()
}

func FuzzRestore(f *testing.F) {
	r := New(Options{})
	r.Observe(&event.Event{Time: t0, Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	r.Add(Mint{TokenID: "tok-a", KeyID: "k1", At: t0, Country: "KR"})
	f.Add(r.Snapshot())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := New(Options{})
		if err := c.Restore(b); err != nil {
			return
		}
		// Whatever was accepted must answer and re-encode to itself.
		c.Verify(Query{TokenID: "tok-a", KeyID: "k1", Now: t0})
		d := New(Options{})
		if err := d.Restore(c.Snapshot()); err != nil || d.Len() != c.Len() {
			t.Fatalf("re-encoding an accepted snapshot: %v, len %d vs %d", err, d.Len(), c.Len())
		}
	})
}

func BenchmarkAdd(b *testing.B) {
	r := New(Options{MaxLifetime: 24 * time.Hour})
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = fmt.Sprintf("tok-%d", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Add(Mint{TokenID: ids[i&(len(ids)-1)] + "x", KeyID: "k1", At: t0})
	}
}

// BenchmarkVerify is the in-process verify path over a million live
// tokens, half the queries for minted tokens and half forged, with the
// presenting client's context (binding judged), from parallel goroutines
// (-cpu sets how many). Reports p50/p99 per check and checks/s.
func BenchmarkVerify(b *testing.B) {
	r := New(Options{MaxLifetime: 24 * time.Hour})
	r.Observe(&event.Event{Time: t0, Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	const n = 1 << 20
	for i := range n {
		r.Add(Mint{TokenID: fmt.Sprintf("tok-%d", i), KeyID: "k1", At: t0, Country: "KR", UserAgent: chromeWin})
	}
	qs := make([]Query, 1<<12)
	for i := range qs {
		id := fmt.Sprintf("tok-%d", i*197)
		if i%2 == 1 {
			id = fmt.Sprintf("forged-%d", i)
		}
		qs[i] = Query{TokenID: id, KeyID: "k1", IssuedAt: t0, Country: "KR", UserAgent: chromeWin, Now: t0.Add(time.Hour)}
	}
	var mu sync.Mutex
	var all []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1<<16)
		i := 0
		for pb.Next() {
			s := time.Now()
			r.Verify(qs[i&(len(qs)-1)])
			lat = append(lat, time.Since(s))
			i++
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Nanoseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "checks/s")
}

// TestVerifyUser: a token id is bound to the user it was minted for, so a
// forger holding the signing key cannot reuse the jti of their own genuine
// login with a victim's sub.
func TestVerifyUser(t *testing.T) {
	now := t0.Add(15 * time.Minute)
	build := func(require bool) *Registry {
		r := New(Options{MaxLifetime: 12 * time.Hour, ClockSkew: time.Minute, RequireUser: require})
		// Through the stream (auth.token with user.id) …
		r.Observe(&event.Event{Time: t0, Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Outcome: event.OutcomeSuccess,
			User: event.User{ID: "c:1042"}, Token: event.Token{ID: "tok-own", KeyID: "k1", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}})
		// … and through POST /v1/tokens/minted (Add).
		r.Add(Mint{TokenID: "tok-api", KeyID: "k1", At: t0, UserID: "auth0|5f1a"})
		r.Add(Mint{TokenID: "tok-unbound", KeyID: "k1", At: t0}) // the issuer names no user
		// Re-minted under the same id for another user: the later mint's user.
		r.Add(Mint{TokenID: "tok-again", KeyID: "k1", At: t0, UserID: "c:1"})
		r.Add(Mint{TokenID: "tok-again", KeyID: "k1", At: t0.Add(time.Minute), UserID: "c:2"})
		r.Add(Mint{TokenID: "tok-rev", KeyID: "k1", At: t0, UserID: "c:7"})
		r.Revoke("tok-rev", t0)
		return r
	}
	tests := []struct {
		name    string
		require bool
		q       Query
		want    Verdict
	}{
		// Hard-benign twin: the genuine token presented for its own user.
		{"own user", false, Query{TokenID: "tok-own", KeyID: "k1", User: "c:1042"}, Known},
		{"own user, required", true, Query{TokenID: "tok-own", KeyID: "k1", User: "c:1042"}, Known},
		{"own user, registered by the API", false, Query{TokenID: "tok-api", KeyID: "k1", User: "auth0|5f1a"}, Known},
		{"genuine jti, victim's sub", false, Query{TokenID: "tok-own", KeyID: "k1", User: "c:7"}, UserMismatch},
		{"genuine jti, victim's sub, no key named", false, Query{TokenID: "tok-api", User: "c:1042"}, UserMismatch},
		// Byte for byte: no case folding, no trimming.
		{"other case", false, Query{TokenID: "tok-api", KeyID: "k1", User: "AUTH0|5F1A"}, UserMismatch},
		{"trailing space", false, Query{TokenID: "tok-own", KeyID: "k1", User: "c:1042 "}, UserMismatch},
		// Unbound checks (backward compatible) unless required.
		{"no user presented", false, Query{TokenID: "tok-own", KeyID: "k1"}, Known},
		{"no user presented, required", true, Query{TokenID: "tok-own", KeyID: "k1"}, UserMissing},
		// A mint registered without a user stays unbound.
		{"unbound mint, a user presented", true, Query{TokenID: "tok-unbound", KeyID: "k1", User: "c:7"}, Known},
		{"unbound mint, none presented, required", true, Query{TokenID: "tok-unbound", KeyID: "k1"}, Known},
		{"re-minted: the later user", false, Query{TokenID: "tok-again", KeyID: "k1", User: "c:2"}, Known},
		{"re-minted: not the earlier user", false, Query{TokenID: "tok-again", KeyID: "k1", User: "c:1"}, UserMismatch},
		// Earlier verdicts come first.
		{"revoked before mismatch", false, Query{TokenID: "tok-rev", KeyID: "k1", User: "c:8"}, Revoked},
		{"forged id with a user", false, Query{TokenID: "tok-forged", KeyID: "k1", IssuedAt: now, User: "c:1042"}, NeverMinted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Now = now
			a := build(tc.require).Verify(tc.q)
			if a.Verdict != tc.want {
				t.Fatalf("verdict %s (%v), want %s", a.Verdict, a.Reasons, tc.want)
			}
			if a.Allow != tc.want.Allowed() || len(a.Reasons) == 0 {
				t.Errorf("answer %+v: allow must follow the verdict, with reasons", a)
			}
		})
	}
}

// The refusal event of a user_mismatch verdict is what the token
// detector reads as a token never minted.
func TestUserMismatchAction(t *testing.T) {
	if got := tokenuse.RefusedPrefix + string(UserMismatch); got != tokenuse.ActionUserMismatch {
		t.Fatalf("refusal action %q, the detector reads %q", got, tokenuse.ActionUserMismatch)
	}
}
