package mint

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGrace(t *testing.T) {
	r := New(Options{MaxLifetime: 12 * time.Hour, ClockSkew: time.Second,
		Grace: Grace{Skew: 30 * time.Second, PerSource: 2, PerKey: 3}})
	r.Add(Mint{TokenID: "earlier", KeyID: "k1", At: t0.Add(-time.Hour)}) // coverage began an hour ago
	now := t0
	ask := func(id, src string, issued time.Time) Answer {
		return r.Verify(Query{TokenID: id, KeyID: "k1", IssuedAt: issued, Source: src, Now: now})
	}
	steps := []struct {
		id, src string
		issued  time.Time
		want    Verdict
	}{
		{"new-1", "198.51.100.1", now, Graced},
		{"new-1", "198.51.100.1", now, Graced}, // the same token again costs nothing
		{"new-2", "198.51.100.1", now.Add(-10 * time.Second), Graced},
		{"new-3", "198.51.100.1", now, NeverMinted}, // the source's allowance is used
		{"new-4", "198.51.100.2", now, Graced},
		{"new-5", "198.51.100.3", now, NeverMinted},                        // the key's allowance is used
		{"old", "198.51.100.4", now.Add(-time.Minute), NeverMinted},        // outside the skew
		{"future", "198.51.100.4", now.Add(10 * time.Second), NeverMinted}, // beyond the clock skew
		{"no-claim", "198.51.100.4", time.Time{}, Uncovered},               // no issued_at: no grace (uncovered early in coverage)
	}
	for i, s := range steps {
		if a := ask(s.id, s.src, s.issued); a.Verdict != s.want || a.Allow != s.want.Allowed() {
			t.Fatalf("step %d (%s from %s): %+v, want %s", i, s.id, s.src, a, s.want)
		}
	}
	// Hard-benign twin: new-2's mint was in flight and arrives now.
	r.Add(Mint{TokenID: "new-2", KeyID: "k1", IssuedAt: now.Add(-10 * time.Second), At: now.Add(2 * time.Second)})
	if a := ask("new-2", "198.51.100.1", now.Add(-10*time.Second)); a.Verdict != Known {
		t.Fatalf("minted after its grace began: %+v", a)
	}
	// Before the grace ends nothing is due.
	if got := r.Recheck(now.Add(20 * time.Second)); len(got) != 0 {
		t.Fatalf("recheck before the grace ended: %+v", got)
	}
	// After: the two never minted are reported, the genuine one not.
	var ids []string
	for _, g := range r.Recheck(now.Add(40 * time.Second)) {
		ids = append(ids, g.TokenID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"new-1", "new-4"}) {
		t.Fatalf("lapsed %v, want new-1 new-4", ids)
	}
	if got := r.Recheck(now.Add(time.Minute)); len(got) != 0 {
		t.Errorf("reported twice: %+v", got)
	}
	// The graced forgery is refused once its grace has passed.
	now = now.Add(40 * time.Second)
	if a := ask("new-1", "198.51.100.1", t0); a.Verdict != NeverMinted {
		t.Errorf("after its grace: %+v", a)
	}
	// A new window gives a new allowance.
	if a := ask("new-6", "198.51.100.1", now); a.Verdict != Graced {
		t.Errorf("next window: %+v", a)
	}
}

func TestGraceOff(t *testing.T) {
	r := New(Options{})
	r.Add(Mint{TokenID: "earlier", At: t0.Add(-time.Hour)})
	if a := r.Verify(Query{TokenID: "new", IssuedAt: t0, Source: "198.51.100.1", Now: t0}); a.Verdict != NeverMinted {
		t.Errorf("grace without Skew: %+v", a)
	}
	if got := r.Recheck(t0.Add(time.Hour)); got != nil {
		t.Errorf("recheck without grace: %+v", got)
	}
}

func TestGraceBoundedPending(t *testing.T) {
	r := New(Options{Grace: Grace{Skew: time.Minute, PerSource: 1000, PerKey: 1000, MaxPending: 2}})
	r.Add(Mint{TokenID: "earlier", At: t0.Add(-time.Hour)})
	var got []Verdict
	for _, id := range []string{"a", "b", "c"} {
		got = append(got, r.Verify(Query{TokenID: id, IssuedAt: t0, Source: "s", Now: t0}).Verdict)
	}
	if !slices.Equal(got, []Verdict{Graced, Graced, NeverMinted}) {
		t.Errorf("verdicts %v", got)
	}
}

// TestGraceBucketsBounded: a forger who has used a key's allowance and
// goes on presenting fresh-claiming tokens of it from ever new addresses
// (an IPv6 prefix has 2⁶⁴) is refused — and must not leave an allowance
// bucket per address behind: the buckets are only dropped at the next
// Recheck, so within one grace window they would grow with every request.
func TestGraceBucketsBounded(t *testing.T) {
	r := New(Options{Grace: Grace{Skew: time.Minute, PerSource: 2, PerKey: 3}})
	r.Add(Mint{TokenID: "earlier", KeyID: "k1", At: t0.Add(-time.Hour)})
	graced := 0
	for i := range 10_000 {
		a := r.Verify(Query{TokenID: fmt.Sprintf("forged-%d", i), KeyID: "k1", IssuedAt: t0,
			Source: fmt.Sprintf("2001:db8::%x", i), Now: t0})
		if a.Verdict == Graced {
			graced++
		}
	}
	if graced != 3 {
		t.Errorf("graced %d, want the key's 3", graced)
	}
	r.graced.mu.Lock()
	n := len(r.graced.buckets)
	r.graced.mu.Unlock()
	if n > 2*3 {
		t.Errorf("%d allowance buckets after 3 grants, want at most 6", n)
	}
}

// TestGraceRefusesOverlongIDs: a graced token's id, key id and source are
// kept until its re-check, up to MaxPending of them. No issuer's jti or
// kid runs to kilobytes, but a request header does: such a token gets no
// grace, so the pending list cannot hold 100,000 multi-kilobyte strings.
func TestGraceRefusesOverlongIDs(t *testing.T) {
	r := New(Options{Grace: Grace{Skew: time.Minute, PerSource: 1000, PerKey: 1000}})
	r.Add(Mint{TokenID: "earlier", At: t0.Add(-time.Hour)})
	long := strings.Repeat("x", MaxGraceID+1)
	for _, q := range []Query{
		{TokenID: long, KeyID: "k1", IssuedAt: t0, Source: "198.51.100.1", Now: t0},
		{TokenID: "tok-1", KeyID: long, IssuedAt: t0, Source: "198.51.100.1", Now: t0},
		{TokenID: "tok-2", KeyID: "k1", IssuedAt: t0, Source: long, Now: t0},
	} {
		if a := r.Verify(q); a.Verdict != NeverMinted {
			t.Errorf("token id %d bytes, key id %d, source %d: %s, want never_minted", len(q.TokenID), len(q.KeyID), len(q.Source), a.Verdict)
		}
	}
	if a := r.Verify(Query{TokenID: "tok-3", KeyID: "k1", IssuedAt: t0, Source: "198.51.100.1", Now: t0}); a.Verdict != Graced {
		t.Errorf("an ordinary fresh token: %s, want grace", a.Verdict)
	}
}
