package mint

import (
	"sync"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/tokenuse"
)

// MaxGraceID bounds, in bytes, the token id, key id and source of a token
// that may be graced: a longer one gets no grace. No issuer's jti or kid
// is that long, and a graced token's are kept until its re-check.
const MaxGraceID = 256

// Grace is the allowance for very new unknown tokens: a mint may still be
// in flight (the issuer's stream lags) when its token is first presented.
// An attacker can claim issued_at = now, so the allowance is capped per
// signing key and per (key, source address), over a window of Skew, and
// every graced token is re-checked once its grace ends: Recheck returns
// those still not minted, which app reports; their uses reach the
// token_provenance detector through the gateway's access log as any use
// does, and it raises token_never_minted and the response revokes the key.
type Grace struct {
	// Skew: a token claiming an issue time within Skew before now (or up
	// to ClockSkew after it) may be graced; its grace ends Skew after
	// that issue time (0 → no grace).
	Skew time.Duration
	// PerSource caps the tokens graced per (key, source) per Skew (0 → 2);
	// PerKey caps them per key over all sources (0 → 100), so many
	// sources cannot each take their share of one key's allowance.
	PerSource int
	PerKey    int
	// MaxPending bounds the graced tokens awaiting their re-check (0 →
	// 100,000); beyond it no grace is given (the verdict stands).
	MaxPending int
}

// Lapsed is a graced token whose grace ended without a mint.
type Lapsed struct {
	TokenID, KeyID, Source string
	IssuedAt, GracedAt     time.Time
}

type graceState struct {
	mu      sync.Mutex
	buckets map[string]*bucket // "k:" + key, "s:" + key + "|" + source
	tokens  map[uint64]int     // graced token hash → index in pending
	pending []Lapsed           // in grant order
}

// bucket counts grants in the current window.
type bucket struct {
	start time.Time
	n     int
}

func (g *Grace) defaults() {
	if g.PerSource <= 0 {
		g.PerSource = 2
	}
	if g.PerKey <= 0 {
		g.PerKey = 100
	}
	if g.MaxPending <= 0 {
		g.MaxPending = 100_000
	}
}

// grace decides whether the unknown token of q may pass now; the answer
// is true for a token already graced whose grace has not ended.
func (r *Registry) grace(q Query, h uint64) (bool, string) {
	g := r.opts.Grace
	if g.Skew <= 0 || q.IssuedAt.IsZero() || q.IssuedAt.After(q.Now.Add(r.opts.ClockSkew)) || q.IssuedAt.Before(q.Now.Add(-g.Skew)) {
		return false, ""
	}
	if len(q.TokenID) > MaxGraceID || len(q.KeyID) > MaxGraceID || len(q.Source) > MaxGraceID {
		return false, "no grace: a token id, key id or source this long is no issuer's"
	}
	s := &r.graced
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tokens[h]; ok {
		return true, "already graced: its mint may still be in flight"
	}
	if len(s.pending) >= g.MaxPending {
		return false, "no grace: too many graced tokens await their re-check"
	}
	// Buckets are looked up, and stored only on a grant: a refusal
	// leaves nothing behind, so they are bounded by the grants of the
	// window (at most two each), not by the addresses a forger can use.
	kk, sk := "k:"+q.KeyID, "s:"+q.KeyID+"|"+q.Source
	kb, sb := s.bucket(kk, q.Now, g.Skew), s.bucket(sk, q.Now, g.Skew)
	if sb.n >= g.PerSource {
		return false, "no grace: this source has used its allowance for this key"
	}
	if kb.n >= g.PerKey {
		return false, "no grace: this key has used its allowance"
	}
	kb.n++
	sb.n++
	s.buckets[kk], s.buckets[sk] = kb, sb
	s.tokens[h] = len(s.pending)
	s.pending = append(s.pending, Lapsed{TokenID: q.TokenID, KeyID: q.KeyID, Source: q.Source, IssuedAt: q.IssuedAt, GracedAt: q.Now})
	return true, "issued within the grace skew: its mint may still be in flight; re-checked when the grace ends"
}

// bucket returns the allowance bucket of k for the window at now: the
// stored one (restarted when its window has passed), or a new one that is
// not stored — the caller stores it when it grants.
func (s *graceState) bucket(k string, now time.Time, window time.Duration) *bucket {
	b := s.buckets[k]
	if b == nil {
		return &bucket{start: now}
	}
	if now.Sub(b.start) >= window {
		b.start, b.n = now, 0
	}
	return b
}

// Recheck ends the grace of every graced token whose grace (issued-at +
// Skew + ClockSkew) has passed by now, and returns those that are still
// not minted (or were minted under another key). It also forgets idle
// allowance windows.
func (r *Registry) Recheck(now time.Time) []Lapsed {
	g := r.opts.Grace
	if g.Skew <= 0 {
		return nil
	}
	s := &r.graced
	s.mu.Lock()
	var due, keep []Lapsed
	for _, p := range s.pending {
		if now.After(p.IssuedAt.Add(g.Skew + r.opts.ClockSkew)) {
			due = append(due, p)
		} else {
			keep = append(keep, p)
		}
	}
	if len(due) > 0 {
		s.pending = keep
		clear(s.tokens)
		for i, p := range keep {
			s.tokens[nonzero(tokenuse.Hash(p.TokenID))] = i
		}
	}
	for k, b := range s.buckets {
		if now.Sub(b.start) >= g.Skew {
			delete(s.buckets, k)
		}
	}
	s.mu.Unlock()

	var never []Lapsed
	for _, p := range due {
		if !r.minted(p.TokenID, p.KeyID) {
			never = append(never, p)
		}
	}
	return never
}

// minted reports whether a live mint of id is registered under keyID
// (any key when keyID or the mint's key is unknown).
func (r *Registry) minted(id, keyID string) bool {
	h := nonzero(tokenuse.Hash(id))
	st := &r.stripes[stripeOf(h)]
	st.mu.RLock()
	s, ok := st.t.get(h)
	st.mu.RUnlock()
	if !ok || s.flags&flagRevoked != 0 && s.key == 0 {
		return false
	}
	if keyID == "" || s.key == 0 {
		return true
	}
	r.kmu.RLock()
	defer r.kmu.RUnlock()
	return r.keys[s.key].id == keyID
}
