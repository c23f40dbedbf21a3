package nginx

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
)

func bench(b *testing.B, name string, open func(p *Parser, r io.Reader) nexter) {
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		b.Fatal(err)
	}
	// About 1 MB of input, so reader setup is amortised.
	data = bytes.Repeat(data, 1<<20/len(data)+1)
	p := newParser(b, Options{Routes: testRoutes, UserPrefix: "m:", UserField: "http_x_user_id", TokenField: "http_x_token_id"})
	n := len(readAll(b, open(p, bytes.NewReader(data))))
	b.SetBytes(int64(len(data) / n))
	b.ReportAllocs()
	b.ResetTimer()
	var ev event.Event
	var r nexter
	for i := 0; i < b.N; i++ {
		if r == nil {
			r = open(p, bytes.NewReader(data))
		}
		if err := r.Next(&ev); err == io.EOF {
			r = nil
			i--
		} else if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkCombined: one op is one line of the combined format, with routes.
func BenchmarkCombined(b *testing.B) {
	bench(b, "access.log", func(p *Parser, r io.Reader) nexter { return p.NewReader(r, 0) })
}

// BenchmarkJSON: one op is one line of a JSON access log, with routes.
func BenchmarkJSON(b *testing.B) {
	bench(b, "access.json.log", func(p *Parser, r io.Reader) nexter { return p.NewJSONReader(r, 0) })
}
