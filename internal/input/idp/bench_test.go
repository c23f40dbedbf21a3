package idp

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
)

// BenchmarkRead decodes each format's sample, repeated to about 1 MiB,
// through the reader; it reports events per second.
func BenchmarkRead(b *testing.B) {
	for _, format := range Formats() {
		b.Run(format, func(b *testing.B) {
			one, err := os.ReadFile(filepath.Join("testdata", format+".ndjson"))
			if err != nil {
				b.Fatal(err)
			}
			data := bytes.Repeat(one, 1<<20/len(one)+1)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				r := NewReader(format, bytes.NewReader(data), 1, 0)
				var ev event.Event
				for {
					err := r.Next(&ev)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
