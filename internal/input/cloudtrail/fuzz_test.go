package cloudtrail

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

func FuzzCloudTrail(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "instance-role-day.json")); err == nil {
		f.Add(data[:min(len(data), 4096)])
	}
	if data, err := os.ReadFile(filepath.Join("testdata", "stolen-instance-creds.ndjson")); err == nil {
		f.Add(data[:bytes.IndexByte(data, '\n')+1])
	}
	for _, s := range []string{
		`{"Records":[` + okRec + `,1,{}]}`, okRec, `{"Records":[]}{"Records":[{}]}`, `{"Records":{}}`,
		`{"eventTime":"1600-01-01T00:00:00Z","eventName":"X"}`, `{"detail":{"detail":{}}}`, `{"Records":[` + okRec, "\xef\xbb\xbf{\"Records\":[", `[]`, ``,
		`{"eventTime":"2025-06-24T09:00:03Z","eventName":"X","errorCode":"E","requestParameters":{ "a" : [ {"b":"\u0041"} ] },"responseElements":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 1, Options{MaxRecord: 512})
		for i := 0; ; i++ {
			if i > len(data)+2 {
				t.Fatal("Reader does not terminate")
			}
			var ev event.Event
			err := r.Next(&ev)
			if err == io.EOF {
				return
			}
			var le *decode.LineError
			switch {
			case err == nil:
				if ev.Time.IsZero() || ev.Dataset != Dataset || ev.Action == "" || int(ev.Line) != r.Line() ||
					!time.Unix(0, ev.Time.UnixNano()).Equal(ev.Time) {
					t.Fatalf("bad event %+v", ev)
				}
				// The kept objects are compact JSON objects, or absent.
				for _, o := range []string{ev.CloudTrail.RequestParameters, ev.CloudTrail.ResponseElements} {
					if o != "" && (o[0] != '{' || !jsontext.Value(o).IsValid() || strings.ContainsAny(o, "\n\t")) {
						t.Fatalf("bad object %q", o)
					}
				}
			case errors.As(err, &le):
				if le.Reason == "" || bytes.ContainsAny([]byte(le.Reason), "\r\n") || le.Line != r.Line() {
					t.Fatalf("bad line error %+v (Line() %d)", le, r.Line())
				}
			default:
				if err2 := r.Next(&ev); err2 != err {
					t.Fatalf("stream error not sticky: %v then %v", err, err2)
				}
				return
			}
		}
	})
}
