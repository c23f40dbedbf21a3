// Package nginx reads web server and API gateway access logs — the nginx
// "combined" format and JSON access logs — as event.Event values of the
// event contract (docs/inputs.md), with route templates that say which
// personal-data records a request touched.
package nginx

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"io"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input/lines"
)

// DefaultAction is event.action of a request that matches no route with an
// action.
const DefaultAction = "http.request"

// Options configure the nginx readers.
type Options struct {
	// MaxLine is the longest accepted line in bytes; 0 means
	// decode.DefaultMaxLine.
	MaxLine int
	// Dataset is event.dataset of every event; "" means "gateway.access".
	Dataset string
	// Action is event.action of a request no route names an action for;
	// "" means DefaultAction.
	Action string
	// UserField (JSON access logs only) is the key whose value names the
	// authenticated principal, e.g. "http_x_user_id" or "upstream_http_x_user";
	// when that key is absent, "-" or empty, remote_user is used. The
	// combined format has only remote_user.
	UserField string
	// UserPrefix is prepended to every user.id taken from the log or a
	// route's UserParam, e.g. "m:" for customers.
	UserPrefix string
	// TokenField (JSON access logs only) is the key whose value is the
	// access token's id (token.id), e.g. "http_x_token_id"; "" for none.
	TokenField string
	// Routes are tried in order; the first match wins.
	Routes []Route
}

// Parser is the compiled form of Options. It is immutable and safe for
// concurrent use; each reader it opens has its own state.
type Parser struct {
	maxLine    int
	dataset    string
	action     string
	userField  string
	userPrefix string
	tokenField string
	routes     *router
}

// New validates opts and compiles the routes.
func New(opts Options) (*Parser, error) {
	rt, err := compileRoutes(opts.Routes)
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	p := &Parser{
		maxLine:    opts.MaxLine,
		dataset:    opts.Dataset,
		action:     opts.Action,
		userField:  opts.UserField,
		userPrefix: opts.UserPrefix,
		tokenField: opts.TokenField,
		routes:     rt,
	}
	if p.dataset == "" {
		p.dataset = event.DatasetGateway
	}
	if p.action == "" {
		p.action = DefaultAction
	}
	if p.userField == "remote_user" {
		p.userField = ""
	}
	if p.tokenField != "" && p.tokenField == p.userField {
		return nil, fmt.Errorf("nginx: user_field and token_field are both %q", p.tokenField)
	}
	return p, nil
}

// Reader reads the nginx combined log format. It implements the same
// contract as decode.Reader and is not safe for concurrent use.
type Reader struct {
	p     *Parser
	lr    *lines.Reader
	input uint32
	st    state
}

// NewReader returns a Reader of the combined-format stream r; input is
// stored in every event's Input field.
func (p *Parser) NewReader(r io.Reader, input uint32) *Reader {
	return &Reader{p: p, lr: lines.NewReader(r, p.maxLine), input: input, st: newState()}
}

// Line returns the number of lines consumed so far.
func (r *Reader) Line() int { return r.lr.Line() }

// Next decodes the next non-blank line into ev: nil with ev filled, a
// *decode.LineError for a rejected line (ev zero; reading may go on), or
// io.EOF at the end. Other errors are read errors and are sticky.
func (r *Reader) Next(ev *event.Event) error {
	line, err := r.lr.Next()
	if err != nil {
		*ev = event.Event{}
		if le, ok := err.(*decode.LineError); ok {
			return le
		}
		return err
	}
	if err := r.p.combined(&r.st, line, ev); err != nil {
		*ev = event.Event{}
		err.Line = r.lr.Line()
		return err
	}
	ev.Input = r.input
	ev.Line = uint32(r.lr.Line())
	return nil
}

// ParseCombined decodes one combined-format line (without its terminator)
// into ev. A rejected line yields a *decode.LineError with Line 0 and a
// zero ev. It is meant for tests and one-off use; readers reuse state.
func (p *Parser) ParseCombined(line []byte, ev *event.Event) error {
	st := state{}
	if err := p.combined(&st, line, ev); err != nil {
		*ev = event.Event{}
		return err
	}
	return nil
}

// state is a reader's mutable scratch: a small intern cache for user
// agents and a buffer for unescaping.
type state struct {
	seed    maphash.Seed
	strs    *[internSlots]string
	scratch []byte
}

const internSlots = 256

func newState() state {
	return state{seed: maphash.MakeSeed(), strs: new([internSlots]string)}
}

// intern returns b as a string, reusing a previous equal one when cached.
func (st *state) intern(b []byte) string {
	if st.strs == nil || len(b) > 512 {
		return string(b)
	}
	slot := &st.strs[maphash.Bytes(st.seed, b)&(internSlots-1)]
	if *slot == string(b) {
		return *slot
	}
	*slot = string(b)
	return *slot
}

func fieldErr(name, why string) *decode.LineError {
	return &decode.LineError{Code: decode.CodeInvalidField, Reason: "invalid " + name + ": " + why}
}

func malformed(why string) *decode.LineError {
	return &decode.LineError{Code: decode.CodeInvalidField, Reason: "malformed combined log line: " + why}
}

// combined parses
//
//	$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//
// The referer and user agent may be missing (the common log format), and
// anything after the user agent is ignored (extended formats).
func (p *Parser) combined(st *state, line []byte, ev *event.Event) *decode.LineError {
	*ev = event.Event{}
	n := len(line)
	i := 0
	word := func() []byte {
		for i < n && line[i] == ' ' {
			i++
		}
		j := i
		for i < n && line[i] != ' ' {
			i++
		}
		return line[j:i]
	}
	addr := word()
	if len(addr) == 0 {
		return malformed("empty line")
	}
	word() // $remote_ident, "-" in nginx
	user := word()
	for i < n && line[i] == ' ' {
		i++
	}
	if i >= n || line[i] != '[' {
		return malformed("want '[' before $time_local")
	}
	j := i + 1
	for i < n && line[i] != ']' {
		i++
	}
	if i >= n {
		return malformed("unterminated [$time_local]")
	}
	t, ok := parseTimeLocal(line[j:i])
	if !ok {
		return fieldErr("$time_local", "want dd/Mon/yyyy:hh:mm:ss +zzzz, got "+quote(line[j:i]))
	}
	if err := event.CheckTime(t); err != nil {
		return fieldErr("$time_local", err.Error())
	}
	i++
	request, ok := quoted(line, &i)
	if !ok {
		return malformed(`want a quoted "$request"`)
	}
	status := word()
	bytesSent := word()
	if len(status) == 0 || len(bytesSent) == 0 {
		return malformed("want $status and $body_bytes_sent after the request")
	}
	var ua []byte
	if _, ok := quoted(line, &i); ok { // referer
		if ua, ok = quoted(line, &i); !ok {
			return malformed(`want a quoted "$http_user_agent" after the referer`)
		}
	}

	ev.Time = t
	if err := setAddr(ev, addr); err != nil {
		return err
	}
	code, ok := parseUint(status, 999)
	if !ok {
		return fieldErr("$status", "want an integer from 0 to 999, got "+quote(status))
	}
	setStatus(ev, int(code))
	if string(bytesSent) != "-" {
		b, ok := parseUint(bytesSent, 1<<62)
		if !ok {
			return fieldErr("$body_bytes_sent", "want a non-negative integer, got "+quote(bytesSent))
		}
		ev.HTTP.BodyBytes = int64(b)
	}
	if len(ua) > 0 && string(ua) != "-" {
		b := st.unescape(ua)
		if utf8.Valid(b) {
			ev.UserAgent = st.intern(b)
		} else {
			ev.UserAgent = validString(b)
		}
	}
	var method, uri []byte
	if string(request) != "-" {
		method, uri = splitRequest(st.unescape(request))
	}
	p.finish(st, ev, method, uri, user)
	return nil
}

func setAddr(ev *event.Event, addr []byte) *decode.LineError {
	if len(addr) == 0 || string(addr) == "-" {
		return nil
	}
	a, err := netip.ParseAddr(string(addr))
	if err != nil {
		return fieldErr("remote_addr", "not an IP address: "+quote(addr))
	}
	ev.Source.IP = a.Unmap().WithZone("")
	return nil
}

func setStatus(ev *event.Event, code int) {
	ev.HTTP.StatusCode = code
	switch {
	case code == 0:
	case code < 400:
		ev.Outcome = event.OutcomeSuccess
	default:
		ev.Outcome = event.OutcomeFailure
	}
}

// finish sets what every format shares: dataset, action, method, path,
// user and the route's records. method and uri may alias scratch memory.
func (p *Parser) finish(st *state, ev *event.Event, method, uri, user []byte) {
	ev.Dataset = p.dataset
	ev.Action = p.action
	if len(user) > 0 && string(user) != "-" {
		ev.User.ID = p.userPrefix + validString(user)
	}
	if len(method) == 0 {
		return
	}
	ev.HTTP.Method = methodString(method)
	host, path, query := targetParts(uri)
	if len(host) > 0 {
		ev.URLDomain = domainOf(host)
	}
	if len(query) > 0 {
		ev.URLQuery = validString(query)
	}
	if len(path) == 0 {
		return
	}
	ev.URLPath = validString(path)
	var bounds [maxSegments][2]int
	r, _ := p.routes.match(ev.HTTP.Method, ev.URLPath, &bounds)
	if r == nil {
		return
	}
	if r.action != "" {
		ev.Action = r.action
	}
	ev.Records.Type = r.rtype
	ev.Records.Fields = r.fields
	if r.idIdx >= 0 {
		ev.Records.IDs = []string{param(ev.URLPath, bounds[r.idIdx])}
	}
	if r.userIdx >= 0 && ev.User.ID == "" {
		ev.User.ID = p.userPrefix + param(ev.URLPath, bounds[r.userIdx])
	}
}

// validString converts b, replacing invalid UTF-8 so every event can be
// written as JSON.
func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// splitRequest splits "METHOD URI [PROTOCOL]". A request line that does
// not start with a method token (scanner noise, TLS on the HTTP port)
// yields nothing.
func splitRequest(req []byte) (method, uri []byte) {
	sp := 0
	for sp < len(req) && req[sp] != ' ' {
		c := req[sp]
		if (c < 'A' || c > 'Z') && c != '-' && c != '_' {
			return nil, nil
		}
		sp++
	}
	if sp == 0 || sp > 32 || sp == len(req) {
		return nil, nil
	}
	rest := req[sp+1:]
	end := len(rest)
	for k, c := range rest {
		if c == ' ' {
			end = k
			break
		}
	}
	return req[:sp], rest[:end]
}

// targetParts splits a request target into the host of an absolute-form
// target ("http://host:port/p?q"; nil for origin form "/p?q"), the path and
// the query string (without "?", and without a "#fragment"). Other forms
// ("*", CONNECT's host:port) have neither path nor query.
func targetParts(uri []byte) (host, path, query []byte) {
	if len(uri) > 0 && uri[0] != '/' {
		s := string(uri)
		var rest string
		var ok bool
		if rest, ok = strings.CutPrefix(s, "http://"); !ok {
			if rest, ok = strings.CutPrefix(s, "https://"); !ok {
				return nil, nil, nil
			}
		}
		k := strings.IndexByte(rest, '/')
		if k < 0 {
			return nil, nil, nil
		}
		start := len(uri) - len(rest)
		host = uri[start : start+k]
		uri = uri[start+k:]
	}
	end := len(uri)
	for k, c := range uri {
		if c == '#' {
			end = k
			break
		}
	}
	uri = uri[:end]
	for k, c := range uri {
		if c == '?' {
			return host, uri[:k], uri[k+1:]
		}
	}
	return host, uri, nil
}

// domainOf is url.domain of a Host header or an absolute-form target's
// authority: without user info and port; an IPv6 literal keeps its
// brackets (as ECS says).
func domainOf(host []byte) string {
	if k := bytes.LastIndexByte(host, '@'); k >= 0 {
		host = host[k+1:]
	}
	if len(host) > 0 && host[0] == '[' {
		if k := bytes.IndexByte(host, ']'); k >= 0 {
			return validString(host[:k+1])
		}
		return validString(host)
	}
	if k := bytes.LastIndexByte(host, ':'); k >= 0 {
		host = host[:k]
	}
	return validString(host)
}

func methodString(b []byte) string {
	switch string(b) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	case "HEAD":
		return "HEAD"
	case "OPTIONS":
		return "OPTIONS"
	}
	return string(b)
}

// quoted reads a double-quoted string starting at line[*i] (after spaces)
// and returns its content, still escaped. A backslash escapes the next
// byte (nginx itself writes '"' as \x22).
func quoted(line []byte, i *int) ([]byte, bool) {
	k := *i
	for k < len(line) && line[k] == ' ' {
		k++
	}
	if k >= len(line) || line[k] != '"' {
		return nil, false
	}
	k++
	start := k
	for k < len(line) {
		switch line[k] {
		case '\\':
			k += 2
			continue
		case '"':
			*i = k + 1
			return line[start:k], true
		}
		k++
	}
	return nil, false
}

// unescape undoes nginx's escaping (\xHH) and backslash escapes (\" \\).
// It returns b itself when there is nothing to undo, else a slice of the
// state's scratch buffer (valid until the next call).
func (st *state) unescape(b []byte) []byte {
	k := 0
	for k < len(b) && b[k] != '\\' {
		k++
	}
	if k == len(b) {
		return b
	}
	out := append(st.scratch[:0], b[:k]...)
	for k < len(b) {
		c := b[k]
		if c != '\\' || k+1 >= len(b) {
			out = append(out, c)
			k++
			continue
		}
		switch d := b[k+1]; {
		case d == 'x' && k+3 < len(b) && isHex(b[k+2]) && isHex(b[k+3]):
			out = append(out, unhex(b[k+2])<<4|unhex(b[k+3]))
			k += 4
		case d == '"' || d == '\\':
			out = append(out, d)
			k += 2
		default:
			out = append(out, c)
			k++
		}
	}
	if cap(out) <= 64<<10 {
		st.scratch = out
	}
	return out
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func parseUint(b []byte, limit uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, n <= limit
}

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseTimeLocal parses nginx's $time_local, "02/Jan/2006:15:04:05 -0700",
// without allocating, and returns it in UTC.
func parseTimeLocal(b []byte) (time.Time, bool) {
	if len(b) != 26 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' ||
		b[17] != ':' || b[20] != ' ' || (b[21] != '+' && b[21] != '-') {
		return time.Time{}, false
	}
	num := func(s []byte) int {
		v := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	day, year := num(b[0:2]), num(b[7:11])
	hh, mm, ss := num(b[12:14]), num(b[15:17]), num(b[18:20])
	oh, om := num(b[22:24]), num(b[24:26])
	mon := 0
	for k, m := range months {
		if string(b[3:6]) == m {
			mon = k + 1
			break
		}
	}
	if mon == 0 || day < 1 || year < 1 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
		ss < 0 || ss > 59 || oh < 0 || oh > 23 || om < 0 || om > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(mon), day, hh, mm, ss, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, false
	}
	off := time.Duration(oh)*time.Hour + time.Duration(om)*time.Minute
	if b[21] == '+' {
		off = -off
	}
	t = t.Add(off)
	if t.IsZero() {
		return time.Time{}, false
	}
	return t, true
}

func quote(b []byte) string {
	const maxQuoted = 64
	if len(b) > maxQuoted {
		b = b[:maxQuoted]
	}
	return fmt.Sprintf("%q", b)
}
