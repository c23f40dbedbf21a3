package decode

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/event/eventtest"
)

// contractCopy is the project's copy of the shared contract.
var contractCopy = filepath.Join("..", "..", "testdata", "contract-events.ndjson")

// sharedContract is the shared contract itself, outside the module.
var sharedContract = filepath.Join("..", "..", "..", "shared", "contracts", "events.ndjson")

var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func decodeFile(t *testing.T, path string) []event.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := NewReader(f, 7, 0)
	var evs []event.Event
	for {
		var ev event.Event
		err := r.Next(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestContractGolden decodes the project's copy of the contract and
// compares every event with testdata/contract.golden.json.
func TestContractGolden(t *testing.T) {
	evs := decodeFile(t, contractCopy)
	if len(evs) != 15 {
		t.Fatalf("decoded %d events, want 15", len(evs))
	}
	eventtest.Golden(t, "contract", evs)
}

// TestSharedContract checks that every line of the shared contract, as
// written, is accepted.
func TestSharedContract(t *testing.T) {
	if _, err := os.Stat(sharedContract); err != nil {
		t.Skipf("shared contract not available at %s (%v); the project's copy is tested by TestContractGolden", sharedContract, err)
	}
	d := NewDecoder()
	for i, line := range readLines(t, sharedContract) {
		var ev event.Event
		if err := d.Decode(line, &ev); err != nil {
			t.Errorf("shared contract line %d rejected: %v", i+1, err)
		}
	}
	// The project's copy must still match the contract.
	shared, own := decodeFile(t, sharedContract), decodeFile(t, contractCopy)
	if diff := cmp.Diff(shared, own, cmpOpts); diff != "" {
		t.Errorf("testdata copy differs from the shared contract (-shared +copy):\n%s", diff)
	}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// TestContractFields spells out a few contract lines field by field,
// independently of the golden file.
func TestContractFields(t *testing.T) {
	lines := readLines(t, contractCopy)
	d := NewDecoder()
	tests := []struct {
		line int
		want event.Event
	}{
		{1, event.Event{
			Time: mustTime("2022-11-01T00:00:00Z"), Dataset: "keys.inventory", Action: "key.created",
			Outcome: event.OutcomeSuccess,
			Key:     event.Key{ID: "auth-2022-11", Status: "active", Custodians: []string{"e:1042", "e:0077"}},
		}},
		{3, event.Event{
			Time: mustTime("2024-12-31T18:00:00Z"), Dataset: "hr.roster", Action: "identity.terminated",
			Outcome: event.OutcomeSuccess,
			Identity: event.Identity{ID: "e:1042", Kind: "employee", Roles: []string{"auth-engineer"},
				Status: "terminated", TerminatedAt: mustTime("2024-12-31T18:00:00Z"), Country: "KR"},
		}},
		{6, event.Event{
			Time: mustTime("2025-06-24T08:59:58Z"), Dataset: "auth.login", Action: "login",
			Outcome: event.OutcomeSuccess,
			User:    event.User{ID: "m:48213377"},
			Source: event.Source{IP: netip.MustParseAddr("211.234.10.9"), Country: "KR", ASN: 4766,
				ASOrg: "Korea Telecom"},
			UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
		}},
		{7, event.Event{
			Time: mustTime("2025-06-24T08:59:58Z"), Dataset: "auth.token", Action: "token.issued",
			Outcome: event.OutcomeSuccess,
			User:    event.User{ID: "m:48213377"},
			Token: event.Token{ID: "tk-7d41c2e0", KeyID: "auth-2025-03", Issuer: "https://auth.example-shop.kr",
				IssuedAt: mustTime("2025-06-24T08:59:58Z"), ExpiresAt: mustTime("2025-06-24T20:59:58Z")},
			Source: event.Source{IP: netip.MustParseAddr("211.234.10.9")},
		}},
		{8, event.Event{
			Time: mustTime("2025-06-24T09:00:03Z"), Dataset: "gateway.access", Action: "member.profile.read",
			Outcome: event.OutcomeSuccess,
			User:    event.User{ID: "m:48213377"},
			Token: event.Token{ID: "tk-7d41c2e0", KeyID: "auth-2025-03",
				IssuedAt: mustTime("2025-06-24T08:59:58Z")},
			Source:    event.Source{IP: netip.MustParseAddr("211.234.10.9"), Country: "KR", ASN: 4766},
			UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
			HTTP:      event.HTTP{Method: "GET", StatusCode: 200, BodyBytes: 734},
			URLPath:   "/api/v2/members/48213377/profile",
			Records: event.Records{Type: "customer", IDs: []string{"48213377"},
				Fields: []string{"name", "email", "phone"}},
		}},
		{13, event.Event{
			Time: mustTime("2025-06-25T10:05:00Z"), Dataset: "gateway.access", Action: "admin.customer.search",
			Outcome: event.OutcomeSuccess,
			User:    event.User{ID: "e:2210", Roles: []string{"cs-agent"}},
			Source:  event.Source{IP: netip.MustParseAddr("10.20.4.17")},
			URLPath: "/admin/customers/search",
			HTTP:    event.HTTP{Method: "POST", StatusCode: 200},
			Records: event.Records{Type: "customer", IDs: []string{"51003311", "51003312", "51003313"},
				Fields: []string{"name", "phone"}},
		}},
	}
	for _, tt := range tests {
		var ev event.Event
		if err := d.Decode(lines[tt.line-1], &ev); err != nil {
			t.Fatalf("line %d: %v", tt.line, err)
		}
		if diff := cmp.Diff(tt.want, ev, cmpOpts); diff != "" {
			t.Errorf("line %d (-want +got):\n%s", tt.line, diff)
		}
	}
}

const base = `"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"gateway.access","action":"a"}`

func baseEvent() event.Event {
	return event.Event{Time: mustTime("2025-06-24T09:00:03Z"), Dataset: "gateway.access", Action: "a"}
}

// TestDecodeAccepts covers the leniencies of the contract.
func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		line string
		want func(*event.Event)
	}{
		{"minimal", `{` + base + `}`, nil},
		{"provider and location",
			`{` + base + `,"event.provider":"s3.amazonaws.com","source":{"geo":{"location":{"lat":37.5665,"lon":"126.978"}}}}`,
			func(e *event.Event) {
				e.Provider = "s3.amazonaws.com"
				e.Source.Located, e.Source.Lat, e.Source.Lon = true, 37.5665, 126.978
			}},
		{"location at zero", `{` + base + `,"source.geo.location":{"lat":0,"lon":0}}`,
			func(e *event.Event) { e.Source.Located = true }},
		{"empty location strings are absent", `{` + base + `,"source.geo.location":{"lat":"","lon":""}}`, nil},
		{"dotted keys",
			`{"@timestamp":"2025-06-24T09:00:03Z","event.dataset":"gateway.access","event.action":"a","user.id":"u1","source.geo.country_iso_code":"KR","http.response.status_code":404}`,
			func(e *event.Event) { e.User.ID = "u1"; e.Source.Country = "KR"; e.HTTP.StatusCode = 404 }},
		{"mixed nesting",
			`{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"gateway.access"},"event.action":"a","http.response":{"body.bytes":5},"source":{"as.organization":{"name":"KT"},"as":{"number":1}}}`,
			func(e *event.Event) { e.HTTP.BodyBytes = 5; e.Source.ASOrg = "KT"; e.Source.ASN = 1 }},
		{"unknown fields skipped",
			`{"x":{"y":[1,{"z":null}]},` + base + `,"event.kind":"event","user":{"email":"a@b","id":"u","x":{"id":"no"}},"labels":{"event.dataset":"no"},"url":{"full":"http://x/y"},"@timestamp.x":1}`,
			func(e *event.Event) { e.User.ID = "u" }},
		{"null is absent",
			`{` + base + `,"user":{"id":null,"roles":null},"source":null,"http":{"response":{"status_code":null}},"records":{"ids":[null,"1"]}}`,
			func(e *event.Event) { e.Records.IDs = []string{"1"} }},
		{"empty strings and arrays are absent",
			`{` + base + `,"user":{"id":"","roles":[]},"records":{"ids":[""],"fields":["","name"]},"http.response.status_code":""}`,
			func(e *event.Event) { e.Records.Fields = []string{"name"} }},
		{"string for array",
			`{` + base + `,"user":{"roles":"admin"},"records":{"ids":"42","fields":"email"},"identity":{"roles":"r"},"key":{"custodians":"e:1"}}`,
			func(e *event.Event) {
				e.User.Roles = []string{"admin"}
				e.Records.IDs = []string{"42"}
				e.Records.Fields = []string{"email"}
				e.Identity.Roles = []string{"r"}
				e.Key.Custodians = []string{"e:1"}
			}},
		{"numeric record ids",
			`{` + base + `,"records":{"ids":[48213377,"a:1",-7,1e3,2.0,12345678901234567890]}}`,
			func(e *event.Event) {
				e.Records.IDs = []string{"48213377", "a:1", "-7", "1000", "2", "12345678901234567890"}
			}},
		{"single numeric record id", `{` + base + `,"records.ids":7}`,
			func(e *event.Event) { e.Records.IDs = []string{"7"} }},
		{"numbers as strings",
			`{` + base + `,"http":{"response":{"status_code":"200","body":{"bytes":"1234"}}},"source":{"as":{"number":"4766"}}}`,
			func(e *event.Event) { e.HTTP.StatusCode = 200; e.HTTP.BodyBytes = 1234; e.Source.ASN = 4766 }},
		{"integral float", `{` + base + `,"http.response.status_code":200.0}`,
			func(e *event.Event) { e.HTTP.StatusCode = 200 }},
		{"time offset and fraction",
			`{"@timestamp":"2025-06-24T18:00:03.123456789+09:00","event.dataset":"gateway.access","event.action":"a","token.expires_at":"2025-06-24T09:00:03.5-01:30"}`,
			func(e *event.Event) {
				e.Time = time.Date(2025, 6, 24, 9, 0, 3, 123456789, time.UTC)
				e.Token.ExpiresAt = time.Date(2025, 6, 24, 10, 30, 3, 500000000, time.UTC)
			}},
		{"ipv6 zone dropped", `{` + base + `,"source.ip":"fe80::1%eth0"}`,
			func(e *event.Event) { e.Source.IP = netip.MustParseAddr("fe80::1") }},
		{"ipv4-mapped unmapped", `{` + base + `,"source.ip":"::ffff:10.1.2.3"}`,
			func(e *event.Event) { e.Source.IP = netip.MustParseAddr("10.1.2.3") }},
		{"ipv6", `{` + base + `,"source.ip":"2001:db8::1"}`,
			func(e *event.Event) { e.Source.IP = netip.MustParseAddr("2001:db8::1") }},
		{"escaped strings and names",
			`{` + base + `,"user\u002eid":"m:\u00e9\n","url":{"pa\u0074h":"/a\/b"},"records":{"ids":["x\"y"],"fields":["na\u006de"]}}`,
			func(e *event.Event) {
				e.User.ID = "m:é\n"
				e.URLPath = "/a/b"
				e.Records.IDs = []string{`x"y`}
				e.Records.Fields = []string{"name"}
			}},
		{"repeated group, distinct fields", `{` + base + `,"user":{"id":"u"},"user":{"name":"n"},"x":1,"x":2}`,
			func(e *event.Event) { e.User.ID = "u"; e.User.Name = "n" }},
		{"outcome", `{` + base + `,"event.outcome":"weird"}`,
			func(e *event.Event) { e.Outcome = event.OutcomeUnknown }},
		{"whitespace around", " \t{ \"@timestamp\"\n:\r \"2025-06-24T09:00:03Z\" ,\t\"event\" : { \"dataset\" : \"gateway.access\" , \"action\":\"a\" } , \"records.ids\" : [ 1 , \"2\" ] } \r\n",
			func(e *event.Event) { e.Records.IDs = []string{"1", "2"} }},
		{"all fields",
			`{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"d","action":"a","id":"ev1","outcome":"failure"},"user":{"id":"u","name":"n","roles":["r1","r2"]},"source":{"ip":"1.2.3.4","geo":{"country_iso_code":"US"},"as":{"number":1,"organization":{"name":"o"}}},"user_agent":{"original":"ua"},"http":{"request":{"method":"PUT"},"response":{"status_code":201,"body":{"bytes":9}}},"url":{"path":"/p","query":"id=1%20UNION%20SELECT","domain":"shop.example"},"token":{"id":"t","key_id":"k","issuer":"i","issued_at":"2025-06-24T09:00:00Z","expires_at":"2025-06-24T10:00:00Z"},"records":{"type":"ty","ids":["1"],"fields":["f"]},"identity":{"id":"e:1","kind":"employee","roles":["x"],"status":"terminated","terminated_at":"2025-06-24T08:00:00Z","country":"KR","last_active":"2025-06-20T17:30:00+09:00"},"key":{"id":"k1","status":"retired","retired_at":"2025-06-23T00:00:00Z","custodians":["e:1"]}}`,
			func(e *event.Event) {
				*e = event.Event{
					Time: mustTime("2025-06-24T09:00:03Z"), Dataset: "d", Action: "a", ID: "ev1",
					Outcome:   event.OutcomeFailure,
					User:      event.User{ID: "u", Name: "n", Roles: []string{"r1", "r2"}},
					Source:    event.Source{IP: netip.MustParseAddr("1.2.3.4"), Country: "US", ASN: 1, ASOrg: "o"},
					UserAgent: "ua", HTTP: event.HTTP{Method: "PUT", StatusCode: 201, BodyBytes: 9}, URLPath: "/p",
					URLQuery: "id=1%20UNION%20SELECT", URLDomain: "shop.example",
					Token: event.Token{ID: "t", KeyID: "k", Issuer: "i",
						IssuedAt: mustTime("2025-06-24T09:00:00Z"), ExpiresAt: mustTime("2025-06-24T10:00:00Z")},
					Records: event.Records{Type: "ty", IDs: []string{"1"}, Fields: []string{"f"}},
					Identity: event.Identity{ID: "e:1", Kind: "employee", Roles: []string{"x"}, Status: "terminated",
						TerminatedAt: mustTime("2025-06-24T08:00:00Z"), Country: "KR",
						LastActive: mustTime("2025-06-20T08:30:00Z")},
					Key: event.Key{ID: "k1", Status: "retired", RetiredAt: mustTime("2025-06-23T00:00:00Z"),
						Custodians: []string{"e:1"}},
				}
			}},
	}
	d := NewDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := baseEvent()
			if tt.want != nil {
				tt.want(&want)
			}
			// Decode twice: the second run hits the intern caches.
			for range 2 {
				ev := event.Event{Input: 9, Line: 9, Late: true} // must be reset
				if err := d.Decode([]byte(tt.line), &ev); err != nil {
					t.Fatalf("Decode(%s): %v", tt.line, err)
				}
				if diff := cmp.Diff(want, ev, cmpOpts); diff != "" {
					t.Errorf("Decode(%s) (-want +got):\n%s", tt.line, diff)
				}
			}
		})
	}
}

// The event's own time is checked against the range of Unix nanoseconds
// (the bounds themselves are accepted); the times it reports about a
// token, an identity or a key are clamped to it, so a forged token that
// claims to expire in the year 3000 is still seen.
func TestDecodeTimeRange(t *testing.T) {
	d := NewDecoder()
	for _, ts := range []string{"1677-09-21T00:12:43.145224192Z", "2262-04-11T23:47:16.854775807Z", "2262-04-12T00:47:16.854775807+01:00"} {
		var ev event.Event
		if err := d.Decode([]byte(`{"@timestamp":"`+ts+`","event":{"dataset":"d","action":"a"}}`), &ev); err != nil {
			t.Errorf("%s: %v", ts, err)
		} else if back := time.Unix(0, ev.Time.UnixNano()); !back.Equal(ev.Time) {
			t.Errorf("%s: UnixNano round trip gives %s", ts, back)
		}
	}
	var ev event.Event
	line := `{` + base + `,"token":{"id":"t","issued_at":"1500-01-01T00:00:00Z","expires_at":"3000-01-01T00:00:00Z"},` +
		`"identity":{"terminated_at":"9999-01-01T00:00:00Z","last_active":"0900-01-01T00:00:00Z"},"key":{"retired_at":"1000-06-01T00:00:00Z"}}`
	if err := d.Decode([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ got, want time.Time }{
		"token.issued_at":        {ev.Token.IssuedAt, event.MinTime()},
		"token.expires_at":       {ev.Token.ExpiresAt, event.MaxTime()},
		"identity.terminated_at": {ev.Identity.TerminatedAt, event.MaxTime()},
		"identity.last_active":   {ev.Identity.LastActive, event.MinTime()},
		"key.retired_at":         {ev.Key.RetiredAt, event.MinTime()},
	} {
		if !c.got.Equal(c.want) {
			t.Errorf("%s = %s, want %s (clamped)", name, c.got, c.want)
		}
	}
}

// TestDecodeRejects is the error table.
func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		code   string
		reason string // substring of the reason
	}{
		{"not json", `hello`, CodeInvalidJSON, "invalid JSON: invalid character 'h'"},
		{"array", `[` + "{" + base + "}" + `]`, CodeInvalidJSON, "not a JSON object"},
		{"string", `"x"`, CodeInvalidJSON, "not a JSON object"},
		{"number", `42`, CodeInvalidJSON, "not a JSON object"},
		{"null", `null`, CodeInvalidJSON, "not a JSON object"},
		{"truncated", `{` + base, CodeInvalidJSON, "invalid JSON: unexpected EOF"},
		{"truncated in value", `{"@timestamp":"2025`, CodeInvalidJSON, "invalid JSON: unexpected EOF"},
		{"trailing garbage", `{` + base + `} x`, CodeInvalidJSON, "invalid JSON: unexpected data after the object"},
		{"trailing literal", `{` + base + `} null`, CodeInvalidJSON, "invalid JSON: unexpected data after the object"},
		{"second object", `{` + base + `}{}`, CodeInvalidJSON, "unexpected data after the object"},
		{"trailing comma", `{` + base + `,}`, CodeInvalidJSON, "invalid JSON"},
		{"duplicate name", `{` + base + `,"user":{"id":"a","id":"b"}}`, CodeInvalidField, `invalid "user.id": field given more than once`},
		{"duplicate group", `{` + base + `,"event":{"action":"b"}}`, CodeInvalidField, `invalid "event.action": field given more than once`},
		{"duplicate null then value", `{` + base + `,"user":{"id":null},"user":{"id":"b"},"user.id":"c"}`, CodeInvalidField, `invalid "user.id": field given more than once`},
		{"invalid utf8", "{" + base + `,"user":{"id":"` + "\xff" + `"}}`, CodeInvalidJSON, "invalid UTF-8"},
		{"syntax beats field error", `{"@timestamp":"bad",`, CodeInvalidJSON, "invalid JSON"},
		{"missing timestamp", `{"event":{"dataset":"d","action":"a"}}`, CodeMissingField, `missing required field "@timestamp"`},
		{"missing dataset", `{"@timestamp":"2025-06-24T09:00:03Z","event":{"action":"a"}}`, CodeMissingField, `missing required field "event.dataset"`},
		{"missing action", `{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"d"}}`, CodeMissingField, `missing required field "event.action"`},
		{"missing all", `{}`, CodeMissingField, `missing required fields "@timestamp", "event.dataset", "event.action"`},
		{"null required", `{"@timestamp":null,"event":{"dataset":"d","action":"a"}}`, CodeMissingField, `"@timestamp"`},
		{"empty required", `{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"","action":"a"}}`, CodeMissingField, `"event.dataset"`},
		{"event not an object", `{"@timestamp":"2025-06-24T09:00:03Z","event":"x"}`, CodeMissingField, `"event.dataset", "event.action"`},
		{"bad timestamp", `{"@timestamp":"x","event":{"dataset":"d","action":"a"}}`, CodeInvalidField, `invalid "@timestamp": parsing time "x"`},
		{"timestamp no zone", `{"@timestamp":"2025-06-24T09:00:03","event":{"dataset":"d","action":"a"}}`, CodeInvalidField, `invalid "@timestamp": parsing time`},
		{"timestamp feb 30", `{"@timestamp":"2025-02-30T09:00:03Z","event":{"dataset":"d","action":"a"}}`, CodeInvalidField, `invalid "@timestamp"`},
		{"zero timestamp", `{"@timestamp":"0001-01-01T00:00:00Z","event":{"dataset":"d","action":"a"}}`, CodeInvalidField, `is the zero time`},
		{"long timestamp", `{"@timestamp":"` + strings.Repeat("9", 200) + `","event":{"dataset":"d","action":"a"}}`, CodeInvalidField, `too long`},
		{"timestamp number", `{"@timestamp":1719219603,"event":{"dataset":"d","action":"a"}}`, CodeInvalidField, `invalid "@timestamp": want a string, got number`},
		{"bad token time", `{` + base + `,"token":{"issued_at":"yesterday"}}`, CodeInvalidField, `invalid "token.issued_at"`},
		// Unix nanoseconds end there: 1600 would be stored as 2184.
		{"timestamp 1600", `{"@timestamp":"1600-01-01T00:00:00Z","event":{"dataset":"d","action":"a"}}`, CodeInvalidField,
			`invalid "@timestamp": time 1600-01-01T00:00:00Z is outside the supported range 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z`},
		{"timestamp 9999", `{"@timestamp":"9999-12-31T23:59:59Z","event":{"dataset":"d","action":"a"}}`, CodeInvalidField, `invalid "@timestamp": time 9999-12-31T23:59:59Z is outside`},
		{"timestamp 1ns early", `{"@timestamp":"1677-09-21T00:12:43.145224191Z","event":{"dataset":"d","action":"a"}}`, CodeInvalidField, `is outside the supported range`},
		{"timestamp 1ns late", `{"@timestamp":"2262-04-11T23:47:16.854775808Z","event":{"dataset":"d","action":"a"}}`, CodeInvalidField, `is outside the supported range`},
		{"timestamp late by zone", `{"@timestamp":"2262-04-11T23:47:16-01:00","event":{"dataset":"d","action":"a"}}`, CodeInvalidField, `time 2262-04-12T00:47:16Z is outside`},
		{"bad ip", `{` + base + `,"source":{"ip":"300.1.1.1"}}`, CodeInvalidField, `invalid "source.ip": ParseAddr("300.1.1.1")`},
		{"ip leading zero", `{` + base + `,"source.ip":"010.1.1.1"}`, CodeInvalidField, `invalid "source.ip"`},
		{"ip number", `{` + base + `,"source.ip":17}`, CodeInvalidField, `invalid "source.ip": want a string, got number`},
		{"dataset number", `{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":5,"action":"a"}}`, CodeInvalidField, `invalid "event.dataset": want a string, got number`},
		{"action object", `{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"d","action":{"x":1}}}`, CodeInvalidField, `invalid "event.action": want a string, got object`},
		{"user id bool", `{` + base + `,"user":{"id":true}}`, CodeInvalidField, `invalid "user.id": want a string, got boolean`},
		{"status string", `{` + base + `,"http.response.status_code":"ok"}`, CodeInvalidField, `invalid "http.response.status_code": want an integer from 0 to 999, got "ok"`},
		{"status range", `{` + base + `,"http.response.status_code":1000}`, CodeInvalidField, `from 0 to 999, got "1000"`},
		{"status fraction", `{` + base + `,"http.response.status_code":200.5}`, CodeInvalidField, `got "200.5"`},
		{"status hex string", `{` + base + `,"http.response.status_code":"0x1p4"}`, CodeInvalidField, `got "0x1p4"`},
		{"bytes negative", `{` + base + `,"http.response.body.bytes":-1}`, CodeInvalidField, `invalid "http.response.body.bytes"`},
		{"asn too big", `{` + base + `,"source.as.number":4294967296}`, CodeInvalidField, `invalid "source.as.number"`},
		{"lat only", `{` + base + `,"source.geo.location.lat":1}`, CodeInvalidField, `needs both lat and lon`},
		{"lat out of range", `{` + base + `,"source.geo.location":{"lat":91,"lon":0}}`, CodeInvalidField, `invalid "source.geo.location.lat": want degrees from -90 to 90`},
		{"lon not a number", `{` + base + `,"source.geo.location":{"lat":1,"lon":true}}`, CodeInvalidField, `want a number, got boolean`},
		{"lon nan", `{` + base + `,"source.geo.location":{"lat":1,"lon":"NaN"}}`, CodeInvalidField, `invalid "source.geo.location.lon"`},
		{"asn bool", `{` + base + `,"source.as.number":true}`, CodeInvalidField, `want an integer, got boolean`},
		{"roles number", `{` + base + `,"user.roles":5}`, CodeInvalidField, `invalid "user.roles": want an array of strings or a string, got number`},
		{"roles element", `{` + base + `,"user.roles":["a",5]}`, CodeInvalidField, `invalid "user.roles": want an array of strings, got an element of type number`},
		{"fields nested", `{` + base + `,"records.fields":[["a"]]}`, CodeInvalidField, `got an element of type array`},
		{"ids object", `{` + base + `,"records.ids":[{"id":1}]}`, CodeInvalidField, `invalid "records.ids": want strings or numbers, got object`},
		{"ids bool", `{` + base + `,"records.ids":true}`, CodeInvalidField, `invalid "records.ids": want strings or numbers, got boolean`},
		{"ids fraction", `{` + base + `,"records.ids":[1.5]}`, CodeInvalidField, `number "1.5" is not an integer id`},
		{"dotted and nested twice", `{` + base + `,"user":{"id":"a"},"user.id":"b"}`, CodeInvalidField, `invalid "user.id": field given more than once`},
		{"dataset twice", `{` + base + `,"event.dataset":"x"}`, CodeInvalidField, `invalid "event.dataset": field given more than once`},
		{"first field error wins", `{` + base + `,"user.id":1,"source.ip":"x"}`, CodeInvalidField, `invalid "user.id"`},
		{"field error beats missing", `{"@timestamp":"x"}`, CodeInvalidField, `invalid "@timestamp"`},
		{"reason one line", `{` + base + `,"http.response.status_code":"a\nb"}`, CodeInvalidField, `got "a\nb"`},
	}
	d := NewDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := event.Event{Dataset: "stale"}
			err := d.Decode([]byte(tt.line), &ev)
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("Decode(%s) = %v, want a *LineError", tt.line, err)
			}
			if le.Code != tt.code || !strings.Contains(le.Reason, tt.reason) {
				t.Errorf("Decode(%s) = %s: %q, want %s containing %q", tt.line, le.Code, le.Reason, tt.code, tt.reason)
			}
			if le.Line != 0 {
				t.Errorf("Line = %d, want 0 from Decode", le.Line)
			}
			if strings.ContainsAny(le.Reason, "\r\n") {
				t.Errorf("reason is not one line: %q", le.Reason)
			}
			if want := "line 0: " + le.Reason; le.Error() != want {
				t.Errorf("Error() = %q, want %q", le.Error(), want)
			}
			if diff := cmp.Diff(event.Event{}, ev, cmpOpts); diff != "" {
				t.Errorf("event not reset after error:\n%s", diff)
			}
		})
	}
}

func TestDecodeEmpty(t *testing.T) {
	d := NewDecoder()
	for _, line := range []string{"", " ", "\t\r\n", "\r"} {
		ev := event.Event{Dataset: "stale"}
		if err := d.Decode([]byte(line), &ev); err != ErrEmpty {
			t.Errorf("Decode(%q) = %v, want ErrEmpty", line, err)
		}
		if ev.Dataset != "" {
			t.Errorf("Decode(%q) did not reset the event", line)
		}
	}
}

// TestInternBounded checks that the fixed-size caches keep working when
// values are evicted, and that identical values are shared.
func TestInternBounded(t *testing.T) {
	d := NewDecoder()
	for i := range 3 * internSlots {
		line := `{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"d","action":"a` +
			strings.Repeat("x", i%7) + itoa(i) + `"},"user.roles":["r` + itoa(i) + `"]}`
		var ev event.Event
		if err := d.Decode([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if want := "a" + strings.Repeat("x", i%7) + itoa(i); ev.Action != want {
			t.Fatalf("Action = %q, want %q", ev.Action, want)
		}
		if len(ev.User.Roles) != 1 || ev.User.Roles[0] != "r"+itoa(i) {
			t.Fatalf("Roles = %q", ev.User.Roles)
		}
	}
	// Identical values are shared.
	var a, b event.Event
	line := []byte(`{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"dd","action":"aa"},"user.roles":["r"]}`)
	if err := d.Decode(line, &a); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode(line, &b); err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(a.Action) != unsafe.StringData(b.Action) {
		t.Error("event.action not interned")
	}
	if &a.User.Roles[0] != &b.User.Roles[0] {
		t.Error("user.roles not interned")
	}
}

// TestSharedSlicesCapped checks that an interned slice cannot be appended
// to in place by a consumer.
func TestSharedSlicesCapped(t *testing.T) {
	d := NewDecoder()
	line := []byte(`{` + base + `,"records.fields":["name","email"]}`)
	var a, b event.Event
	if err := d.Decode(line, &a); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode(line, &b); err != nil {
		t.Fatal(err)
	}
	if cap(a.Records.Fields) != len(a.Records.Fields) {
		t.Fatalf("cap %d != len %d", cap(a.Records.Fields), len(a.Records.Fields))
	}
	_ = append(a.Records.Fields, "phone")
	if diff := cmp.Diff([]string{"name", "email"}, b.Records.Fields); diff != "" {
		t.Error(diff)
	}
}

func TestFieldNames(t *testing.T) {
	names := FieldNames()
	if len(names) != int(numFields)-1 {
		t.Fatalf("%d names", len(names))
	}
	for _, n := range names {
		f, group := lookup([]byte(n))
		if f == fieldNone || group || fieldNames[f] != n {
			t.Errorf("lookup(%q) = %v, %v", n, f, group)
		}
	}
	// Every field is documented for users.
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "events.md"))
	if err != nil {
		t.Skipf("docs/events.md: %v", err)
	}
	for _, n := range names {
		if !bytes.Contains(doc, []byte("`"+n+"`")) {
			t.Errorf("docs/events.md does not mention `%s`", n)
		}
	}
}

func TestParseIPv4(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "1.2.3.4", "255.255.255.255", "10.0.0.1", "256.1.1.1",
		"1.2.3", "1.2.3.4.5", "01.2.3.4", "1..2.3", "", ".", "1.2.3.", "a.b.c.d", "1.2.3.04", "1000.1.1.1"} {
		got, ok := parseIPv4([]byte(s))
		want, err := netip.ParseAddr(s)
		wantOK := err == nil && want.Is4()
		if ok != wantOK || (ok && got != want) {
			t.Errorf("parseIPv4(%q) = %v, %v; netip says %v, %v", s, got, ok, want, err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// The event package's field accessor must know every field the decoder
// fills, or rules could not read it.
func TestFieldAccessorCoversDecoder(t *testing.T) {
	for _, n := range FieldNames() {
		if _, ok := event.FieldKindOf(n); !ok {
			t.Errorf("event.Field does not know %q", n)
		}
	}
	if a, b := len(FieldNames()), len(event.FieldNames()); a != b {
		t.Errorf("decoder knows %d fields, event.Field %d", a, b)
	}
}
