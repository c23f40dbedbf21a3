package cloudtrail

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
)

func benchFile(b *testing.B, name string, records bool) {
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		b.Fatal(err)
	}
	if records { // the same records as a CloudTrail file
		lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
		data = append(append([]byte(`{"Records":[`), bytes.Join(lines, []byte(","))...), "]}"...)
	}
	n := len(readAll(b, NewReader(bytes.NewReader(data), 0, Options{})))
	b.SetBytes(int64(len(data) / n))
	b.ReportAllocs()
	b.ResetTimer()
	var ev event.Event
	var r *Reader
	for i := 0; i < b.N; i++ {
		if r == nil {
			r = NewReader(bytes.NewReader(data), 0, Options{})
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

// BenchmarkRecordsFile: one op is one record of a {"Records":[...]} file
// (the 244 records of stolen-instance-creds.ndjson, 1.8 kB each).
func BenchmarkRecordsFile(b *testing.B) { benchFile(b, "stolen-instance-creds.ndjson", true) }

// BenchmarkLines: one op is one record of a one-record-per-line export.
func BenchmarkLines(b *testing.B) { benchFile(b, "stolen-instance-creds.ndjson", false) }
