package decode

import (
	"errors"
	"testing"

	"github.com/go-json-experiment/json"
)

// The JSON line errors the input readers share: a syntax error is
// invalid_json wherever it is met, a shape error invalid_field naming what
// did not fit, each reason on one line.
func TestJSONLineErrors(t *testing.T) {
	var rec struct {
		EventTime string `json:"eventTime"`
	}
	syntax := json.Unmarshal([]byte(`{"eventTime": `), &rec)
	shape := json.Unmarshal([]byte(`{"eventTime": 3}`), &rec)
	for _, tc := range []struct {
		name   string
		got    *LineError
		code   string
		prefix string
	}{
		{"nil syntax error", JSONSyntaxError(nil), CodeInvalidJSON, "invalid JSON"},
		{"syntax error", JSONSyntaxError(syntax), CodeInvalidJSON, "invalid JSON: "},
		{"syntax error met while unmarshalling", JSONShapeError(syntax, "record"), CodeInvalidJSON, "invalid JSON: "},
		{"shape error", JSONShapeError(shape, "record"), CodeInvalidField, "invalid record: "},
		{"multi-line message", JSONShapeError(errors.New("json: a\nb\rc"), "entry"), CodeInvalidField, "invalid entry: a b c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got.Code != tc.code || len(tc.got.Reason) < len(tc.prefix) || tc.got.Reason[:len(tc.prefix)] != tc.prefix {
				t.Errorf("got %s %q, want %s %q…", tc.got.Code, tc.got.Reason, tc.code, tc.prefix)
			}
			for _, c := range tc.got.Reason {
				if c == '\n' || c == '\r' {
					t.Errorf("reason on more than one line: %q", tc.got.Reason)
				}
			}
		})
	}
}
