package demo

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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

// A refused POST says what went wrong: no token given, a token serve does
// not know, or one whose role may not ingest — never "pass a token" to
// someone who passed one.
func TestPostLiveRefused(t *testing.T) {
	for _, tc := range []struct {
		name, token string
		code        int
		body, want  string
		not         string
	}{
		{"no token", "", http.StatusUnauthorized, `{"error":"no credentials"}`,
			"401 Unauthorized (no credentials): serve wants an API token: pass an ingest token with --token or HAECHI_TOKEN", "refused"},
		{"wrong token", "hk_wrong", http.StatusUnauthorized, `{"error":"unknown or revoked token"}`,
			"401 Unauthorized (unknown or revoked token): the token was refused: serve does not know it", "pass an ingest token"},
		{"reader token", "hk_reader", http.StatusForbidden, `{"error":"forbidden: this needs a token with role ingest"}`,
			"403 Forbidden (forbidden: this needs a token with role ingest): the token was refused: its role may not ingest events", "pass an ingest token"},
		{"no body", "hk_wrong", http.StatusUnauthorized, ``,
			"401 Unauthorized: the token was refused", "pass an ingest token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			line := `{"schema":"haechi.event/v1","time":"2025-06-02T00:00:00Z","dataset":"app.access","source":{"ip":"192.0.2.1"}}` + "\n"
			_, err := PostLive(context.Background(), srv.URL, tc.token, strings.NewReader(line), time.Time{}, math.Inf(1), io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.not) {
				t.Errorf("got %v\nwant it to contain %q and not %q", err, tc.want, tc.not)
			}
		})
	}
}
