package sigma

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// anyRune is the pattern item for the Sigma wildcard '?': exactly one
// character (one rune of the subject).
const anyRune rune = -1

// pattern is a compiled Sigma string value: literal runes and the
// wildcards '*' (any run of characters, possibly empty) and '?' (exactly
// one character), matched case-insensitively (Unicode simple case folding,
// as strings.EqualFold) unless cased.
//
// The value is split at each '*' into segments of fixed rune length. The
// first segment is anchored at the start of the subject, the last at its
// end, and the ones between are found leftmost, left to right — which is
// exact for this wildcard language, in O(len(subject) × len(pattern)) time
// and without backtracking or allocation.
type pattern struct {
	segs  [][]rune // len ≥ 1; segs[0] and segs[len-1] are anchored
	cased bool
	// Fast paths, chosen at compile time.
	kind patKind
	lit  string // the literal for kindExact/Prefix/Suffix/Contains
	// first lists the leading UTF-8 bytes of every rune that folds to the
	// first rune of lit, to skip ahead cheaply in kindContains.
	first *[256]bool
	// firstByte is set (with oneFirst) when that table holds a single byte,
	// so the search can skip ahead with strings.IndexByte.
	firstByte byte
	oneFirst  bool
}

type patKind uint8

const (
	kindGlob     patKind = iota // general segments
	kindExact                   // "lit"
	kindPrefix                  // "lit*"
	kindSuffix                  // "*lit"
	kindContains                // "*lit*"
	kindAny                     // "*" (or "**"...): every string
)

// parseWildcards turns a Sigma value into segments, applying Sigma's
// escapes: "\*", "\?" and "\\" are a literal '*', '?' and '\'; any other
// backslash is itself.
func parseWildcards(v string) [][]rune {
	segs := [][]rune{nil}
	rs := []rune(v)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch r {
		case '\\':
			if i+1 < len(rs) && (rs[i+1] == '*' || rs[i+1] == '?' || rs[i+1] == '\\') {
				i++
				r = rs[i]
			}
			segs[len(segs)-1] = append(segs[len(segs)-1], r)
		case '*':
			segs = append(segs, nil)
		case '?':
			segs[len(segs)-1] = append(segs[len(segs)-1], anyRune)
		default:
			segs[len(segs)-1] = append(segs[len(segs)-1], r)
		}
	}
	return segs
}

// compilePattern compiles the Sigma value v (wildcards and escapes as
// written in the rule).
func compilePattern(v string, cased bool) *pattern {
	return newPattern(parseWildcards(v), cased)
}

// literalSegs is the segment list of a literal without wildcards.
func literalSegs(s string) [][]rune { return [][]rune{[]rune(s)} }

// wrapSegs adds an unbounded wildcard before and/or after a parsed value
// (the contains, startswith and endswith modifiers). It works on parsed
// segments, so a value ending in a backslash stays a literal backslash.
func wrapSegs(segs [][]rune, before, after bool) [][]rune {
	out := make([][]rune, 0, len(segs)+2)
	if before {
		out = append(out, nil)
	}
	out = append(out, segs...)
	if after {
		out = append(out, nil)
	}
	return out
}

// newPattern compiles parsed segments.
func newPattern(segs [][]rune, cased bool) *pattern {
	p := &pattern{segs: segs, cased: cased, kind: kindGlob}
	hasAny := false
	for _, s := range p.segs {
		for _, r := range s {
			if r == anyRune {
				hasAny = true
			}
		}
	}
	n := len(p.segs)
	allEmpty := true
	for _, s := range p.segs {
		if len(s) > 0 {
			allEmpty = false
		}
	}
	switch {
	case hasAny:
	case n == 1:
		p.kind, p.lit = kindExact, string(p.segs[0])
	case allEmpty:
		p.kind = kindAny
	case n == 2 && len(p.segs[1]) == 0:
		p.kind, p.lit = kindPrefix, string(p.segs[0])
	case n == 2 && len(p.segs[0]) == 0:
		p.kind, p.lit = kindSuffix, string(p.segs[1])
	case n == 3 && len(p.segs[0]) == 0 && len(p.segs[2]) == 0:
		p.kind, p.lit = kindContains, string(p.segs[1])
	}
	if p.kind == kindContains && !cased {
		p.first = new([256]bool)
		r0, _ := utf8.DecodeRuneInString(p.lit)
		for r := r0; ; {
			var buf [utf8.UTFMax]byte
			utf8.EncodeRune(buf[:], r)
			p.first[buf[0]] = true
			if r = unicode.SimpleFold(r); r == r0 {
				break
			}
		}
		n := 0
		for b, ok := range p.first {
			if ok {
				n++
				p.firstByte = byte(b)
			}
		}
		p.oneFirst = n == 1
	}
	return p
}

// match reports whether s matches the whole pattern.
func (p *pattern) match(s string) bool {
	switch p.kind {
	case kindAny:
		return true
	case kindExact:
		if p.cased {
			return s == p.lit
		}
		return strings.EqualFold(s, p.lit)
	case kindPrefix:
		if p.cased {
			return strings.HasPrefix(s, p.lit)
		}
		_, ok := segAt(p.segs[0], s, false)
		return ok
	case kindSuffix:
		if p.cased {
			return strings.HasSuffix(s, p.lit)
		}
		return suffixAt(p.segs[1], s, false) >= 0
	case kindContains:
		if p.cased {
			return strings.Contains(s, p.lit)
		}
		return p.containsFold(s)
	}
	return globMatch(p.segs, s, p.cased)
}

// containsFold is the case-insensitive substring search of lit in s.
func (p *pattern) containsFold(s string) bool {
	seg := p.segs[1]
	if p.oneFirst {
		for i := 0; i < len(s); i++ {
			j := strings.IndexByte(s[i:], p.firstByte)
			if j < 0 {
				return false
			}
			i += j
			if _, ok := segAt(seg, s[i:], false); ok {
				return true
			}
		}
		return false
	}
	for i := 0; i < len(s); i++ {
		if !p.first[s[i]] {
			continue
		}
		if _, ok := segAt(seg, s[i:], false); ok {
			return true
		}
	}
	return false
}

// globMatch matches s against segments split at '*'.
func globMatch(segs [][]rune, s string, cased bool) bool {
	if len(segs) == 1 {
		n, ok := segAt(segs[0], s, cased)
		return ok && n == len(s)
	}
	n, ok := segAt(segs[0], s, cased)
	if !ok {
		return false
	}
	s = s[n:]
	last := segs[len(segs)-1]
	p := suffixAt(last, s, cased)
	if p < 0 {
		return false
	}
	s = s[:p]
	for _, seg := range segs[1 : len(segs)-1] {
		if len(seg) == 0 {
			continue
		}
		found := false
		for i := 0; i <= len(s); i++ {
			if i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
				continue
			}
			if n, ok := segAt(seg, s[i:], cased); ok {
				s = s[i+n:]
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// segAt matches seg at the start of s and returns the bytes it consumed.
func segAt(seg []rune, s string, cased bool) (int, bool) {
	i := 0
	for _, pr := range seg {
		if i >= len(s) {
			return 0, false
		}
		r, w := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, w = utf8.DecodeRuneInString(s[i:])
		}
		if pr != anyRune && pr != r && (cased || !foldEq(pr, r)) {
			return 0, false
		}
		i += w
	}
	return i, true
}

// suffixAt returns the byte offset in s at which seg matches the end of
// s, or -1.
func suffixAt(seg []rune, s string, cased bool) int {
	p := len(s)
	for range seg {
		if p == 0 {
			return -1
		}
		_, w := utf8.DecodeLastRuneInString(s[:p])
		p -= w
	}
	if n, ok := segAt(seg, s[p:], cased); !ok || p+n != len(s) {
		return -1
	}
	return p
}

// foldEq reports whether a and b are equal under simple Unicode case
// folding, as strings.EqualFold compares runes.
func foldEq(a, b rune) bool {
	if a == b {
		return true
	}
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		return a == b
	}
	if b < a {
		a, b = b, a
	}
	r := unicode.SimpleFold(a)
	for r != a && r < b {
		r = unicode.SimpleFold(r)
	}
	return r == b
}
