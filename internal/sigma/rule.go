package sigma

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/haechi-sec/haechi/internal/event"
)

// Rule is one loaded Sigma detection rule, compiled for matching. A Rule is
// immutable after Parse and safe for concurrent use by several goroutines.
type Rule struct {
	ID, Title, Description, Status, Level string
	Author, Date, Modified                string
	Tags, References, FalsePositives      []string
	Logsource                             Logsource
	// Condition is the rule's condition as written (a list of conditions is
	// joined with " or ", which is what a list means).
	Condition string
	File      string // the file it was read from, as given to Parse
	Line      int    // 1-based line of the rule's first key in File
	// Related are the rules this one names in its `related` section
	// (Sigma's derived, obsolete, merged, renamed and similar links).
	Related []Related
	// Weakened lists where the rule runs weaker than written: a field
	// whose contract counterpart holds less than the Sigma field
	// (FieldMapping.Weakened), a keyword search that cannot see the whole
	// log line. Empty: the rule is evaluated as written.
	Weakened []Weakening
	// Fields are the contract fields the detection reads, sorted (a
	// keyword search reads its logsource's keyword fields; errorCode
	// reads event.outcome).
	Fields []string

	mapping *LogsourceMapping
	filter  datasetFilter
	root    node
}

// Related is one entry of a rule's `related` section.
type Related struct {
	ID   string
	Type string // derived, obsolete, merged, renamed, similar
}

// Weakening is one place a rule runs weaker than written.
type Weakening struct {
	Line, Col int
	What      string
}

// Logsource is a rule's logsource: which kind of log it is written for.
type Logsource struct {
	Category, Product, Service string
}

func (l Logsource) String() string {
	var parts []string
	for _, kv := range [][2]string{{"category", l.Category}, {"product", l.Product}, {"service", l.Service}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	return strings.Join(parts, " ")
}

// MaxFileSize bounds the Sigma files ParseFile and ParseDir read.
const MaxFileSize = 4 << 20

// Parse parses and compiles one Sigma rule from data, which must hold one
// YAML document (use ParseFile for multi-document files). file names the
// source in errors and in Rule.File. Errors are *RuleError (invalid YAML
// or invalid Sigma) or *UnsupportedError (valid Sigma haechi cannot
// evaluate), both with the line and column of the cause.
func Parse(data []byte, file string) (*Rule, error) {
	docs, err := parseYAML(data, file)
	if err != nil {
		return nil, err
	}
	switch len(docs) {
	case 0:
		return nil, &RuleError{File: file, Msg: "no Sigma rule in the input"}
	case 1:
		return parseDoc(docs[0], file)
	}
	line, col := position(docs[1])
	return nil, &RuleError{File: file, Line: line, Col: col,
		Msg: fmt.Sprintf("%d YAML documents; Parse reads one rule (use ParseFile for multi-document files)", len(docs))}
}

// ParseFile reads every rule of the YAML file at path, one per document.
// It returns the rules that loaded and, when some did not, an error
// joining one *RuleError or *UnsupportedError per failed document (see
// errors.Join; ParseDir lists them separately).
func ParseFile(path string) ([]*Rule, error) {
	rules, errs := parseFile(path)
	return rules, errors.Join(errs...)
}

// ParseDir loads every .yml and .yaml file under dir, recursively, in
// lexical order, skipping directories whose names start with a dot. It
// returns the rules that loaded and one error per document (or file) that
// did not, so a caller can show exactly which rules were left out and why.
func ParseDir(dir string) (rules []*Rule, errs []error) {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, fmt.Errorf("sigma: %w", err))
			if d != nil && d.IsDir() && path != dir {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yml", ".yaml":
		default:
			return nil
		}
		rs, es := parseFile(path)
		rules = append(rules, rs...)
		errs = append(errs, es...)
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("sigma: %w", err))
	}
	return rules, errs
}

func parseFile(path string) ([]*Rule, []error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, []error{fmt.Errorf("sigma: %w", err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, []error{fmt.Errorf("sigma: %w", err)}
	}
	if len(data) > MaxFileSize {
		return nil, []error{&RuleError{File: path, Msg: fmt.Sprintf("file exceeds the limit of %d bytes", MaxFileSize)}}
	}
	docs, err := parseYAML(data, path)
	if err != nil {
		return nil, []error{err}
	}
	var (
		rules []*Rule
		errs  []error
	)
	for _, d := range docs {
		r, err := parseDoc(d, path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules = append(rules, r)
	}
	return rules, errs
}

// parseYAML parses data into its non-empty documents' bodies.
func parseYAML(data []byte, file string) (bodies []ast.Node, err error) {
	defer func() {
		// go-yaml has panicked on malformed input in the past; a bad rule
		// file must not take the process down.
		if r := recover(); r != nil {
			bodies, err = nil, &RuleError{File: file, Msg: fmt.Sprintf("invalid YAML (go-yaml panicked: %v)", r)}
		}
	}()
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(file, err)
	}
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if _, ok := d.Body.(*ast.NullNode); ok {
			continue
		}
		bodies = append(bodies, d.Body)
	}
	return bodies, nil
}

var levels = map[string]float64{
	"informational": 10,
	"low":           30,
	"medium":        50,
	"high":          70,
	"critical":      90,
}

// Score maps the rule's level to a finding score: informational 10, low
// 30, medium 50, high 70, critical 90. A rule without a level scores as
// medium (50).
func (r *Rule) Score() float64 {
	if s, ok := levels[r.Level]; ok {
		return s
	}
	return 50
}

// Match reports whether ev is an event of the rule's logsource (by
// event.dataset) that satisfies its detection. It does not allocate for
// string comparisons, never panics, and is safe to call concurrently. The
// error is non-nil only for a nil event or a Rule not made by Parse.
func (r *Rule) Match(ev *event.Event) (ok bool, err error) {
	if r == nil || r.root == nil {
		return false, errors.New("sigma: match on a rule not loaded by Parse")
	}
	if ev == nil {
		return false, errors.New("sigma: match on a nil event")
	}
	defer func() {
		if p := recover(); p != nil {
			ok, err = false, fmt.Errorf("sigma: rule %s (%s:%d) failed on an event: %v", r.Title, r.File, r.Line, p)
		}
	}()
	if !r.filter.accepts(ev.Dataset) {
		return false, nil
	}
	return r.root.eval(ev), nil
}

// parseDoc reads one rule document.
func parseDoc(body ast.Node, file string) (*Rule, error) {
	p := &docParser{file: file}
	top, err := p.mapping(body, "a Sigma rule")
	if err != nil {
		return nil, err
	}
	r := &Rule{File: file}
	first := body // the rule's first key, where "missing ..." errors point
	if len(top) > 0 {
		first = top[0].keyNode
	}
	r.Line, _ = position(first)
	var logsource, detection *pair
	for i := range top {
		kv := &top[i]
		var err error
		switch kv.key {
		case "title":
			r.Title, err = p.str(kv.val, "title")
		case "id":
			r.ID, err = p.str(kv.val, "id")
		case "description":
			r.Description, err = p.str(kv.val, "description")
		case "status":
			r.Status, err = p.str(kv.val, "status")
		case "level":
			r.Level, err = p.str(kv.val, "level")
			if err == nil && r.Level != "" {
				if _, ok := levels[r.Level]; !ok {
					err = p.invalid(kv.val, "level %q is not one of informational, low, medium, high, critical", r.Level)
				}
			}
		case "author":
			r.Author, err = p.str(kv.val, "author")
		case "date":
			r.Date, err = p.str(kv.val, "date")
		case "modified":
			r.Modified, err = p.str(kv.val, "modified")
		case "tags":
			r.Tags, err = p.strList(kv.val, "tags")
		case "references":
			r.References, err = p.strList(kv.val, "references")
		case "falsepositives":
			r.FalsePositives, err = p.strList(kv.val, "falsepositives")
		case "logsource":
			logsource = kv
		case "detection":
			detection = kv
		case "taxonomy":
			var tax string
			tax, err = p.str(kv.val, "taxonomy")
			if err == nil && tax != "" && tax != "sigma" {
				err = p.unsupported(kv.val, "taxonomy %q (only the sigma taxonomy's field names are mapped)", tax)
			}
		case "correlation":
			err = p.unsupported(kv.keyNode, "correlation rule")
		case "filter":
			err = p.unsupported(kv.keyNode, "Sigma filter (meta filter) document")
		case "action":
			var a string
			a, err = p.str(kv.val, "action")
			if err == nil {
				err = p.unsupported(kv.keyNode, "rule collection (action: %s)", a)
			}
		case "related":
			r.Related, err = p.related(kv.val)
		default:
			// name, license, fields, scope and custom attributes
			// carry nothing matching needs.
		}
		if err != nil {
			return nil, err
		}
	}
	if r.Title == "" {
		return nil, p.invalid(first, "missing title")
	}
	if logsource == nil {
		return nil, p.invalid(first, "missing logsource")
	}
	if detection == nil {
		return nil, p.invalid(first, "missing detection")
	}
	if err := p.logsource(r, logsource); err != nil {
		return nil, err
	}
	c := &compiler{p: p, m: r.mapping}
	root, cond, err := c.detection(detection)
	if err != nil {
		return nil, err
	}
	r.root, r.Condition = root, cond
	r.Weakened = c.weak
	for f := range c.fields {
		r.Fields = append(r.Fields, f)
	}
	slices.Sort(r.Fields)
	return r, nil
}

// related reads the `related` section: a list of maps with id and type.
func (p *docParser) related(n ast.Node) ([]Related, error) {
	n, err := p.resolve(n)
	if err != nil {
		return nil, err
	}
	if _, null := n.(*ast.NullNode); null {
		return nil, nil
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		return nil, p.invalid(n, "related must be a list of {id, type}, got %s", describe(n))
	}
	var out []Related
	for _, x := range seq.Values {
		entries, err := p.mapping(x, "a related entry")
		if err != nil {
			return nil, err
		}
		var rel Related
		for _, e := range entries {
			switch e.key {
			case "id":
				rel.ID, err = p.str(e.val, "related.id")
			case "type":
				rel.Type, err = p.str(e.val, "related.type")
			}
			if err != nil {
				return nil, err
			}
		}
		if rel.ID == "" {
			return nil, p.invalid(x, "related entry without an id")
		}
		out = append(out, rel)
	}
	return out, nil
}

func (p *docParser) logsource(r *Rule, kv *pair) error {
	entries, err := p.mapping(kv.val, "logsource")
	if err != nil {
		return err
	}
	for _, e := range entries {
		var err error
		switch e.key {
		case "category":
			r.Logsource.Category, err = p.str(e.val, "logsource.category")
		case "product":
			r.Logsource.Product, err = p.str(e.val, "logsource.product")
		case "service":
			r.Logsource.Service, err = p.str(e.val, "logsource.service")
		}
		if err != nil {
			return err
		}
	}
	for _, m := range Mappings() {
		if m.Matches(r.Logsource) {
			r.mapping = &m
			r.filter = datasetFilter{exact: m.Datasets, prefixes: m.DatasetPrefixes}
			if m.Logsource.Product == "haechi" && r.Logsource.Service != "" {
				r.filter.exact = []string{r.Logsource.Service}
			}
			return nil
		}
	}
	return p.unsupported(kv.keyNode, "logsource %s (supported: category webserver, category proxy, product aws with service cloudtrail, product haechi)", r.Logsource)
}
