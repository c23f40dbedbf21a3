package sigma

import (
	"fmt"
	"math"
	"strconv"

	"github.com/goccy/go-yaml/ast"
)

// docParser turns one YAML document into a Rule; every error it returns
// carries the file and the position of the offending node.
type docParser struct {
	file string
}

func (p *docParser) unsupported(n ast.Node, format string, args ...any) error {
	line, col := position(n)
	return &UnsupportedError{File: p.file, Line: line, Col: col, Feature: fmt.Sprintf(format, args...)}
}

func (p *docParser) invalid(n ast.Node, format string, args ...any) error {
	line, col := position(n)
	return &RuleError{File: p.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// resolve strips anchors. Aliases, merge keys and tags are rejected as
// unsupported: Sigma rules do not use them, and refusing aliases also
// rules out "billion laughs" expansion.
func (p *docParser) resolve(n ast.Node) (ast.Node, error) {
	for range 64 {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.MappingKeyNode:
			n = v.Value
		case *ast.AliasNode:
			return nil, p.unsupported(v, "YAML alias")
		case *ast.TagNode:
			tag := "!"
			if tk := v.GetToken(); tk != nil {
				tag = tk.Value
			}
			return nil, p.unsupported(v, "YAML tag %s", tag)
		case *ast.MergeKeyNode:
			return nil, p.unsupported(v, "YAML merge key")
		default:
			return n, nil
		}
	}
	return nil, p.invalid(n, "anchors nested too deeply")
}

type pair struct {
	key     string
	keyNode ast.Node
	val     ast.Node // resolved; nil or *ast.NullNode for a null value
}

// mapping returns the entries of a mapping node in order, rejecting
// duplicate keys. what names the node for messages.
func (p *docParser) mapping(n ast.Node, what string) ([]pair, error) {
	n, err := p.resolve(n)
	if err != nil {
		return nil, err
	}
	var kvs []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		kvs = v.Values
	case *ast.MappingValueNode:
		kvs = []*ast.MappingValueNode{v}
	default:
		return nil, p.invalid(n, "%s must be a mapping, got %s", what, describe(n))
	}
	out := make([]pair, 0, len(kvs))
	seen := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		if kv == nil || kv.Key == nil {
			continue
		}
		k, err := p.resolve(kv.Key)
		if err != nil {
			return nil, err
		}
		ks, err := p.scalar(k)
		if err != nil || ks.null {
			return nil, p.invalid(kv.Key, "keys of %s must be strings, got %s", what, describe(k))
		}
		if seen[ks.text] {
			return nil, p.invalid(kv.Key, "duplicate key %q in %s", ks.text, what)
		}
		seen[ks.text] = true
		val, err := p.resolve(kv.Value)
		if err != nil {
			return nil, err
		}
		if val == nil {
			val = kv.Value
		}
		out = append(out, pair{key: ks.text, keyNode: k, val: val})
	}
	return out, nil
}

// scalar is a YAML scalar as Sigma sees it.
type scalar struct {
	node   ast.Node
	null   bool
	isStr  bool // a string (plain, quoted or block)
	isNum  bool // an integer or a float
	isInt  bool // an integer that fits int64 (i is set)
	isBool bool
	i      int64
	f      float64 // numbers: the value as float64
	b      bool
	text   string // strings: the value; others: their canonical text
}

func (p *docParser) scalar(n ast.Node) (scalar, error) {
	n, err := p.resolve(n)
	if err != nil {
		return scalar{}, err
	}
	s := scalar{node: n}
	switch v := n.(type) {
	case nil, *ast.NullNode:
		s.null = true
	case *ast.StringNode:
		s.isStr, s.text = true, v.Value
	case *ast.LiteralNode:
		s.isStr = true
		if v.Value != nil {
			s.text = v.Value.Value
		}
	case *ast.IntegerNode:
		s.isNum = true
		switch x := v.Value.(type) {
		case int64:
			s.isInt, s.i, s.f = true, x, float64(x)
			s.text = strconv.FormatInt(x, 10)
		case uint64:
			if x <= math.MaxInt64 {
				s.isInt, s.i = true, int64(x)
			}
			s.f = float64(x)
			s.text = strconv.FormatUint(x, 10)
		default:
			return s, p.invalid(n, "unreadable integer %s", v.String())
		}
	case *ast.FloatNode:
		s.isNum, s.f = true, v.Value
		s.text = strconv.FormatFloat(v.Value, 'f', -1, 64)
		if v.Value == math.Trunc(v.Value) && math.Abs(v.Value) < 1<<62 {
			s.isInt, s.i = true, int64(v.Value)
		}
	case *ast.BoolNode:
		s.isBool, s.b = true, v.Value
		s.text = strconv.FormatBool(v.Value)
	default:
		return s, p.invalid(n, "want a scalar value, got %s", describe(n))
	}
	return s, nil
}

// str reads an optional string attribute (numbers and booleans are taken
// as written, so `date: 2024-05-01` and `id: 1234` work).
func (p *docParser) str(n ast.Node, what string) (string, error) {
	s, err := p.scalar(n)
	if err != nil {
		return "", p.invalid(n, "%s must be a string, got %s", what, describe(n))
	}
	if s.null {
		return "", nil
	}
	if !s.isStr {
		if tk := s.node.GetToken(); tk != nil {
			return tk.Value, nil
		}
	}
	return s.text, nil
}

// strList reads a string or a list of strings.
func (p *docParser) strList(n ast.Node, what string) ([]string, error) {
	n, err := p.resolve(n)
	if err != nil {
		return nil, err
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		s, err := p.str(n, what)
		if err != nil || s == "" {
			return nil, err
		}
		return []string{s}, nil
	}
	out := make([]string, 0, len(seq.Values))
	for _, e := range seq.Values {
		s, err := p.str(e, what+" entries")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// describe names a node's kind for messages.
func describe(n ast.Node) string {
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode:
		return strconv.Quote(v.Value)
	case *ast.LiteralNode:
		return "a block string"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "number " + n.String()
	case *ast.BoolNode:
		return "boolean " + n.String()
	}
	return n.Type().String()
}
