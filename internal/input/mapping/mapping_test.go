package mapping

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/event/eventtest"
)

func loadYAML(t testing.TB) map[string]Mapping {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "mapping.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Mappings map[string]Mapping `yaml:"mappings"`
	}
	if err := yaml.UnmarshalWithOptions(data, &cfg, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	return cfg.Mappings
}

func compiled(t testing.TB) *Compiled {
	t.Helper()
	c, err := Compile("orders-audit", loadYAML(t)["orders-audit"])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGolden maps testdata/audit.log: accepted lines against the golden
// file, rejected ones by line and code.
func TestGolden(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := compiled(t).NewReader(f, 6, 0)
	var evs []event.Event
	var rejected []string
	for {
		var ev event.Event
		err := r.Next(&ev)
		if err == io.EOF {
			break
		}
		var le *decode.LineError
		if errors.As(err, &le) {
			rejected = append(rejected, le.Error()+" ["+le.Code+"]")
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	eventtest.Golden(t, "audit", evs)
	wantRejected := []string{
		`line 6: invalid "@timestamp" (from "ts"): parsing time "yesterday" as "2006-01-02 15:04:05.000 -0700": cannot parse "yesterday" as "2006" [invalid_field]`,
		`line 7: missing required field "event.action" [missing_field]`,
		`line 8: invalid "source.ip": ParseAddr("300.1.1.1"): IPv4 field has value >255 [invalid_field]`,
		`line 9: invalid "event.action" (from "op"): want a string or a number, got an array [invalid_field]`,
		`line 10: invalid JSON: invalid character 'o' in literal null (expecting 'u') after offset 1 [invalid_json]`,
	}
	if diff := cmp.Diff(wantRejected, rejected); diff != "" {
		t.Errorf("rejections (-want +got):\n%s", diff)
	}
}

func TestDecodeCases(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]FieldMap
		line   string
		code   string
		check  func(*event.Event) bool
	}{
		{"unix_ms and const", map[string]FieldMap{
			"@timestamp":   {From: "t", TimeLayout: "unix_ms"},
			"event.action": {Const: "x"},
		}, `{"t":1750723203123}`, "", func(ev *event.Event) bool {
			return ev.Time.Equal(time.UnixMilli(1750723203123)) && ev.Action == "x" && ev.Dataset == "d"
		}},
		{"unix with fraction as string", map[string]FieldMap{
			"@timestamp": {From: "t", TimeLayout: "unix"}, "event.action": {Const: "x"},
		}, `{"t":"1750723203.5"}`, "", func(ev *event.Event) bool { return ev.Time.Nanosecond() == 500000000 }},
		{"dotted key beats nesting; number id", map[string]FieldMap{
			"@timestamp": {From: "a.t"}, "event.action": {Const: "x"}, "records.ids": {From: "a.ids"},
		}, `{"a":{"t":"bad"},"a.t":"2025-06-24T09:00:03+09:00","a":{"ids":[1,null,"2"]}}`, "", func(ev *event.Event) bool {
			return ev.Time.Hour() == 0 && strings.Join(ev.Records.IDs, ",") == "1,2"
		}},
		{"regex no match is absent", map[string]FieldMap{
			"@timestamp": {Const: "2025-06-24T09:00:03Z"}, "event.action": {Const: "x"}, "user.id": {From: "u", Regex: `^id=(\d+)$`},
		}, `{"u":"name=bob"}`, "", func(ev *event.Event) bool { return ev.User.ID == "" }},
		{"bool and location", map[string]FieldMap{
			"@timestamp": {Const: "2025-06-24T09:00:03Z"}, "event.action": {From: "ok"},
			"source.geo.location.lat": {From: "geo.lat"}, "source.geo.location.lon": {From: "geo.lon"},
		}, `{"ok":true,"geo":{"lat":37.5,"lon":"127.0"}}`, "", func(ev *event.Event) bool {
			return ev.Action == "true" && ev.Source.Located && ev.Source.Lat == 37.5 && ev.Source.Lon == 127
		}},
		{"object for a string", map[string]FieldMap{
			"@timestamp": {Const: "2025-06-24T09:00:03Z"}, "event.action": {From: "a"},
		}, `{"a":{}}`, decode.CodeInvalidField, nil},
		{"bad unix", map[string]FieldMap{
			"@timestamp": {From: "t", TimeLayout: "unix"}, "event.action": {Const: "x"},
		}, `{"t":"-1"}`, decode.CodeInvalidField, nil},
		// Beyond Unix nanoseconds, checked by the contract decoder
		// mapped events go through.
		{"unix past 2262", map[string]FieldMap{
			"@timestamp": {From: "t", TimeLayout: "unix"}, "event.action": {Const: "x"},
		}, `{"t":34359738368}`, decode.CodeInvalidField, nil},
		{"layout year 1600", map[string]FieldMap{
			"@timestamp": {From: "t", TimeLayout: "2006-01-02 15:04:05"}, "event.action": {Const: "x"},
		}, `{"t":"1600-01-01 00:00:00"}`, decode.CodeInvalidField, nil},
		{"token expiry clamped", map[string]FieldMap{
			"@timestamp": {Const: "2025-06-24T09:00:03Z"}, "event.action": {Const: "x"},
			"token.expires_at": {From: "exp", TimeLayout: "unix"},
		}, `{"exp":32503680000}`, "", func(ev *event.Event) bool { return ev.Token.ExpiresAt.Equal(event.MaxTime()) }},
		{"null time is missing", map[string]FieldMap{
			"@timestamp": {From: "t"}, "event.action": {Const: "x"},
		}, `{"t":null}`, decode.CodeMissingField, nil},
		{"not an object", map[string]FieldMap{
			"@timestamp": {From: "t"}, "event.action": {Const: "x"},
		}, `"s"`, decode.CodeInvalidJSON, nil},
		{"bad utf8", map[string]FieldMap{
			"@timestamp": {From: "t"}, "event.action": {Const: "x"},
		}, "{\"t\":\"\xff\"}", decode.CodeInvalidJSON, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile("m", Mapping{Dataset: "d", Fields: tt.fields})
			if err != nil {
				t.Fatal(err)
			}
			r := c.NewReader(strings.NewReader(tt.line), 0, 0)
			var ev event.Event
			err = r.Next(&ev)
			if tt.code != "" {
				var le *decode.LineError
				if !errors.As(err, &le) || le.Code != tt.code || le.Line != 1 || strings.ContainsAny(le.Reason, "\r\n") {
					t.Fatalf("got %v, want %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(&ev) {
				t.Errorf("unexpected event %+v", ev)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	base := func(extra map[string]FieldMap) map[string]FieldMap {
		m := map[string]FieldMap{"@timestamp": {From: "t"}, "event.action": {From: "a"}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		m    Mapping
		want string
	}{
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"usr.id": {From: "u"}})}, `field "usr.id": not a field of the event contract`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"user.id": {}})}, `field "user.id": give from or const`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"user.id": {From: "u", Const: "c"}})}, `not both`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"user.id": {From: "u", Regex: "("}})}, `field "user.id": regex: error parsing regexp`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"user.id": {From: "u", Regex: "a"}})}, `has 0 capture groups`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"user.id": {From: "u", Split: ","}})}, `split applies only to list fields`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"user.id": {From: "u", TimeLayout: "unix"}})}, `time_layout applies only to time fields`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"source.ip": {From: "u", Prefix: "x"}})}, `prefix applies only`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"token.issued_at": {From: "u", TimeLayout: "yyyy-mm-dd"}})}, `is not a Go time layout`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"token.issued_at": {Const: "soon"}})}, ``}, // rfc3339 consts are checked by decode, per line
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"token.issued_at": {Const: "x", TimeLayout: "unix"}})}, `const: want unix time`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"user.id": {From: "a..b"}})}, `empty path element`},
		{Mapping{Fields: base(nil)}, `no dataset`},
		{Mapping{Dataset: "d", Fields: map[string]FieldMap{"event.action": {From: "a"}}}, `required field "@timestamp"`},
		{Mapping{Dataset: "d", Fields: base(map[string]FieldMap{"event.dataset": {Const: "e"}})}, `not both`},
	}
	for _, tt := range tests {
		_, err := Compile("app", tt.m)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.m, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), `mapping "app": `)):
			t.Errorf("%+v: got %v, want %q", tt.m, err, tt.want)
		}
	}
	if _, err := Compile("", Mapping{}); err == nil {
		t.Error("empty name accepted")
	}
}
