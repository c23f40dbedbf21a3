package demo

import (
	"strings"
	"testing"
)

func TestReportRejected(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"accepted":3,"rejected":0}`, ""},
		{`not json`, ""},
		{`{"accepted":675,"rejected":1,"errors":[{"line":676,"code":"invalid_field","reason":"too far ahead"}]}`,
			"haechi: serve rejected 1 line(s) of a batch (first: line 676 of the batch: invalid_field: too far ahead)\n"},
		{`{"accepted":0,"rejected":2}`, "haechi: serve rejected 2 line(s) of a batch\n"},
	} {
		var b strings.Builder
		reportRejected(&b, []byte(tc.body))
		if b.String() != tc.want {
			t.Errorf("%s: got %q, want %q", tc.body, b.String(), tc.want)
		}
	}
}
