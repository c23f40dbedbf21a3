package rules

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

//go:embed pack/*.yml
var packFS embed.FS

// Pack returns the shipped rule pack (internal/rules/pack/*.yml).
func Pack(opts Options) (*Set, error) {
	return loadFS(packFS, "pack", "pack", opts)
}

// LoadError is one problem in a rule file, at a position.
type LoadError struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	Msg       string
}

func (e *LoadError) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// LoadDir loads every .yml and .yaml file under dir (recursively, in
// lexical order, skipping names that start with "."). dir may also name a
// single file. The error joins every problem found, each a *LoadError
// "file:line:col: reason"; the set is nil then.
func LoadDir(dir string, opts Options) (*Set, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if !st.IsDir() {
		return loadFS(os.DirFS(filepath.Dir(dir)), filepath.Base(dir), filepath.Dir(dir), opts)
	}
	return loadFS(os.DirFS(dir), ".", dir, opts)
}

// LoadFS is LoadDir over a file system; root is a directory or a file in
// fsys. Errors name files by their path in fsys.
func LoadFS(fsys fs.FS, root string, opts Options) (*Set, error) {
	return loadFS(fsys, root, "", opts)
}

func loadFS(fsys fs.FS, root, display string, opts Options) (*Set, error) {
	comp, err := newCompiler(opts)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var files []string
	err = fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() && (p == root || strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	set := &Set{}
	var errs []error
	for _, p := range files {
		name := p
		if display != "" {
			rel := p
			if root != "." && display == root {
				rel = strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
			}
			name = filepath.Join(display, filepath.FromSlash(rel))
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			errs = append(errs, &LoadError{File: name, Msg: err.Error()})
			continue
		}
		rules, ferrs := parseFile(comp, name, data)
		errs = append(errs, ferrs...)
		for _, r := range rules {
			if err := set.Add(r); err != nil {
				errs = append(errs, &LoadError{File: r.File, Line: r.Line, Col: 1, Msg: err.Error()})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// ParseFile parses one rule file's contents (for tools and fuzzing); name
// is used in errors.
func ParseFile(name string, data []byte, opts Options) ([]*Rule, error) {
	comp, err := newCompiler(opts)
	if err != nil {
		return nil, err
	}
	rules, errs := parseFile(comp, name, data)
	return rules, errors.Join(errs...)
}

// ruleDoc is a rule as written.
type ruleDoc struct {
	ID          string    `yaml:"id"`
	Title       string    `yaml:"title"`
	Description string    `yaml:"description"`
	Severity    string    `yaml:"severity"`
	Tags        []string  `yaml:"tags"`
	Entity      string    `yaml:"entity"`
	Enabled     *bool     `yaml:"enabled"`
	Condition   string    `yaml:"condition"`
	Aggregate   *aggDoc   `yaml:"aggregate"`
	Tests       []testDoc `yaml:"tests"`
}

type aggDoc struct {
	Function  string `yaml:"function"`
	Field     string `yaml:"field"`
	Window    string `yaml:"window"`
	Threshold int    `yaml:"threshold"`
}

type testDoc struct {
	Name   string              `yaml:"name"`
	Events []any               `yaml:"events"`
	Lists  map[string][]string `yaml:"lists"`
	Expect *struct {
		Findings *int     `yaml:"findings"`
		Entities []string `yaml:"entities"`
	} `yaml:"expect"`
}

func parseFile(comp *compiler, name string, data []byte) (rules []*Rule, errs []error) {
	fail := func(line, col int, format string, args ...any) {
		errs = append(errs, &LoadError{File: name, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
	}
	defer func() { // the YAML library is not fuzz-proof everywhere
		if p := recover(); p != nil {
			rules = nil
			fail(0, 0, "cannot parse: %v", p)
		}
	}()
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		errs = append(errs, yamlError(name, err))
		return nil, errs
	}
	lines := strings.Split(string(data), "\n")
	for _, doc := range f.Docs {
		body := unwrap(doc.Body)
		if body == nil {
			continue
		}
		switch b := body.(type) {
		case *ast.SequenceNode:
			for _, item := range b.Values {
				if r := parseRule(comp, name, lines, unwrap(item), fail, &errs); r != nil {
					rules = append(rules, r)
				}
			}
		case *ast.MappingNode, *ast.MappingValueNode:
			if r := parseRule(comp, name, lines, b, fail, &errs); r != nil {
				rules = append(rules, r)
			}
		default:
			line, col := pos(body)
			fail(line, col, "want a rule (a mapping) or a list of rules, got %s", body.Type())
		}
	}
	return rules, errs
}

func unwrap(n ast.Node) ast.Node {
	for {
		switch x := n.(type) {
		case *ast.TagNode:
			n = x.Value
		case *ast.AnchorNode:
			n = x.Value
		case *ast.CommentGroupNode, nil:
			return nil
		default:
			return n
		}
	}
}

func pos(n ast.Node) (line, col int) {
	if n == nil {
		return 0, 0
	}
	t := n.GetToken()
	if t == nil || t.Position == nil {
		return 0, 0
	}
	return t.Position.Line, t.Position.Column
}

func yamlError(name string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		line, col := 0, 0
		if t := ye.GetToken(); t != nil && t.Position != nil {
			line, col = t.Position.Line, t.Position.Column
		}
		return &LoadError{File: name, Line: line, Col: col, Msg: oneLine(ye.GetMessage())}
	}
	return &LoadError{File: name, Msg: oneLine(err.Error())}
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// fields maps a mapping node's keys to their value nodes.
func fields(n ast.Node) map[string]ast.Node {
	out := map[string]ast.Node{}
	add := func(mv *ast.MappingValueNode) {
		if mv == nil || mv.Key == nil {
			return
		}
		out[mv.Key.String()] = mv.Value
	}
	switch m := n.(type) {
	case *ast.MappingNode:
		for _, mv := range m.Values {
			add(mv)
		}
	case *ast.MappingValueNode:
		add(m)
	}
	return out
}

func parseRule(comp *compiler, name string, lines []string, n ast.Node, fail func(int, int, string, ...any), errs *[]error) *Rule {
	line, col := pos(n)
	if mv, ok := n.(*ast.MappingValueNode); ok && mv.Key != nil {
		line, col = pos(mv.Key)
	} else if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && m.Values[0].Key != nil {
		line, col = pos(m.Values[0].Key)
	}
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
	default:
		fail(line, col, "want a rule (a mapping), got %s", n.Type())
		return nil
	}
	var doc ruleDoc
	if err := yaml.NodeToValue(n, &doc, yaml.DisallowUnknownField()); err != nil {
		*errs = append(*errs, yamlError(name, err))
		return nil
	}
	fs := fields(n)
	at := func(key string) (int, int) {
		if v, ok := fs[key]; ok {
			if l, c := pos(v); l > 0 {
				return l, c
			}
		}
		return line, col
	}
	bad := false
	failAt := func(key, format string, args ...any) {
		l, c := at(key)
		fail(l, c, format, args...)
		bad = true
	}
	r := &Rule{
		ID: doc.ID, Title: strings.TrimSpace(doc.Title), Description: strings.TrimSpace(doc.Description),
		Severity: doc.Severity, Tags: doc.Tags, Entity: doc.Entity, File: name, Line: line,
	}
	if doc.Enabled != nil && !*doc.Enabled {
		r.Disabled = true
	}
	label := r.ID
	if label == "" {
		label = "rule"
	}
	if doc.ID == "" {
		failAt("id", "%s: id is required", label)
	} else if !idPattern.MatchString(doc.ID) {
		failAt("id", "id %q: want lower-case letters, digits, '_', '.' or '-'", doc.ID)
	}
	if r.Title == "" {
		failAt("title", "%s: title is required", label)
	}
	if _, ok := ScoreOf(doc.Severity); !ok {
		failAt("severity", "%s: severity %q: want low, medium, high or critical", label, doc.Severity)
	}
	if doc.Entity != "" && entityIndex(doc.Entity) < 0 {
		failAt("entity", "%s: entity %q: want principal, source, token or key", label, doc.Entity)
	}
	if strings.TrimSpace(doc.Condition) == "" {
		failAt("condition", "%s: condition is required", label)
	} else {
		cond, issues := comp.compile(doc.Condition)
		for _, is := range issues {
			l, c := conditionPos(fs["condition"], lines, is)
			if l == 0 {
				l, c = line, col
			}
			fail(l, c, "%s: condition: %s", label, is.msg)
			bad = true
		}
		if cond != nil {
			r.Cond = cond
		}
	}
	if a := doc.Aggregate; a != nil {
		agg := &Aggregate{Func: a.Function, Field: a.Field, Threshold: a.Threshold}
		windowBad := false
		if a.Window != "" {
			d, err := time.ParseDuration(a.Window)
			if err != nil {
				failAt("aggregate", "%s: aggregate: window %q: want a duration such as 10m or 24h", label, a.Window)
				windowBad = true
			}
			agg.Window = d
		}
		if err := agg.validate(); err != nil && !windowBad {
			failAt("aggregate", "%s: %v", label, err)
		}
		r.Agg = agg
	}
	var testNodes []ast.Node
	if sq, ok := unwrap(fs["tests"]).(*ast.SequenceNode); ok {
		testNodes = sq.Values
	}
	for i, td := range doc.Tests {
		t := Test{Name: td.Name, Lists: td.Lists, Line: line}
		var tf map[string]ast.Node
		if i < len(testNodes) {
			t.Line, _ = pos(testNodes[i])
			if m := unwrap(testNodes[i]); m != nil {
				t.Line, _ = pos(m)
				tf = fields(m)
				if k, ok := m.(*ast.MappingNode); ok && len(k.Values) > 0 && k.Values[0].Key != nil {
					t.Line, _ = pos(k.Values[0].Key)
				}
			}
		}
		if t.Name == "" {
			t.Name = fmt.Sprintf("test%d", i+1)
		}
		var evNodes []ast.Node
		if sq, ok := unwrap(tf["events"]).(*ast.SequenceNode); ok {
			evNodes = sq.Values
		}
		for j, ev := range td.Events {
			el := t.Line
			if j < len(evNodes) {
				el, _ = pos(evNodes[j])
			}
			b, err := json.Marshal(jsonable(ev))
			if err != nil {
				fail(el, 0, "%s/%s: event %d: %v", label, t.Name, j+1, err)
				bad = true
				continue
			}
			t.Events = append(t.Events, string(b))
			t.EventLines = append(t.EventLines, el)
		}
		if td.Expect == nil || td.Expect.Findings == nil {
			fail(t.Line, 0, "%s/%s: expect.findings is required", label, t.Name)
			bad = true
		} else {
			t.Expect = Expect{Findings: *td.Expect.Findings, Entities: td.Expect.Entities}
			if t.Expect.Findings < 0 {
				fail(t.Line, 0, "%s/%s: expect.findings must not be negative", label, t.Name)
				bad = true
			}
		}
		if len(t.Lists) > 0 {
			if cc, ok := r.Cond.(*celCondition); ok {
				if _, err := cc.withLists(t.Lists); err != nil {
					fail(t.Line, 0, "%s/%s: lists: %v", label, t.Name, err)
					bad = true
				}
			}
		}
		r.Tests = append(r.Tests, t)
	}
	if bad {
		return nil
	}
	return r
}

// jsonable converts YAML-decoded values (which may hold maps keyed by any)
// to what encoding/json can write.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// conditionPos maps a position inside the condition's text to the file.
func conditionPos(n ast.Node, lines []string, is celIssue) (int, int) {
	if n == nil {
		return 0, 0
	}
	tok := n.GetToken()
	if tok == nil || tok.Position == nil {
		return 0, 0
	}
	p := tok.Position
	switch tok.Type {
	case token.LiteralType, token.FoldedType: // "|" or ">": text starts on the next line
		if tok.Type == token.FoldedType {
			return p.Line + 1, 0
		}
		l := p.Line + is.line
		if l-1 >= len(lines) {
			return p.Line, p.Column
		}
		first := lines[p.Line] // the block's first line sets its indentation
		indent := len(first) - len(strings.TrimLeft(first, " "))
		return l, indent + is.col
	case token.DoubleQuoteType, token.SingleQuoteType:
		if is.line == 1 {
			return p.Line, p.Column + is.col
		}
		return p.Line + is.line - 1, 0
	}
	if is.line == 1 {
		return p.Line, p.Column + is.col - 1
	}
	return p.Line + is.line - 1, 0
}
