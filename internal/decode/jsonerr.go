package decode

import (
	"errors"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// JSONSyntaxError is the line error of a line (or record) that is not
// valid JSON: code invalid_json, reason "invalid JSON: " and the parser's
// message on one line ("invalid JSON" alone for a nil error). The input
// readers that parse their own JSON shapes (CloudTrail, identity
// providers, mappings, nginx JSON logs) report syntax errors with it, so
// every format words them alike.
func JSONSyntaxError(err error) *LineError {
	msg := "invalid JSON"
	if err != nil {
		msg += ": " + spaceLine(strings.TrimPrefix(strings.TrimPrefix(err.Error(), "jsontext: "), "json: "))
	}
	return &LineError{Code: CodeInvalidJSON, Reason: msg}
}

// JSONShapeError is the line error of valid JSON that does not fit the
// format's shape (a member of the wrong type, say): code invalid_field,
// reason "invalid WHAT: " and the unmarshaller's message on one line. A
// syntax error (jsontext.SyntacticError) is JSONSyntaxError's.
func JSONShapeError(err error, what string) *LineError {
	if se := (*jsontext.SyntacticError)(nil); errors.As(err, &se) {
		return JSONSyntaxError(err)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return &LineError{Code: CodeInvalidField, Reason: "invalid " + what + ": " + spaceLine(msg)}
}

// spaceLine puts a message on one line, line breaks as spaces.
func spaceLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}
