package api_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/haechi-sec/haechi/internal/api"
)

// BenchmarkIngestSpool is serve's ingest handler with a spool: a request of
// about 1,000 contract events (haechi bench's batch) is read, validated and
// handed to Spool, which stores nothing here. It measures the handler's own
// cost per request (ns/op) and per event (ns/event), and what it allocates.
func BenchmarkIngestSpool(b *testing.B) {
	line, err := os.ReadFile("../../testdata/contract-events.ndjson")
	if err != nil {
		b.Fatal(err)
	}
	var body []byte
	lines := bytes.Count(line, []byte("\n"))
	n := 0
	for n < 1000 {
		body = append(body, line...)
		n += lines
	}
	var spooled int
	s := api.New(api.Options{
		Alerts:       &fakeStore{},
		MaxBodyBytes: int64(len(body)) * 2,
		Spool: func(_ context.Context, req api.Stored) (bool, error) {
			spooled += len(req.Body)
			return false, nil
		},
	})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	if spooled != b.N*len(body) {
		b.Fatalf("spooled %d bytes, want %d", spooled, b.N*len(body))
	}
}
