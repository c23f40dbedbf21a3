package decode

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

var validCases = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e+10`, `-12.0E-3`, `true`, `false`, `null`, ` {"a" : [1, 2, {"b": null}] } `,
	`{"a":"\u00e9\ud83d\ude00\n\t\"\\\/"}`, `{"k":"한국어 ✓"}`, "{\"a\":1}\n", `[[[[]]]]`, `{"a":{},"a":{}}`,
	// invalid
	``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a":1 "b":2}`, `{a:1}`, `'a'`,
	`01`, `-`, `1.`, `.5`, `1e`, `1e+`, `+1`, `0x10`, `NaN`, `tru`, `truex`, `nul`, `{"a":1}x`, `{"a":1}{}`,
	"\"a\x01\"", `"\x"`, `"\u12"`, `"\u12G4"`, `"\ud800"`, `"\udc00"`, `"\ud800\u0041"`, "\"\xff\"", "\"\xc3\"",
	"\"\xed\xa0\x80\"", `"abc`, `["a"`, `{"a":[}`, `[}`, `{]`,
}

func TestValidAgreesWithJSONText(t *testing.T) {
	cases := append([]string{}, validCases...)
	if b, err := os.ReadFile("../../testdata/contract-events.ndjson"); err == nil {
		cases = append(cases, strings.Split(string(b), "\n")...)
	}
	cases = append(cases, strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth),
		strings.Repeat("[", maxDepth+1)+strings.Repeat("]", maxDepth+1))
	var stack []byte
	for _, c := range cases {
		var got bool
		got, stack = valid([]byte(c), stack)
		want := jsontext.Value(c).IsValid(allowDup)
		if got != want {
			t.Errorf("valid(%q) = %v, jsontext says %v", trunc(c), got, want)
		}
	}
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// FuzzValid holds the fast syntax check to jsontext's verdict.
func FuzzValid(f *testing.F) {
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	if b, err := os.ReadFile("../../testdata/contract-events.ndjson"); err == nil {
		for _, l := range bytes.Split(b, []byte("\n")) {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _ := valid(b, nil)
		if want := jsontext.Value(b).IsValid(allowDup); got != want {
			t.Fatalf("valid(%q) = %v, jsontext says %v", b, got, want)
		}
	})
}
