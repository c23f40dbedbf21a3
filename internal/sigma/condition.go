package sigma

import (
	"strings"

	"github.com/goccy/go-yaml/token"
)

// maxCondDepth bounds the nesting of parentheses and "not" in a condition.
const maxCondDepth = 100

type ctokKind uint8

const (
	ctEOF ctokKind = iota
	ctLParen
	ctRParen
	ctWord
	ctPipe
)

type ctok struct {
	kind ctokKind
	text string
	off  int // byte offset in the condition
}

func lexCondition(s string) []ctok {
	var toks []ctok
	for i := 0; i < len(s); {
		switch ch := s[i]; {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		case ch == '(':
			toks = append(toks, ctok{ctLParen, "(", i})
			i++
		case ch == ')':
			toks = append(toks, ctok{ctRParen, ")", i})
			i++
		case ch == '|':
			toks = append(toks, ctok{ctPipe, "|", i})
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()|", rune(s[j])) {
				j++
			}
			toks = append(toks, ctok{ctWord, s[i:j], i})
			i = j
		}
	}
	return append(toks, ctok{ctEOF, "", len(s)})
}

// condParser is a recursive-descent parser of Sigma conditions:
//
//	expr    = and { "or" and }
//	and     = not { "and" not }
//	not     = "not" not | primary
//	primary = "(" expr ")" | ("1" | "all") "of" (pattern | "them") | identifier
type condParser struct {
	c     *compiler
	cond  scalar
	sels  []selection
	toks  []ctok
	i     int
	depth int
}

// condition compiles one condition string against the search identifiers.
func (c *compiler) condition(s scalar, sels []selection) (node, error) {
	p := &condParser{c: c, cond: s, sels: sels, toks: lexCondition(s.text)}
	if p.peek().kind == ctEOF {
		return nil, c.p.invalid(s.node, "empty condition")
	}
	for _, t := range p.toks {
		if t.kind == ctPipe {
			return nil, p.unsupportedAt(t, "aggregation in condition (\"| count() ...\", deprecated; correlation rules are unsupported too)")
		}
	}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != ctEOF {
		return nil, p.errAt(t, "unexpected %q in condition", t.text)
	}
	return n, nil
}

func (p *condParser) peek() ctok { return p.toks[p.i] }

func (p *condParser) next() ctok {
	t := p.toks[p.i]
	if t.kind != ctEOF {
		p.i++
	}
	return t
}

func (p *condParser) isWord(t ctok, w string) bool {
	return t.kind == ctWord && strings.EqualFold(t.text, w)
}

// at returns the line and column of offset off in the condition: exact for
// a single-line plain or quoted scalar, the scalar's start otherwise.
func (p *condParser) at(off int) (int, int) {
	if p.cond.node == nil {
		return 0, 0
	}
	line, col := position(p.cond.node)
	tk := p.cond.node.GetToken()
	if line == 0 || tk == nil || strings.ContainsAny(p.cond.text, "\n\r") {
		return line, col
	}
	switch tk.Type {
	case token.DoubleQuoteType, token.SingleQuoteType:
		if strings.ContainsAny(p.cond.text, `'"\`) {
			return line, col // escapes: offsets in the source differ
		}
		return line, col + 1 + off
	case token.StringType:
		return line, col + off
	}
	return line, col
}

func (p *condParser) errAt(t ctok, format string, args ...any) error {
	line, col := p.at(t.off)
	err := p.c.p.invalid(nil, format, args...).(*RuleError)
	err.Line, err.Col = line, col
	return err
}

func (p *condParser) unsupportedAt(t ctok, format string, args ...any) error {
	line, col := p.at(t.off)
	err := p.c.p.unsupported(nil, format, args...).(*UnsupportedError)
	err.Line, err.Col = line, col
	return err
}

func (p *condParser) expr() (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxCondDepth {
		return nil, p.errAt(p.peek(), "condition nested too deeply")
	}
	var or orNode
	for {
		n, err := p.and()
		if err != nil {
			return nil, err
		}
		or = append(or, n)
		if !p.isWord(p.peek(), "or") {
			break
		}
		p.next()
	}
	if len(or) == 1 {
		return or[0], nil
	}
	return or, nil
}

func (p *condParser) and() (node, error) {
	var and andNode
	for {
		n, err := p.not()
		if err != nil {
			return nil, err
		}
		and = append(and, n)
		if !p.isWord(p.peek(), "and") {
			break
		}
		p.next()
	}
	if len(and) == 1 {
		return and[0], nil
	}
	return and, nil
}

func (p *condParser) not() (node, error) {
	if !p.isWord(p.peek(), "not") {
		return p.primary()
	}
	t := p.next()
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxCondDepth {
		return nil, p.errAt(t, "condition nested too deeply")
	}
	n, err := p.not()
	if err != nil {
		return nil, err
	}
	if inner, ok := n.(notNode); ok {
		return inner.n, nil
	}
	return notNode{n}, nil
}

func (p *condParser) primary() (node, error) {
	t := p.next()
	switch t.kind {
	case ctEOF:
		return nil, p.errAt(t, "condition ends early")
	case ctRParen:
		return nil, p.errAt(t, "unexpected \")\" in condition")
	case ctPipe:
		return nil, p.unsupportedAt(t, "aggregation in condition (\"| count() ...\", deprecated; correlation rules are unsupported too)")
	case ctLParen:
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != ctRParen {
			return nil, p.errAt(c, "missing \")\" in condition")
		}
		return n, nil
	}
	if p.isWord(p.peek(), "of") {
		p.next()
		return p.quantified(t)
	}
	for _, kw := range []string{"and", "or", "of", "them"} {
		if p.isWord(t, kw) {
			return nil, p.errAt(t, "unexpected %q in condition", t.text)
		}
	}
	if p.isWord(t, "near") {
		return nil, p.unsupportedAt(t, "near in condition (temporal correlation)")
	}
	if strings.Contains(t.text, "*") {
		return nil, p.errAt(t, "wildcard identifier %q needs \"1 of\" or \"all of\"", t.text)
	}
	for _, s := range p.sels {
		if s.name == t.text {
			return s.node, nil
		}
	}
	return nil, p.errAt(t, "condition names %q, which is not a search identifier of this detection", t.text)
}

// quantified compiles "1 of X" / "all of X"; q is the quantifier.
func (p *condParser) quantified(q ctok) (node, error) {
	all := false
	switch {
	case q.text == "1", p.isWord(q, "any"):
	case p.isWord(q, "all"):
		all = true
	case strings.Trim(q.text, "0123456789") == "":
		return nil, p.unsupportedAt(q, "%q of in condition (only \"1 of\" and \"all of\")", q.text)
	default:
		return nil, p.errAt(q, "unexpected %q before \"of\" in condition", q.text)
	}
	target := p.next()
	if target.kind != ctWord {
		return nil, p.errAt(target, "\"of\" needs a search identifier pattern or \"them\"")
	}
	var kids []node
	if p.isWord(target, "them") {
		for _, s := range p.sels {
			if !strings.HasPrefix(s.name, "_") {
				kids = append(kids, s.node)
			}
		}
	} else {
		pat := compilePattern(strings.ReplaceAll(target.text, "?", `\?`), true)
		for _, s := range p.sels {
			if pat.match(s.name) {
				kids = append(kids, s.node)
			}
		}
	}
	if len(kids) == 0 {
		return nil, p.errAt(target, "%q matches no search identifier", target.text)
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	if all {
		return andNode(kids), nil
	}
	return orNode(kids), nil
}
