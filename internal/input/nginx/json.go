package nginx

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input/lines"
)

// JSONReader reads JSON access logs: one JSON object per line, as nginx
// writes with log_format ... escape=json, and as most API gateways can.
// Recognised keys (values may be strings or numbers; "-" and "" mean
// absent; other keys are ignored):
//
//	remote_addr                         source.ip
//	remote_user, or Options.UserField   user.id (with Options.UserPrefix)
//	Options.TokenField                  token.id
//	time_iso8601, @timestamp, timestamp  @timestamp (RFC 3339)
//	time_local                          @timestamp (dd/Mon/yyyy:hh:mm:ss +zzzz)
//	msec                                @timestamp (Unix seconds, fraction allowed)
//	request                             "METHOD URI PROTO": http.request.method, url.path, url.query
//	request_method                      http.request.method
//	request_uri                         url.path, url.query
//	uri                                 url.path
//	args, query_string                  url.query (when the URI has none)
//	host, http_host                     url.domain (port dropped; when the URI names no host)
//	status                              http.response.status_code, event.outcome
//	body_bytes_sent                     http.response.body.bytes
//	http_user_agent                     user_agent.original
//
// A JSONReader implements the same contract as decode.Reader and is not
// safe for concurrent use.
type JSONReader struct {
	p     *Parser
	lr    *lines.Reader
	input uint32
	st    state
	br    bytes.Reader
	dec   jsontext.Decoder
	f     jsonFields
}

// NewJSONReader returns a JSONReader of r; input is stored in every
// event's Input field.
func (p *Parser) NewJSONReader(r io.Reader, input uint32) *JSONReader {
	return &JSONReader{p: p, lr: lines.NewReader(r, p.maxLine), input: input, st: newState()}
}

// Line returns the number of lines consumed so far.
func (r *JSONReader) Line() int { return r.lr.Line() }

// Next decodes the next non-blank line into ev; see Reader.Next.
func (r *JSONReader) Next(ev *event.Event) error {
	line, err := r.lr.Next()
	if err != nil {
		*ev = event.Event{}
		if le, ok := err.(*decode.LineError); ok {
			return le
		}
		return err
	}
	if err := r.decodeLine(line, ev); err != nil {
		*ev = event.Event{}
		err.Line = r.lr.Line()
		return err
	}
	ev.Input = r.input
	ev.Line = uint32(r.lr.Line())
	return nil
}

type jsonFields struct {
	addr, user, altUser, token, ua   string
	timeISO, timeLocal, msec         string
	request, method, requestURI, uri string
	args, host                       string
	status, bytes                    string
	hasStatus, hasBytes              bool
}

func (r *JSONReader) decodeLine(line []byte, ev *event.Event) *decode.LineError {
	*ev = event.Event{}
	r.f = jsonFields{}
	r.br.Reset(line)
	r.dec.Reset(&r.br)
	defer func() {
		r.br.Reset(nil)
		r.dec.Reset(&r.br)
	}()
	if err := r.readObject(); err != nil {
		return err
	}
	f := &r.f
	p := r.p

	var err *decode.LineError
	var timeName string
	switch {
	case f.timeISO != "":
		timeName = "time_iso8601"
		ev.Time, err = parseRFC3339(timeName, f.timeISO)
	case f.timeLocal != "":
		timeName = "time_local"
		var ok bool
		if ev.Time, ok = parseTimeLocal([]byte(f.timeLocal)); !ok {
			err = fieldErr(timeName, "want dd/Mon/yyyy:hh:mm:ss +zzzz, got "+quote([]byte(f.timeLocal)))
		}
	case f.msec != "":
		timeName = "msec"
		ev.Time, err = parseMsec(f.msec)
	default:
		return &decode.LineError{Code: decode.CodeMissingField,
			Reason: `missing required field "time_iso8601", "time_local" or "msec"`}
	}
	if err != nil {
		return err
	}
	if e := event.CheckTime(ev.Time); e != nil {
		return fieldErr(timeName, e.Error())
	}
	if err := setAddr(ev, []byte(f.addr)); err != nil {
		return err
	}
	if f.hasStatus {
		code, ok := parseUint([]byte(f.status), 999)
		if !ok {
			return fieldErr("status", "want an integer from 0 to 999, got "+quote([]byte(f.status)))
		}
		setStatus(ev, int(code))
	}
	if f.hasBytes {
		b, ok := parseUint([]byte(f.bytes), 1<<62)
		if !ok {
			return fieldErr("body_bytes_sent", "want a non-negative integer, got "+quote([]byte(f.bytes)))
		}
		ev.HTTP.BodyBytes = int64(b)
	}
	ev.UserAgent = f.ua
	ev.Token.ID = f.token
	user := f.user
	if user == "" {
		user = f.altUser
	}
	var method, uri []byte
	switch {
	case f.method != "":
		method = []byte(f.method)
		uri = []byte(f.requestURI)
		if len(uri) == 0 {
			uri = []byte(f.uri)
		}
	case f.request != "":
		method, uri = splitRequest([]byte(f.request))
	}
	p.finish(&r.st, ev, method, uri, []byte(user))
	if ev.HTTP.Method != "" {
		if ev.URLQuery == "" && f.args != "" {
			ev.URLQuery = validString([]byte(f.args))
		}
		if ev.URLDomain == "" && f.host != "" {
			ev.URLDomain = domainOf([]byte(f.host))
		}
	}
	return nil
}

func parseRFC3339(name, s string) (time.Time, *decode.LineError) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}, fieldErr(name, "want an RFC 3339 time, got "+quote([]byte(s)))
	}
	return t.UTC(), nil
}

func parseMsec(s string) (time.Time, *decode.LineError) {
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n <= 0 || n > 1<<40 || len(frac) > 9 {
		return time.Time{}, fieldErr("msec", "want Unix seconds, got "+quote([]byte(s)))
	}
	var ns int64
	if frac != "" {
		f, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return time.Time{}, fieldErr("msec", "want Unix seconds, got "+quote([]byte(s)))
		}
		ns = int64(f)
		for k := len(frac); k < 9; k++ {
			ns *= 10
		}
	}
	return time.Unix(n, ns).UTC(), nil
}

// readObject reads the line's top-level object, keeping the recognised
// members' values as strings in r.f.
func (r *JSONReader) readObject() *decode.LineError {
	d := &r.dec
	if d.PeekKind() != '{' {
		if _, err := d.ReadValue(); err != nil {
			return decode.JSONSyntaxError(err)
		}
		return &decode.LineError{Code: decode.CodeInvalidJSON, Reason: "not a JSON object"}
	}
	if _, err := d.ReadToken(); err != nil {
		return decode.JSONSyntaxError(err)
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadValue()
		if err != nil {
			return decode.JSONSyntaxError(err)
		}
		key := unquoteName(name)
		var dst *string
		var has *bool
		switch key {
		case r.p.userField:
			dst = &r.f.user
		case r.p.tokenField:
			dst = &r.f.token
		}
		if dst == nil {
			switch key {
			case "remote_addr":
				dst = &r.f.addr
			case "remote_user":
				dst = &r.f.altUser
			case "http_user_agent":
				dst = &r.f.ua
			case "time_iso8601", "@timestamp", "timestamp":
				dst = &r.f.timeISO
			case "time_local":
				dst = &r.f.timeLocal
			case "msec":
				dst = &r.f.msec
			case "request":
				dst = &r.f.request
			case "request_method":
				dst = &r.f.method
			case "request_uri":
				dst = &r.f.requestURI
			case "uri":
				dst = &r.f.uri
			case "args", "query_string":
				dst = &r.f.args
			case "host", "http_host":
				dst = &r.f.host
			case "status":
				dst, has = &r.f.status, &r.f.hasStatus
			case "body_bytes_sent":
				dst, has = &r.f.bytes, &r.f.hasBytes
			}
		}
		v, err := d.ReadValue()
		if err != nil {
			return decode.JSONSyntaxError(err)
		}
		if dst == nil {
			continue
		}
		s, ok := scalar(v)
		if !ok {
			return fieldErr(strconv.Quote(key), "want a string or a number, got "+kindName(v))
		}
		if s == "" || s == "-" {
			continue
		}
		if key == "http_user_agent" {
			s = r.st.intern([]byte(s))
		}
		*dst = s
		if has != nil {
			*has = true
		}
	}
	if _, err := d.ReadToken(); err != nil {
		return decode.JSONSyntaxError(err)
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return &decode.LineError{Code: decode.CodeInvalidJSON, Reason: "invalid JSON: unexpected data after the object"}
	}
	return nil
}

func unquoteName(v jsontext.Value) string {
	if bytes.IndexByte(v, '\\') < 0 && len(v) >= 2 {
		return string(v[1 : len(v)-1])
	}
	s, err := jsontext.AppendUnquote(nil, v)
	if err != nil {
		return ""
	}
	return string(s)
}

// scalar returns a string or number value as a string; null is "".
func scalar(v jsontext.Value) (string, bool) {
	switch v.Kind() {
	case '"':
		if bytes.IndexByte(v, '\\') < 0 {
			return string(v[1 : len(v)-1]), true
		}
		s, err := jsontext.AppendUnquote(nil, v)
		return string(s), err == nil
	case '0':
		return string(v), true
	case 'n':
		return "", true
	}
	return "", false
}

func kindName(v jsontext.Value) string {
	switch v.Kind() {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	}
	return "a value"
}
