// Package prefilter decides cheaply, for one event, which of many rules
// may match it, so a rule engine evaluates only those instead of every
// rule on every event.
//
// Each rule states a requirement (Req): a conjunction of clauses, each a
// disjunction of atoms, where an atom is a test on one field that the
// rule's condition implies — "user_agent.original contains sqlmap"
// (compared case-insensitively), "http.response.status_code is 404". A
// rule is a candidate for an event when every clause of its requirement
// has an atom that holds; a rule with no requirement is always a
// candidate. The requirement must be necessary, never sufficient: when the
// rule's condition holds on an event, its requirement holds too. So
// evaluating only the candidates gives exactly the matches of evaluating
// every rule. A producer that cannot state a necessary test for part of a
// condition leaves it out (And) or gives up on the whole disjunction (Or);
// the empty Req is always correct.
//
// An Index holds the requirements of a rule list. It reads each field once
// per event: every "contains" literal of a field is found in one pass of
// an Aho-Corasick automaton over the field's case-folded text, and integer
// atoms are looked up in a map. An Index is immutable and safe for
// concurrent use; each goroutine brings its own Scratch.
package prefilter

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/haechi-sec/haechi/internal/event"
)

// Atom is a test on one field of an event. Exactly one of Text, List and
// Int is set:
//   - Text or List: the field's value (any element of a list) contains Lit
//     when both are case-folded (Fold). An absent field reads as "" or an
//     empty list.
//   - Int: the field's value equals N (an absent field reads as 0).
//
// Field names the field; atoms naming one field must read it the same
// way, and the Index reads it once per event with the first atom's
// reader.
type Atom struct {
	Field string
	Text  func(*event.Event) string
	List  func(*event.Event) []string
	Int   func(*event.Event) int64
	Lit   string
	N     int64
}

// Clause is a disjunction of atoms: it holds when one of them does.
type Clause []Atom

// Req is a conjunction of clauses: it holds when each clause does. The
// empty Req always holds (no requirement).
type Req []Clause

// MaxClauses bounds the clauses And keeps: the cheapest (cost) ones.
const MaxClauses = 4

// Contains returns the atom "text contains lit" on a string field, or
// ok=false when no such atom can be stated: lit is empty (every string
// contains it) or holds U+FFFD, which also stands for a malformed byte
// and so does not survive folding as a substring.
func Contains(field string, text func(*event.Event) string, lit string) (Atom, bool) {
	if !usableLit(lit) || text == nil {
		return Atom{}, false
	}
	return Atom{Field: field, Text: text, Lit: lit}, true
}

// ListContains is Contains for a list field: some element contains lit.
func ListContains(field string, list func(*event.Event) []string, lit string) (Atom, bool) {
	if !usableLit(lit) || list == nil {
		return Atom{}, false
	}
	return Atom{Field: field, List: list, Lit: lit}, true
}

// IntEq returns the atom "the integer field equals n".
func IntEq(field string, get func(*event.Event) int64, n int64) Atom {
	return Atom{Field: field, Int: get, N: n}
}

func usableLit(lit string) bool {
	return lit != "" && !strings.ContainsRune(lit, utf8.RuneError)
}

// LongestRun returns the longest run of s between breaks (runes for which
// isBreak is true): the literal a wildcard pattern cannot match without.
func LongestRun(s []rune, isBreak func(rune) bool) string {
	best, start := "", 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || isBreak(s[i]) {
			if run := string(s[start:i]); len(run) > len(best) {
				best = run
			}
			start = i + 1
		}
	}
	return best
}

// Of returns the requirement of one clause (nil for an empty clause,
// which states nothing).
func Of(atoms ...Atom) Req {
	if len(atoms) == 0 {
		return nil
	}
	return Req{Clause(atoms)}
}

// And is the requirement of a conjunction: every part's clauses, the
// MaxClauses cheapest of them.
func And(parts ...Req) Req {
	var out Req
	for _, p := range parts {
		out = append(out, p...)
	}
	if len(out) > MaxClauses {
		slices.SortStableFunc(out, func(a, b Clause) int { return a.cost() - b.cost() })
		out = out[:MaxClauses]
	}
	return out
}

// Or is the requirement of a disjunction: one clause joining the
// cheapest clause of every part, or nil when any part states nothing.
func Or(parts ...Req) Req {
	var c Clause
	for _, p := range parts {
		if len(p) == 0 {
			return nil
		}
		best := p[0]
		for _, q := range p[1:] {
			if q.cost() < best.cost() {
				best = q
			}
		}
		c = append(c, best...)
	}
	return Of(c...)
}

// lowCardinality are fields whose few values most events share: an atom
// on them rejects few events, so And prefers clauses on other fields.
var lowCardinality = map[string]bool{
	"event.dataset": true, "event.outcome": true, "http.request.method": true, "records.type": true,
	"event.provider": true, "http.response.status_code": true,
}

// cost estimates how many events a clause lets through: more atoms,
// shorter literals and common fields cost more.
func (c Clause) cost() int {
	n := 0
	for _, a := range c {
		n += 2
		if lowCardinality[a.Field] {
			n += 6
		}
		if a.Int == nil && len(a.Lit) < 4 {
			n += 4 - len(a.Lit)
		}
	}
	return n
}

// Fold appends s case-folded to dst: each rune (a malformed byte reads as
// U+FFFD) is replaced by one representative of its simple case-folding
// orbit, the ASCII lower-case letter where the orbit has one. Two strings
// are equal under strings.EqualFold exactly when their Folds are equal,
// and a string matching a literal case-insensitively at some rune position
// has the literal's Fold in its Fold.
func Fold(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			dst = append(dst, b)
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		dst = utf8.AppendRune(dst, foldRune(r))
		i += w
	}
	return dst
}

// foldRune returns the representative of r's simple folding orbit: its
// ASCII lower-case member if it has one, else its smallest member.
func foldRune(r rune) rune {
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < utf8.RuneSelf {
			if 'A' <= f && f <= 'Z' {
				f += 'a' - 'A'
			}
			return f
		}
		if f < min {
			min = f
		}
	}
	return min
}
