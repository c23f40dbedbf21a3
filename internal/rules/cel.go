package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // rules name IANA zones ("Asia/Seoul"); do not depend on the host's zoneinfo

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/decls"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/netname"
	"github.com/haechi-sec/haechi/internal/prefilter"
)

// CostLimit bounds the cost of one evaluation of a condition, in CEL cost
// units (roughly one per operation, plus one per list element or ten
// string bytes an operation visits): enough for a few linear passes over
// the largest event the decoder accepts (1 MiB), not for work that grows
// faster than the event (nested comprehensions). A condition whose static
// worst case is within the limit runs without accounting; any other is
// accounted at run time, and an evaluation that exceeds the limit fails
// with an error, counted like any other runtime error.
const CostLimit = 5_000_000

// WellKnownLists are list names every rule set declares, empty unless
// Options.Lists configures them, so the shipped pack loads without
// configuration.
var WellKnownLists = []string{"corporate_networks"}

// celField is one contract field as CEL sees it.
type celField struct {
	cel   string // CEL name: the contract name, "@timestamp" → "timestamp"
	field string // contract name for event.Field
	kind  event.FieldKind
}

// celFields lists the contract fields in a stable order; celIndex maps a CEL
// name to its position. Both are immutable after package initialisation.
var celFields, celIndex = func() ([]celField, map[string]int) {
	names := event.FieldNames()
	slices.Sort(names)
	fs := make([]celField, 0, len(names))
	idx := make(map[string]int, len(names))
	for _, n := range names {
		k, _ := event.FieldKindOf(n)
		c := celName(n)
		idx[c] = len(fs)
		fs = append(fs, celField{cel: c, field: n, kind: k})
	}
	return fs, idx
}()

// celName returns the CEL variable name of a contract field.
func celName(field string) string {
	if field == "@timestamp" {
		return "timestamp"
	}
	return field
}

// contractName is the inverse of celName; ok is false for a name that is
// not a contract field.
func contractName(name string) (string, bool) {
	if name == "timestamp" || name == "@timestamp" {
		return "@timestamp", true
	}
	if _, ok := event.FieldKindOf(name); ok {
		return name, true
	}
	return "", false
}

func celType(k event.FieldKind) *cel.Type {
	switch k {
	case event.KindStrings:
		return cel.ListType(cel.StringType)
	case event.KindInt:
		return cel.IntType
	case event.KindFloat:
		return cel.DoubleType
	case event.KindTime:
		return cel.TimestampType
	}
	return cel.StringType // KindString, KindIP
}

const eventVar = "__event" // the hidden variable present() reads

var eventType = cel.OpaqueType("haechi.Event")

// compiler holds one CEL environment and the values of the named lists.
// It is immutable once built and safe for concurrent use.
type compiler struct {
	env   *cel.Env
	lists map[string]ref.Val // "lists.<name>" → list value
	locs  *locCache
	names *netname.Cache
	acts  sync.Pool // *activation for Match
}

func newCompiler(opts Options) (*compiler, error) {
	c := &compiler{locs: &locCache{}, names: &netname.Cache{}}
	lists, err := listValues(opts.Lists)
	if err != nil {
		return nil, err
	}
	c.lists = lists
	envOpts := []cel.EnvOption{
		ext.Strings(),
		ext.Sets(),
		ext.Bindings(),
		cel.CrossTypeNumericComparisons(true),
		cel.Variable(eventVar, eventType),
		cel.Macros(cel.GlobalMacro("present", 1, presentMacro)),
		cel.Function("_present", decls.DisableTypeGuards(true), cel.Overload("_present_event_string", []*cel.Type{eventType, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(presentImpl))),
		cel.Function("cidr", decls.DisableTypeGuards(true),
			cel.Overload("cidr_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(cidrImpl)),
			cel.Overload("cidr_string_list", []*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
				cel.BinaryBinding(cidrImpl))),
	}
	for _, f := range celFields {
		envOpts = append(envOpts, cel.Variable(f.cel, celType(f.kind)))
	}
	for name := range lists {
		envOpts = append(envOpts, cel.Variable(name, cel.ListType(cel.StringType)))
	}
	envOpts = append(envOpts, c.timeZoneFunctions()...)
	env, err := cel.NewEnv(envOpts...)
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	c.env = env
	return c, nil
}

// listValues turns configured lists into CEL values keyed by variable
// name, adding the well-known names.
func listValues(in map[string][]string) (map[string]ref.Val, error) {
	out := make(map[string]ref.Val, len(in)+len(WellKnownLists))
	for _, n := range WellKnownLists {
		out["lists."+n] = newNetList(nil)
	}
	for n, vals := range in {
		if !validListName(n) {
			return nil, fmt.Errorf("list name %q: want [a-z_][a-z0-9_]*", n)
		}
		out["lists."+n] = newNetList(vals)
	}
	return out, nil
}

func validListName(n string) bool {
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// netList is a list of strings that also carries the networks its entries
// name, parsed once, so cidr(ip, lists.x) does not parse per event.
type netList struct {
	traits.Lister
	nets []netip.Prefix
	bad  string // first entry that is not an address or network
	size int    // sizeBound of the entries
}

func newNetList(vals []string) *netList {
	vals = slices.Clone(vals)
	l := &netList{Lister: types.NewStringList(types.DefaultTypeAdapter, vals), size: sizeBound(0, vals)}
	for _, v := range vals {
		p, err := parseNet(v)
		if err != nil {
			if l.bad == "" {
				l.bad = v
			}
			continue
		}
		l.nets = append(l.nets, p)
	}
	return l
}

// parseNet reads "10.0.0.0/8" or a single address "10.1.2.3".
func parseNet(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func cidrImpl(ipv, netv ref.Val) ref.Val {
	s, ok := ipv.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(ipv)
	}
	addr, err := netip.ParseAddr(string(s))
	if err != nil {
		return types.False // absent or not an address: in no network
	}
	addr = addr.Unmap()
	switch n := netv.(type) {
	case types.String:
		p, err := parseNet(string(n))
		if err != nil {
			return types.NewErr("cidr: %q is not a network: %v", string(n), err)
		}
		return types.Bool(p.Contains(addr))
	case *netList:
		if n.bad != "" {
			return types.NewErr("cidr: list entry %q is not a network", n.bad)
		}
		for _, p := range n.nets {
			if p.Contains(addr) {
				return types.True
			}
		}
		return types.False
	case traits.Lister:
		it := n.Iterator()
		for it.HasNext() == types.True {
			e, ok := it.Next().(types.String)
			if !ok {
				return types.NewErr("cidr: list element is not a string")
			}
			p, err := parseNet(string(e))
			if err != nil {
				return types.NewErr("cidr: %q is not a network: %v", string(e), err)
			}
			if p.Contains(addr) {
				return types.True
			}
		}
		return types.False
	}
	return types.MaybeNoSuchOverloadErr(netv)
}

// presentMacro rewrites present(user.roles) to _present(__event, "user.roles").
func presentMacro(eh cel.MacroExprFactory, _ ast.Expr, args []ast.Expr) (ast.Expr, *common.Error) {
	name, ok := qualifiedName(args[0])
	if !ok {
		return nil, eh.NewError(args[0].ID(), "present() wants a contract field, e.g. present(token.issued_at)")
	}
	field, ok := contractName(name)
	if !ok {
		return nil, eh.NewError(args[0].ID(), fmt.Sprintf("present(): %q is not a field of the event contract", name))
	}
	return eh.NewCall("_present", eh.NewIdent(eventVar), eh.NewLiteral(types.String(field))), nil
}

// qualifiedName reads a.b.c from an identifier or a chain of selects.
func qualifiedName(e ast.Expr) (string, bool) {
	switch e.Kind() {
	case ast.IdentKind:
		return e.AsIdent(), true
	case ast.SelectKind:
		s := e.AsSelect()
		if s.IsTestOnly() {
			return "", false
		}
		head, ok := qualifiedName(s.Operand())
		if !ok {
			return "", false
		}
		return head + "." + s.FieldName(), true
	}
	return "", false
}

func presentImpl(evv, name ref.Val) ref.Val {
	r, ok := evv.(eventRef)
	if !ok || r.a == nil || r.a.ev == nil {
		return types.NewErr("present: no event")
	}
	n, ok := name.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(name)
	}
	_, present := r.a.ev.Field(string(n))
	return types.Bool(present)
}

// eventRef is the value of the hidden __event variable.
type eventRef struct{ a *activation }

func (r eventRef) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("not convertible")
}
func (r eventRef) ConvertToType(ref.Type) ref.Val { return types.NewErr("not convertible") }
func (r eventRef) Equal(other ref.Val) ref.Val    { return types.Bool(other == ref.Val(r)) }
func (r eventRef) Type() ref.Type                 { return eventType }
func (r eventRef) Value() any                     { return r.a.ev }

// locCache caches time zones by name; IANA lookups read tzdata and are far
// too slow for every event. It is bounded: past maxLocs names, lookups are
// not cached.
type locCache struct {
	m sync.Map // string → *time.Location
	n atomic.Int32
}

const maxLocs = 256

func (c *locCache) get(name string) (*time.Location, error) {
	if l, ok := c.m.Load(name); ok {
		return l.(*time.Location), nil
	}
	var loc *time.Location
	if i := strings.IndexByte(name, ':'); i > 0 && (name[0] == '+' || name[0] == '-') {
		d, err := time.ParseDuration(strings.Replace(name[1:], ":", "h", 1) + "m")
		if err != nil || d >= 24*time.Hour {
			return nil, fmt.Errorf("time zone %q: want an IANA name or ±HH:MM", name)
		}
		if name[0] == '-' {
			d = -d
		}
		loc = time.FixedZone(name, int(d/time.Second))
	} else {
		l, err := time.LoadLocation(name)
		if err != nil {
			return nil, fmt.Errorf("time zone %q: %w", name, err)
		}
		loc = l
	}
	if c.n.Load() < maxLocs {
		if _, loaded := c.m.LoadOrStore(name, loc); !loaded {
			c.n.Add(1)
		}
	}
	return loc, nil
}

// timeZoneFunctions replaces CEL's timestamp accessors that take a time
// zone with versions that cache the zone (CEL's own load it per call).
func (c *compiler) timeZoneFunctions() []cel.EnvOption {
	tz := func(name, id string, f func(time.Time) int) cel.EnvOption {
		return cel.Function(name, decls.DisableTypeGuards(true), cel.MemberOverload(id, []*cel.Type{cel.TimestampType, cel.StringType}, cel.IntType,
			cel.BinaryBinding(func(tv, zv ref.Val) ref.Val {
				t, ok := tv.(types.Timestamp)
				z, ok2 := zv.(types.String)
				if !ok || !ok2 {
					return types.MaybeNoSuchOverloadErr(zv)
				}
				loc, err := c.locs.get(string(z))
				if err != nil {
					return types.WrapErr(err)
				}
				return types.Int(f(t.In(loc)))
			})))
	}
	return []cel.EnvOption{
		tz("getFullYear", overloads.TimestampToYearWithTz, func(t time.Time) int { return t.Year() }),
		tz("getMonth", overloads.TimestampToMonthWithTz, func(t time.Time) int { return int(t.Month()) - 1 }),
		tz("getDayOfYear", overloads.TimestampToDayOfYearWithTz, func(t time.Time) int { return t.YearDay() - 1 }),
		tz("getDayOfMonth", overloads.TimestampToDayOfMonthZeroBasedWithTz, func(t time.Time) int { return t.Day() - 1 }),
		tz("getDate", overloads.TimestampToDayOfMonthOneBasedWithTz, func(t time.Time) int { return t.Day() }),
		tz("getDayOfWeek", overloads.TimestampToDayOfWeekWithTz, func(t time.Time) int { return int(t.Weekday()) }),
		tz("getHours", overloads.TimestampToHoursWithTz, func(t time.Time) int { return t.Hour() }),
		tz("getMinutes", overloads.TimestampToMinutesWithTz, func(t time.Time) int { return t.Minute() }),
	}
}

// compile checks src and builds its program. The returned issues carry
// positions within src (1-based line and column).
func (c *compiler) compile(src string) (*celCondition, []celIssue) {
	parsed, iss := c.env.Compile(src)
	if iss != nil && iss.Err() != nil {
		var out []celIssue
		for _, e := range iss.Errors() {
			loc := e.Location
			out = append(out, celIssue{line: loc.Line(), col: loc.Column() + 1, msg: e.Message})
		}
		return nil, out
	}
	if !parsed.OutputType().IsExactType(cel.BoolType) {
		return nil, []celIssue{{line: 1, col: 1, msg: fmt.Sprintf("condition is of type %s, want bool", parsed.OutputType())}}
	}
	if issues := c.checkConstants(parsed); len(issues) > 0 {
		return nil, issues
	}
	popts := []cel.ProgramOption{
		cel.EvalOptions(cel.OptOptimize),
		cel.OptimizeRegex(interpreter.MatchesRegexOptimization),
	}
	// Runtime cost accounting costs as much as the evaluation itself, so
	// it is only switched on for conditions whose worst case, over events
	// no larger than the decoder accepts, could exceed the limit.
	tracked := true
	if est, err := c.env.EstimateCost(parsed, eventSizes{}); err == nil && est.Max <= CostLimit {
		tracked = false
	}
	cc := &celCondition{src: src, ast: parsed, c: c, lists: c.lists, tracked: tracked,
		guard: extractGuard(parsed.NativeRep().Expr()), exact: exactGuard(parsed.NativeRep().Expr()),
		nat: compileNative(parsed.NativeRep().Expr())}
	if tracked {
		// Most events are far smaller than the largest the decoder
		// accepts: find the largest size bound under which the worst case
		// is still within the limit, and run events within it unaccounted.
		for size := maxEventSize / 2; size >= minFastSize; size /= 2 {
			if est, err := c.env.EstimateCost(parsed, eventSizes{max: size}); err == nil && est.Max <= CostLimit {
				fast, err := c.env.Program(parsed, popts...)
				if err != nil {
					return nil, []celIssue{{line: 1, col: 1, msg: err.Error()}}
				}
				cc.fast, cc.fastMax = fast, size
				break
			}
		}
		popts = append(popts, cel.CostLimit(CostLimit))
	}
	prg, err := c.env.Program(parsed, popts...)
	if err != nil {
		return nil, []celIssue{{line: 1, col: 1, msg: err.Error()}}
	}
	cc.prg = prg
	cc.listsSize = listsSize(cc.lists)
	return cc, nil
}

// minFastSize is the smallest size bound a tracked condition gets an
// unaccounted program for: below it, accounting is cheap anyway.
const minFastSize = 1 << 8

// sizeBound extends the bound b (see eventSizes) over a list: twice its
// length and each element's length.
func sizeBound(b int, list []string) int {
	b = max(b, 2*len(list))
	for _, s := range list {
		b = max(b, len(s))
	}
	return b
}

// listsSize is the size bound of the named lists' values.
func listsSize(lists map[string]ref.Val) int {
	b := 0
	for _, v := range lists {
		if l, ok := v.(*netList); ok {
			b = max(b, l.size)
		}
	}
	return b
}

// eventSize is the size bound of what a condition reads from ev: the
// longest string field, and of each list field twice its length and its
// longest element (eventSizes' terms). Other fields are numbers, times
// and addresses, whose sizes are fixed.
func eventSize(ev *event.Event) int {
	b := 0
	for _, get := range stringFieldGetters {
		b = max(b, len(get(ev)))
	}
	for _, get := range listFieldGetters {
		b = sizeBound(b, get(ev))
	}
	return b
}

// stringFieldGetters and listFieldGetters read every string and list
// field of the contract CEL sees; immutable after initialisation.
var stringFieldGetters, listFieldGetters = func() (ss []func(*event.Event) string, ls []func(*event.Event) []string) {
	for _, f := range celFields {
		switch f.kind {
		case event.KindString:
			if get, ok := event.StringGetter(f.field); ok {
				ss = append(ss, get)
			} else {
				name := f.field
				ss = append(ss, func(e *event.Event) string { v, _ := e.Field(name); s, _ := v.(string); return s })
			}
		case event.KindStrings:
			if get, ok := event.StringsGetter(f.field); ok {
				ls = append(ls, get)
			} else {
				name := f.field
				ls = append(ls, func(e *event.Event) []string { v, _ := e.Field(name); s, _ := v.([]string); return s })
			}
		}
	}
	return ss, ls
}()

// checkConstants validates constant arguments at load time: networks given
// to cidr and time zones given to the get* accessors.
func (c *compiler) checkConstants(a *cel.Ast) []celIssue {
	var out []celIssue
	info := a.NativeRep().SourceInfo()
	report := func(e ast.Expr, msg string) {
		loc := info.GetStartLocation(e.ID())
		out = append(out, celIssue{line: loc.Line(), col: loc.Column() + 1, msg: msg})
	}
	walk(a.NativeRep().Expr(), func(e ast.Expr) {
		if e.Kind() != ast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		switch {
		case call.FunctionName() == "cidr" && len(args) == 2:
			if s, ok := constString(args[1]); ok {
				if _, err := parseNet(s); err != nil {
					report(args[1], fmt.Sprintf("cidr: %q is not a network", s))
				}
			}
			if name, ok := qualifiedName(args[1]); ok {
				if l, ok := c.lists[name].(*netList); ok && l.bad != "" {
					report(args[1], fmt.Sprintf("cidr: %s holds %q, which is not a network", name, l.bad))
				}
			}
		case call.IsMemberFunction() && strings.HasPrefix(call.FunctionName(), "get") && len(args) == 1:
			if s, ok := constString(args[0]); ok {
				if _, err := c.locs.get(s); err != nil {
					report(args[0], err.Error())
				}
			}
		}
	})
	return out
}

func constString(e ast.Expr) (string, bool) {
	if e.Kind() != ast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

// walk visits every node of an expression tree.
func walk(e ast.Expr, fn func(ast.Expr)) {
	if e == nil {
		return
	}
	fn(e)
	switch e.Kind() {
	case ast.CallKind:
		c := e.AsCall()
		if c.IsMemberFunction() {
			walk(c.Target(), fn)
		}
		for _, a := range c.Args() {
			walk(a, fn)
		}
	case ast.SelectKind:
		walk(e.AsSelect().Operand(), fn)
	case ast.ListKind:
		for _, x := range e.AsList().Elements() {
			walk(x, fn)
		}
	case ast.MapKind:
		for _, en := range e.AsMap().Entries() {
			m := en.AsMapEntry()
			walk(m.Key(), fn)
			walk(m.Value(), fn)
		}
	case ast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			walk(f.AsStructField().Value(), fn)
		}
	case ast.ComprehensionKind:
		cp := e.AsComprehension()
		walk(cp.IterRange(), fn)
		walk(cp.AccuInit(), fn)
		walk(cp.LoopCondition(), fn)
		walk(cp.LoopStep(), fn)
		walk(cp.Result(), fn)
	}
}

// maxEventSize bounds any string or list read from an event: the
// decoder's default line limit (1 MiB).
const maxEventSize = 1 << 20

// eventSizes tells CEL's static cost estimator how large event fields
// and lists can be.
type eventSizes struct {
	max int // the bound; 0: maxEventSize
}

func (e eventSizes) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	m := uint64(e.max)
	if m == 0 {
		m = maxEventSize
	}
	if t := n.Type(); t != nil {
		switch t.Kind() {
		case types.StringKind, types.BytesKind:
			return &cost.SizeEstimate{Min: 0, Max: m}
		case types.ListKind, types.MapKind: // an element takes at least 2 bytes ("1,")
			return &cost.SizeEstimate{Min: 0, Max: m / 2}
		}
	}
	return nil
}

func (eventSizes) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

type celIssue struct {
	line, col int
	msg       string
}

// celCondition is a compiled CEL condition. It is safe for concurrent use.
type celCondition struct {
	src   string
	ast   *cel.Ast
	prg   cel.Program
	c     *compiler
	lists map[string]ref.Val
	// tracked: the condition's worst case may exceed CostLimit, so its
	// evaluations are accounted and stopped at the limit.
	tracked bool
	// fast, when set, is the program without accounting, for events (and
	// lists) whose size bound (eventSize) is at most fastMax: for them the
	// worst case is within the limit, so accounting could not stop the
	// evaluation and the verdict is the same.
	fast      cel.Program
	fastMax   int
	listsSize int // size bound of lists
	// guard decides in Go, for most events, that the condition cannot
	// hold (guard.go).
	guard *guard
	// exact: the guard decides the whole condition (every part of it is a
	// simple test), so an event that passes it matches without CEL.
	exact bool
	// nat, when set, evaluates the condition in Go (native.go) wherever
	// the unaccounted program would run.
	nat *native
}

var _ Condition = (*celCondition)(nil)

// Prefilter implements Prefilterer: what the condition's guard tests.
func (c *celCondition) Prefilter() prefilter.Req { return c.guard.prefilter() }

// Match implements Condition.
func (cc *celCondition) Match(ev *event.Event) (bool, error) {
	if !cc.guard.pass(ev) {
		return false, nil
	}
	if cc.exact {
		return true, nil
	}
	a, _ := cc.c.acts.Get().(*activation)
	if a == nil {
		a = newActivation(cc.c.names)
	}
	a.reset(ev)
	ok, err := cc.eval(a)
	a.reset(nil)
	cc.c.acts.Put(a)
	return ok, err
}

// String returns the CEL source.
func (cc *celCondition) String() string { return cc.src }

func (cc *celCondition) eval(a *activation) (bool, error) {
	a.lists = cc.lists
	prg, unaccounted := cc.program(a)
	if cc.nat != nil && unaccounted {
		return cc.nat.eval(a.ev, &a.nat)
	}
	out, _, err := prg.Eval(a)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition evaluated to %v, not a bool", out)
	}
	return bool(b), nil
}

// program returns the cel-go program for a's event, and whether it is
// one without cost accounting (the condition's worst case is within
// CostLimit, or the event is small enough that it is).
func (cc *celCondition) program(a *activation) (cel.Program, bool) {
	if cc.fast != nil && cc.listsSize <= cc.fastMax && a.size() <= cc.fastMax {
		return cc.fast, true
	}
	return cc.prg, !cc.tracked
}

// withLists returns a copy of the condition reading other list values (for
// inline tests that set their own lists).
func (cc *celCondition) withLists(lists map[string][]string) (*celCondition, error) {
	vals := make(map[string]ref.Val, len(cc.lists))
	for k, v := range cc.lists {
		vals[k] = v
	}
	for n, l := range lists {
		if _, ok := vals["lists."+n]; !ok {
			return nil, fmt.Errorf("list %q is not configured (configured lists are declared in Options.Lists; %s always exist)", n, strings.Join(WellKnownLists, ", "))
		}
		vals["lists."+n] = newNetList(l)
	}
	cp := *cc
	cp.lists = vals
	cp.listsSize = listsSize(vals)
	return &cp, nil
}

// activation resolves CEL variables from one event, lazily, caching each
// field's value for the event so several rules reading the same field box
// it once. A shard owns one and resets it per event.
type activation struct {
	ev    *event.Event
	lists map[string]ref.Val
	names *netname.Cache
	self  ref.Val // eventRef{a}
	have  uint64  // bit i: vals[i] holds celFields[i] for ev
	vals  [64]ref.Val
	sized int  // eventSize(ev)+1, 0 until computed
	nat   nenv // native programs' variables
}

// size returns eventSize of the event, computed once per event.
func (a *activation) size() int {
	if a.sized == 0 {
		a.sized = eventSize(a.ev) + 1
	}
	return a.sized - 1
}

var _ interpreter.Activation = (*activation)(nil)

func newActivation(names *netname.Cache) *activation {
	a := &activation{names: names}
	a.self = eventRef{a}
	return a
}

func (a *activation) reset(ev *event.Event) {
	a.ev = ev
	a.have = 0
	a.sized = 0
}

var emptyList = types.NewStringList(types.DefaultTypeAdapter, nil)

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	i, ok := celIndex[name]
	if !ok {
		if name == eventVar {
			return a.self, true
		}
		v, ok := a.lists[name]
		return v, ok
	}
	if i >= len(a.vals) { // more fields than the cache holds: not cached
		return a.value(i), true
	}
	if a.have&(1<<uint(i)) != 0 {
		return a.vals[i], true
	}
	v := a.value(i)
	a.vals[i] = v
	a.have |= 1 << uint(i)
	return v, true
}

// value reads field i of the event as a CEL value; absent fields read as
// the zero value of their type.
func (a *activation) value(i int) ref.Val {
	f := celFields[i]
	v, _ := a.ev.Field(f.field)
	switch x := v.(type) {
	case string:
		return types.String(x)
	case []string:
		if len(x) == 0 {
			return emptyList
		}
		return types.NewStringList(types.DefaultTypeAdapter, x)
	case int64:
		return types.Int(x)
	case float64:
		return types.Double(x)
	case time.Time:
		return types.Timestamp{Time: x}
	case netip.Addr:
		if !x.IsValid() {
			return types.String("")
		}
		return types.String(a.names.Address(x))
	}
	switch f.kind { // not reached for contract fields; keep types honest
	case event.KindStrings:
		return emptyList
	case event.KindInt:
		return types.IntZero
	case event.KindFloat:
		return types.Double(0)
	case event.KindTime:
		return types.Timestamp{}
	}
	return types.String("")
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }
