package idp

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
	"github.com/haechi-sec/haechi/internal/event/eventtest"
)

// readFile decodes testdata/<format>.ndjson through the real reader,
// failing on any error.
func readFile(t *testing.T, format string) []event.Event {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", format+".ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := NewReader(format, f, 2, 0)
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

// TestGolden: each format's sample file → contract events, compared with
// testdata/<format>.golden.json (go test -update rewrites them).
func TestGolden(t *testing.T) {
	for _, format := range Formats() {
		t.Run(format, func(t *testing.T) {
			evs := readFile(t, format)
			for i := range evs {
				if err := checkEvent(&evs[i]); err != "" {
					t.Errorf("event %d: %s: %+v", i, err, evs[i])
				}
			}
			eventtest.Golden(t, format, evs)
		})
	}
}

// kinds summarises what the token and roster detectors see: per event
// "dataset action token/identity outcome".
func kinds(evs []event.Event) []string {
	var out []string
	for _, ev := range evs {
		s := ev.Dataset + " " + ev.Action
		switch {
		case ev.Dataset == event.DatasetRoster:
			s += " " + ev.Identity.ID
		case ev.Token.ID != "":
			s += " " + ev.Token.ID
		}
		out = append(out, s+" "+ev.Outcome.String())
	}
	return out
}

// TestModel: every format gives the token and roster detectors the same
// picture of the sample story — a login that mints the session, a use of
// it from home and one from the thief's hosting network, failed logins,
// and a deprovisioning — with the provider's own session and token ids.
func TestModel(t *testing.T) {
	type want struct {
		mints, uses, failures, roster int
		replayFrom                    string // source.ip of the last use of the first minted token
	}
	for format, w := range map[string]want{
		FormatOkta:     {mints: 2, uses: 3, failures: 2, roster: 1, replayFrom: "198.51.100.23"},
		FormatKeycloak: {mints: 7, uses: 2, failures: 3, roster: 2, replayFrom: ""},
		FormatEntra:    {mints: 6, uses: 2, failures: 2, roster: 1, replayFrom: "198.51.100.23"},
		FormatOCSF:     {mints: 1, uses: 2, failures: 1, roster: 0, replayFrom: "198.51.100.23"},
	} {
		evs := readFile(t, format)
		var got want
		var first string
		for _, ev := range evs {
			switch {
			case ev.Dataset == event.DatasetToken && ev.Action == event.ActionTokenIssued:
				got.mints++
				if first == "" {
					first = ev.Token.ID
				}
			case ev.Dataset == event.DatasetGateway && ev.Token.ID != "":
				got.uses++
				if ev.Token.ID == first {
					got.replayFrom = ev.Source.IP.String()
				}
			case ev.Dataset == event.DatasetLogin && ev.Outcome == event.OutcomeFailure:
				got.failures++
			case ev.Dataset == event.DatasetRoster:
				got.roster++
			}
		}
		if format == FormatKeycloak {
			// The session is minted first; refresh tokens are what is used.
			got.replayFrom = ""
		}
		if got != w {
			t.Errorf("%s: got %+v, want %+v\n%s", format, got, w, strings.Join(kinds(evs), "\n"))
		}
	}
}

// TestKeycloakRefreshChain: a refresh is a use of the refresh token that
// CODE_TO_TOKEN (or the previous refresh) minted, and mints the new
// access token and the rotated refresh token; the replayed refresh from
// the thief's address uses the token minted by the one before it.
func TestKeycloakRefreshChain(t *testing.T) {
	evs := readFile(t, FormatKeycloak)
	minted := map[string]bool{}
	var replay *event.Event
	for i, ev := range evs {
		switch {
		case ev.Dataset == event.DatasetToken:
			minted[ev.Token.ID] = true
		case ev.Dataset == event.DatasetGateway:
			if !minted[ev.Token.ID] {
				t.Errorf("use of %s before its mint", ev.Token.ID)
			}
			if ev.Source.IP.String() == "198.51.100.23" {
				replay = &evs[i]
			}
		}
	}
	if replay == nil || replay.User.ID == "" || replay.Action != "REFRESH_TOKEN" {
		t.Fatalf("no replayed refresh: %v", kinds(evs))
	}
}

func TestDecodeCases(t *testing.T) {
	for _, tt := range []struct {
		name, format, line string
		code               string   // rejection code, or ""
		want               []string // kinds of the events
	}{
		{name: "okta other event keeps the session", format: FormatOkta,
			line: `{"uuid":"u1","published":"2025-06-24T00:00:00.000Z","eventType":"policy.evaluate_sign_on","actor":{"id":"00u1","alternateId":"a@x"},"outcome":{"result":"ALLOW"},"authenticationContext":{"externalSessionId":"s1"}}`,
			want: []string{"okta.system policy.evaluate_sign_on s1 success"}},
		{name: "okta unknown actor uses alternateId", format: FormatOkta,
			line: `{"published":"2025-06-24T00:00:00Z","eventType":"user.session.start","actor":{"id":"unknown","alternateId":"eve@x"},"outcome":{"result":"FAILURE"}}`,
			want: []string{"auth.login user.session.start failure"}},
		{name: "okta success without session", format: FormatOkta,
			line: `{"published":"2025-06-24T00:00:00Z","eventType":"user.session.start","actor":{"id":"00u1"},"outcome":{"result":"SUCCESS"},"authenticationContext":{"externalSessionId":"unknown"}}`,
			want: []string{"auth.login user.session.start success"}},
		{name: "okta failed sso is a login failure", format: FormatOkta,
			line: `{"published":"2025-06-24T00:00:00Z","eventType":"user.authentication.sso","actor":{"id":"00u1"},"outcome":{"result":"FAILURE"},"authenticationContext":{"externalSessionId":"s1"}}`,
			want: []string{"auth.login user.authentication.sso failure"}},
		{name: "okta reactivate", format: FormatOkta,
			line: `{"published":"2025-06-24T00:00:00Z","eventType":"user.lifecycle.reactivate","actor":{"id":"00u0"},"outcome":{"result":"SUCCESS"},"target":[{"id":"00u9","type":"User"},{"id":"00u8","type":"User"}]}`,
			want: []string{"hr.roster identity.upsert 00u9 success", "hr.roster identity.upsert 00u8 success"}},
		{name: "okta no time", format: FormatOkta, line: `{"eventType":"x"}`, code: decode.CodeMissingField},
		{name: "okta bad time", format: FormatOkta, line: `{"eventType":"x","published":"yesterday"}`, code: decode.CodeInvalidField},
		{name: "okta no type", format: FormatOkta, line: `{"published":"2025-06-24T00:00:00Z"}`, code: decode.CodeMissingField},
		{name: "okta wrong type", format: FormatOkta, line: `{"published":"2025-06-24T00:00:00Z","eventType":"x","actor":[]}`, code: decode.CodeInvalidField},
		{name: "keycloak login without session", format: FormatKeycloak,
			line: `{"time":1750723800000,"type":"LOGIN","realmId":"r","userId":"u1","ipAddress":"10.1.2.3"}`,
			want: []string{"auth.login LOGIN success"}},
		{name: "keycloak refresh error", format: FormatKeycloak,
			line: `{"time":1750723800000,"type":"REFRESH_TOKEN_ERROR","realmId":"r","userId":"u1","error":"invalid_token","details":{"refresh_token_id":"rt"}}`,
			want: []string{"keycloak.event REFRESH_TOKEN_ERROR failure"}},
		{name: "keycloak admin on a sub-resource is not a roster event", format: FormatKeycloak,
			line: `{"time":1750723800000,"realmId":"r","operationType":"DELETE","resourceType":"USER","resourcePath":"users/u1/consents/crm"}`,
			want: []string{"keycloak.admin user.delete success"}},
		{name: "keycloak admin update without enabled", format: FormatKeycloak,
			line: `{"time":1750723800000,"realmId":"r","operationType":"UPDATE","resourceType":"USER","resourcePath":"users/u1","representation":"{\"email\":\"x@y\"}"}`,
			want: []string{"keycloak.admin user.update success"}},
		{name: "keycloak time as text", format: FormatKeycloak, line: `{"time":"yesterday","type":"LOGIN"}`, code: decode.CodeInvalidField},
		{name: "keycloak no time", format: FormatKeycloak, line: `{"type":"LOGIN"}`, code: decode.CodeMissingField},
		{name: "keycloak no type", format: FormatKeycloak, line: `{"time":1750723800000}`, code: decode.CodeMissingField},
		{name: "keycloak time out of range", format: FormatKeycloak, line: `{"time":99999999999999999,"type":"LOGIN"}`, code: decode.CodeInvalidField},
		{name: "entra graph non-interactive without session", format: FormatEntra,
			line: `{"id":"i","createdDateTime":"2025-06-24T00:00:00.1234567Z","userId":"u","isInteractive":false,"status":{"errorCode":0}}`,
			want: []string{"azure.signinlogs signin.noninteractive success"}},
		{name: "entra service principal", format: FormatEntra,
			line: `{"id":"i","createdDateTime":"2025-06-24T00:00:00Z","servicePrincipalId":"sp","servicePrincipalName":"etl","status":{"errorCode":0},"uniqueTokenIdentifier":"uti1"}`,
			want: []string{"azure.signinlogs signin.serviceprincipal success", "auth.token token.issued uti1 success"}},
		{name: "entra other category", format: FormatEntra,
			line: `{"time":"2025-06-24T00:00:00Z","category":"ProvisioningLogs","properties":{}}`, code: decode.CodeInvalidField},
		{name: "entra other category without properties", format: FormatEntra,
			line: `{"time":"2025-06-24T00:00:00Z","category":"ProvisioningLogs"}`, code: decode.CodeInvalidField},
		{name: "entra neither", format: FormatEntra, line: `{"id":"x"}`, code: decode.CodeMissingField},
		{name: "entra monitor without properties", format: FormatEntra, line: `{"time":"2025-06-24T00:00:00Z","category":"SignInLogs"}`, code: decode.CodeMissingField},
		{name: "entra audit failure is not a roster event", format: FormatEntra,
			line: `{"activityDateTime":"2025-06-24T00:00:00Z","activityDisplayName":"Delete user","result":"failure","targetResources":[{"id":"u","type":"User"}]}`,
			want: []string{"azure.auditlogs Delete user failure"}},
		{name: "entra errorCode as text", format: FormatEntra, line: `{"createdDateTime":"2025-06-24T00:00:00Z","status":{"errorCode":"x"}}`, code: decode.CodeInvalidField},
		{name: "ocsf other class", format: FormatOCSF, line: `{"class_uid":4001,"time":1750723800000}`, code: decode.CodeInvalidField},
		{name: "ocsf no class", format: FormatOCSF, line: `{"time":1750723800000}`, code: decode.CodeMissingField},
		{name: "ocsf api without session", format: FormatOCSF,
			line: `{"class_uid":6003,"activity_id":2,"time":1750723800000,"status_id":1,"actor":{"user":{"uid":"u"}},"resources":[{"name":"b/k","type":"AWS::S3::Object"}]}`,
			want: []string{"ocsf.api_activity read success"}},
		{name: "ocsf kerberos ticket keeps its session", format: FormatOCSF,
			line: `{"class_uid":3002,"activity_id":3,"time":1750723800000,"status_id":1,"user":{"name":"u"},"session":{"uid":"tgt1"}}`,
			want: []string{"ocsf.authentication authentication_ticket tgt1 success"}},
		{name: "not an object", format: FormatOCSF, line: `[1]`, code: decode.CodeInvalidJSON},
		{name: "bad json", format: FormatEntra, line: `{"records":[`, code: decode.CodeInvalidJSON},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := Decode(tt.format, []byte(tt.line))
			if tt.code != "" {
				var le *decode.LineError
				if !errors.As(err, &le) || le.Code != tt.code || le.Reason == "" || strings.ContainsAny(le.Reason, "\r\n") {
					t.Fatalf("got %v (%v), want code %s", err, kinds(evs), tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(evs); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestEntraBatchRejectsOneRecord: in an Event Hubs batch a bad record is
// rejected on its own, naming its index, and the others are read.
func TestEntraBatchRejectsOneRecord(t *testing.T) {
	in := `{"records":[{"time":"2025-06-24T00:00:00Z","category":"AuditLogs","properties":{"activityDisplayName":"Add user"}},5,` +
		`{"time":"2025-06-24T00:00:01Z","category":"AuditLogs","properties":{"activityDisplayName":"Add group"}}]}` + "\n"
	r := NewReader(FormatEntra, strings.NewReader(in), 0, 0)
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
			got = append(got, le.Code+" "+le.Reason)
			if le.Line != 1 {
				t.Errorf("line %d", le.Line)
			}
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, ev.Action)
		}
	}
	want := "Add user|invalid_field records[1]: not an Azure Monitor record|Add group"
	if strings.Join(got, "|") != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// checkEvent checks the contract of an event leaving a reader.
func checkEvent(ev *event.Event) string {
	switch {
	case ev.Time.IsZero() || ev.Dataset == "" || ev.Action == "":
		return "required field missing"
	case ev.Time.Location() != time.UTC || !time.Unix(0, ev.Time.UnixNano()).Equal(ev.Time):
		return "time not UTC or out of range"
	case ev.Dataset == event.DatasetToken && ev.Token.ID == "":
		return "mint without token id"
	case ev.Dataset == event.DatasetRoster && ev.Identity.ID == "":
		return "roster event without identity"
	}
	for _, s := range []string{ev.ID, ev.User.ID, ev.User.Name, ev.UserAgent, ev.Token.ID, ev.Action, ev.URLPath} {
		if !utf8.ValidString(s) {
			return "invalid UTF-8"
		}
	}
	return ""
}

func fuzzFormat(f *testing.F, format string) {
	if data, err := os.ReadFile(filepath.Join("testdata", format+".ndjson")); err == nil {
		for _, line := range bytes.Split(data, []byte("\n")) {
			f.Add(line)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"time":1e300,"published":"0001-01-01T00:00:00Z","records":[{},[]],"class_uid":3002}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(format, bytes.NewReader(data), 1, 4096)
		prev := 0
		for i := 0; ; i++ {
			if i > 4*len(data)+4 {
				t.Fatal("reader does not terminate")
			}
			var ev event.Event
			err := r.Next(&ev)
			if err == io.EOF {
				return
			}
			if r.Line() < prev {
				t.Fatalf("line numbers going back: %d after %d", r.Line(), prev)
			}
			prev = r.Line()
			var le *decode.LineError
			switch {
			case err == nil:
				if msg := checkEvent(&ev); msg != "" || int(ev.Line) != r.Line() || ev.Input != 1 {
					t.Fatalf("%s: %+v", msg, ev)
				}
			case errors.As(err, &le):
				if le.Reason == "" || strings.ContainsAny(le.Reason, "\r\n") || le.Line != r.Line() || ev.Action != "" {
					t.Fatalf("bad rejection %+v (event %+v)", le, ev)
				}
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
	})
}

func FuzzOkta(f *testing.F)     { fuzzFormat(f, FormatOkta) }
func FuzzKeycloak(f *testing.F) { fuzzFormat(f, FormatKeycloak) }
func FuzzEntra(f *testing.F)    { fuzzFormat(f, FormatEntra) }
func FuzzOCSF(f *testing.F)     { fuzzFormat(f, FormatOCSF) }
