package sigma

import (
	"strings"
	"unicode/utf8"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/prefilter"
)

// Prefilter returns a requirement that every event the rule matches meets
// (package prefilter): its logsource's datasets, and the literals of its
// detection — each string value's longest run of characters without a
// wildcard, which a matching field must contain case-insensitively — and
// its integer equalities. Parts it cannot state (negations, |neq, null,
// |exists, regular expressions, networks, comparisons, values inside
// requestParameters and responseElements, whose JSON escapes hide a
// literal) state nothing, so the requirement is necessary but weaker than
// the rule; an engine that evaluates the rule only on events meeting it
// finds exactly the events Match does.
func (r *Rule) Prefilter() prefilter.Req {
	if r == nil || r.root == nil {
		return nil
	}
	return prefilter.And(r.filter.prefilter(), nodeReq(r.root))
}

func (f *datasetFilter) prefilter() prefilter.Req {
	get := func(e *event.Event) string { return e.Dataset }
	var c prefilter.Clause
	for _, s := range append(append([]string(nil), f.exact...), f.prefixes...) {
		a, ok := prefilter.Contains("event.dataset", get, s)
		if !ok {
			return nil
		}
		c = append(c, a)
	}
	return prefilter.Of(c...)
}

func nodeReq(n node) prefilter.Req {
	switch n := n.(type) {
	case andNode:
		parts := make([]prefilter.Req, len(n))
		for i, k := range n {
			parts[i] = nodeReq(k)
		}
		return prefilter.And(parts...)
	case orNode:
		parts := make([]prefilter.Req, len(n))
		for i, k := range n {
			parts[i] = nodeReq(k)
		}
		return prefilter.Or(parts...)
	case *fieldCond:
		if n.neg {
			return nil
		}
		parts := make([]prefilter.Req, len(n.ms))
		for i := range n.ms {
			parts[i] = matcherReq(n.acc, &n.ms[i])
		}
		if n.all {
			return prefilter.And(parts...)
		}
		return prefilter.Or(parts...)
	case *keywordCond:
		parts := make([]prefilter.Req, len(n.pats))
		for i, p := range n.pats {
			var c prefilter.Clause
			for _, f := range n.fields {
				atoms, ok := textAtoms(f, patternLiteral(p))
				if !ok {
					return nil
				}
				c = append(c, atoms...)
			}
			parts[i] = prefilter.Of(c...)
		}
		if n.all {
			return prefilter.And(parts...)
		}
		return prefilter.Or(parts...)
	}
	return nil // notNode, and anything new: no requirement
}

// matcherReq is the requirement of one value on the field acc reads.
func matcherReq(acc accessor, m *matcher) prefilter.Req {
	switch {
	case m.op == opNum && m.cmp == cmpEq && m.isInt && acc.kind == event.KindInt:
		return prefilter.Of(prefilter.IntEq(acc.name, acc.num, m.i))
	case m.op != opPat || m.emptyOK:
		return nil
	}
	lit := patternLiteral(m.pat)
	switch acc.kind {
	case event.KindString:
		atoms, ok := textAtoms(acc, lit)
		if !ok {
			return nil
		}
		return prefilter.Of(atoms...)
	case event.KindStrings:
		if isJSONPath(acc.name) {
			return nil
		}
		a, ok := prefilter.ListContains(acc.name, acc.strs, lit)
		if !ok {
			return nil
		}
		return prefilter.Of(a)
	}
	return nil // a pattern on a number, address or time matches its text
}

// textAtoms states "the string field contains lit" as atoms on contract
// fields: the request target (url.path?url.query) contains a literal
// without '?' only inside the path or the query, so the longest '?'-free
// piece of lit is looked for in both; the URL extension is the end of
// url.path.
func textAtoms(acc accessor, lit string) ([]prefilter.Atom, bool) {
	switch acc.name {
	case targetField:
		piece := prefilter.LongestRun([]rune(lit), func(r rune) bool { return r == '?' })
		p, ok1 := prefilter.Contains("url.path", func(e *event.Event) string { return e.URLPath }, piece)
		q, ok2 := prefilter.Contains("url.query", func(e *event.Event) string { return e.URLQuery }, piece)
		return []prefilter.Atom{p, q}, ok1 && ok2
	case extensionField:
		a, ok := prefilter.Contains("url.path", func(e *event.Event) string { return e.URLPath }, lit)
		return []prefilter.Atom{a}, ok
	}
	a, ok := prefilter.Contains(acc.name, acc.str, lit)
	return []prefilter.Atom{a}, ok
}

// patternLiteral is the longest run of literal characters in a pattern:
// wildcards break runs, and so does U+FFFD, which also matches a
// malformed byte of the subject and so is no literal.
func patternLiteral(p *pattern) string {
	best := ""
	for _, seg := range p.segs {
		run := prefilter.LongestRun(seg, func(r rune) bool { return r == anyRune || r == utf8.RuneError })
		if len(run) > len(best) {
			best = run
		}
	}
	return best
}

func isJSONPath(name string) bool {
	for _, o := range jsonObjects {
		if strings.HasPrefix(name, o.field+".") {
			return true
		}
	}
	return false
}
