package sigma

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/haechi-sec/haechi/internal/event"
)

// compiler compiles a rule's detection against its logsource mapping.
type compiler struct {
	p *docParser
	m *LogsourceMapping
	// weak collects the places the rule runs weaker than written; fields
	// the contract fields the detection reads.
	weak   []Weakening
	fields map[string]bool
}

// weaken records a use of a weakened field or a keyword search.
func (c *compiler) weaken(at ast.Node, format string, args ...any) {
	line, col := position(at)
	c.weak = append(c.weak, Weakening{Line: line, Col: col, What: fmt.Sprintf(format, args...)})
}

// reads records that the detection reads the contract field name.
func (c *compiler) reads(name string) {
	if c.fields == nil {
		c.fields = map[string]bool{}
	}
	switch name {
	case targetField:
		c.fields["url.path"] = true
		name = "url.query"
	case extensionField:
		name = "url.path"
	}
	c.fields[name] = true
}

// selection is one named search identifier.
type selection struct {
	name string
	node node
}

// detection compiles the detection section: every search identifier (used
// by the condition or not, so unsupported features anywhere are reported)
// and the condition.
func (c *compiler) detection(kv *pair) (node, string, error) {
	entries, err := c.p.mapping(kv.val, "detection")
	if err != nil {
		return nil, "", err
	}
	var (
		sels    []selection
		condKV  *pair
		condErr error
	)
	for i := range entries {
		e := &entries[i]
		switch e.key {
		case "condition":
			condKV = e
			continue
		case "timeframe":
			return nil, "", c.p.unsupported(e.keyNode, "timeframe (aggregations and correlations are unsupported)")
		}
		n, err := c.selection(e)
		if err != nil {
			return nil, "", err
		}
		sels = append(sels, selection{name: e.key, node: n})
	}
	if condKV == nil {
		return nil, "", c.p.invalid(kv.keyNode, "detection has no condition")
	}
	if len(sels) == 0 {
		return nil, "", c.p.invalid(kv.keyNode, "detection has no search identifiers")
	}
	// A list of conditions means any of them.
	var conds []scalar
	if seq, ok := condKV.val.(*ast.SequenceNode); ok {
		for _, v := range seq.Values {
			s, err := c.p.scalar(v)
			if err != nil || !s.isStr {
				return nil, "", c.p.invalid(v, "condition must be a string, got %s", describe(v))
			}
			conds = append(conds, s)
		}
		if len(conds) == 0 {
			condErr = c.p.invalid(condKV.val, "empty condition list")
		}
	} else {
		s, err := c.p.scalar(condKV.val)
		if err != nil || !s.isStr {
			condErr = c.p.invalid(condKV.val, "condition must be a string, got %s", describe(condKV.val))
		}
		conds = append(conds, s)
	}
	if condErr != nil {
		return nil, "", condErr
	}
	var (
		roots []node
		texts []string
	)
	for _, s := range conds {
		n, err := c.condition(s, sels)
		if err != nil {
			return nil, "", err
		}
		roots = append(roots, n)
		texts = append(texts, strings.TrimSpace(s.text))
	}
	if len(roots) == 1 {
		return roots[0], texts[0], nil
	}
	return orNode(roots), strings.Join(texts, " or "), nil
}

// selection compiles one search identifier: a map (AND of fields), a list
// of maps (OR), or a list of plain values (a keyword search).
func (c *compiler) selection(e *pair) (node, error) {
	switch v := e.val.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return c.fieldMap(v, e.key)
	case *ast.SequenceNode:
		if len(v.Values) == 0 {
			return nil, c.p.invalid(e.keyNode, "search identifier %q is an empty list", e.key)
		}
		var maps, plain int
		for _, x := range v.Values {
			x, err := c.p.resolve(x)
			if err != nil {
				return nil, err
			}
			switch x.(type) {
			case *ast.MappingNode, *ast.MappingValueNode:
				maps++
			case *ast.SequenceNode:
				return nil, c.p.invalid(x, "search identifier %q: a list inside a list", e.key)
			default:
				plain++
			}
		}
		if maps > 0 && plain > 0 {
			return nil, c.p.invalid(e.keyNode, "search identifier %q mixes maps and plain values", e.key)
		}
		if plain > 0 {
			return c.keywords(e.keyNode, v.Values, false)
		}
		var or orNode
		for _, x := range v.Values {
			n, err := c.fieldMap(x, e.key)
			if err != nil {
				return nil, err
			}
			or = append(or, n)
		}
		if len(or) == 1 {
			return or[0], nil
		}
		return or, nil
	case nil, *ast.NullNode:
		return nil, c.p.invalid(e.keyNode, "search identifier %q is empty", e.key)
	}
	return c.keywords(e.keyNode, []ast.Node{e.val}, false)
}

// fieldMap compiles a map of field conditions (AND).
func (c *compiler) fieldMap(n ast.Node, name string) (node, error) {
	entries, err := c.p.mapping(n, fmt.Sprintf("search identifier %q", name))
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, c.p.invalid(n, "search identifier %q is an empty map", name)
	}
	var and andNode
	for i := range entries {
		f, err := c.field(&entries[i])
		if err != nil {
			return nil, err
		}
		and = append(and, f)
	}
	if len(and) == 1 {
		return and[0], nil
	}
	return and, nil
}

// values returns the scalar values of a field: a scalar, null, or a list
// of scalars.
func (c *compiler) values(e *pair) ([]scalar, error) {
	v := e.val
	seq, ok := v.(*ast.SequenceNode)
	if !ok {
		if _, isMap := v.(*ast.MappingNode); isMap {
			return nil, c.p.invalid(v, "value of %q must be a value or a list of values, got a mapping", e.key)
		}
		if _, isMap := v.(*ast.MappingValueNode); isMap {
			return nil, c.p.invalid(v, "value of %q must be a value or a list of values, got a mapping", e.key)
		}
		s, err := c.p.scalar(v)
		if err != nil {
			return nil, err
		}
		return []scalar{s}, nil
	}
	if len(seq.Values) == 0 {
		return nil, c.p.invalid(e.keyNode, "value of %q is an empty list", e.key)
	}
	out := make([]scalar, 0, len(seq.Values))
	for _, x := range seq.Values {
		s, err := c.p.scalar(x)
		if err != nil {
			return nil, c.p.invalid(x, "value of %q must be a value or a list of values, got %s", e.key, describe(x))
		}
		out = append(out, s)
	}
	return out, nil
}

// keywords compiles a keyword search over the logsource's keyword fields.
func (c *compiler) keywords(at ast.Node, vals []ast.Node, all bool) (node, error) {
	if len(c.m.Keywords) == 0 {
		return nil, c.p.unsupported(at, "keyword search (plain values, not field: value) for logsource %s", c.m.Name)
	}
	if c.m.KeywordsNote != "" {
		c.weaken(at, "keyword search: %s", c.m.KeywordsNote)
	}
	k := &keywordCond{all: all}
	for _, f := range c.m.Keywords {
		c.reads(f)
		a, ok := accessorFor(f)
		if !ok || a.kind != event.KindString {
			return nil, fmt.Errorf("sigma: internal error: keyword field %q", f)
		}
		k.fields = append(k.fields, a)
	}
	for _, v := range vals {
		s, err := c.p.scalar(v)
		if err != nil {
			return nil, c.p.invalid(v, "keyword must be a value, got %s", describe(v))
		}
		if s.null {
			return nil, c.p.invalid(v, "keyword must not be null")
		}
		segs := literalSegs(s.text)
		if s.isStr {
			segs = parseWildcards(s.text)
		}
		k.pats = append(k.pats, newPattern(wrapSegs(segs, true, true), false))
	}
	return k, nil
}

// modifiers is a parsed modifier chain.
type modifiers struct {
	names []string
	xform string // contains, startswith, endswith
	all   bool
	cased bool
	neq   bool
	typ   string // "", "re", "cidr", "exists", "cmp"
	cmp   cmpOp
	flags string // re sub-modifiers i, m, s
	part  timePart
}

var unsupportedModifiers = map[string]string{
	"windash":      "modifier windash (Windows command-line dash permutations; no command lines in the contract)",
	"base64":       "modifier base64",
	"base64offset": "modifier base64offset",
	"utf16le":      "modifier utf16le",
	"utf16be":      "modifier utf16be",
	"utf16":        "modifier utf16",
	"wide":         "modifier wide",
	"expand":       "modifier expand (placeholders)",
	"fieldref":     "modifier fieldref (field-to-field comparison)",
}

func (c *compiler) modifiers(at ast.Node, names []string) (modifiers, error) {
	m := modifiers{names: names}
	setTyp := func(t string) error {
		if m.typ != "" && m.typ != t {
			return c.p.invalid(at, "modifiers %s and %s cannot be combined", m.typ, t)
		}
		m.typ = t
		return nil
	}
	for _, name := range names {
		if why, ok := unsupportedModifiers[name]; ok {
			return m, c.p.unsupported(at, "%s", why)
		}
		var err error
		switch name {
		case "contains", "startswith", "endswith":
			if m.xform != "" {
				return m, c.p.invalid(at, "modifiers %s and %s cannot be combined", m.xform, name)
			}
			m.xform = name
		case "all":
			m.all = true
		case "cased":
			m.cased = true
		case "neq":
			m.neq = true
		case "re":
			err = setTyp("re")
		case "i", "m", "s":
			if m.typ != "re" {
				return m, c.p.invalid(at, "modifier %s must follow re", name)
			}
			if !strings.Contains(m.flags, name) {
				m.flags += name
			}
		case "cidr":
			err = setTyp("cidr")
		case "exists":
			err = setTyp("exists")
		case "lt", "lte", "gt", "gte":
			err = setTyp("cmp")
			m.cmp = map[string]cmpOp{"lt": cmpLt, "lte": cmpLte, "gt": cmpGt, "gte": cmpGte}[name]
		case "minute", "hour", "day", "week", "month", "year":
			if m.part != 0 {
				return m, c.p.invalid(at, "two time modifiers")
			}
			m.part = map[string]timePart{"minute": partMinute, "hour": partHour, "day": partDay, "week": partWeek, "month": partMonth, "year": partYear}[name]
		case "":
			return m, c.p.invalid(at, "empty modifier (\"||\" or a trailing \"|\")")
		default:
			return m, c.p.invalid(at, "unknown modifier %q", name)
		}
		if err != nil {
			return m, err
		}
	}
	if m.xform != "" && m.typ != "" {
		return m, c.p.invalid(at, "modifier %s cannot be combined with %s", m.xform, m.typ)
	}
	if m.typ == "exists" && (m.all || m.cased || m.neq || m.part != 0) {
		return m, c.p.invalid(at, "modifier exists takes no other modifiers")
	}
	if m.cased && m.typ != "" {
		return m, c.p.invalid(at, "modifier cased applies to plain string values, not %s", m.typ)
	}
	if m.part != 0 && m.typ != "" && m.typ != "cmp" {
		return m, c.p.invalid(at, "time modifiers combine only with lt, lte, gt, gte")
	}
	if m.part != 0 && (m.xform != "" || m.cased) {
		return m, c.p.invalid(at, "time modifiers take a number")
	}
	return m, nil
}

// field compiles one "name|modifiers: values" entry.
func (c *compiler) field(e *pair) (node, error) {
	parts := strings.Split(e.key, "|")
	name, modNames := parts[0], parts[1:]
	if name == "" {
		if len(modNames) == 1 && modNames[0] == "all" {
			vals := []ast.Node{e.val}
			if seq, ok := e.val.(*ast.SequenceNode); ok {
				vals = seq.Values
			}
			return c.keywords(e.keyNode, vals, true)
		}
		return nil, c.p.unsupported(e.keyNode, "keyword search with modifiers %q (only '|all' is supported)", e.key)
	}
	fm, ok := c.m.lookup(name)
	if !ok {
		return nil, c.p.unsupported(e.keyNode, "field %q (no mapping for logsource %s; see docs/sigma.md)", name, c.m.Name)
	}
	if fm.Contract != "" && fm.Contract != targetField && fm.Contract != extensionField {
		if _, ok := accessorFor(fm.Contract); !ok {
			// A JSON path the accessor cannot take (an empty segment).
			return nil, c.p.invalid(e.keyNode, "field %q: not a valid path", name)
		}
	}
	if fm.Contract == "" {
		return nil, c.p.unsupported(e.keyNode, "field %q: %s", name, fm.Note)
	}
	if fm.Weakened {
		c.weaken(e.keyNode, "field %q: %s", name, fm.Note)
	}
	c.reads(fm.Contract)
	mods, err := c.modifiers(e.keyNode, modNames)
	if err != nil {
		return nil, err
	}
	vals, err := c.values(e)
	if err != nil {
		return nil, err
	}
	acc, ok := accessorFor(fm.Contract)
	if !ok {
		return nil, fmt.Errorf("sigma: internal error: mapping to unknown contract field %q", fm.Contract)
	}
	if mods.typ == "exists" && len(vals) != 1 {
		return nil, c.p.invalid(e.val, "modifier exists takes one value, true or false")
	}
	fc := &fieldCond{acc: acc, all: mods.all, neg: mods.neq}
	for _, v := range vals {
		m, err := c.value(e, fm.Contract, acc.kind, mods, v)
		if err != nil {
			return nil, err
		}
		fc.ms = append(fc.ms, m)
	}
	return fc, nil
}

var lookaround = regexp.MustCompile(`\(\?<?[=!]`)
var backref = regexp.MustCompile(`\\[1-9]|\\k<`)

// value compiles one value of a field of the given kind.
func (c *compiler) value(e *pair, field string, kind event.FieldKind, mods modifiers, v scalar) (matcher, error) {
	at := v.node
	if at == nil {
		at = e.keyNode
	}
	onKind := func(mod string) error {
		return c.p.unsupported(e.keyNode, "modifier %s on field %s (%s)", mod, field, kindName(kind))
	}
	if mods.typ == "exists" {
		if !v.isBool {
			return matcher{}, c.p.invalid(at, "modifier exists takes true or false, got %s", describe(at))
		}
		return matcher{op: opExists, want: v.b}, nil
	}
	if v.null {
		if mods.typ != "" || mods.xform != "" || mods.cased || mods.part != 0 {
			return matcher{}, c.p.invalid(at, "null takes no modifiers but neq and all")
		}
		return matcher{op: opNull}, nil
	}
	if mods.part != 0 {
		if kind != event.KindTime {
			return matcher{}, onKind(mods.names[0])
		}
		if !v.isInt {
			return matcher{}, c.p.invalid(at, "time modifiers take an integer, got %s", describe(at))
		}
		cmp := cmpEq
		if mods.typ == "cmp" {
			cmp = mods.cmp
		}
		return matcher{op: opTimePart, part: mods.part, cmp: cmp, isInt: true, i: v.i}, nil
	}
	switch mods.typ {
	case "re":
		if v.isBool {
			return matcher{}, c.p.invalid(at, "modifier re takes a string, got %s", describe(at))
		}
		if lookaround.MatchString(v.text) {
			return matcher{}, c.p.unsupported(at, "regular expression lookaround in %q (Go's RE2 syntax has none)", v.text)
		}
		if backref.MatchString(v.text) {
			return matcher{}, c.p.unsupported(at, "regular expression backreference in %q (Go's RE2 syntax has none)", v.text)
		}
		expr := v.text
		if mods.flags != "" {
			expr = "(?" + mods.flags + ")" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			line, col := position(at)
			return matcher{}, &RuleError{File: c.p.file, Line: line, Col: col, Msg: "invalid regular expression (Go RE2 syntax): " + err.Error(), Err: err}
		}
		return matcher{op: opRe, re: re}, nil
	case "cidr":
		switch kind {
		case event.KindIP, event.KindString, event.KindStrings:
		default:
			return matcher{}, onKind("cidr")
		}
		pfx, err := netip.ParsePrefix(v.text)
		if err != nil || !v.isStr {
			return matcher{}, c.p.invalid(at, "modifier cidr takes a network like 10.0.0.0/8, got %s", describe(at))
		}
		return matcher{op: opCIDR, prefix: pfx.Masked()}, nil
	case "cmp":
		if kind != event.KindInt && kind != event.KindFloat {
			return matcher{}, onKind(mods.names[len(mods.names)-1])
		}
		m, ok := number(v)
		if !ok {
			return matcher{}, c.p.invalid(at, "comparison modifiers take a number, got %s", describe(at))
		}
		m.cmp = mods.cmp
		return m, nil
	}
	// A plain value, with contains/startswith/endswith/cased.
	segs := literalSegs(v.text)
	if v.isStr {
		segs = parseWildcards(v.text)
	}
	literal := mods.xform == "" && len(segs) == 1 && !slices.Contains(segs[0], anyRune)
	switch kind {
	case event.KindInt, event.KindFloat:
		if literal {
			if m, ok := number(v); ok {
				return m, nil
			}
		}
	case event.KindIP:
		if literal && !mods.cased {
			if a, err := netip.ParseAddr(string(segs[0])); err == nil {
				return matcher{op: opIPEq, addr: a.Unmap()}, nil
			}
		}
	}
	empty := literal && len(segs[0]) == 0
	switch mods.xform {
	case "contains":
		segs = wrapSegs(segs, true, true)
	case "startswith":
		segs = wrapSegs(segs, false, true)
	case "endswith":
		segs = wrapSegs(segs, true, false)
	}
	return matcher{op: opPat, pat: newPattern(segs, mods.cased), emptyOK: empty}, nil
}

// number reads a numeric value (a YAML number or a string holding one) as
// an equality matcher.
func number(v scalar) (matcher, bool) {
	if v.isNum {
		return matcher{op: opNum, isInt: v.isInt, i: v.i, f: v.f}, true
	}
	if !v.isStr {
		return matcher{}, false
	}
	s := strings.TrimSpace(v.text)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return matcher{op: opNum, isInt: true, i: i, f: float64(i)}, true
	}
	if s == "" || strings.Trim(s, "0123456789.+-eE") != "" {
		return matcher{}, false
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return matcher{op: opNum, f: f}, true
	}
	return matcher{}, false
}
