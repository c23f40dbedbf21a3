package sigma

import (
	"errors"
	"fmt"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// UnsupportedError reports a valid Sigma construct that haechi cannot
// evaluate: a modifier, a field with no contract counterpart, a logsource,
// a condition form, a correlation rule. The rule is not loaded; nothing is
// ever silently skipped.
type UnsupportedError struct {
	File      string
	Line, Col int    // 1-based position in File of the construct; 0 when unknown
	Feature   string // what is unsupported, e.g. `modifier "base64offset"`
}

func (e *UnsupportedError) Error() string {
	return where(e.File, e.Line, e.Col) + "unsupported: " + e.Feature
}

// RuleError reports a rule that is not valid Sigma (or not valid YAML): a
// missing title or condition, an unknown modifier, a condition naming an
// undefined search identifier, a regular expression that does not compile.
type RuleError struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	Msg       string
	Err       error // the underlying error (go-yaml's, regexp's), if any
}

func (e *RuleError) Error() string { return where(e.File, e.Line, e.Col) + e.Msg }
func (e *RuleError) Unwrap() error { return e.Err }

func where(file string, line, col int) string {
	switch {
	case line > 0 && col > 0:
		return fmt.Sprintf("%s:%d:%d: ", file, line, col)
	case line > 0:
		return fmt.Sprintf("%s:%d: ", file, line)
	case file != "":
		return file + ": "
	}
	return ""
}

// position returns the 1-based line and column of n's token.
func position(n ast.Node) (line, col int) {
	if n == nil {
		return 0, 0
	}
	return tokenPos(n.GetToken())
}

func tokenPos(tk *token.Token) (line, col int) {
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

// yamlError converts a go-yaml error into a *RuleError with its position.
func yamlError(file string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		line, col := tokenPos(ye.GetToken())
		return &RuleError{File: file, Line: line, Col: col, Msg: "invalid YAML: " + ye.GetMessage(), Err: err}
	}
	return &RuleError{File: file, Msg: "invalid YAML: " + err.Error(), Err: err}
}
