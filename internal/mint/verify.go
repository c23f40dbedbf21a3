package mint

import (
	"fmt"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/binding"
	"github.com/haechi-sec/haechi/internal/detect/tokenuse"
)

// Verdict is the inline check's answer about one token.
type Verdict string

// The verdicts (docs/verify.md).
const (
	// Known: minted, unexpired, not revoked, by the key it is presented
	// with, and (when context is given) used from where it was minted.
	Known Verdict = "known"
	// NeverMinted: no live mint of this id (or it was minted under
	// another key): forged, or expired and evicted.
	NeverMinted Verdict = "never_minted"
	// RetiredKey: signed by a key after that key's retirement.
	RetiredKey Verdict = "retired_key"
	// UnknownKey: signed by a key the inventory does not list (judged
	// only once some inventory has been seen).
	UnknownKey Verdict = "unknown_key"
	// Revoked: revoked by response or an operator.
	Revoked Verdict = "revoked"
	// UserMismatch: minted for one user, presented with another (the
	// JWT's sub, or the user the gateway names for an opaque token): a
	// genuine token id reused with another subject by someone holding the
	// signing key, or a token swapped between users. Refused; the refusal
	// is forged-token evidence for the token_provenance detector.
	UserMismatch Verdict = "user_mismatch"
	// UserMissing: minted for a user, presented without one, while
	// Options.RequireUser is set. Refused, but no evidence of forgery (a
	// gateway that does not pass the user yet looks the same).
	UserMissing Verdict = "user_missing"
	// Hijacked: minted for one client, presented by another: both the
	// country and the user agent family differ from the mint's.
	Hijacked Verdict = "hijacked"
	// Graced: not registered, but issued so recently that its mint may
	// still be in flight; allowed within the per-key and per-source
	// allowance and re-checked when the grace ends (Grace).
	Graced Verdict = "grace"
	// Uncovered: not registered, but it may have been minted before the
	// registry's coverage began (it claims no issue time or one before
	// it, and coverage began less than MaxLifetime ago), or nothing has
	// been registered at all: its absence proves nothing; allowed. After
	// MaxLifetime of coverage every genuine token was minted within it,
	// so an old issued-at claim no longer buys a forger anything.
	Uncovered Verdict = "uncovered"
)

// Allowed reports whether a gateway should let the request through.
func (v Verdict) Allowed() bool { return v == Known || v == Uncovered || v == Graced }

// Query is what a gateway knows of a request's token.
type Query struct {
	TokenID  string
	KeyID    string    // "" when the token names none
	IssuedAt time.Time // the token's claim; zero when it has none
	// User is the user the token is presented for (the JWT's sub, or the
	// gateway's user of an opaque token), compared byte for byte with the
	// mint's; "" presents none (see Options.RequireUser).
	User string
	// Context, all optional: the client presenting the token, already
	// located (the caller resolves the address to a country when it can).
	// Source is its address as text: the grace's allowance is per source.
	Source    string
	Country   string
	UserAgent string
	// Now is the time of the check (the gateway's clock or the server's).
	Now time.Time
}

// Answer is a verdict with its reasons, one sentence each.
type Answer struct {
	Verdict Verdict  `json:"verdict"`
	Allow   bool     `json:"allow"`
	Reasons []string `json:"reasons"`
}

// Verify judges q from memory only. Order: an unknown key, then a
// revocation (of the token, of the key it is presented with, or of the
// key that minted it), then the mint (absent: a retired key's post-retirement
// claim, else never minted unless uncovered), the mint's key, a
// post-retirement mint, the mint's user, then binding.
func (r *Registry) Verify(q Query) Answer {
	r.kmu.RLock()
	var k keyInfo
	var ki uint16
	if q.KeyID != "" {
		if i, ok := r.kidx[q.KeyID]; ok {
			ki, k = i, r.keys[i]
		}
	}
	inv, since := r.inv, r.since
	r.kmu.RUnlock()

	if q.KeyID != "" && inv && !k.listed {
		return Answer{Verdict: UnknownKey, Reasons: []string{fmt.Sprintf("key %q is not in the key inventory", q.KeyID)}}
	}
	h := nonzero(tokenuse.Hash(q.TokenID))
	st := &r.stripes[stripeOf(h)]
	st.mu.RLock()
	s, ok := st.t.get(h)
	st.mu.RUnlock()
	if ok && s.flags&flagRevoked != 0 {
		return Answer{Verdict: Revoked, Reasons: []string{"the token was revoked"}}
	}
	if !k.revokedAt.IsZero() {
		return Answer{Verdict: Revoked, Reasons: []string{fmt.Sprintf("key %q was revoked at %s", q.KeyID, stamp(k.revokedAt))}}
	}
	if ok && s.key != 0 && s.key != ki {
		if mk := r.keyOf(s.key); !mk.revokedAt.IsZero() {
			return Answer{Verdict: Revoked, Reasons: []string{fmt.Sprintf("minted by key %q, revoked at %s", mk.id, stamp(mk.revokedAt))}}
		}
	}
	if ok && s.exp < toSec(q.Now.Add(-r.opts.ClockSkew)) {
		ok = false // expired: as if swept
	}
	if !ok {
		if !k.retiredAt.IsZero() && !q.IssuedAt.IsZero() && q.IssuedAt.After(k.retiredAt.Add(r.opts.ClockSkew)) {
			return Answer{Verdict: RetiredKey, Reasons: []string{fmt.Sprintf("key %q was retired at %s; the token claims issuance at %s, after it",
				q.KeyID, stamp(k.retiredAt), stamp(q.IssuedAt))}}
		}
		if since.IsZero() || q.Now.Before(since.Add(r.opts.MaxLifetime)) && (q.IssuedAt.IsZero() || q.IssuedAt.Before(since.Add(-r.opts.ClockSkew))) {
			why := "the registry has registered no mint yet"
			if !since.IsZero() {
				why = fmt.Sprintf("the registry's coverage began at %s, less than the maximum token lifetime ago, and the token claims no later issuance", stamp(since))
			}
			return Answer{Verdict: Uncovered, Allow: true, Reasons: []string{why + ": its absence proves nothing"}}
		}
		if ok, why := r.grace(q, h); ok {
			return Answer{Verdict: Graced, Allow: true, Reasons: []string{"no live mint of this token id is registered yet", why}}
		} else if why != "" {
			return Answer{Verdict: NeverMinted, Reasons: []string{"no live mint of this token id is registered", why}}
		}
		return Answer{Verdict: NeverMinted, Reasons: []string{"no live mint of this token id is registered"}}
	}
	if q.KeyID != "" && s.key != 0 && s.key != ki {
		return Answer{Verdict: NeverMinted, Reasons: []string{fmt.Sprintf("minted under key %q, presented as signed by key %q", r.keyName(s.key), q.KeyID)}}
	}
	if s.flags&flagAfterRetired != 0 {
		return Answer{Verdict: RetiredKey, Reasons: []string{fmt.Sprintf("minted by key %q after that key's retirement", r.keyName(s.key))}}
	}
	if s.user != 0 {
		if q.User != "" && userHash(q.User) != s.user {
			return Answer{Verdict: UserMismatch, Reasons: []string{"minted for another user than the one it is presented for"}}
		}
		if q.User == "" && r.opts.RequireUser {
			return Answer{Verdict: UserMissing, Reasons: []string{"minted for a user, presented without one (verify.require_user)"}}
		}
	}
	if reasons := hijack(s, q); reasons != nil {
		return Answer{Verdict: Hijacked, Reasons: reasons}
	}
	return Answer{Verdict: Known, Allow: true, Reasons: []string{"minted, unexpired, not revoked" + keyNote(q.KeyID)}}
}

// hijack applies the binding rule: the presenting client's country and
// user agent family both differ from the mint's, each judged only when
// both sides are known. One alone is routine (travel, a second browser).
func hijack(s slot, q Query) []string {
	cc := binding.PackCountry(q.Country)
	if s.cc == 0 || cc == 0 || cc == s.cc {
		return nil
	}
	f := binding.ParseFamily(q.UserAgent)
	mf := binding.Family{Client: binding.Client(s.ua >> 8), OS: binding.OS(s.ua & 0xff)}
	if f.IsZero() || mf.IsZero() || f == mf {
		return nil
	}
	return []string{
		fmt.Sprintf("minted for a client in %s, presented from %s", binding.UnpackCountry(s.cc), binding.UnpackCountry(cc)),
		fmt.Sprintf("minted for %s, presented by %s", mf, f),
	}
}

func (r *Registry) keyName(i uint16) string { return r.keyOf(i).id }

func (r *Registry) keyOf(i uint16) keyInfo {
	r.kmu.RLock()
	defer r.kmu.RUnlock()
	if int(i) < len(r.keys) {
		return r.keys[i]
	}
	return keyInfo{}
}

func keyNote(kid string) string {
	if kid == "" {
		return ""
	}
	return ", by key " + kid
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
