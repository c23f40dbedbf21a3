// Package cloudtrail reads AWS CloudTrail records as event.Event values of
// the event contract. It accepts the files CloudTrail delivers to S3
// ({"Records":[...]}, streamed record by record, several such objects
// concatenated allowed) and exports with one record per line (CloudWatch
// Logs, Athena, EventBridge "detail" envelopes). docs/inputs.md has the
// field mapping.
package cloudtrail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input/lines"
)

// Dataset is event.dataset of every CloudTrail event.
const Dataset = "aws.cloudtrail"

// Records types set from S3 request parameters.
const (
	RecordS3Object = "s3_object"
	RecordS3Bucket = "s3_bucket"
)

// Options configure a Reader.
type Options struct {
	// MaxRecord is the largest accepted record (a line, or one element of
	// a Records array) in bytes; 0 means decode.DefaultMaxLine.
	MaxRecord int
}

// Reader reads CloudTrail records. It implements the contract of
// decode.Reader: Next returns nil with an event, a *decode.LineError for a
// rejected record (reading goes on), io.EOF at the end, or another error
// that ends the stream. It is not safe for concurrent use.
//
// The form is chosen from the first bytes: a stream whose first JSON
// object starts with a "Records" member that is an array is read as
// CloudTrail files, one record at a time without loading the array; Line
// then counts records (the 1-based index of the record within the stream).
// Anything else is read as one record per line, and Line counts lines.
// In the Records form a syntax error or a record larger than MaxRecord
// cannot be skipped: Next returns a non-LineError error and the stream
// ends there.
type Reader struct {
	br    *bufio.Reader
	input uint32
	max   int
	mode  int // 0 undecided, 1 lines, 2 records
	lr    *lines.Reader
	lim   limitReader
	dec   *jsontext.Decoder
	depth int // 0: between top-level objects; 1: in one; 2: in its Records array
	n     int // records or lines consumed
	err   error
}

// NewReader returns a Reader of r; input is stored in every event's Input
// field.
func NewReader(r io.Reader, input uint32, opts Options) *Reader {
	max := opts.MaxRecord
	if max <= 0 {
		max = decode.DefaultMaxLine
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), input: input, max: max}
}

// Line returns the number of records (Records form) or lines consumed.
func (r *Reader) Line() int {
	if r.mode == 1 {
		return r.lr.Line()
	}
	return r.n
}

// IsRecordsFile reports whether head, the start of a stream, begins a
// CloudTrail file: optional byte order mark and white space, then
// {"Records":[ with any white space between the tokens.
func IsRecordsFile(head []byte) bool {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	i := skipWS(head, 0)
	if i >= len(head) || head[i] != '{' {
		return false
	}
	i = skipWS(head, i+1)
	if !bytes.HasPrefix(head[i:], []byte(`"Records"`)) {
		return false
	}
	i = skipWS(head, i+len(`"Records"`))
	if i >= len(head) || head[i] != ':' {
		return false
	}
	i = skipWS(head, i+1)
	return i < len(head) && head[i] == '['
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// Next decodes the next record into ev.
func (r *Reader) Next(ev *event.Event) error {
	*ev = event.Event{}
	if r.err != nil {
		return r.err
	}
	if r.mode == 0 {
		head, _ := r.br.Peek(4096)
		if IsRecordsFile(head) {
			r.mode = 2
			if bytes.HasPrefix(head, []byte("\xef\xbb\xbf")) {
				r.br.Discard(3)
			}
			r.lim = limitReader{r: r.br}
			r.dec = jsontext.NewDecoder(&r.lim, dupOK)
		} else {
			r.mode = 1
			r.lr = lines.NewReader(r.br, r.max)
		}
	}
	if r.mode == 1 {
		line, err := r.lr.Next()
		if err != nil {
			if le, ok := err.(*decode.LineError); ok {
				return le
			}
			r.err = err
			return err
		}
		if err := decodeRecord(line, ev, true); err != nil {
			*ev = event.Event{}
			err.Line = r.lr.Line()
			return err
		}
		ev.Input = r.input
		ev.Line = uint32(r.lr.Line())
		return nil
	}
	rec, err := r.nextRecord()
	if err != nil {
		r.err = err
		return err
	}
	r.n++
	if err := decodeRecord(rec, ev, false); err != nil {
		*ev = event.Event{}
		err.Line = r.n
		return err
	}
	ev.Input = r.input
	ev.Line = uint32(r.n)
	return nil
}

var errTooLarge = errors.New("record too large")

// limitReader fails reads past limit, so one huge record cannot make the
// jsontext decoder buffer without bound.
type limitReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n >= l.limit {
		return 0, errTooLarge
	}
	if rem := l.limit - l.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	k, err := l.r.Read(p)
	l.n += int64(k)
	return k, err
}

// nextRecord returns the raw bytes of the next element of a Records
// array, walking the top-level objects of the stream.
func (r *Reader) nextRecord() (jsontext.Value, error) {
	d := r.dec
	for {
		r.lim.limit = max(r.lim.n, d.InputOffset()+int64(r.max)) + 64<<10
		switch r.depth {
		case 0:
			tok, err := d.ReadToken()
			if err == io.EOF {
				return nil, io.EOF
			}
			if err != nil {
				return nil, r.streamErr(err)
			}
			if tok.Kind() != '{' {
				return nil, fmt.Errorf("cloudtrail: after record %d: want a {\"Records\":[...]} object, got %s", r.n, tok.Kind())
			}
			r.depth = 1
		case 1:
			if d.PeekKind() == '}' {
				if _, err := d.ReadToken(); err != nil {
					return nil, r.streamErr(err)
				}
				r.depth = 0
				continue
			}
			name, err := d.ReadToken()
			if err != nil {
				return nil, r.streamErr(err)
			}
			if name.String() == "Records" && d.PeekKind() == '[' {
				if _, err := d.ReadToken(); err != nil {
					return nil, r.streamErr(err)
				}
				r.depth = 2
				continue
			}
			if err := d.SkipValue(); err != nil {
				return nil, r.streamErr(err)
			}
		case 2:
			if d.PeekKind() == ']' {
				if _, err := d.ReadToken(); err != nil {
					return nil, r.streamErr(err)
				}
				r.depth = 1
				continue
			}
			v, err := d.ReadValue()
			if err != nil {
				return nil, r.streamErr(err)
			}
			return v, nil
		}
	}
}

func (r *Reader) streamErr(err error) error {
	if errors.Is(err, errTooLarge) {
		return fmt.Errorf("cloudtrail: record %d exceeds the limit of %d bytes", r.n+1, r.max)
	}
	var se *jsontext.SyntacticError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("cloudtrail: invalid JSON after record %d: %w", r.n, err)
	}
	return err
}

// DecodeRecord decodes one CloudTrail record (a JSON object) into ev. A
// rejected record yields a *decode.LineError with Line 0 and a zero ev.
func DecodeRecord(rec []byte, ev *event.Event) error {
	if err := decodeRecord(rec, ev, true); err != nil {
		*ev = event.Event{}
		return err
	}
	return nil
}

type identity struct {
	Type           string `json:"type"`
	PrincipalID    string `json:"principalId"`
	ARN            string `json:"arn"`
	AccountID      string `json:"accountId"`
	AccessKeyID    string `json:"accessKeyId"`
	UserName       string `json:"userName"`
	InvokedBy      string `json:"invokedBy"`
	SessionContext struct {
		SessionIssuer struct {
			Type     string `json:"type"`
			UserName string `json:"userName"`
			ARN      string `json:"arn"`
		} `json:"sessionIssuer"`
	} `json:"sessionContext"`
}

type record struct {
	EventTime string `json:"eventTime"`
	// Timestamp is where Logstash's cloudtrail codec and Elastic's
	// pipelines move eventTime; read when eventTime is absent.
	Timestamp         string         `json:"@timestamp"`
	EventSource       string         `json:"eventSource"`
	EventName         string         `json:"eventName"`
	EventID           string         `json:"eventID"`
	ErrorCode         string         `json:"errorCode"`
	ErrorMessage      string         `json:"errorMessage"`
	EventType         string         `json:"eventType"`
	ResponseElements  jsontext.Value `json:"responseElements"`
	SourceIPAddress   string         `json:"sourceIPAddress"`
	UserAgent         string         `json:"userAgent"`
	UserIdentity      identity       `json:"userIdentity"`
	RequestParameters jsontext.Value `json:"requestParameters"`
	Resources         jsontext.Value `json:"resources"`
	Detail            jsontext.Value `json:"detail"`
	// Message is the raw record as a string, as Filebeat and Elastic Agent
	// ship it before their ingest pipeline parses it.
	Message string `json:"message"`
}

type s3Params struct {
	BucketName string `json:"bucketName"`
	Key        string `json:"key"`
}

type resource struct {
	ARN  string `json:"ARN"`
	Type string `json:"type"`
}

// s3BucketListings are the S3 event names that read a bucket's listing.
var s3BucketListings = map[string]bool{
	"ListObjects":          true,
	"ListObjectsV2":        true,
	"ListObjectVersions":   true,
	"ListBucket":           true,
	"ListMultipartUploads": true,
}

// dupOK skips the duplicate-name check (a tenth of the decoding time):
// CloudTrail does not repeat names, and if a record did the last would win.
var dupOK = jsontext.AllowDuplicateNames(true)

// decodeRecord fills ev from rec. line says whether rec is a whole line
// (then a non-object is invalid_json, as in decode) or an element of a
// Records array (then it is invalid_field).
func decodeRecord(rec []byte, ev *event.Event, line bool) *decode.LineError {
	*ev = event.Event{}
	rec = bytes.TrimLeft(rec, " \t\r\n")
	if len(rec) == 0 || rec[0] != '{' {
		switch {
		case !line:
			return &decode.LineError{Code: decode.CodeInvalidField, Reason: "record is not a JSON object"}
		case jsontext.Value(rec).IsValid():
			return &decode.LineError{Code: decode.CodeInvalidJSON, Reason: "not a JSON object"}
		}
		return decode.JSONSyntaxError(json.Unmarshal(rec, new(any)))
	}
	var r record
	if err := json.Unmarshal(rec, &r, dupOK); err != nil {
		return decode.JSONShapeError(err, "record")
	}
	if r.EventName == "" && r.EventTime == "" && r.Detail.Kind() == '{' {
		// An EventBridge envelope: the record is its "detail".
		var inner record
		if err := json.Unmarshal(r.Detail, &inner, dupOK); err != nil {
			return decode.JSONShapeError(err, "record")
		}
		r = inner
	}
	if r.EventName == "" && r.EventTime == "" && strings.HasPrefix(strings.TrimLeft(r.Message, " \t\r\n"), "{") {
		// A Filebeat / Elastic Agent document: the record is the string
		// in "message" (its @timestamp is when it was read, not eventTime).
		var inner record
		if err := json.Unmarshal([]byte(r.Message), &inner, dupOK); err != nil {
			return decode.JSONShapeError(err, "record")
		}
		r = inner
	}
	timeField, when := "eventTime", r.EventTime
	if when == "" && r.Timestamp != "" {
		// Logstash's cloudtrail codec moves eventTime to @timestamp.
		timeField, when = "@timestamp", r.Timestamp
	}
	switch {
	case when == "" && r.EventName == "":
		return &decode.LineError{Code: decode.CodeMissingField, Reason: `missing required fields "eventTime" (or "@timestamp"), "eventName"`}
	case when == "":
		return &decode.LineError{Code: decode.CodeMissingField, Reason: `missing required field "eventTime" (or "@timestamp")`}
	case r.EventName == "":
		return &decode.LineError{Code: decode.CodeMissingField, Reason: `missing required field "eventName"`}
	}
	t, err := time.Parse(time.RFC3339Nano, when)
	if err != nil || t.IsZero() {
		return &decode.LineError{Code: decode.CodeInvalidField,
			Reason: `invalid "` + timeField + `": want an RFC 3339 time, got ` + quote(when)}
	}
	if err := event.CheckTime(t); err != nil {
		return &decode.LineError{Code: decode.CodeInvalidField, Reason: `invalid "` + timeField + `": ` + err.Error()}
	}
	ev.Time = t.UTC()
	ev.Dataset = Dataset
	ev.Action = r.EventName
	ev.Provider = r.EventSource
	ev.ID = r.EventID
	ev.Outcome = event.OutcomeSuccess
	if r.ErrorCode != "" {
		ev.Outcome = event.OutcomeFailure
	}
	if a, err := netip.ParseAddr(r.SourceIPAddress); err == nil {
		ev.Source.IP = a.Unmap().WithZone("")
	}
	ev.UserAgent = r.UserAgent
	setUser(ev, &r.UserIdentity)
	setRecords(ev, &r)
	setCloudTrail(ev, &r)
	return nil
}

// setCloudTrail fills the contract's aws.cloudtrail.* fields.
func setCloudTrail(ev *event.Event, r *record) {
	ct := &ev.CloudTrail
	ct.IdentityType = r.UserIdentity.Type
	ct.IssuerType = r.UserIdentity.SessionContext.SessionIssuer.Type
	ct.EventType = r.EventType
	ct.ErrorCode = r.ErrorCode
	ct.ErrorMessage = r.ErrorMessage
	ct.RequestParameters = compactObject(r.RequestParameters)
	ct.ResponseElements = compactObject(r.ResponseElements)
}

// compactObject is v as compact JSON text when it is an object, else ""
// (absent, null, or not an object as CloudTrail writes them).
func compactObject(v jsontext.Value) string {
	if v.Kind() != '{' {
		return ""
	}
	c := bytes.Clone(v)
	if (*jsontext.Value)(&c).Compact() != nil {
		return ""
	}
	return string(c)
}

func setUser(ev *event.Event, id *identity) {
	switch {
	case id.ARN != "":
		ev.User.ID = id.ARN
	case id.PrincipalID != "":
		ev.User.ID = id.PrincipalID
	case id.AccountID != "" && id.Type != "":
		ev.User.ID = id.AccountID + ":" + id.Type
	case id.InvokedBy != "":
		ev.User.ID = id.InvokedBy
	}
	ev.Token.ID = id.AccessKeyID
	ev.User.Name = id.UserName
	if id.Type == "AssumedRole" {
		role, session := assumedRole(id.ARN)
		if ev.User.Name == "" {
			ev.User.Name = session
		}
		if n := id.SessionContext.SessionIssuer.UserName; n != "" {
			role = n
		}
		if role != "" {
			ev.User.Roles = []string{role}
		}
	}
}

// assumedRole splits arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION.
func assumedRole(arn string) (role, session string) {
	k := strings.Index(arn, ":assumed-role/")
	if k < 0 {
		return "", ""
	}
	rest := arn[k+len(":assumed-role/"):]
	role, session, _ = strings.Cut(rest, "/")
	return role, session
}

func setRecords(ev *event.Event, r *record) {
	if r.EventSource == "s3.amazonaws.com" && r.RequestParameters.Kind() == '{' {
		var p s3Params
		if json.Unmarshal(r.RequestParameters, &p, dupOK) == nil && p.BucketName != "" {
			switch {
			case p.Key != "":
				ev.Records.Type = RecordS3Object
				ev.Records.IDs = []string{p.BucketName + "/" + p.Key}
				return
			case s3BucketListings[r.EventName]:
				ev.Records.Type = RecordS3Bucket
				ev.Records.IDs = []string{p.BucketName}
				return
			}
		}
	}
	if r.Resources.Kind() != '[' {
		return
	}
	var res []resource
	if json.Unmarshal(r.Resources, &res, dupOK) != nil {
		return
	}
	for _, x := range res {
		if x.ARN == "" {
			continue
		}
		typ := ResourceType(x.Type)
		if ev.Records.Type == "" {
			ev.Records.Type = typ
		}
		if typ == ev.Records.Type {
			ev.Records.IDs = append(ev.Records.IDs, x.ARN)
		}
	}
}

// ResourceType turns a CloudTrail resource type into a records.type:
// lower case, every run of '.', ':' or white space replaced by one '_'
// ("AWS::S3::Object" → "aws_s3_object"); an empty type is "aws_resource".
func ResourceType(t string) string {
	var b strings.Builder
	sep := false
	for _, c := range strings.ToLower(t) {
		if c == '.' || c == ':' || c == ' ' || c == '\t' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('_')
		}
		sep = false
		b.WriteRune(c)
	}
	if b.Len() == 0 {
		return "aws_resource"
	}
	return b.String()
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.Quote(s)
}
