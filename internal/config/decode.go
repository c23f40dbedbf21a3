package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// decode overlays the YAML in data on *cfg.
//
// go-yaml alone is not strict enough, and it zeroes the target for an empty
// document, so decoding has two passes over one parse:
//  1. our own check of the syntax tree against Config's types (shape, types
//     of scalars, unknown keys, duration syntax) with yaml paths and
//     positions in the errors;
//  2. go-yaml's decoder with Strict, over the checked input.
func decode(data []byte, name string, cfg *Config) error {
	var file *ast.File
	err := guard(func() (err error) {
		file, err = parser.ParseBytes(data, 0)
		return err
	})
	if err != nil {
		return yamlError(name, err)
	}
	var body ast.Node
	for _, doc := range file.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			tk := doc.Body.GetToken()
			if doc.Start != nil {
				tk = doc.Start
			}
			return posError(name, tk, "", "a second YAML document; a config file holds one")
		}
		body = doc.Body
	}
	if body == nil {
		return nil // empty file: the defaults
	}
	c := checker{name: name, anchors: collectAnchors(file)}
	if r := c.resolve(body); r != nil && r.Type() == ast.NullType {
		return nil // a lone null ("~", "&a null"): the defaults, which go-yaml would zero
	}
	if err := c.check(body, reflect.TypeFor[Config](), ""); err != nil {
		return err
	}
	err = guard(func() error { return yaml.UnmarshalWithOptions(data, cfg, yaml.Strict()) })
	if err != nil {
		return yamlError(name, err)
	}
	return nil
}

// guard runs a go-yaml call, turning a panic into an error: go-yaml has
// panicked on malformed input in the past, and a config file must not crash
// the process with a stack trace.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot decode YAML (go-yaml panicked: %v)", r)
		}
	}()
	return f()
}

// yamlError formats a go-yaml error as "name:line:col: message".
func yamlError(name string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			return &decodeError{msg: fmt.Sprintf("%s:%d:%d: %s", name, tk.Position.Line, tk.Position.Column, ye.GetMessage()), err: err}
		}
		return &decodeError{msg: fmt.Sprintf("%s: %s", name, ye.GetMessage()), err: err}
	}
	return &decodeError{msg: fmt.Sprintf("%s: %v", name, err), err: err}
}

// posError is an error at tk: "name:line:col: path: msg".
func posError(name string, tk *token.Token, path, msg string) error {
	where := name
	if tk != nil && tk.Position != nil {
		where = fmt.Sprintf("%s:%d:%d", name, tk.Position.Line, tk.Position.Column)
	}
	if path != "" {
		msg = path + ": " + msg
	}
	return &decodeError{msg: where + ": " + msg}
}

// decodeError carries the formatted message and, for go-yaml's errors, the
// original (so errors.As to yaml.Error still works).
type decodeError struct {
	msg string
	err error
}

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return e.err }

// anchor is one &name definition, for resolving aliases as go-yaml does:
// an alias refers to the latest definition before it.
type anchor struct {
	offset int
	value  ast.Node
}

func collectAnchors(f *ast.File) map[string][]anchor {
	v := &anchorVisitor{m: map[string][]anchor{}}
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			ast.Walk(v, doc.Body)
		}
	}
	for _, list := range v.m {
		sort.SliceStable(list, func(i, j int) bool { return list[i].offset < list[j].offset })
	}
	return v.m
}

type anchorVisitor struct{ m map[string][]anchor }

func (v *anchorVisitor) Visit(n ast.Node) ast.Visitor {
	if a, ok := n.(*ast.AnchorNode); ok && a.Name != nil && a.Name.GetToken() != nil {
		name := a.Name.GetToken().Value
		v.m[name] = append(v.m[name], anchor{offset: offsetOf(a), value: a.Value})
	}
	return v
}

func offsetOf(n ast.Node) int {
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Offset
	}
	return 0
}

type checker struct {
	name    string
	anchors map[string][]anchor
	depth   int
	visits  int
}

// maxDepth bounds recursion through merge keys (which can be cyclic).
const maxDepth = 64

// maxVisits bounds the values checked, so aliases fanning out through merge
// keys ("billion laughs") fail fast here, before go-yaml expands them.
const maxVisits = 100_000

var (
	durationType        = reflect.TypeFor[Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// resolve strips anchors and follows aliases. It returns nil for
// an alias to an unknown anchor (go-yaml reports that itself).
func (c *checker) resolve(n ast.Node) ast.Node {
	for hops := 0; n != nil && hops < maxDepth; hops++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			if v.Value == nil || v.Value.GetToken() == nil {
				return nil
			}
			var target ast.Node
			at := offsetOf(v)
			for _, a := range c.anchors[v.Value.GetToken().Value] {
				if a.offset < at {
					target = a.value
				}
			}
			n = target
		default:
			return n
		}
	}
	return nil
}

// describe names a node's kind for messages.
func describe(n ast.Node) string {
	switch v := n.(type) {
	case nil:
		return "an alias to no anchor before it"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode:
		return fmt.Sprintf("string %q", v.Value)
	case *ast.LiteralNode:
		return "a block string"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "number " + n.String()
	case *ast.BoolNode:
		return "boolean " + n.String()
	default:
		return n.Type().String()
	}
}

// check verifies that n can decode into a value of type t without loss.
func (c *checker) check(n ast.Node, t reflect.Type, path string) error {
	if n == nil {
		return nil
	}
	c.depth++
	c.visits++
	defer func() { c.depth-- }()
	if c.depth > maxDepth {
		return posError(c.name, n.GetToken(), path, "nested too deeply")
	}
	if c.visits > maxVisits {
		return posError(c.name, n.GetToken(), path, "aliases expand to too many values")
	}
	orig := n
	n = c.resolve(n)
	if n == nil || n.Type() == ast.NullType {
		return nil // null keeps the default; unknown aliases are go-yaml's to report
	}
	if tag, ok := n.(*ast.TagNode); ok {
		// go-yaml applies some tags (!!binary decodes base64, !!str keeps
		// 007 as written) that this check would have to mirror; a config
		// file has no need for them.
		text := "!"
		if tk := tag.GetToken(); tk != nil {
			text = tk.Value
		}
		return posError(c.name, orig.GetToken(), path, fmt.Sprintf("YAML tags (%s) are not supported; quote the value if it must be a string", text))
	}
	bad := func(want string) error {
		return posError(c.name, orig.GetToken(), path, fmt.Sprintf("want %s, got %s", want, describe(n)))
	}
	if t == durationType {
		switch v := n.(type) {
		case *ast.StringNode:
			if _, err := ParseDuration(v.Value); err != nil {
				return posError(c.name, orig.GetToken(), path, err.Error())
			}
			return nil
		case *ast.IntegerNode, *ast.FloatNode:
			return posError(c.name, orig.GetToken(), path, errNoUnit(n.String()).Error())
		default:
			return bad(`a duration like "5m" or "7d"`)
		}
	}
	if t != durationType && reflect.PointerTo(t).Implements(textUnmarshalerType) {
		// A type that parses its own text (another package's duration or
		// enum): it must be a plain string that parses.
		sn, ok := n.(*ast.StringNode)
		if !ok {
			return bad("a string")
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(sn.Value)); err != nil {
			return posError(c.name, orig.GetToken(), path, err.Error())
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return fmt.Errorf("config: internal error: map key %s at %s", t.Key(), path)
		}
		var pairs []*ast.MappingValueNode
		switch v := n.(type) {
		case *ast.MappingNode:
			pairs = v.Values
		case *ast.MappingValueNode:
			pairs = []*ast.MappingValueNode{v}
		default:
			return bad("a mapping")
		}
		for _, kv := range pairs {
			key := kv.Key.String()
			if err := c.check(kv.Value, t.Elem(), path+"."+key); err != nil {
				return err
			}
		}
		return nil
	case reflect.Struct:
		return c.checkStruct(n, t, path, bad)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			return bad("a list")
		}
		for i, e := range seq.Values {
			if err := c.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Int, reflect.Int64:
		switch v := n.(type) {
		case *ast.IntegerNode:
			return nil // go-yaml reports overflow itself
		case *ast.FloatNode:
			if v.Value == math.Trunc(v.Value) && math.Abs(v.Value) < 1<<62 {
				return nil
			}
		case *ast.StringNode:
			// go-yaml leaves integers beyond 64 bits as plain strings.
			if s := strings.TrimLeft(v.Value, "+-"); s != "" && strings.Trim(s, "0123456789") == "" && v.GetToken().Type != token.DoubleQuoteType && v.GetToken().Type != token.SingleQuoteType {
				return posError(c.name, orig.GetToken(), path, fmt.Sprintf("%s is out of range", v.Value))
			}
		}
		return bad("a whole number")
	case reflect.Float64:
		switch n.(type) {
		case *ast.IntegerNode, *ast.FloatNode:
			return nil
		}
		return bad("a number")
	case reflect.Bool:
		if _, ok := n.(*ast.BoolNode); ok {
			return nil
		}
		return bad("true or false")
	case reflect.String:
		// go-yaml turns other scalars into strings, but lossily (007 → "7",
		// 0x1F → "31", 1.50 → "1.5"), so accept them only where nothing
		// is lost.
		text := ""
		if tk := n.GetToken(); tk != nil {
			text = tk.Value
		}
		switch v := n.(type) {
		case *ast.StringNode, *ast.LiteralNode:
			return nil
		case *ast.IntegerNode:
			if text == fmt.Sprint(v.Value) {
				return nil
			}
		case *ast.BoolNode:
			if text == strconv.FormatBool(v.Value) {
				return nil
			}
		case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		default:
			return bad("a string")
		}
		return posError(c.name, orig.GetToken(), path, fmt.Sprintf("want a string, got %s (quote it: %q)", describe(n), text))
	}
	return fmt.Errorf("config: internal error: no check for %s at %s", t, path)
}

func (c *checker) checkStruct(n ast.Node, t reflect.Type, path string, bad func(string) error) error {
	var pairs []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		pairs = v.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{v}
	default:
		return bad("a mapping")
	}
	for _, kv := range pairs {
		if kv == nil || kv.Key == nil {
			continue
		}
		key := c.resolve(kv.Key)
		if mk, ok := key.(*ast.MappingKeyNode); ok {
			key = c.resolve(mk.Value)
		}
		if _, ok := key.(*ast.MergeKeyNode); ok {
			// "<<: *base" or "<<: [*a, *b]" merges mappings into this one.
			src := c.resolve(kv.Value)
			if seq, ok := src.(*ast.SequenceNode); ok {
				for _, e := range seq.Values {
					if err := c.check(e, t, path); err != nil {
						return err
					}
				}
				continue
			}
			if err := c.check(kv.Value, t, path); err != nil {
				return err
			}
			continue
		}
		ks, ok := key.(*ast.StringNode)
		if !ok {
			return posError(c.name, kv.Key.GetToken(), path, "keys must be plain strings, got "+describe(key))
		}
		f, ok := fieldByKey(t, ks.Value)
		if !ok {
			return posError(c.name, kv.Key.GetToken(), join(path, ks.Value),
				fmt.Sprintf("unknown key (want %s)", strings.Join(keysOf(t), ", ")))
		}
		if err := c.check(kv.Value, f.Type, join(path, ks.Value)); err != nil {
			return err
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func yamlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return k
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func keysOf(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			keys = append(keys, yamlKey(f))
		}
	}
	return keys
}
