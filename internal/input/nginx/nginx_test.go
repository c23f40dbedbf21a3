package nginx

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/event/eventtest"
)

var cmpOpts = cmp.Options{cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}

// testRoutes are the routes testdata/gen_samples.py mirrors.
var testRoutes = []Route{
	{Method: "GET", Path: "/api/v2/members/{customer}/profile", RecordType: "customer", IDParam: "customer",
		Action: "member.profile.read", Fields: []string{"name", "email", "phone"}, UserParam: "customer"},
	{Method: "GET", Path: "/api/v2/members/{customer}/addresses", RecordType: "address", IDParam: "customer",
		Action: "member.addresses.read", Fields: []string{"name", "phone", "address", "entrance_code"}, UserParam: "customer"},
	{Method: "POST", Path: "/api/v2/members/{customer}/addresses", RecordType: "address", IDParam: "customer",
		Action: "member.addresses.update", Fields: []string{"address"}, UserParam: "customer"},
	{Method: "GET", Path: "/api/v2/orders/{order}", RecordType: "order", IDParam: "order",
		Action: "order.read", Fields: []string{"name", "address", "order_history"}},
	{Path: "/healthz", Action: "health.check"},
}

func newParser(t testing.TB, opts Options) *Parser {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type nexter interface {
	Next(*event.Event) error
	Line() int
}

func readAll(t testing.TB, r nexter) []event.Event {
	t.Helper()
	var evs []event.Event
	for {
		var ev event.Event
		err := r.Next(&ev)
		if err == io.EOF {
			return evs
		}
		if err != nil {
			t.Fatalf("line %d: %v", r.Line(), err)
		}
		evs = append(evs, ev)
	}
}

func openFile(t *testing.T, name string) *os.File {
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestGoldenCombined(t *testing.T) {
	p := newParser(t, Options{Routes: testRoutes, UserPrefix: "m:"})
	evs := readAll(t, p.NewReader(openFile(t, "access.log"), 2))
	if len(evs) != 20 {
		t.Fatalf("%d events, want 20", len(evs))
	}
	eventtest.Golden(t, "access", evs)
}

// TestEquivalentToContract: the combined log with routes and the contract
// lines written for the same requests decode to equal events.
func TestEquivalentToContract(t *testing.T) {
	p := newParser(t, Options{Routes: testRoutes, UserPrefix: "m:"})
	got := readAll(t, p.NewReader(openFile(t, "access.log"), 2))
	want := readAll(t, decode.NewReader(openFile(t, "access.ecs.ndjson"), 5, 0))
	if len(got) != len(want) {
		t.Fatalf("%d events from nginx, %d from ECS", len(got), len(want))
	}
	for i := range got {
		if got[i].Input != 2 || want[i].Input != 5 || got[i].Line != want[i].Line {
			t.Fatalf("event %d: provenance %d:%d vs %d:%d", i, got[i].Input, got[i].Line, want[i].Input, want[i].Line)
		}
		got[i].Input, want[i].Input = 0, 0
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("nginx and ECS disagree (-ecs +nginx):\n%s", diff)
	}
}

func TestGoldenJSON(t *testing.T) {
	p := newParser(t, Options{Routes: testRoutes, UserPrefix: "m:", UserField: "http_x_user_id", TokenField: "http_x_token_id"})
	evs := readAll(t, p.NewJSONReader(openFile(t, "access.json.log"), 4))
	if len(evs) != 19 {
		t.Fatalf("%d events, want 19", len(evs))
	}
	eventtest.Golden(t, "access.json", evs)
	for _, ev := range evs {
		if ev.Source.IP.String() == "185.220.101.34" && (ev.Token.ID == "" || !strings.HasPrefix(ev.User.ID, "m:")) {
			t.Errorf("line %d: user %q token %q", ev.Line, ev.User.ID, ev.Token.ID)
		}
	}
}

const okLine = `203.0.113.9 - alice [24/Jun/2025:09:00:03 +0900] "GET /api/v2/members/48213377/profile?x=1 HTTP/1.1" 200 734 "-" "UA/1.0"`

func TestCombined(t *testing.T) {
	p := newParser(t, Options{Routes: testRoutes, UserPrefix: "m:"})
	tests := []struct {
		name string
		line string
		code string
		want func(*event.Event) bool
	}{
		{"ok", okLine, "", func(ev *event.Event) bool {
			return ev.User.ID == "m:alice" && ev.Action == "member.profile.read" && ev.URLPath == "/api/v2/members/48213377/profile" &&
				ev.Time.Hour() == 0 && ev.HTTP.BodyBytes == 734 && ev.UserAgent == "UA/1.0" && ev.Records.IDs[0] == "48213377"
		}},
		{"common log format", `1.2.3.4 - - [24/Jun/2025:09:00:03 -0130] "GET / HTTP/1.0" 500 -`, "", func(ev *event.Event) bool {
			return ev.UserAgent == "" && ev.Time.Hour() == 10 && ev.Time.Minute() == 30 && ev.Outcome == event.OutcomeFailure && ev.User.ID == ""
		}},
		{"extra fields after ua", okLine + ` 0.012 "upstream"`, "", func(ev *event.Event) bool { return ev.UserAgent == "UA/1.0" }},
		{"absolute uri", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET http://h.example/api/v2/orders/7?a HTTP/1.1" 200 1 "-" "-"`, "", func(ev *event.Event) bool {
			return ev.URLPath == "/api/v2/orders/7" && ev.Records.IDs[0] == "7" && ev.User.ID == ""
		}},
		{"query string", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET /items?id=1%20UNION%20SELECT%201 HTTP/1.1" 200 1 "-" "-"`, "", func(ev *event.Event) bool {
			return ev.URLPath == "/items" && ev.URLQuery == "id=1%20UNION%20SELECT%201" && ev.URLDomain == ""
		}},
		{"empty query, fragment", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET /a?#b?c HTTP/1.1" 200 1 "-" "-"`, "", func(ev *event.Event) bool {
			return ev.URLPath == "/a" && ev.URLQuery == ""
		}},
		{"query after fragment is not a query", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET /a#b?c HTTP/1.1" 200 1 "-" "-"`, "", func(ev *event.Event) bool {
			return ev.URLPath == "/a" && ev.URLQuery == ""
		}},
		{"absolute uri: domain without port and user info", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET https://u:p@Shop.example:8443/x?y=1 HTTP/1.1" 200 1 "-" "-"`, "", func(ev *event.Event) bool {
			return ev.URLDomain == "Shop.example" && ev.URLPath == "/x" && ev.URLQuery == "y=1"
		}},
		{"absolute uri: ipv6 literal keeps brackets", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET http://[2001:db8::1]:8080/x HTTP/1.1" 200 1 "-" "-"`, "", func(ev *event.Event) bool {
			return ev.URLDomain == "[2001:db8::1]" && ev.URLPath == "/x"
		}},
		{"escaped quote in ua", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET / HTTP/1.1" 200 1 "-" "a\"b\x41\\"`, "", func(ev *event.Event) bool {
			return ev.UserAgent == `a"bA\`
		}},
		{"invalid utf8 escaped", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET /\xff HTTP/1.1" 200 1 "-" "-"`, "", func(ev *event.Event) bool {
			return ev.URLPath == "/\uFFFD"
		}},
		{"connect", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "CONNECT example.com:443 HTTP/1.1" 400 1 "-" "-"`, "", func(ev *event.Event) bool {
			return ev.HTTP.Method == "CONNECT" && ev.URLPath == ""
		}},
		{"empty request", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "" 400 0 "-" "-"`, "", func(ev *event.Event) bool {
			return ev.HTTP.Method == "" && ev.HTTP.StatusCode == 400
		}},
		{"ipv6 zone", `fe80::1%eth0 - - [24/Jun/2025:09:00:03 +0000] "GET / HTTP/1.1" 200 1 "-" "-"`, "", func(ev *event.Event) bool {
			return ev.Source.IP == netip.MustParseAddr("fe80::1")
		}},
		{"bad address", `host.example - - [24/Jun/2025:09:00:03 +0000] "GET / HTTP/1.1" 200 1`, decode.CodeInvalidField, nil},
		{"bad time", `1.2.3.4 - - [24/Jun/2025:25:00:03 +0000] "GET / HTTP/1.1" 200 1`, decode.CodeInvalidField, nil},
		{"feb 30", `1.2.3.4 - - [30/Feb/2025:01:00:03 +0000] "GET / HTTP/1.1" 200 1`, decode.CodeInvalidField, nil},
		{"bad month", `1.2.3.4 - - [01/Foo/2025:01:00:03 +0000] "GET / HTTP/1.1" 200 1`, decode.CodeInvalidField, nil},
		{"no time", `1.2.3.4 - - "GET / HTTP/1.1" 200 1`, decode.CodeInvalidField, nil},
		// Beyond Unix nanoseconds (1600 would be stored as 2184).
		{"time 1600", `1.2.3.4 - - [01/Jan/1600:00:00:00 +0000] "GET / HTTP/1.1" 200 1`, decode.CodeInvalidField, nil},
		{"time 2300", `1.2.3.4 - - [01/Jan/2300:00:00:00 +0000] "GET / HTTP/1.1" 200 1`, decode.CodeInvalidField, nil},
		{"unterminated request", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET / HTTP/1.1 200 1`, decode.CodeInvalidField, nil},
		{"status too big", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET / HTTP/1.1" 1000 1`, decode.CodeInvalidField, nil},
		{"no bytes", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET / HTTP/1.1" 200`, decode.CodeInvalidField, nil},
		{"negative bytes", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET / HTTP/1.1" 200 -5`, decode.CodeInvalidField, nil},
		{"unterminated ua", `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "GET / HTTP/1.1" 200 1 "-" "abc`, decode.CodeInvalidField, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev event.Event
			err := p.ParseCombined([]byte(tt.line), &ev)
			if tt.code != "" {
				var le *decode.LineError
				if !errors.As(err, &le) || le.Code != tt.code || le.Reason == "" || strings.ContainsAny(le.Reason, "\r\n") {
					t.Fatalf("got %v, want %s", err, tt.code)
				}
				if ev.Action != "" {
					t.Fatal("event not reset")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(&ev) {
				t.Errorf("unexpected event %+v", ev)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	p := newParser(t, Options{Routes: []Route{
		{Method: "get", Path: "/api/members/me/addresses", RecordType: "address", Action: "self"},
		{Method: "GET", Path: "/api/members/{id}/addresses", RecordType: "address", IDParam: "id", Action: "other"},
		{Path: "/api/members/{id}/addresses/", RecordType: "address", IDParam: "id", Action: "any-method"},
	}})
	tests := []struct {
		method, path string
		action, id   string
	}{
		{"GET", "/api/members/me/addresses", "self", ""},
		{"GET", "/api/members/42/addresses", "other", "42"},
		{"GET", "//api/members/42/addresses/", "other", "42"},
		{"DELETE", "/api/members/42/addresses", "any-method", "42"},
		{"GET", "/api/members/a%20b/addresses", "other", "a b"},
		{"GET", "/api/members/%zz/addresses", "other", "%zz"},
		{"GET", "/api/members/42", DefaultAction, ""},
		{"GET", "/api/members/42/addresses/x", DefaultAction, ""},
		{"GET", "/" + strings.Repeat("a/", 40), DefaultAction, ""},
	}
	for _, tt := range tests {
		line := `1.2.3.4 - - [24/Jun/2025:09:00:03 +0000] "` + tt.method + " " + tt.path + ` HTTP/1.1" 200 1 "-" "-"`
		var ev event.Event
		if err := p.ParseCombined([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		id := ""
		if len(ev.Records.IDs) > 0 {
			id = ev.Records.IDs[0]
		}
		if ev.Action != tt.action || id != tt.id {
			t.Errorf("%s %s: action %q id %q, want %q %q", tt.method, tt.path, ev.Action, id, tt.action, tt.id)
		}
	}
}

func TestBadRoutes(t *testing.T) {
	for _, r := range []Route{
		{Path: "api/x", Action: "a"},
		{Path: "/api/{x", Action: "a"},
		{Path: "/api/x{y}", Action: "a"},
		{Path: "/api/{}", Action: "a"},
		{Path: "/api/{x}/{x}", Action: "a"},
		{Path: "/api/{x}", RecordType: "t", IDParam: "y"},
		{Path: "/api/{x}", IDParam: "x"},
		{Path: "/api/{x}", Action: "a", UserParam: "u"},
		{Path: "/api/x?y", Action: "a"},
		{Path: "/api/x"},
		{Method: "G T", Path: "/api/x", Action: "a"},
		{Path: "/" + strings.Repeat("a/", 33), Action: "a"},
	} {
		if _, err := New(Options{Routes: []Route{r}}); err == nil {
			t.Errorf("route %+v accepted", r)
		} else if !strings.Contains(err.Error(), "route 0") {
			t.Errorf("error %q does not name the route", err)
		}
	}
}

func TestJSON(t *testing.T) {
	p := newParser(t, Options{Routes: testRoutes, UserPrefix: "m:", UserField: "uid", Dataset: "api.gw", Action: "req"})
	tests := []struct {
		name string
		line string
		code string
		want func(*event.Event) bool
	}{
		{"request line, numbers", `{"time_local":"24/Jun/2025:09:00:03 +0900","remote_addr":"1.2.3.4","request":"GET /api/v2/orders/9 HTTP/2.0","status":404,"body_bytes_sent":0,"remote_user":"bob"}`, "",
			func(ev *event.Event) bool {
				return ev.Dataset == "api.gw" && ev.Action == "order.read" && ev.User.ID == "m:bob" && ev.Outcome == event.OutcomeFailure && ev.Time.Hour() == 0
			}},
		{"user field wins", `{"msec":"1719187203.123","remote_user":"bob","uid":"7","uri":"/x"}`, "",
			func(ev *event.Event) bool {
				return ev.User.ID == "m:7" && ev.Time.UnixMilli() == 1719187203123 && ev.Action == "req" && ev.URLPath == ""
			}},
		{"method and uri", `{"@timestamp":"2025-06-24T09:00:03Z","request_method":"GET","uri":"/healthz","http_user_agent":"-","uid":null}`, "",
			func(ev *event.Event) bool {
				return ev.Action == "health.check" && ev.UserAgent == "" && ev.User.ID == ""
			}},
		{"escaped key and value", `{"time_iso8601":"2025-06-24T09:00:03Z","\u0072emote_addr":"1.2.3.4","http_user_agent":"a\u0022b"}`, "",
			func(ev *event.Event) bool { return ev.Source.IP.IsValid() && ev.UserAgent == `a"b` }},
		{"uri and args, host", `{"msec":"1","request_method":"GET","uri":"/items","args":"id=1 UNION SELECT","host":"shop.example:8080"}`, "",
			func(ev *event.Event) bool {
				return ev.URLPath == "/items" && ev.URLQuery == "id=1 UNION SELECT" && ev.URLDomain == "shop.example"
			}},
		{"request_uri's query wins over args", `{"msec":"1","request_method":"GET","request_uri":"/a?x=1","query_string":"x=2","http_host":"h"}`, "",
			func(ev *event.Event) bool { return ev.URLQuery == "x=1" && ev.URLDomain == "h" }},
		{"no request: no query or domain", `{"msec":"1","args":"x=1","host":"h"}`, "",
			func(ev *event.Event) bool { return ev.URLQuery == "" && ev.URLDomain == "" }},
		{"no time", `{"remote_addr":"1.2.3.4"}`, decode.CodeMissingField, nil},
		{"bad time", `{"time_iso8601":"24/Jun/2025"}`, decode.CodeInvalidField, nil},
		{"bad msec", `{"msec":"abc"}`, decode.CodeInvalidField, nil},
		// Beyond Unix nanoseconds (1600 would be stored as 2184).
		{"msec past 2262", `{"msec":"9300000000"}`, decode.CodeInvalidField, nil},
		{"time_iso8601 1600", `{"time_iso8601":"1600-01-01T00:00:00Z"}`, decode.CodeInvalidField, nil},
		{"time_local 2300", `{"time_local":"01/Jan/2300:00:00:00 +0000"}`, decode.CodeInvalidField, nil},
		{"bad status", `{"msec":"1","status":"2xx"}`, decode.CodeInvalidField, nil},
		{"object value", `{"msec":"1","remote_addr":{}}`, decode.CodeInvalidField, nil},
		{"not json", `{"msec":`, decode.CodeInvalidJSON, nil},
		{"not object", `[1]`, decode.CodeInvalidJSON, nil},
		{"trailing", `{"msec":"1"} x`, decode.CodeInvalidJSON, nil},
		{"duplicate", `{"msec":"1","msec":"2"}`, decode.CodeInvalidJSON, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := p.NewJSONReader(strings.NewReader(tt.line+"\n"), 0)
			var ev event.Event
			err := r.Next(&ev)
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
			if !tt.want(&ev) {
				t.Errorf("unexpected event %+v", ev)
			}
		})
	}
}

func TestReaderContinues(t *testing.T) {
	p := newParser(t, Options{MaxLine: 300})
	in := okLine + "\n\ngarbage\n" + okLine + strings.Repeat("x", 400) + "\r\n" + okLine
	r := p.NewReader(strings.NewReader(in), 9)
	var got []string
	for {
		var ev event.Event
		err := r.Next(&ev)
		if err == io.EOF {
			break
		}
		var le *decode.LineError
		switch {
		case errors.As(err, &le):
			got = append(got, le.Code+"@"+itoa(le.Line))
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, "ok@"+itoa(int(ev.Line)))
		}
	}
	want := "ok@1 invalid_field@3 line_too_long@4 ok@5"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
