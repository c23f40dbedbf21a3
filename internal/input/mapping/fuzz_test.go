package mapping

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

func FuzzMapping(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "audit.log")); err == nil {
		for _, line := range bytes.Split(data, []byte("\n")) {
			f.Add(line)
		}
	}
	f.Add([]byte(`{"ts":1,"ctx":{"jwt":{"iat":1e400}},"fields":[1,[2]]}`))
	c := compiled(f)
	unix, err := Compile("u", Mapping{Dataset: "d", Fields: map[string]FieldMap{
		"@timestamp": {From: "t", TimeLayout: "unix_ms"}, "event.action": {From: "a", Regex: `(\w+)`},
		"records.ids": {From: "ids", Split: ";", Prefix: "p"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []*Compiled{c, unix} {
			r := m.NewReader(bytes.NewReader(data), 1, 4096)
			for i := 0; ; i++ {
				if i > len(data)+2 {
					t.Fatal("reader does not terminate")
				}
				var ev event.Event
				err := r.Next(&ev)
				if err == io.EOF {
					break
				}
				var le *decode.LineError
				switch {
				case err == nil:
					if ev.Time.IsZero() || ev.Dataset == "" || ev.Action == "" || int(ev.Line) != r.Line() ||
						!time.Unix(0, ev.Time.UnixNano()).Equal(ev.Time) {
						t.Fatalf("bad event %+v", ev)
					}
				case errors.As(err, &le):
					if le.Reason == "" || bytes.ContainsAny([]byte(le.Reason), "\r\n") || le.Line != r.Line() {
						t.Fatalf("bad line error %+v", le)
					}
				default:
					t.Fatalf("unexpected error %v", err)
				}
			}
		}
	})
}
