package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"

	"github.com/haechi-sec/haechi/internal/event"
)

// A native program evaluates a checked condition in Go, without cel-go's
// interpreter, when the condition is built only of what this file knows:
// string, integer and boolean literals; the contract's string, integer
// and string-list fields; &&, ||, !, == and != on strings, integers and
// booleans; <, <=, >, >= on integers; + on strings; size of a string or a
// list; startsWith, endsWith, contains; substring (the strings
// extension); "s" in LIST and x in [literals]; cel.bind; and exists / all
// over a string list. Anything else — a function it does not know, a
// list of lists, an address or time field, a configured list, a map —
// leaves the condition to cel-go.
//
// It keeps CEL's semantics, errors included: && is false when either side
// is false and || true when either side is true, whatever the other side
// evaluated to (an error too); exists is true when some element's
// predicate is, else an error when one was, else false (all likewise);
// a cel.bind variable's initialiser is evaluated when the variable is
// first read, not before (cel-go initialises the accumulator lazily, so
// an initialiser that fails where the body does not read it is no
// error); every other operation passes an error on. The only operation
// that can fail here is substring out of range. TestNativeDifferential
// and FuzzNativeDifferential hold every verdict and error to cel-go's.
//
// A native program does no cost accounting, so it is used only where the
// unaccounted program would be (celCondition.eval): for conditions whose
// worst case is within CostLimit, or events small enough that it is.
type native struct {
	run   boolFn
	slots nslots
}

// nenv is a native program's state while it evaluates one event: the
// event, the bound variables' values, and for each cel.bind variable
// whether its initialiser has run in the current evaluation of its body
// (inited) and the error it gave (errs).
type nenv struct {
	ev     *event.Event
	strs   []string
	lists  [][]string
	ints   []int64
	bools  []bool
	inited []bool
	errs   []error
}

type (
	boolFn func(*nenv) (bool, error)
	strFn  func(*nenv) (string, error)
	intFn  func(*nenv) (int64, error)
	listFn func(*nenv) ([]string, error)
)

// nkind is the static type of a compiled expression.
type nkind uint8

const (
	nBool nkind = iota + 1
	nStr
	nInt
	nList // list of strings
)

// nexpr is one compiled expression: its kind and the function of that
// kind.
type nexpr struct {
	k nkind
	b boolFn
	s strFn
	i intFn
	l listFn
}

// nslots counts the bound variables of each kind, and the cel.bind
// variables (the sizes of nenv's slices).
type nslots struct{ strs, lists, ints, bools, binds int }

// nvar is a bound variable: its kind and slot; for a cel.bind variable
// also its initialiser and its index among the cel.bind variables (lazy;
// -1 for an iteration variable).
type nvar struct {
	name string
	k    nkind
	slot int
	lazy int
	init nexpr
}

// nbuilder compiles one condition.
type nbuilder struct {
	scope []nvar // innermost last
	slots nslots
}

// errUnsupported marks an expression native programs do not evaluate.
var errUnsupported = errors.New("not supported natively")

// compileNative returns the native program of a checked condition, or
// nil when some part of it is not supported.
func compileNative(e ast.Expr) *native {
	var b nbuilder
	x, err := b.expr(e)
	if err != nil || x.k != nBool {
		return nil
	}
	return &native{run: x.b, slots: b.slots}
}

// eval evaluates the program on ev; env is reused between calls.
func (n *native) eval(ev *event.Event, env *nenv) (bool, error) {
	env.ev = ev
	env.strs = grow(env.strs, n.slots.strs)
	env.lists = grow(env.lists, n.slots.lists)
	env.ints = grow(env.ints, n.slots.ints)
	env.bools = grow(env.bools, n.slots.bools)
	env.inited = grow(env.inited, n.slots.binds)
	env.errs = grow(env.errs, n.slots.binds)
	ok, err := n.run(env)
	env.ev = nil
	clear(env.lists) // do not keep the event's lists
	clear(env.errs)
	if err != nil {
		// An error is no match, as from cel-go's path (!, != and == pass
		// a value on beside the error).
		return false, err
	}
	return ok, nil
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func (b *nbuilder) lookup(name string) (nvar, bool) {
	for i := len(b.scope) - 1; i >= 0; i-- {
		if b.scope[i].name == name {
			return b.scope[i], true
		}
	}
	return nvar{}, false
}

// bind declares an iteration variable of kind k in scope and returns it.
func (b *nbuilder) bind(name string, k nkind) nvar {
	v := nvar{name: name, k: k, lazy: -1}
	switch k {
	case nStr:
		v.slot = b.slots.strs
		b.slots.strs++
	case nList:
		v.slot = b.slots.lists
		b.slots.lists++
	case nInt:
		v.slot = b.slots.ints
		b.slots.ints++
	case nBool:
		v.slot = b.slots.bools
		b.slots.bools++
	}
	b.scope = append(b.scope, v)
	return v
}

// bindLazy declares a cel.bind variable initialised by init when first
// read, and returns it.
func (b *nbuilder) bindLazy(name string, init nexpr) nvar {
	v := b.bind(name, init.k)
	v.lazy, v.init = b.slots.binds, init
	b.slots.binds++
	b.scope[len(b.scope)-1] = v
	return v
}

func (b *nbuilder) unbind() { b.scope = b.scope[:len(b.scope)-1] }

func (b *nbuilder) expr(e ast.Expr) (nexpr, error) {
	switch e.Kind() {
	case ast.LiteralKind:
		switch v := e.AsLiteral().(type) {
		case types.String:
			s := string(v)
			return nexpr{k: nStr, s: func(*nenv) (string, error) { return s, nil }}, nil
		case types.Int:
			n := int64(v)
			return nexpr{k: nInt, i: func(*nenv) (int64, error) { return n, nil }}, nil
		case types.Bool:
			t := bool(v)
			return nexpr{k: nBool, b: func(*nenv) (bool, error) { return t, nil }}, nil
		}
		return nexpr{}, errUnsupported
	case ast.IdentKind, ast.SelectKind:
		return b.name(e)
	case ast.ListKind:
		return b.listLiteral(e)
	case ast.CallKind:
		return b.call(e)
	case ast.ComprehensionKind:
		return b.comprehension(e)
	}
	return nexpr{}, errUnsupported
}

// name compiles a bound variable or a contract field.
func (b *nbuilder) name(e ast.Expr) (nexpr, error) {
	q, ok := qualifiedName(e)
	if !ok {
		return nexpr{}, errUnsupported
	}
	root, _, _ := strings.Cut(q, ".")
	if v, bound := b.lookup(root); bound {
		if root != q { // a field of a bound value (a map): not supported
			return nexpr{}, errUnsupported
		}
		if v.lazy >= 0 {
			return lazyVar(v), nil
		}
		slot := v.slot
		switch v.k {
		case nStr:
			return nexpr{k: nStr, s: func(env *nenv) (string, error) { return env.strs[slot], nil }}, nil
		case nList:
			return nexpr{k: nList, l: func(env *nenv) ([]string, error) { return env.lists[slot], nil }}, nil
		case nInt:
			return nexpr{k: nInt, i: func(env *nenv) (int64, error) { return env.ints[slot], nil }}, nil
		case nBool:
			return nexpr{k: nBool, b: func(env *nenv) (bool, error) { return env.bools[slot], nil }}, nil
		}
		return nexpr{}, errUnsupported
	}
	field, ok := contractName(q)
	if !ok {
		return nexpr{}, errUnsupported
	}
	kind, _ := event.FieldKindOf(field)
	switch kind {
	case event.KindString:
		if get, ok := event.StringGetter(field); ok {
			return nexpr{k: nStr, s: func(env *nenv) (string, error) { return get(env.ev), nil }}, nil
		}
	case event.KindStrings:
		if get, ok := event.StringsGetter(field); ok {
			return nexpr{k: nList, l: func(env *nenv) ([]string, error) { return get(env.ev), nil }}, nil
		}
	case event.KindInt:
		if get, ok := event.IntGetter(field); ok {
			return nexpr{k: nInt, i: func(env *nenv) (int64, error) { return get(env.ev), nil }}, nil
		}
	}
	return nexpr{}, errUnsupported
}

// listLiteral compiles a list of string expressions.
func (b *nbuilder) listLiteral(e ast.Expr) (nexpr, error) {
	l := e.AsList()
	if len(l.OptionalIndices()) > 0 {
		return nexpr{}, errUnsupported
	}
	var elems []strFn
	var consts []string
	allConst := true
	for _, el := range l.Elements() {
		x, err := b.expr(el)
		if err != nil || x.k != nStr {
			return nexpr{}, errUnsupported
		}
		elems = append(elems, x.s)
		if s, ok := constString(el); ok {
			consts = append(consts, s)
		} else {
			allConst = false
		}
	}
	if allConst {
		return nexpr{k: nList, l: func(*nenv) ([]string, error) { return consts, nil }}, nil
	}
	return nexpr{k: nList, l: func(env *nenv) ([]string, error) {
		out := make([]string, len(elems))
		for i, f := range elems {
			s, err := f(env)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}}, nil
}

func (b *nbuilder) call(e ast.Expr) (nexpr, error) {
	call := e.AsCall()
	fn := call.FunctionName()
	var args []nexpr
	if call.IsMemberFunction() {
		t, err := b.expr(call.Target())
		if err != nil {
			return nexpr{}, err
		}
		args = append(args, t)
	}
	for _, a := range call.Args() {
		x, err := b.expr(a)
		if err != nil {
			return nexpr{}, err
		}
		args = append(args, x)
	}
	kinds := make([]nkind, len(args))
	for i, a := range args {
		kinds[i] = a.k
	}
	is := func(ks ...nkind) bool { return slices.Equal(kinds, ks) }
	switch {
	case fn == "_&&_" && is(nBool, nBool):
		return boolExpr(and(args[0].b, args[1].b)), nil
	case fn == "_||_" && is(nBool, nBool):
		return boolExpr(or(args[0].b, args[1].b)), nil
	case fn == "!_" && is(nBool):
		f := args[0].b
		return boolExpr(func(env *nenv) (bool, error) {
			v, err := f(env)
			return !v, err
		}), nil
	case (fn == "_==_" || fn == "_!=_") && len(args) == 2 && kinds[0] == kinds[1]:
		eq, err := equal(args[0], args[1])
		if err != nil {
			return nexpr{}, err
		}
		if fn == "_!=_" {
			return boolExpr(func(env *nenv) (bool, error) {
				v, err := eq(env)
				return !v, err
			}), nil
		}
		return boolExpr(eq), nil
	case (fn == "_<_" || fn == "_<=_" || fn == "_>_" || fn == "_>=_") && is(nInt, nInt):
		x, y := args[0].i, args[1].i
		cmp := map[string]func(a, b int64) bool{
			"_<_": func(a, b int64) bool { return a < b }, "_<=_": func(a, b int64) bool { return a <= b },
			"_>_": func(a, b int64) bool { return a > b }, "_>=_": func(a, b int64) bool { return a >= b },
		}[fn]
		return boolExpr(func(env *nenv) (bool, error) {
			a, err := x(env)
			if err != nil {
				return false, err
			}
			c, err := y(env)
			if err != nil {
				return false, err
			}
			return cmp(a, c), nil
		}), nil
	case fn == "_+_" && is(nStr, nStr):
		x, y := args[0].s, args[1].s
		return nexpr{k: nStr, s: func(env *nenv) (string, error) {
			a, err := x(env)
			if err != nil {
				return "", err
			}
			c, err := y(env)
			if err != nil {
				return "", err
			}
			return a + c, nil
		}}, nil
	case fn == "size" && is(nStr):
		x := args[0].s
		return nexpr{k: nInt, i: func(env *nenv) (int64, error) {
			s, err := x(env)
			return int64(utf8.RuneCountInString(s)), err
		}}, nil
	case fn == "size" && is(nList):
		x := args[0].l
		return nexpr{k: nInt, i: func(env *nenv) (int64, error) {
			l, err := x(env)
			return int64(len(l)), err
		}}, nil
	case call.IsMemberFunction() && (fn == "startsWith" || fn == "endsWith" || fn == "contains") && is(nStr, nStr):
		test := map[string]func(s, t string) bool{"startsWith": strings.HasPrefix, "endsWith": strings.HasSuffix, "contains": strings.Contains}[fn]
		x, y := args[0].s, args[1].s
		return boolExpr(func(env *nenv) (bool, error) {
			s, err := x(env)
			if err != nil {
				return false, err
			}
			t, err := y(env)
			if err != nil {
				return false, err
			}
			return test(s, t), nil
		}), nil
	case call.IsMemberFunction() && fn == "substring" && (is(nStr, nInt) || is(nStr, nInt, nInt)):
		return substring(args), nil
	case fn == "@in" && is(nStr, nList):
		if r := call.Args()[1]; r.Kind() == ast.ListKind && r.AsList().Size() == 0 {
			// cel-go's optimiser (OptOptimize) turns x in [] into false
			// without evaluating x: an error in x is no error.
			return boolExpr(func(*nenv) (bool, error) { return false, nil }), nil
		}
		x, l := args[0].s, args[1].l
		return boolExpr(func(env *nenv) (bool, error) {
			s, err := x(env)
			if err != nil {
				return false, err
			}
			list, err := l(env)
			if err != nil {
				return false, err
			}
			return slices.Contains(list, s), nil
		}), nil
	}
	return nexpr{}, errUnsupported
}

func boolExpr(f boolFn) nexpr { return nexpr{k: nBool, b: f} }

// and is CEL's commutative &&: false when either side is false, else the
// first error, else true.
func and(x, y boolFn) boolFn {
	return func(env *nenv) (bool, error) {
		a, errA := x(env)
		if errA == nil && !a {
			return false, nil
		}
		c, errC := y(env)
		if errC == nil && !c {
			return false, nil
		}
		if errA != nil {
			return false, errA
		}
		return true, errC
	}
}

// or is CEL's commutative ||: true when either side is true, else the
// first error, else false.
func or(x, y boolFn) boolFn {
	return func(env *nenv) (bool, error) {
		a, errA := x(env)
		if errA == nil && a {
			return true, nil
		}
		c, errC := y(env)
		if errC == nil && c {
			return true, nil
		}
		if errA != nil {
			return false, errA
		}
		return false, errC
	}
}

// equal compiles == between two expressions of one kind (strings, ints,
// booleans; lists element by element).
func equal(x, y nexpr) (boolFn, error) {
	switch x.k {
	case nStr:
		return func(env *nenv) (bool, error) {
			a, err := x.s(env)
			if err != nil {
				return false, err
			}
			c, err := y.s(env)
			return a == c, err
		}, nil
	case nInt:
		return func(env *nenv) (bool, error) {
			a, err := x.i(env)
			if err != nil {
				return false, err
			}
			c, err := y.i(env)
			return a == c, err
		}, nil
	case nBool:
		return func(env *nenv) (bool, error) {
			a, err := x.b(env)
			if err != nil {
				return false, err
			}
			c, err := y.b(env)
			return a == c, err
		}, nil
	case nList:
		return func(env *nenv) (bool, error) {
			a, err := x.l(env)
			if err != nil {
				return false, err
			}
			c, err := y.l(env)
			return slices.Equal(a, c), err
		}, nil
	}
	return nil, errUnsupported
}

// substring is the strings extension's s.substring(start) and
// s.substring(start, end): code points, an error out of range.
func substring(args []nexpr) nexpr {
	x, from := args[0].s, args[1].i
	var to intFn
	if len(args) == 3 {
		to = args[2].i
	}
	return nexpr{k: nStr, s: func(env *nenv) (string, error) {
		s, err := x(env)
		if err != nil {
			return "", err
		}
		start, err := from(env)
		if err != nil {
			return "", err
		}
		n := int64(utf8.RuneCountInString(s))
		end := n
		if to != nil {
			if end, err = to(env); err != nil {
				return "", err
			}
			if start > end {
				return "", fmt.Errorf("invalid substring range. start: %d, end: %d", start, end)
			}
		}
		if start < 0 || start > n {
			return "", fmt.Errorf("index out of range: %d", start)
		}
		if end < 0 || end > n {
			return "", fmt.Errorf("index out of range: %d", end)
		}
		if isASCII(s) {
			return s[start:end], nil
		}
		r := []rune(s) // as the extension: invalid bytes become U+FFFD
		return string(r[start:end]), nil
	}}
}

// comprehension compiles cel.bind and exists / all over a string list.
func (b *nbuilder) comprehension(e ast.Expr) (nexpr, error) {
	c := e.AsComprehension()
	if c.HasIterVar2() {
		return nexpr{}, errUnsupported
	}
	if body, v, ok := bindBody(e); ok {
		init, err := b.expr(c.AccuInit())
		if err != nil {
			return nexpr{}, err
		}
		bv := b.bindLazy(v, init)
		res, err := b.expr(body)
		b.unbind()
		if err != nil || res.k != nBool {
			return nexpr{}, errUnsupported
		}
		return boolExpr(bindFn(bv, res.b)), nil
	}
	exists, ok := quantifier(c)
	if !ok {
		return nexpr{}, errUnsupported
	}
	rng, err := b.expr(c.IterRange())
	if err != nil || rng.k != nList {
		return nexpr{}, errUnsupported
	}
	iv := b.bind(c.IterVar(), nStr)
	pred, err := b.expr(predicate(c))
	b.unbind()
	if err != nil || pred.k != nBool {
		return nexpr{}, errUnsupported
	}
	list, p, slot := rng.l, pred.b, iv.slot
	return boolExpr(func(env *nenv) (bool, error) {
		l, err := list(env)
		if err != nil {
			return false, err
		}
		var firstErr error
		for _, s := range l {
			env.strs[slot] = s
			v, err := p(env)
			switch {
			case err != nil:
				if firstErr == nil {
					firstErr = err
				}
			case v == exists:
				return exists, nil
			}
		}
		if firstErr != nil {
			return false, firstErr
		}
		return !exists, nil
	}), nil
}

// bindFn evaluates body with v not yet initialised: as cel-go does, v's
// initialiser runs when body first reads v (lazyVar), and not at all when
// body does not, so an error in it is the whole's only where body reads v
// and does not absorb the error.
func bindFn(v nvar, body boolFn) boolFn {
	lazy := v.lazy
	return func(env *nenv) (bool, error) {
		env.inited[lazy] = false
		env.errs[lazy] = nil
		return body(env)
	}
}

// lazyVar compiles a read of the cel.bind variable v: the first read in
// an evaluation of the bind's body runs v's initialiser (in the scope
// outside the bind, whose variables keep their values while the body
// runs) and keeps its value and error for the later reads.
func lazyVar(v nvar) nexpr {
	lazy, slot, init := v.lazy, v.slot, v.init
	switch v.k {
	case nStr:
		return nexpr{k: nStr, s: func(env *nenv) (string, error) {
			if !env.inited[lazy] {
				env.inited[lazy] = true
				env.strs[slot], env.errs[lazy] = init.s(env)
			}
			return env.strs[slot], env.errs[lazy]
		}}
	case nList:
		return nexpr{k: nList, l: func(env *nenv) ([]string, error) {
			if !env.inited[lazy] {
				env.inited[lazy] = true
				env.lists[slot], env.errs[lazy] = init.l(env)
			}
			return env.lists[slot], env.errs[lazy]
		}}
	case nInt:
		return nexpr{k: nInt, i: func(env *nenv) (int64, error) {
			if !env.inited[lazy] {
				env.inited[lazy] = true
				env.ints[slot], env.errs[lazy] = init.i(env)
			}
			return env.ints[slot], env.errs[lazy]
		}}
	}
	return nexpr{k: nBool, b: func(env *nenv) (bool, error) {
		if !env.inited[lazy] {
			env.inited[lazy] = true
			env.bools[slot], env.errs[lazy] = init.b(env)
		}
		return env.bools[slot], env.errs[lazy]
	}}
}

// quantifier recognises the expansions of LIST.exists(x, P) (true) and
// LIST.all(x, P) (false).
func quantifier(c ast.ComprehensionExpr) (exists bool, ok bool) {
	accu := c.AccuVar()
	isAccu := func(e ast.Expr) bool { return e.Kind() == ast.IdentKind && e.AsIdent() == accu }
	call := func(e ast.Expr, fn string, n int) []ast.Expr {
		if e.Kind() != ast.CallKind || e.AsCall().FunctionName() != fn || len(e.AsCall().Args()) != n {
			return nil
		}
		return e.AsCall().Args()
	}
	init := c.AccuInit()
	if init.Kind() != ast.LiteralKind || !isAccu(c.Result()) {
		return false, false
	}
	switch init.AsLiteral() {
	case types.False: // exists: cond @not_strictly_false(!accu), step accu || P
		cond := call(c.LoopCondition(), "@not_strictly_false", 1)
		if cond == nil {
			return false, false
		}
		not := call(cond[0], "!_", 1)
		step := call(c.LoopStep(), "_||_", 2)
		if not == nil || !isAccu(not[0]) || step == nil || !isAccu(step[0]) {
			return false, false
		}
		return true, true
	case types.True: // all: cond @not_strictly_false(accu), step accu && P
		cond := call(c.LoopCondition(), "@not_strictly_false", 1)
		step := call(c.LoopStep(), "_&&_", 2)
		if cond == nil || !isAccu(cond[0]) || step == nil || !isAccu(step[0]) {
			return false, false
		}
		return false, true
	}
	return false, false
}

// predicate returns P of a quantifier's step (accu || P, accu && P).
func predicate(c ast.ComprehensionExpr) ast.Expr { return c.LoopStep().AsCall().Args()[1] }
