package rules

import (
	"slices"
	"strings"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/prefilter"
)

// A guard is the part of a condition that can be decided in Go without
// CEL: simple tests on contract fields (`event.dataset == "gateway.access"`,
// `!user.id.startsWith("m:")`, `http.response.status_code in [401, 403]`,
// `"service" in user.roles`) combined with && and ||. Parts of the
// condition it cannot decide are taken as "may hold", so an event the
// guard rejects cannot match the condition, and CEL is not run for it —
// most events fail an early test of most rules, and a CEL evaluation
// costs several allocations. An event passing the guard is evaluated in
// full, so the guard never changes a verdict, only its cost.
//
// When the guard holds every part of the condition (exactGuard), its
// verdict is the condition's and CEL is not run at all.
//
// A nil *guard passes everything.
type guard struct {
	op   guardOp
	kids []*guard // and, or
	test guardTest
}

type guardOp uint8

const (
	gTest guardOp = iota
	gAnd
	gOr
)

type testOp uint8

const (
	opEq testOp = iota
	opPrefix
	opSuffix
	opContains
	opIn
	opIntEq
	opIntIn
	opHas // "lit" in LIST
	// STRING.lowerAscii().startsWith / endsWith / contains("lit"), lit
	// ASCII: compared byte by byte with ASCII letters lower-cased.
	opLowerPrefix
	opLowerSuffix
	opLowerContains
)

type guardTest struct {
	field string // the contract field tested
	str   func(*event.Event) string
	num   func(*event.Event) int64
	list  func(*event.Event) []string
	op    testOp
	neg   bool
	lit   string
	lits  []string
	n     int64
	ns    []int64
}

// pass reports whether ev may match.
func (g *guard) pass(ev *event.Event) bool {
	if g == nil {
		return true
	}
	switch g.op {
	case gAnd:
		for _, k := range g.kids {
			if !k.pass(ev) {
				return false
			}
		}
		return true
	case gOr:
		for _, k := range g.kids {
			if k.pass(ev) {
				return true
			}
		}
		return false
	}
	return g.test.eval(ev)
}

func (t *guardTest) eval(ev *event.Event) bool {
	var ok bool
	switch t.op {
	case opEq:
		ok = t.str(ev) == t.lit
	case opPrefix:
		ok = strings.HasPrefix(t.str(ev), t.lit)
	case opSuffix:
		ok = strings.HasSuffix(t.str(ev), t.lit)
	case opContains:
		ok = strings.Contains(t.str(ev), t.lit)
	case opIn:
		ok = slices.Contains(t.lits, t.str(ev))
	case opIntEq:
		ok = t.num(ev) == t.n
	case opIntIn:
		ok = slices.Contains(t.ns, t.num(ev))
	case opHas:
		ok = slices.Contains(t.list(ev), t.lit)
	case opLowerPrefix:
		v := t.str(ev)
		ok = len(v) >= len(t.lit) && lowerASCIIEq(v[:len(t.lit)], t.lit)
	case opLowerSuffix:
		v := t.str(ev)
		ok = len(v) >= len(t.lit) && lowerASCIIEq(v[len(v)-len(t.lit):], t.lit)
	case opLowerContains:
		v := t.str(ev)
		for i := 0; i+len(t.lit) <= len(v); i++ {
			if lowerASCIIEq(v[i:i+len(t.lit)], t.lit) {
				ok = true
				break
			}
		}
	}
	return ok != t.neg
}

// lowerASCIIEq reports whether s with its ASCII letters lower-cased is
// lit (of equal length). For an ASCII lit this is exactly CEL's
// s.lowerAscii() holding lit at that place: lowerAscii changes only ASCII
// letters, and an ASCII literal cannot overlap a multi-byte character.
func lowerASCIIEq(s, lit string) bool {
	for i := 0; i < len(lit); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if b != lit[i] {
			return false
		}
	}
	return true
}

// size returns how many tests the guard holds.
func (g *guard) size() int {
	if g == nil {
		return 0
	}
	if g.op == gTest {
		return 1
	}
	n := 0
	for _, k := range g.kids {
		n += k.size()
	}
	return n
}

// exactGuard reports whether extractGuard decides e entirely: e is a
// simple test or an && / || of such, nothing dropped. Such a guard's
// verdict is the condition's (TestGuardIsSound holds each to CEL's).
func exactGuard(e ast.Expr) bool {
	if e.Kind() == ast.CallKind {
		call := e.AsCall()
		switch call.FunctionName() {
		case "_&&_", "_||_":
			for _, a := range call.Args() {
				if !exactGuard(a) {
					return false
				}
			}
			return true
		}
	}
	_, ok := simpleTest(e)
	return ok
}

// extractGuard builds the guard of a checked condition (nil when nothing
// in it can be decided in Go).
func extractGuard(e ast.Expr) *guard { return extractGuardIn(e, nil) }

// extractGuardIn is extractGuard inside the variables bound by the
// enclosing cel.bind calls (bound): a name rooted at one of them is that
// variable, not a contract field, and nothing is decided on it.
//
// cel.bind(v, init, body) has body's value, so whatever body requires
// the whole requires: its guard is body's, with v bound. (The macro
// expands to a comprehension over an empty list whose accumulator is v,
// initialised to init when body first reads it, and whose result is
// body: an error in init can only make body, and so the whole, not
// match.)
func extractGuardIn(e ast.Expr, bound []string) *guard {
	if body, v, ok := bindBody(e); ok {
		return extractGuardIn(body, append(bound[:len(bound):len(bound)], v))
	}
	if e.Kind() == ast.CallKind {
		call := e.AsCall()
		switch call.FunctionName() {
		case "_&&_":
			// Undecidable parts of a conjunction are dropped: the rest must
			// still hold.
			var kids []*guard
			for _, a := range call.Args() {
				if k := extractGuardIn(a, bound); k != nil {
					kids = append(kids, k)
				}
			}
			return combine(gAnd, kids)
		case "_||_":
			// A disjunction is decidable only when every part is.
			var kids []*guard
			for _, a := range call.Args() {
				k := extractGuardIn(a, bound)
				if k == nil {
					return nil
				}
				kids = append(kids, k)
			}
			return combine(gOr, kids)
		}
	}
	if len(bound) > 0 && readsAny(e, bound) {
		return nil
	}
	if t, ok := simpleTest(e); ok {
		return &guard{op: gTest, test: t}
	}
	return nil
}

// bindBody recognises the expansion of cel.bind(v, init, body) — a
// comprehension over an empty list literal, accumulator v, loop condition
// false, step v — and returns body and v.
func bindBody(e ast.Expr) (ast.Expr, string, bool) {
	if e.Kind() != ast.ComprehensionKind {
		return nil, "", false
	}
	c := e.AsComprehension()
	r := c.IterRange()
	if r.Kind() != ast.ListKind || r.AsList().Size() != 0 {
		return nil, "", false
	}
	if cond := c.LoopCondition(); cond.Kind() != ast.LiteralKind || cond.AsLiteral() != types.False {
		return nil, "", false
	}
	if st := c.LoopStep(); st.Kind() != ast.IdentKind || st.AsIdent() != c.AccuVar() {
		return nil, "", false
	}
	return c.Result(), c.AccuVar(), true
}

// readsAny reports whether e mentions an identifier named in names (an
// identifier, or the root of a field selection, anywhere in e).
func readsAny(e ast.Expr, names []string) bool {
	found := false
	ast.PostOrderVisit(e, ast.NewExprVisitor(func(x ast.Expr) {
		if x.Kind() == ast.IdentKind && slices.Contains(names, x.AsIdent()) {
			found = true
		}
	}))
	return found
}

func combine(op guardOp, kids []*guard) *guard {
	switch len(kids) {
	case 0:
		return nil
	case 1:
		return kids[0]
	}
	return &guard{op: op, kids: kids}
}

// simpleTest recognises, possibly negated with !: STRING == "lit" (or
// !=), STRING.startsWith / endsWith / contains("lit") (also on
// STRING.lowerAscii() with an ASCII lit), STRING in ["a", …], INT == n
// (or !=), INT in [n, …], and "lit" in LIST, for contract fields of those
// kinds.
func simpleTest(e ast.Expr) (guardTest, bool) {
	neg := false
	for e.Kind() == ast.CallKind && e.AsCall().FunctionName() == "!_" && len(e.AsCall().Args()) == 1 {
		neg = !neg
		e = e.AsCall().Args()[0]
	}
	if e.Kind() != ast.CallKind {
		return guardTest{}, false
	}
	call := e.AsCall()
	args := call.Args()
	switch fn := call.FunctionName(); {
	case (fn == "_==_" || fn == "_!=_") && len(args) == 2:
		neg = neg != (fn == "_!=_")
		for _, order := range [2][2]ast.Expr{{args[0], args[1]}, {args[1], args[0]}} {
			name := fieldName(order[0])
			if get, ok := event.StringGetter(name); ok {
				if lit, isLit := constString(order[1]); isLit {
					return guardTest{field: name, str: get, op: opEq, neg: neg, lit: lit}, true
				}
			}
			if get, ok := event.IntGetter(name); ok {
				if n, isLit := constInt(order[1]); isLit {
					return guardTest{field: name, num: get, op: opIntEq, neg: neg, n: n}, true
				}
			}
		}
	case call.IsMemberFunction() && len(args) == 1 && (fn == "startsWith" || fn == "endsWith" || fn == "contains"):
		target := call.Target()
		op := map[string]testOp{"startsWith": opPrefix, "endsWith": opSuffix, "contains": opContains}[fn]
		if target.Kind() == ast.CallKind && target.AsCall().FunctionName() == "lowerAscii" &&
			target.AsCall().IsMemberFunction() && len(target.AsCall().Args()) == 0 {
			target = target.AsCall().Target()
			op = map[string]testOp{"startsWith": opLowerPrefix, "endsWith": opLowerSuffix, "contains": opLowerContains}[fn]
		}
		name := fieldName(target)
		get, ok := event.StringGetter(name)
		lit, isLit := constString(args[0])
		if !ok || !isLit {
			return guardTest{}, false
		}
		if op >= opLowerPrefix && !isASCII(lit) {
			return guardTest{}, false
		}
		return guardTest{field: name, str: get, op: op, neg: neg, lit: lit}, true
	case fn == "@in" && len(args) == 2:
		if lit, isLit := constString(args[0]); isLit {
			name := fieldName(args[1])
			if get, ok := event.StringsGetter(name); ok {
				return guardTest{field: name, list: get, op: opHas, neg: neg, lit: lit}, true
			}
			return guardTest{}, false
		}
		if args[1].Kind() != ast.ListKind {
			return guardTest{}, false
		}
		elems := args[1].AsList().Elements()
		name := fieldName(args[0])
		if get, ok := event.StringGetter(name); ok {
			var lits []string
			for _, el := range elems {
				s, isLit := constString(el)
				if !isLit {
					return guardTest{}, false
				}
				lits = append(lits, s)
			}
			return guardTest{field: name, str: get, op: opIn, neg: neg, lits: lits}, true
		}
		if get, ok := event.IntGetter(name); ok {
			var ns []int64
			for _, el := range elems {
				n, isLit := constInt(el)
				if !isLit {
					return guardTest{}, false
				}
				ns = append(ns, n)
			}
			return guardTest{field: name, num: get, op: opIntIn, neg: neg, ns: ns}, true
		}
	}
	return guardTest{}, false
}

// fieldName returns the contract field an expression reads, or "".
func fieldName(e ast.Expr) string {
	name, ok := qualifiedName(e)
	if !ok {
		return ""
	}
	field, ok := contractName(name)
	if !ok {
		return ""
	}
	return field
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func constInt(e ast.Expr) (int64, bool) {
	if e.Kind() != ast.LiteralKind {
		return 0, false
	}
	n, ok := e.AsLiteral().(types.Int)
	return int64(n), ok
}

// prefilter states what an event must carry for the guard to pass
// (package prefilter): the guard's positive tests as atoms — an equality,
// prefix, suffix or substring implies that the field contains the literal
// case-insensitively, "lit" in LIST that an element does — combined as the
// guard combines them. Negated tests state nothing. Since an event the
// guard rejects cannot match the condition, neither can one failing the
// requirement.
func (g *guard) prefilter() prefilter.Req {
	if g == nil {
		return nil
	}
	switch g.op {
	case gAnd, gOr:
		parts := make([]prefilter.Req, len(g.kids))
		for i, k := range g.kids {
			parts[i] = k.prefilter()
		}
		if g.op == gAnd {
			return prefilter.And(parts...)
		}
		return prefilter.Or(parts...)
	}
	t := &g.test
	if t.neg {
		return nil
	}
	var c prefilter.Clause
	text := func(lit string) bool {
		a, ok := prefilter.Contains(t.field, t.str, lit)
		c = append(c, a)
		return ok
	}
	switch t.op {
	case opEq, opPrefix, opSuffix, opContains, opLowerPrefix, opLowerSuffix, opLowerContains:
		if !text(t.lit) {
			return nil
		}
	case opIn:
		for _, lit := range t.lits {
			if !text(lit) {
				return nil
			}
		}
	case opHas:
		a, ok := prefilter.ListContains(t.field, t.list, t.lit)
		if !ok {
			return nil
		}
		c = append(c, a)
	case opIntEq:
		c = append(c, prefilter.IntEq(t.field, t.num, t.n))
	case opIntIn:
		for _, n := range t.ns {
			c = append(c, prefilter.IntEq(t.field, t.num, n))
		}
	}
	return prefilter.Of(c...)
}
