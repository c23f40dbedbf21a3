package cloudtrail

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/event/eventtest"
)

var cmpOpts = cmp.Options{cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}

// readAll reads every event of r, failing on any error.
func readAll(t testing.TB, r *Reader) []event.Event {
	t.Helper()
	var evs []event.Event
	for {
		var ev event.Event
		err := r.Next(&ev)
		if err == io.EOF {
			return evs
		}
		if err != nil {
			t.Fatalf("record %d: %v", r.Line(), err)
		}
		evs = append(evs, ev)
	}
}

func openFile(t *testing.T, name string) *Reader {
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return NewReader(f, 3, Options{})
}

func TestGoldenInstanceRoleDay(t *testing.T) {
	r := openFile(t, "instance-role-day.json")
	evs := readAll(t, r)
	if len(evs) != 10 || r.Line() != 10 {
		t.Fatalf("got %d events, Line %d; want 10", len(evs), r.Line())
	}
	eventtest.Golden(t, "instance-role-day", evs)

	first := evs[0]
	if first.User.ID != "arn:aws:sts::123456789012:assumed-role/app-orders-ec2/i-0abc1234def567890" ||
		first.User.Name != "i-0abc1234def567890" || first.Token.ID != "ASIAQNZ7EXAMPLE4TR2N" ||
		len(first.User.Roles) != 1 || first.User.Roles[0] != "app-orders-ec2" {
		t.Errorf("identity: %+v token %q", first.User, first.Token.ID)
	}
	if first.Records.Type != RecordS3Object || first.Records.IDs[0] != "acme-customer-exports/orders/2025-06-24/batch-0001.json" {
		t.Errorf("records: %+v", first.Records)
	}
	last := evs[len(evs)-1]
	if last.Source.IP.IsValid() || last.User.ID != "cloudtrail.amazonaws.com" || last.Records.Type != "aws_kms_key" {
		t.Errorf("AWS service record: ip %v user %q records %+v", last.Source.IP, last.User.ID, last.Records)
	}
	if evs[len(evs)-2].Outcome != event.OutcomeFailure {
		t.Errorf("AccessDenied record: outcome %v", evs[len(evs)-2].Outcome)
	}
}

// TestLogstashShape: the instance-role day as Logstash ships it (eventTime
// moved to @timestamp, @version added, one record per line, members in
// hash order) decodes to exactly the events of the CloudTrail file. It
// failed before @timestamp was read: every line was "missing required
// field eventTime".
func TestLogstashShape(t *testing.T) {
	want := readAll(t, openFile(t, "instance-role-day.json"))
	r := openFile(t, "logstash-instance-role-day.ndjson")
	got := readAll(t, r)
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Fatalf("Logstash shape differs from the CloudTrail file (-file +logstash):\n%s", diff)
	}
	eventtest.Golden(t, "logstash-instance-role-day", got)
}

// TestGzipRecordsStream: a gzipped CloudTrail file is read through a
// gzip.Reader record by record, never whole: the reader has consumed only
// a bounded prefix of a large decompressed file when it returns the first
// record.
func TestGzipRecordsStream(t *testing.T) {
	var raw bytes.Buffer
	raw.WriteString(`{"Records":[`)
	const n = 20000
	for i := range n {
		if i > 0 {
			raw.WriteByte(',')
		}
		raw.WriteString(okRec)
	}
	raw.WriteString(`]}`)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	cr := &countReader{r: zr}
	r := NewReader(cr, 0, Options{})
	var ev event.Event
	if err := r.Next(&ev); err != nil {
		t.Fatal(err)
	}
	if cr.n > 1<<20 || cr.n >= int64(raw.Len()) {
		t.Fatalf("read %d of %d decompressed bytes before the first record", cr.n, raw.Len())
	}
	count := 1
	for {
		err := r.Next(&ev)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		count++
	}
	if count != n {
		t.Fatalf("got %d records, want %d", count, n)
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}

func TestGoldenStolenCredentials(t *testing.T) {
	r := openFile(t, "stolen-instance-creds.ndjson")
	evs := readAll(t, r)
	if len(evs) != 244 {
		t.Fatalf("got %d events, want 244", len(evs))
	}
	eventtest.Golden(t, "stolen-instance-creds", evs)

	// One access key, two networks: what token replay detection needs.
	ips := map[netip.Addr]int{}
	for _, ev := range evs {
		if ev.Token.ID != "ASIAQNZ7EXAMPLE4TR2N" {
			t.Fatalf("line %d: token %q", ev.Line, ev.Token.ID)
		}
		ips[ev.Source.IP]++
	}
	if ips[netip.MustParseAddr("203.0.113.77")] != 243 || ips[netip.MustParseAddr("3.35.120.44")] != 1 {
		t.Errorf("sources: %v", ips)
	}
	if evs[3].Action != "ListObjects" || evs[3].Records.Type != RecordS3Bucket || evs[3].Records.IDs[0] != "acme-customer-exports" {
		t.Errorf("ListObjects: %+v", evs[3])
	}
	if evs[2].Action != "ListBuckets" || evs[2].Records.Type != "" {
		t.Errorf("ListBuckets: %+v", evs[2])
	}
}

// The same records as a file and as lines decode to the same events.
func TestFileAndLinesAgree(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "instance-role-day.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Records []jsontext.Value }
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	var nd bytes.Buffer
	for _, rec := range file.Records {
		rec.Compact()
		nd.Write(rec)
		nd.WriteString("\r\n\n") // CRLF and a blank line: line numbers advance by 2
	}
	a := readAll(t, NewReader(bytes.NewReader(data), 0, Options{}))
	b := readAll(t, NewReader(&nd, 0, Options{}))
	for i := range b {
		if int(b[i].Line) != 2*i+1 {
			t.Errorf("line mode: event %d has Line %d", i, b[i].Line)
		}
		b[i].Line = a[i].Line
	}
	if diff := cmp.Diff(a, b, cmpOpts); diff != "" {
		t.Error(diff)
	}
	// Two files concatenated (cat a.json b.json) read as one stream.
	two := append(append(bytes.Clone(data), ' '), data...)
	c := readAll(t, NewReader(bytes.NewReader(two), 0, Options{}))
	if len(c) != 2*len(a) || c[len(c)-1].Line != uint32(2*len(a)) {
		t.Errorf("concatenated: %d events, last Line %d", len(c), c[len(c)-1].Line)
	}
}

const okRec = `{"eventTime":"2025-06-24T09:00:03Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","sourceIPAddress":"203.0.113.77","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/bob","userName":"bob","accessKeyId":"AKIA1"},"requestParameters":{"bucketName":"b","key":"k/1"}}`

func TestRecordsForm(t *testing.T) {
	in := `` + "\xef\xbb\xbf" + ` { "Records" : [ ` + okRec + `, 5, {"eventTime":"2025-06-24T09:00:03Z"}, {"eventName":"X","eventTime":"yesterday"},
	{"eventName":"X","eventTime":"2025-06-24T09:00:03Z","errorCode":7}, ` + okRec + `], "extra": {"a":[1]} }`
	r := NewReader(strings.NewReader(in), 1, Options{})
	type res struct {
		line int
		code string
	}
	want := []res{{1, ""}, {2, decode.CodeInvalidField}, {3, decode.CodeMissingField}, {4, decode.CodeInvalidField}, {5, decode.CodeInvalidField}, {6, ""}}
	for _, w := range want {
		var ev event.Event
		err := r.Next(&ev)
		var le *decode.LineError
		switch {
		case w.code == "" && err != nil:
			t.Fatalf("record %d: %v", w.line, err)
		case w.code == "" && int(ev.Line) != w.line:
			t.Fatalf("record %d: Line %d", w.line, ev.Line)
		case w.code != "" && (!errors.As(err, &le) || le.Code != w.code || le.Line != w.line):
			t.Fatalf("record %d: got %v, want %s", w.line, err, w.code)
		}
	}
	var ev event.Event
	if err := r.Next(&ev); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestBrokenFileIsSticky(t *testing.T) {
	in := `{"Records":[` + okRec + `, {"eventName": ]}`
	r := NewReader(strings.NewReader(in), 0, Options{})
	var ev event.Event
	if err := r.Next(&ev); err != nil {
		t.Fatal(err)
	}
	err := r.Next(&ev)
	var le *decode.LineError
	if err == nil || err == io.EOF || errors.As(err, &le) {
		t.Fatalf("want a stream error, got %v", err)
	}
	if err2 := r.Next(&ev); err2 != err {
		t.Fatalf("not sticky: %v then %v", err, err2)
	}
}

func TestRecordTooLarge(t *testing.T) {
	big := `{"eventTime":"2025-06-24T09:00:03Z","eventName":"X","pad":"` + strings.Repeat("x", 300<<10) + `"}`
	r := NewReader(strings.NewReader(`{"Records":[`+okRec+`,`+big+`,`+okRec+`]}`), 0, Options{MaxRecord: 1 << 10})
	var ev event.Event
	if err := r.Next(&ev); err != nil {
		t.Fatal(err)
	}
	if err := r.Next(&ev); err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Fatalf("want a size error, got %v", err)
	}
	// In line form the big line is skipped and reading goes on.
	r = NewReader(strings.NewReader(okRec+"\n"+big+"\n"+okRec+"\n"), 0, Options{MaxRecord: 1 << 10})
	n, codes := 0, []string{}
	for {
		err := r.Next(&ev)
		if err == io.EOF {
			break
		}
		var le *decode.LineError
		if errors.As(err, &le) {
			codes = append(codes, le.Code)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 || len(codes) != 1 || codes[0] != decode.CodeLineTooLong {
		t.Fatalf("events %d, errors %v", n, codes)
	}
}

func TestDecodeRecord(t *testing.T) {
	tests := []struct {
		name string
		rec  string
		code string
		want func(*event.Event) string // returns a complaint or ""
	}{
		{name: "iam user", rec: okRec, want: func(ev *event.Event) string {
			if ev.User.ID != "arn:aws:iam::1:user/bob" || ev.User.Name != "bob" || ev.User.Roles != nil ||
				ev.Token.ID != "AKIA1" || ev.Records.IDs[0] != "b/k/1" || ev.Outcome != event.OutcomeSuccess ||
				ev.Provider != "s3.amazonaws.com" || ev.Dataset != Dataset {
				return "wrong mapping"
			}
			return ""
		}},
		{name: "aws.cloudtrail fields", rec: `{"eventTime":"2025-06-24T09:00:03Z","eventName":"UpdateDetector","eventType":"AwsApiCall","errorCode":"AccessDenied","errorMessage":"not allowed",` +
			`"userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/R/s","sessionContext":{"sessionIssuer":{"type":"Role","userName":"R"}}},` +
			`"requestParameters": { "detectorId" : "d1", "enable": false, "containerDefinitions":[{"command":["sh","-c","x"]}] },"responseElements":null}`,
			want: func(ev *event.Event) string {
				ct := ev.CloudTrail
				if ct.IdentityType != "AssumedRole" || ct.IssuerType != "Role" || ct.EventType != "AwsApiCall" || ct.ErrorCode != "AccessDenied" ||
					ct.ErrorMessage != "not allowed" || ct.ResponseElements != "" || ev.Outcome != event.OutcomeFailure ||
					ct.RequestParameters != `{"detectorId":"d1","enable":false,"containerDefinitions":[{"command":["sh","-c","x"]}]}` {
					return fmt.Sprintf("cloudtrail fields %+v", ct)
				}
				return ""
			}},
		{name: "request parameters not an object", rec: `{"eventTime":"2025-06-24T09:00:03Z","eventName":"X","requestParameters":"text","responseElements":[1]}`,
			want: func(ev *event.Event) string {
				if ev.CloudTrail.RequestParameters != "" || ev.CloudTrail.ResponseElements != "" || ev.CloudTrail.IdentityType != "" {
					return fmt.Sprintf("cloudtrail fields %+v", ev.CloudTrail)
				}
				return ""
			}},
		{name: "principal id fallback", rec: `{"eventTime":"2025-06-24T09:00:03+09:00","eventName":"X","userIdentity":{"type":"Root","principalId":"111","accountId":"1"}}`,
			want: func(ev *event.Event) string {
				if ev.User.ID != "111" || ev.Time.Hour() != 0 {
					return "user " + ev.User.ID
				}
				return ""
			}},
		{name: "account:type fallback", rec: `{"eventTime":"2025-06-24T09:00:03Z","eventName":"X","userIdentity":{"type":"SAMLUser","accountId":"1"}}`,
			want: func(ev *event.Event) string {
				if ev.User.ID != "1:SAMLUser" {
					return "user " + ev.User.ID
				}
				return ""
			}},
		{name: "assumed role without session issuer", rec: `{"eventTime":"2025-06-24T09:00:03Z","eventName":"X","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/R/s@x.com"}}`,
			want: func(ev *event.Event) string {
				if ev.User.Name != "s@x.com" || len(ev.User.Roles) != 1 || ev.User.Roles[0] != "R" {
					return "user " + ev.User.Name
				}
				return ""
			}},
		{name: "ipv6 and mapped", rec: `{"eventTime":"2025-06-24T09:00:03Z","eventName":"X","sourceIPAddress":"::ffff:10.1.2.3"}`,
			want: func(ev *event.Event) string {
				if ev.Source.IP != netip.MustParseAddr("10.1.2.3") {
					return ev.Source.IP.String()
				}
				return ""
			}},
		{name: "service principal address", rec: `{"eventTime":"2025-06-24T09:00:03Z","eventName":"X","sourceIPAddress":"AWS Internal"}`,
			want: func(ev *event.Event) string {
				if ev.Source.IP.IsValid() {
					return "has IP"
				}
				return ""
			}},
		{name: "resources of first type", rec: `{"eventTime":"2025-06-24T09:00:03Z","eventName":"X","resources":[{"type":"AWS::DynamoDB::Table","ARN":"a1"},{"type":"AWS::KMS::Key","ARN":"k"},{"type":"AWS::DynamoDB::Table","ARN":"a2"},{"ARN":""}]}`,
			want: func(ev *event.Event) string {
				if ev.Records.Type != "aws_dynamodb_table" || len(ev.Records.IDs) != 2 {
					return ev.Records.Type
				}
				return ""
			}},
		{name: "eventbridge envelope", rec: `{"version":"0","detail-type":"AWS API Call via CloudTrail","detail":{"eventTime":"2025-06-24T09:00:03Z","eventName":"Decrypt","eventSource":"kms.amazonaws.com"}}`,
			want: func(ev *event.Event) string {
				if ev.Action != "Decrypt" {
					return ev.Action
				}
				return ""
			}},
		{name: "error code", rec: `{"eventTime":"2025-06-24T09:00:03Z","eventName":"X","errorCode":"AccessDenied"}`,
			want: func(ev *event.Event) string {
				if ev.Outcome != event.OutcomeFailure {
					return ev.Outcome.String()
				}
				return ""
			}},
		{name: "logstash @timestamp", rec: `{"@timestamp":"2025-06-24T09:00:03.000Z","@version":"1","eventName":"X"}`,
			want: func(ev *event.Event) string {
				if !ev.Time.Equal(time.Date(2025, 6, 24, 9, 0, 3, 0, time.UTC)) {
					return "time " + ev.Time.String()
				}
				return ""
			}},
		{name: "eventTime wins over @timestamp", rec: `{"@timestamp":"2025-06-24T10:00:00Z","eventTime":"2025-06-24T09:00:03Z","eventName":"X"}`,
			want: func(ev *event.Event) string {
				if ev.Time.Hour() != 9 {
					return "time " + ev.Time.String()
				}
				return ""
			}},
		{name: "filebeat message", rec: `{"@timestamp":"2025-06-25T00:00:00Z","message":"{\"eventTime\":\"2025-06-24T09:00:03Z\",\"eventName\":\"GetObject\",\"eventSource\":\"s3.amazonaws.com\"}","event":{"dataset":"aws.cloudtrail"}}`,
			want: func(ev *event.Event) string {
				if ev.Action != "GetObject" || ev.Time.Day() != 24 {
					return "action/time " + ev.Action + " " + ev.Time.String()
				}
				return ""
			}},
		{name: "bad @timestamp", rec: `{"@timestamp":"yesterday","eventName":"X"}`, code: decode.CodeInvalidField},
		{name: "not json", rec: `{"eventTime":`, code: decode.CodeInvalidJSON},
		{name: "not an object", rec: `[1]`, code: decode.CodeInvalidJSON},
		{name: "no time", rec: `{"eventName":"X"}`, code: decode.CodeMissingField},
		{name: "nothing", rec: `{}`, code: decode.CodeMissingField},
		{name: "bad time", rec: `{"eventName":"X","eventTime":"2025-06-24 09:00"}`, code: decode.CodeInvalidField},
		{name: "zero time", rec: `{"eventName":"X","eventTime":"0001-01-01T00:00:00Z"}`, code: decode.CodeInvalidField},
		// Beyond Unix nanoseconds (1600 would be stored as 2184).
		{name: "time 1600", rec: `{"eventName":"X","eventTime":"1600-01-01T00:00:00Z"}`, code: decode.CodeInvalidField},
		{name: "time 9999", rec: `{"eventName":"X","eventTime":"9999-01-01T00:00:00Z"}`, code: decode.CodeInvalidField},
		{name: "time at the end", rec: `{"eventName":"X","eventTime":"2262-04-11T23:47:16.854775807Z"}`, want: func(ev *event.Event) string {
			if !ev.Time.Equal(event.MaxTime()) {
				return "time " + ev.Time.String()
			}
			return ""
		}},
		{name: "wrong type", rec: `{"eventName":"X","eventTime":"2025-06-24T09:00:03Z","userIdentity":[]}`, code: decode.CodeInvalidField},
		{name: "bad utf8", rec: "{\"eventName\":\"\xff\",\"eventTime\":\"2025-06-24T09:00:03Z\"}", code: decode.CodeInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev event.Event
			err := DecodeRecord([]byte(tt.rec), &ev)
			if tt.code != "" {
				var le *decode.LineError
				if !errors.As(err, &le) || le.Code != tt.code {
					t.Fatalf("got %v, want code %s", err, tt.code)
				}
				if strings.ContainsAny(le.Reason, "\r\n") || le.Reason == "" {
					t.Fatalf("bad reason %q", le.Reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.want(&ev); msg != "" {
				t.Errorf("%s: %+v", msg, ev)
			}
		})
	}
}

func TestResourceType(t *testing.T) {
	for in, want := range map[string]string{
		"AWS::S3::Object": "aws_s3_object", "AWS::KMS::Key": "aws_kms_key", "": "aws_resource",
		"Custom.Type:x": "custom_type_x", "::": "aws_resource",
	} {
		if got := ResourceType(in); got != want {
			t.Errorf("ResourceType(%q) = %q, want %q", in, got, want)
		}
	}
}
