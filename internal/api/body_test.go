package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/api"
)

// With a spool, the body is read into a buffer sized from Content-Length
// when the request is not compressed; whatever way the body comes — with a
// length, chunked, declared identity, gzip, one byte at a time, or past the
// limit — the stored body is exactly what was sent and every valid line is
// counted.
func TestIngestSpoolBodies(t *testing.T) {
	plain := contract(t)
	lines := strings.Count(string(plain), "\n")
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(plain)
	zw.Close()
	for _, tc := range []struct {
		name     string
		body     func() io.Reader // nil length when not a *bytes.Reader
		encoding string
		limit    int64
		code     int
	}{
		{"content-length", func() io.Reader { return bytes.NewReader(plain) }, "", 1 << 20, 200},
		{"declared identity", func() io.Reader { return bytes.NewReader(plain) }, " Identity", 1 << 20, 200},
		{"chunked", func() io.Reader { return io.MultiReader(bytes.NewReader(plain)) }, "", 1 << 20, 200},
		{"chunked one byte at a time", func() io.Reader { return &oneByte{plain} }, "", 1 << 20, 200},
		{"gzip", func() io.Reader { return bytes.NewReader(zipped.Bytes()) }, "gzip", 1 << 20, 200},
		{"limit exactly", func() io.Reader { return bytes.NewReader(plain) }, "", int64(len(plain)), 200},
		{"chunked past the limit", func() io.Reader { return io.MultiReader(bytes.NewReader(plain)) }, "", int64(len(plain)) - 1, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stored []byte
			calls := 0
			srv := httptest.NewServer(api.New(api.Options{
				Alerts:       &fakeStore{},
				MaxBodyBytes: tc.limit,
				Spool: func(_ context.Context, req api.Stored) (bool, error) {
					calls++
					stored = append([]byte(nil), req.Body...)
					return false, nil
				},
			}))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", tc.body())
			if tc.encoding != "" {
				req.Header.Set("Content-Encoding", tc.encoding)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.code {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, b)
			}
			if tc.code != 200 {
				if calls != 0 {
					t.Fatalf("a refused request was stored")
				}
				return
			}
			var res api.IngestResult
			if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
				t.Fatal(err)
			}
			if calls != 1 || !bytes.Equal(stored, plain) {
				t.Fatalf("stored %d times, %d bytes; want once, the %d bytes sent", calls, len(stored), len(plain))
			}
			if res.Accepted+res.Rejected != lines || res.Accepted == 0 {
				t.Fatalf("accepted %d, rejected %d of %d lines", res.Accepted, res.Rejected, lines)
			}
		})
	}
}

// oneByte reads its bytes one at a time.
type oneByte struct{ b []byte }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], o.b = o.b[0], o.b[1:]
	return 1, nil
}
