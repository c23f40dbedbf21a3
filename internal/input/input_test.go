package input

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

// samples are the test data of the format packages, by the format they
// are written in.
var samples = map[string]string{
	filepath.Join("..", "..", "testdata", "contract-events.ndjson"):              FormatECS,
	filepath.Join("cloudtrail", "testdata", "instance-role-day.json"):            FormatCloudTrail,
	filepath.Join("cloudtrail", "testdata", "stolen-instance-creds.ndjson"):      FormatCloudTrail,
	filepath.Join("nginx", "testdata", "access.log"):                             FormatNginx,
	filepath.Join("nginx", "testdata", "access.json.log"):                        FormatNginxJSON,
	filepath.Join("nginx", "testdata", "access.ecs.ndjson"):                      FormatECS,
	filepath.Join("cloudtrail", "testdata", "logstash-instance-role-day.ndjson"): FormatCloudTrail,
	filepath.Join("idp", "testdata", "okta.ndjson"):                              FormatOkta,
	filepath.Join("idp", "testdata", "keycloak.ndjson"):                          FormatKeycloak,
	filepath.Join("idp", "testdata", "entra.ndjson"):                             FormatEntra,
	filepath.Join("idp", "testdata", "ocsf.ndjson"):                              FormatOCSF,
}

func TestDetectSamples(t *testing.T) {
	for path, want := range samples {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := Detect(data); !ok || got != want {
			t.Errorf("%s: Detect = %q, %v; want %q", path, got, ok, want)
		}
	}
}

func TestDetect(t *testing.T) {
	ecs := `{"@timestamp":"2025-06-24T09:00:03Z","event.dataset":"d","event.action":"a"}` + "\n"
	nginx := `1.2.3.4 - - [24/Jun/2025:09:00:03 +0900] "GET / HTTP/1.1" 200 5 "-" "-"` + "\n"
	tests := []struct {
		name, head, want string
	}{
		{"records file with bom", "\xef\xbb\xbf\n { \"Records\" :\n[", FormatCloudTrail},
		{"ecs nested", `{"@timestamp":"x","event":{"action":"a","dataset":"d"}}`, FormatECS},
		{"ecs and blank lines", "\n" + ecs + "\r\n" + ecs, FormatECS},
		{"common log", `::1 - bob [24/Jun/2025:09:00:03 +0900] "GET / HTTP/1.1" 404 -`, FormatNginx},
		{"nginx json", `{"remote_addr":"1.2.3.4","uri":"/","status":"200"}`, FormatNginxJSON},
		{"mixed", ecs + nginx, ""},
		{"unknown line", ecs + "hello\n", ""},
		{"ecs and cloudtrail keys", `{"@timestamp":"x","event.dataset":"d","eventVersion":"1","eventSource":"s","eventName":"n"}`, ""},
		{"other json", `{"ts":1,"msg":"x"}`, ""},
		{"filebeat cloudtrail", `{"@timestamp":"2025-06-25T00:00:00Z","event":{"dataset":"aws.cloudtrail"},"message":"{\"eventVersion\":\"1.10\",\"eventTime\":\"2025-06-24T09:00:03Z\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"GetObject\"}"}`, FormatCloudTrail},
		{"ecs with a message", `{"@timestamp":"x","event.dataset":"d","message":"{\"a\":1}"}`, FormatECS},
		{"empty", "", ""},
		{"cut ecs line", strings.Repeat(ecs, 40)[:DetectSize], FormatECS},
		{"cut unknown line after ecs", ecs + `{"a":"` + strings.Repeat("x", DetectSize), FormatECS},
		{"long cloudtrail line", `{"eventVersion":"1.10","userIdentity":{"type":"AssumedRole"},"eventTime":"2025-06-24T09:00:03Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","pad":"` + strings.Repeat("x", 2000), FormatCloudTrail},
	}
	for _, tt := range tests {
		got, ok := Detect([]byte(tt.head))
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: Detect = %q, %v; want %q", tt.name, got, ok, tt.want)
		}
	}
}

func FuzzDetect(f *testing.F) {
	for path := range samples {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data[:min(len(data), 2*DetectSize)])
		}
	}
	f.Add([]byte(`{"event":{"event":{"dataset":1}},"@timestamp":[`))
	f.Fuzz(func(t *testing.T, head []byte) {
		format, ok := Detect(head)
		if ok != (format != "") {
			t.Fatalf("Detect = %q, %v", format, ok)
		}
		if ok {
			if _, err := Open(format, bytes.NewReader(head), 0, Options{}); err != nil {
				t.Fatalf("detected format %q does not open: %v", format, err)
			}
		}
	})
}

func TestOpenEveryFormat(t *testing.T) {
	in, err := New(Options{
		Routes: []Route{{Method: "GET", Path: "/api/v2/members/{customer}/addresses", RecordType: "address",
			IDParam: "customer", Action: "member.addresses.read", UserParam: "customer"}},
		Mappings: map[string]Mapping{"app": {Dataset: "app", Fields: map[string]FieldMap{
			"@timestamp": {From: "time_iso8601"}, "event.action": {Const: "http"}, "source.ip": {From: "remote_addr"},
		}}},
		Nginx: NginxOptions{UserPrefix: "m:", UserField: "http_x_user_id"},
	})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for path, format := range samples {
		formats := []string{format}
		if format == FormatNginxJSON {
			formats = append(formats, "mapping:app")
		}
		for _, format := range formats {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := in.Open(format, f, 4)
			if err != nil {
				t.Fatal(err)
			}
			for {
				var ev event.Event
				err := r.Next(&ev)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s as %s: %v", path, format, err)
				}
				if ev.Input != 4 || int(ev.Line) != r.Line() {
					t.Fatalf("%s: provenance %d:%d, Line() %d", path, ev.Input, ev.Line, r.Line())
				}
				counts[format]++
			}
			f.Close()
		}
	}
	want := map[string]int{FormatECS: 35, FormatCloudTrail: 264, FormatNginx: 20, FormatNginxJSON: 19, "mapping:app": 19,
		FormatOkta: 13, FormatKeycloak: 17, FormatEntra: 14, FormatOCSF: 6}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s: %d events, want %d", k, counts[k], v)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open("apache", strings.NewReader(""), 0, Options{Mappings: map[string]Mapping{"x": {Dataset: "d",
		Fields: map[string]FieldMap{"@timestamp": {From: "t"}, "event.action": {From: "a"}}}}})
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "valid: cloudtrail, ecs, entra, keycloak, nginx, nginx-json, ocsf, okta, mapping:x") {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := Open("mapping:y", strings.NewReader(""), 0, Options{}); !errors.Is(err, ErrUnknownFormat) ||
		!strings.Contains(err.Error(), "no mappings are configured") {
		t.Errorf("unknown mapping: %v", err)
	}
	if _, err := New(Options{Routes: []Route{{Path: "x"}}}); err == nil || !strings.Contains(err.Error(), "route 0") {
		t.Errorf("bad route: %v", err)
	}
	if _, err := New(Options{Mappings: map[string]Mapping{"m": {}}}); err == nil || !strings.Contains(err.Error(), `mapping "m"`) {
		t.Errorf("bad mapping: %v", err)
	}
}

// Every format's readers report rejected lines as *decode.LineError and
// go on.
func TestLineErrorsEverywhere(t *testing.T) {
	in, err := New(Options{Mappings: map[string]Mapping{"m": {Dataset: "d",
		Fields: map[string]FieldMap{"@timestamp": {From: "t"}, "event.action": {From: "a"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range in.Formats() {
		r, err := in.Open(format, strings.NewReader("garbage\n\n{}\n"), 0)
		if err != nil {
			t.Fatal(err)
		}
		var lines []int
		for {
			var ev event.Event
			err := r.Next(&ev)
			if err == io.EOF {
				break
			}
			var le *decode.LineError
			if !errors.As(err, &le) {
				t.Fatalf("%s: %v", format, err)
			}
			lines = append(lines, le.Line)
		}
		if len(lines) != 2 || lines[0] != 1 || lines[1] != 3 {
			t.Errorf("%s: rejected lines %v, want [1 3]", format, lines)
		}
	}
}

func TestSniff(t *testing.T) {
	in, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ecs := `{"@timestamp":"2025-06-24T09:00:03Z","event.dataset":"d","event.action":"a"}` + "\n"
	longCT := `{"eventVersion":"1.10","userIdentity":{"sessionContext":{"pad":"` + strings.Repeat("x", 200<<10) +
		`"}},"eventTime":"2025-06-24T09:00:03Z","eventSource":"s3.amazonaws.com","eventName":"GetObject"}` + "\n"
	logstash, err := os.ReadFile(filepath.Join("cloudtrail", "testdata", "logstash-instance-role-day.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, data, want, why string
	}{
		{"ecs", ecs + ecs, FormatECS, ""},
		{"empty", "", FormatECS, ""},
		{"blank", "\n \r\n", FormatECS, ""},
		{"logstash cloudtrail", string(logstash), FormatCloudTrail, ""},
		{"long cloudtrail first line", longCT + longCT, FormatCloudTrail, ""},
		{"long cloudtrail line, no newline", strings.TrimSuffix(longCT, "\n"), FormatCloudTrail, ""},
		{"unknown json", `{"ts":1,"msg":"x"}` + "\n", "", "line 1 fits no format"},
		{"unknown long line", `{"a":"` + strings.Repeat("x", 4000) + `"}` + "\n", "", "line 1 fits no format"},
		{"mixed", ecs + `{"eventVersion":"1.10","eventSource":"s3.amazonaws.com","eventName":"GetObject"}` + "\n", "", "line 1 looks like ecs, line 2 like cloudtrail"},
		{"ambiguous", `{"@timestamp":"x","event.dataset":"d","eventVersion":"1","eventSource":"s","eventName":"n"}`, "", "line 1 fits cloudtrail and ecs"},
		{"too long to tell", `{"a":"` + strings.Repeat("x", DetectMax), "", "is longer than"},
	}
	for _, tt := range tests {
		got, r, err := in.Sniff(strings.NewReader(tt.data))
		if tt.why != "" {
			var de *DetectError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), "tried cloudtrail (") {
				t.Errorf("%s: Sniff = %q, %v; want an error saying %q", tt.name, got, err, tt.why)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: Sniff = %q, %v; want %q", tt.name, got, err, tt.want)
			continue
		}
		rest, _ := io.ReadAll(r)
		if string(rest) != tt.data {
			t.Errorf("%s: Sniff consumed input", tt.name)
		}
	}
}
