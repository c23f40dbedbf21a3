package nginx

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

func seedFile(f *testing.F, name string) {
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		return
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		f.Add(line)
	}
}

// checkStream reads data to the end and checks the reader contract.
func checkStream(t *testing.T, r nexter, data []byte) {
	prev := 0
	for i := 0; ; i++ {
		if i > len(data)+2 {
			t.Fatal("reader does not terminate")
		}
		var ev event.Event
		err := r.Next(&ev)
		if err == io.EOF {
			return
		}
		if r.Line() <= prev {
			t.Fatalf("line numbers not increasing: %d after %d", r.Line(), prev)
		}
		prev = r.Line()
		var le *decode.LineError
		switch {
		case err == nil:
			if ev.Time.IsZero() || ev.Dataset == "" || ev.Action == "" || int(ev.Line) != r.Line() ||
				ev.Time.Location().String() != "UTC" ||
				!time.Unix(0, ev.Time.UnixNano()).Equal(ev.Time) {
				t.Fatalf("bad event %+v", ev)
			}
			for _, s := range []string{ev.URLPath, ev.URLQuery, ev.URLDomain, ev.UserAgent, ev.User.ID, ev.HTTP.Method} {
				if !utf8.ValidString(s) {
					t.Fatalf("invalid UTF-8 in %q", s)
				}
			}
			// The target splits at the first "?" and drops "#fragment";
			// url.query and url.domain come only with a request.
			if strings.ContainsAny(ev.URLPath, "?#") || strings.Contains(ev.URLQuery, "#") ||
				((ev.URLQuery != "" || ev.URLDomain != "") && ev.HTTP.Method == "") {
				t.Fatalf("bad url split: path %q query %q domain %q method %q", ev.URLPath, ev.URLQuery, ev.URLDomain, ev.HTTP.Method)
			}
		case errors.As(err, &le):
			if le.Reason == "" || bytes.ContainsAny([]byte(le.Reason), "\r\n") || le.Line != r.Line() {
				t.Fatalf("bad line error %+v", le)
			}
			if ev.Action != "" {
				t.Fatal("event not reset on error")
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
}

func FuzzNginxCombined(f *testing.F) {
	seedFile(f, "access.log")
	f.Add([]byte(okLine))
	f.Add([]byte(`1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET http://[2001:db8::1]:8080/p?id=1%20UNION%20SELECT#x HTTP/1.1" 200 1 "-" "-"`))
	f.Add([]byte(`1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET http://x/%41%zz?q \x22 HTTP/1.1" 200 - "\"" "\x` + "\n\n"))
	p, err := New(Options{Routes: testRoutes, UserPrefix: "m:"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		checkStream(t, p.NewReader(bytes.NewReader(data), 1), data)
		var ev event.Event
		p.ParseCombined(data, &ev)
		if !bytes.Equal(orig, data) {
			t.Fatal("input modified")
		}
	})
}

func FuzzNginxJSON(f *testing.F) {
	seedFile(f, "access.json.log")
	for _, s := range []string{
		`{"time_local":"24/Jun/2025:09:00:03 +0900","request":"GET /a?b HTTP/1.1","status":200,"uid":"1"}`,
		`{"msec":"1.5","request_method":"GET","request_uri":"/api/v2/orders/%41"}`,
		`{"msec":1}{}`, `[`, `{"a":{"b":[1,{"c":null}]}}`,
		`{"msec":"9300000000"}`, `{"time_local":"01/Jan/1600:00:00:00 +0000"}`,
		`{"msec":"1.5","request_method":"GET","uri":"/a","args":"id=1 UNION SELECT","host":"[::1]:8080"}`,
		`{"msec":"1.5","request":"GET http://u@h.example:81/p?q#f HTTP/1.1","http_host":"x","query_string":"y"}`,
	} {
		f.Add([]byte(s))
	}
	p, err := New(Options{Routes: testRoutes, UserField: "uid", TokenField: "tok"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStream(t, p.NewJSONReader(bytes.NewReader(data), 1), data)
	})
}
