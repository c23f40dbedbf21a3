package decode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"io"
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/event"
)

// Codes of a LineError. They are stable: metrics and the API report them.
const (
	CodeInvalidJSON  = "invalid_json"  // not JSON, not an object, or data after it
	CodeMissingField = "missing_field" // a required field is absent
	CodeInvalidField = "invalid_field" // a field has the wrong type or an unparsable value
	CodeLineTooLong  = "line_too_long" // the line exceeds the Reader's limit
)

// ErrEmpty is returned by Decoder.Decode for an empty or whitespace-only
// line. It is not a rejection: Reader skips such lines.
var ErrEmpty = errors.New("decode: empty line")

// LineError is a rejected line.
type LineError struct {
	Line   int    // 1-based line number within the input; 0 from Decoder.Decode
	Code   string // one of the Code constants
	Reason string // one line of human-readable detail
}

func (e *LineError) Error() string {
	return "line " + strconv.Itoa(e.Line) + ": " + e.Reason
}

const (
	maxInternLen = 512  // longer strings are never interned
	internSlots  = 4096 // entries of the string cache (power of two)
	sliceSlots   = 1024 // entries of the slice cache (power of two)
	maxScratch   = 64 << 10
	maxQuoted    = 64 // bytes of an offending value quoted in a reason
)

// allowDup turns off jsontext's duplicate-name check: the seen-fields mask
// already rejects a contract field given twice (in any spelling), and a
// repeated unknown member is harmless, so the check would only cost time.
var allowDup = jsontext.AllowDuplicateNames(true)

// Decoder decodes single lines of the event contract. It keeps a reusable
// jsontext.Decoder, scratch buffers and small intern caches, so it is not safe for concurrent
// use: use one per goroutine.
type Decoder struct {
	dec jsontext.Decoder
	bb  bytes.Buffer // aliases the line being decoded

	path    []byte // dotted path of the current member
	scratch []byte // unquoted string values
	idbuf   []byte // records.ids, concatenated
	idend   []int  // end offsets into idbuf

	// Intern caches: direct-mapped (a new value evicts the one in its
	// slot), so they are bounded without ever being cleared wholesale:
	// at most internSlots*maxInternLen + sliceSlots*maxInternLen bytes.
	seed   maphash.Seed
	strs   *[internSlots]string
	slices *[sliceSlots]sliceEntry

	stack []byte // nesting scratch of the syntax check

	seen  uint64 // bit per field already given on this line
	fcode string // first field error of this line
	fwhy  string
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder {
	return &Decoder{
		path:    make([]byte, 0, 64),
		scratch: make([]byte, 0, 256),
		seed:    maphash.MakeSeed(),
		strs:    new([internSlots]string),
		slices:  new([sliceSlots]sliceEntry),
	}
}

// Decode resets *ev and fills it from one NDJSON line (without its line
// terminator; trailing whitespace is allowed). It returns ErrEmpty for an
// empty or whitespace-only line and a *LineError (with Line 0) for a
// rejected one; *ev is then the zero Event. Decode does not retain line.
func (d *Decoder) Decode(line []byte, ev *event.Event) error {
	*ev = event.Event{}
	if isBlank(line) {
		return ErrEmpty
	}
	d.seen, d.fcode, d.fwhy = 0, "", ""
	// Fast path: a one-pass syntax check that accepts exactly what
	// jsontext accepts, then walk. jsontext itself runs only on lines that
	// fail the check, to say precisely why.
	var ok bool
	if ok, d.stack = valid(line, d.stack); ok {
		start := skipSpace(line, 0)
		if line[start] != '{' {
			return &LineError{Code: CodeInvalidJSON, Reason: "not a JSON object"}
		}
		d.path = d.path[:0]
		d.walk(ev, line, start, 0)
		err := d.finish(ev)
		d.trim()
		if err != nil {
			*ev = event.Event{}
		}
		return err
	}
	d.bb = *bytes.NewBuffer(line)
	d.dec.Reset(&d.bb, allowDup)
	err := d.decode(ev)
	// Drop every reference to line so the caller's buffer is not retained.
	d.bb = bytes.Buffer{}
	d.dec.Reset(&d.bb, allowDup)
	d.trim()
	if err != nil {
		*ev = event.Event{}
	}
	return err
}

// trim drops scratch buffers a huge line grew.
func (d *Decoder) trim() {
	if cap(d.scratch) > maxScratch {
		d.scratch = make([]byte, 0, 256)
	}
	if cap(d.path) > maxScratch {
		d.path = make([]byte, 0, 64)
	}
	if cap(d.idbuf) > maxScratch {
		d.idbuf = nil
	}
	if cap(d.stack) > maxScratch {
		d.stack = nil
	}
}

func (d *Decoder) decode(ev *event.Event) error {
	switch d.dec.PeekKind() {
	case '{':
	case 0:
		_, err := d.dec.ReadToken()
		return syntaxError(err)
	default:
		return &LineError{Code: CodeInvalidJSON, Reason: "not a JSON object"}
	}
	// Slow path, for lines the fast syntax check rejected: jsontext
	// validates the whole object in one pass (syntax, UTF-8, nesting
	// depth) and says precisely what is wrong.
	obj, err := d.dec.ReadValue()
	if err != nil {
		return syntaxError(err)
	}
	// Only whitespace may follow the object.
	if d.dec.PeekKind() != 0 {
		return errTrailing()
	}
	if _, err := d.dec.ReadToken(); err != io.EOF {
		return errTrailing()
	}
	d.path = d.path[:0]
	d.walk(ev, obj, 0, 0)
	return d.finish(ev)
}

// finish turns what walk recorded into the line's verdict.
func (d *Decoder) finish(ev *event.Event) error {
	if d.fcode != "" {
		return &LineError{Code: d.fcode, Reason: d.fwhy}
	}
	if loc := d.seen & (1<<fLat | 1<<fLon); loc != 0 {
		if loc != 1<<fLat|1<<fLon {
			return &LineError{Code: CodeInvalidField, Reason: `invalid "source.geo.location": needs both lat and lon`}
		}
		ev.Source.Located = true
	}
	if ev.Time.IsZero() || ev.Dataset == "" || ev.Action == "" {
		return missing(ev)
	}
	return nil
}

func errTrailing() error {
	return &LineError{Code: CodeInvalidJSON, Reason: "invalid JSON: unexpected data after the object"}
}

func missing(ev *event.Event) error {
	var names []string
	if ev.Time.IsZero() {
		names = append(names, `"@timestamp"`)
	}
	if ev.Dataset == "" {
		names = append(names, `"event.dataset"`)
	}
	if ev.Action == "" {
		names = append(names, `"event.action"`)
	}
	reason := "missing required field " + names[0]
	if len(names) > 1 {
		reason = "missing required fields " + strings.Join(names, ", ")
	}
	return &LineError{Code: CodeMissingField, Reason: reason}
}

func syntaxError(err error) error {
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	msg := strings.TrimPrefix(err.Error(), "jsontext: ")
	return &LineError{Code: CodeInvalidJSON, Reason: "invalid JSON: " + oneLine(msg)}
}

// walk interprets the members of the object starting at v[i] == '{',
// whose dotted path is d.path[:prefix], and returns the index just after
// it. v has passed the syntax check (valid); walk never panics even if it were
// not. Field errors are recorded in d.fcode/d.fwhy.
func (d *Decoder) walk(ev *event.Event, v []byte, i, prefix int) int {
	i++
	for {
		i = skipSpace(v, i)
		if i >= len(v) {
			return len(v)
		}
		switch v[i] {
		case '}':
			return i + 1
		case ',':
			i++
			continue
		case '"':
		default:
			return len(v) // not reached on valid JSON
		}
		end, escaped := stringEnd(v, i)
		name := v[i:end]
		i = skipSpace(v, end)
		if i >= len(v) || v[i] != ':' || len(name) < 2 {
			return len(v)
		}
		i = skipSpace(v, i+1)
		if i >= len(v) {
			return len(v)
		}

		// The member's dotted path; at the top level it is just the name.
		key := name[1 : len(name)-1]
		if prefix > 0 || escaped {
			d.path = d.path[:prefix]
			if prefix > 0 {
				d.path = append(d.path, '.')
			}
			if !escaped {
				d.path = append(d.path, key...)
			} else if p, err := jsontext.AppendUnquote(d.path, name); err == nil {
				d.path = p
			} else {
				return len(v)
			}
			key = d.path
		}
		f, group := lookup(key)
		if group && prefix == 0 && !escaped {
			d.path = append(d.path[:0], key...)
		}
		switch {
		case f != fieldNone:
			if v[i] == '"' {
				end, escaped = stringEnd(v, i)
			} else {
				end, escaped = valueEnd(v, i), true
			}
			d.field(ev, f, v[i:end], escaped)
			i = end
		case group && v[i] == '{':
			i = d.walk(ev, v, i, len(d.path))
		default:
			i = valueEnd(v, i)
		}
	}
}

// stringEnd returns the index just after the JSON string starting at
// v[i] == '"' (or len(v)), and whether the string has escapes. It looks
// at eight bytes at a time for a quote or a backslash.
func stringEnd(v []byte, i int) (end int, escaped bool) {
	const (
		lo = 0x0101010101010101
		hi = 0x8080808080808080
		qq = lo * '"'
		bs = lo * '\\'
	)
	i++
	for i < len(v) {
		if i+8 <= len(v) {
			x := binary.LittleEndian.Uint64(v[i:])
			q, b := x^qq, x^bs
			m := ((q-lo)&^q | (b-lo)&^b) & hi
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3 // first quote or backslash
		}
		switch v[i] {
		case '"':
			return i + 1, escaped
		case '\\':
			escaped = true
			i += 2
		default:
			i++
		}
	}
	return len(v), escaped
}

// valueEnd returns the index just after the JSON value starting at v[i],
// or len(v).
func valueEnd(v []byte, i int) int {
	if i >= len(v) {
		return len(v)
	}
	switch v[i] {
	case '"':
		end, _ := stringEnd(v, i)
		return end
	case '{', '[':
		depth := 0
		for ; i < len(v); i++ {
			switch v[i] {
			case '"':
				end, _ := stringEnd(v, i)
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(v)
	}
	for ; i < len(v); i++ {
		switch v[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
	}
	return len(v)
}

// fail records the first field error of the line.
func (d *Decoder) fail(f field, why string) {
	if d.fcode == "" {
		d.fcode = CodeInvalidField
		d.fwhy = "invalid " + strconv.Quote(fieldNames[f]) + ": " + oneLine(why)
	}
}

func kindName(v jsontext.Value) string {
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

// field interprets v, the raw value of contract field f.
// escaped is false only for a string known to have no escapes.
func (d *Decoder) field(ev *event.Event, f field, v []byte, escaped bool) {
	if v[0] == 'n' { // null: absent
		return
	}
	bit := uint64(1) << f
	if d.seen&bit != 0 {
		d.fail(f, "field given more than once")
		return
	}
	d.seen |= bit

	switch f {
	case fUserRoles, fRecFields, fIdentRoles, fKeyCustodians:
		s, ok := d.stringSlice(f, v)
		if !ok {
			return
		}
		switch f {
		case fUserRoles:
			ev.User.Roles = s
		case fRecFields:
			ev.Records.Fields = s
		case fIdentRoles:
			ev.Identity.Roles = s
		case fKeyCustodians:
			ev.Key.Custodians = s
		}
		return
	case fRecIDs:
		ev.Records.IDs = d.recordIDs(v)
		return
	case fStatus, fBodyBytes, fASN:
		d.integer(ev, f, v)
		return
	case fLat, fLon:
		d.degrees(ev, f, v)
		return
	}

	// The remaining fields are strings.
	if v[0] != '"' {
		d.fail(f, "want a string, got "+kindName(v))
		return
	}
	if len(v) < 2 {
		return // not reached on valid JSON
	}
	b := v[1 : len(v)-1]
	if escaped {
		var err error
		if b, err = d.unquote(v); err != nil {
			d.fail(f, err.Error())
			return
		}
	}
	if len(b) == 0 {
		return // empty string: absent
	}
	switch f {
	case fTimestamp, fTokenIssuedAt, fTokenExpiresAt, fIdentTerminatedAt, fIdentLastActive, fKeyRetiredAt:
		var t time.Time
		if len(b) > maxQuoted {
			d.fail(f, "parsing time "+quoteTrunc(b)+": too long for RFC 3339")
			return
		}
		if err := t.UnmarshalText(b); err != nil {
			d.fail(f, err.Error())
			return
		}
		t = t.UTC()
		if t.IsZero() {
			d.fail(f, "time "+strconv.Quote(string(b))+" is the zero time")
			return
		}
		if f == fTimestamp {
			// The event's own time must be one the pipeline can hold;
			// the times it reports about tokens, identities and keys
			// are clamped instead (event.ClampTime says why).
			if err := event.CheckTime(t); err != nil {
				d.fail(f, err.Error())
				return
			}
			ev.Time = t
			return
		}
		t = event.ClampTime(t)
		switch f {
		case fTokenIssuedAt:
			ev.Token.IssuedAt = t
		case fTokenExpiresAt:
			ev.Token.ExpiresAt = t
		case fIdentTerminatedAt:
			ev.Identity.TerminatedAt = t
		case fIdentLastActive:
			ev.Identity.LastActive = t
		case fKeyRetiredAt:
			ev.Key.RetiredAt = t
		}
	case fSourceIP:
		ip, ok := parseIPv4(b)
		if !ok {
			if len(b) > maxQuoted {
				d.fail(f, "ParseAddr("+quoteTrunc(b)+"): too long for an IP address")
				return
			}
			var err error
			if ip, err = netip.ParseAddr(string(b)); err != nil {
				d.fail(f, err.Error())
				return
			}
			ip = ip.WithZone("").Unmap()
		}
		ev.Source.IP = ip
	case fOutcome:
		ev.Outcome = event.ParseOutcome(d.intern(b))

	// Low-cardinality strings: interned.
	case fDataset:
		ev.Dataset = d.intern(b)
	case fAction:
		ev.Action = d.intern(b)
	case fCountry:
		ev.Source.Country = d.intern(b)
	case fASOrg:
		ev.Source.ASOrg = d.intern(b)
	case fUserAgent:
		ev.UserAgent = d.intern(b)
	case fMethod:
		ev.HTTP.Method = d.intern(b)
	case fTokenKeyID:
		ev.Token.KeyID = d.intern(b)
	case fTokenIssuer:
		ev.Token.Issuer = d.intern(b)
	case fRecType:
		ev.Records.Type = d.intern(b)
	case fIdentKind:
		ev.Identity.Kind = d.intern(b)
	case fIdentStatus:
		ev.Identity.Status = d.intern(b)
	case fIdentCountry:
		ev.Identity.Country = d.intern(b)
	case fKeyID:
		ev.Key.ID = d.intern(b)
	case fKeyStatus:
		ev.Key.Status = d.intern(b)
	case fProvider:
		ev.Provider = d.intern(b)
	case fCTIdentityType:
		ev.CloudTrail.IdentityType = d.intern(b)
	case fCTIssuerType:
		ev.CloudTrail.IssuerType = d.intern(b)
	case fCTEventType:
		ev.CloudTrail.EventType = d.intern(b)
	case fCTErrorCode:
		ev.CloudTrail.ErrorCode = d.intern(b)

	// High-cardinality strings: allocated.
	case fEventID:
		ev.ID = string(b)
	case fUserID:
		ev.User.ID = string(b)
	case fUserName:
		ev.User.Name = string(b)
	case fURLPath:
		ev.URLPath = string(b)
	case fURLQuery:
		ev.URLQuery = string(b)
	case fURLDomain:
		ev.URLDomain = d.intern(b)
	case fCTErrorMessage:
		ev.CloudTrail.ErrorMessage = string(b)
	case fCTRequestParameters:
		ev.CloudTrail.RequestParameters = string(b)
	case fCTResponseElements:
		ev.CloudTrail.ResponseElements = string(b)
	case fTokenID:
		ev.Token.ID = string(b)
	case fIdentID:
		ev.Identity.ID = string(b)
	}
}

// unquote returns the contents of the JSON string v, valid until the next
// call. v has passed the syntax check.
func (d *Decoder) unquote(v []byte) ([]byte, error) {
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], nil
	}
	var err error
	d.scratch, err = jsontext.AppendUnquote(d.scratch[:0], v)
	return d.scratch, err
}

// intern returns b as a string, shared with earlier identical values.
func (d *Decoder) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > maxInternLen {
		return string(b)
	}
	slot := &d.strs[maphash.Bytes(d.seed, b)&(internSlots-1)]
	if *slot != string(b) {
		*slot = string(b)
	}
	return *slot
}

// sliceEntry is a slot of the slice cache: the raw JSON text of an array
// (or single string) and its decoded value.
type sliceEntry struct {
	raw string
	val []string
}

// degrees interprets a latitude or longitude: a JSON number (or a string
// holding one) within ±90 or ±180.
func (d *Decoder) degrees(ev *event.Event, f field, v jsontext.Value) {
	b := []byte(v)
	if v[0] == '"' {
		var err error
		if b, err = d.unquote(v); err != nil {
			d.fail(f, err.Error())
			return
		}
		if len(b) == 0 {
			d.seen &^= 1 << f // empty string: absent
			return
		}
	} else if kindName(v) != "number" {
		d.fail(f, "want a number, got "+kindName(v))
		return
	}
	limit := 180.0
	if f == fLat {
		limit = 90
	}
	x, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(x) || x < -limit || x > limit {
		lim := strconv.FormatFloat(limit, 'f', -1, 64)
		d.fail(f, "want degrees from -"+lim+" to "+lim+", got "+quoteTrunc(b))
		return
	}
	if f == fLat {
		ev.Source.Lat = x
	} else {
		ev.Source.Lon = x
	}
}

// integer decodes a non-negative integer field given as a JSON number or
// as a string holding one.
func (d *Decoder) integer(ev *event.Event, f field, v jsontext.Value) {
	var max uint64
	switch f {
	case fStatus:
		max = 999
	case fBodyBytes:
		max = math.MaxInt64
	case fASN:
		max = math.MaxUint32
	}
	b := []byte(v)
	switch v[0] {
	case '"':
		var err error
		if b, err = d.unquote(v); err != nil {
			d.fail(f, err.Error())
			return
		}
		if len(b) == 0 {
			return // empty string: absent
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
	default:
		d.fail(f, "want an integer, got "+kindName(v))
		return
	}
	n, ok := parseUint(b, max)
	if !ok {
		d.fail(f, "want an integer from 0 to "+strconv.FormatUint(max, 10)+", got "+quoteTrunc(b))
		return
	}
	switch f {
	case fStatus:
		ev.HTTP.StatusCode = int(n)
	case fBodyBytes:
		ev.HTTP.BodyBytes = int64(n)
	case fASN:
		ev.Source.ASN = uint32(n)
	}
}

// parseUint parses a decimal integer in [0, max]. Integral numbers written
// with a fraction or exponent (200.0, 2e2) are accepted too.
func parseUint(b []byte, max uint64) (uint64, bool) {
	var n uint64
	digits := len(b) > 0
	for _, c := range b {
		if c < '0' || c > '9' {
			digits = false
			break
		}
		if n > (math.MaxUint64-9)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if !digits {
		if !isNumberish(b) {
			return 0, false
		}
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil || f != math.Trunc(f) || f < 0 || f >= 1<<53 {
			return 0, false
		}
		n = uint64(f)
	}
	if n > max {
		return 0, false
	}
	return n, true
}

// stringSlice decodes an array of strings, or a single string, for field
// f. Results are interned by their raw JSON text and have cap == len, so an
// append by a consumer never writes into a shared array.
func (d *Decoder) stringSlice(f field, v jsontext.Value) ([]string, bool) {
	var slot *sliceEntry
	if len(v) <= maxInternLen {
		slot = &d.slices[maphash.Bytes(d.seed, v)&(sliceSlots-1)]
		if slot.raw == string(v) && slot.raw != "" {
			return slot.val, true
		}
	}
	var out []string
	switch v[0] {
	case '"':
		b, err := d.unquote(v)
		if err != nil {
			d.fail(f, err.Error())
			return nil, false
		}
		if len(b) > 0 {
			out = []string{d.intern(b)}
		}
	case '[':
		ok := scanArray(v, func(elem []byte) bool {
			switch elem[0] {
			case 'n':
				return true
			case '"':
				b, err := d.unquote(elem)
				if err != nil {
					d.fail(f, err.Error())
					return false
				}
				if len(b) > 0 {
					out = append(out, d.intern(b))
				}
				return true
			}
			d.fail(f, "want an array of strings, got an element of type "+kindName(elem))
			return false
		})
		if !ok {
			return nil, false
		}
	default:
		d.fail(f, "want an array of strings or a string, got "+kindName(v))
		return nil, false
	}
	out = out[:len(out):len(out)]
	if slot != nil {
		*slot = sliceEntry{raw: string(v), val: out}
	}
	return out, true
}

// recordIDs decodes records.ids: strings or numbers, as an array or a
// single value. All ids of a line share one backing string.
func (d *Decoder) recordIDs(v jsontext.Value) []string {
	d.idbuf, d.idend = d.idbuf[:0], d.idend[:0]
	add := func(elem []byte) bool {
		switch elem[0] {
		case 'n':
			return true
		case '"':
			b, err := d.unquote(elem)
			if err != nil {
				d.fail(fRecIDs, err.Error())
				return false
			}
			if len(b) == 0 {
				return true
			}
			d.idbuf = append(d.idbuf, b...)
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if !isInteger(elem) {
				f, err := strconv.ParseFloat(string(elem), 64)
				if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
					d.fail(fRecIDs, "number "+quoteTrunc(elem)+" is not an integer id")
					return false
				}
				elem = strconv.AppendInt(d.scratch[:0], int64(f), 10)
			} else if string(elem) == "-0" {
				elem = elem[1:]
			}
			d.idbuf = append(d.idbuf, elem...)
		default:
			d.fail(fRecIDs, "want strings or numbers, got "+kindName(elem))
			return false
		}
		d.idend = append(d.idend, len(d.idbuf))
		return true
	}
	if v[0] == '[' {
		if !scanArray(v, add) {
			return nil
		}
	} else if !add(v) {
		return nil
	}
	if len(d.idend) == 0 {
		return nil
	}
	all := string(d.idbuf)
	ids := make([]string, len(d.idend))
	start := 0
	for i, end := range d.idend {
		ids[i] = all[start:end]
		start = end
	}
	return ids
}

// isNumberish reports whether b only has characters of a JSON number, so
// that strconv.ParseFloat's extensions (hex, "Inf", underscores) are not
// accepted.
func isNumberish(b []byte) bool {
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9', c == '.', c == 'e', c == 'E', c == '+', c == '-':
		default:
			return false
		}
	}
	return len(b) > 0
}

func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// scanArray calls fn with the raw text of each element of the JSON array
// v, which has passed the syntax check. Nested arrays and objects are
// passed as their first byte only (fn rejects them). It stops and returns
// false when fn does; it never panics, even on input that is not valid.
func scanArray(v []byte, fn func(elem []byte) bool) bool {
	i := 1
	for {
		i = skipSpace(v, i)
		if i >= len(v) || v[i] == ']' {
			return true
		}
		start := i
		switch v[i] {
		case '"':
			i++
			for i < len(v) && v[i] != '"' {
				if v[i] == '\\' {
					i++
				}
				i++
			}
			i++ // closing quote
			if i > len(v) {
				return true
			}
		case '{', '[':
			return fn(v[i : i+1])
		default: // number or literal
			for i < len(v) && !isDelim(v[i]) {
				i++
			}
		}
		if !fn(v[start:i]) {
			return false
		}
		i = skipSpace(v, i)
		if i < len(v) && v[i] == ',' {
			i++
		}
	}
}

func isDelim(c byte) bool {
	switch c {
	case ',', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

func skipSpace(v []byte, i int) int {
	for i < len(v) {
		switch v[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

func isBlank(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return false
		}
	}
	return true
}

// parseIPv4 is a fast path for dotted-quad IPv4 addresses, with the same
// rules as netip.ParseAddr (no leading zeros).
func parseIPv4(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	octet, n := 0, 0
	val := 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if n == 0 || octet > 3 {
				return netip.Addr{}, false
			}
			ip[octet] = byte(val)
			octet, n, val = octet+1, 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || (n == 1 && val == 0) {
			return netip.Addr{}, false
		}
		val = val*10 + int(c-'0')
		n++
		if val > 255 {
			return netip.Addr{}, false
		}
	}
	if octet != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}

// quoteTrunc quotes b for an error reason, truncated to maxQuoted bytes.
func quoteTrunc(b []byte) string {
	if len(b) > maxQuoted {
		return strconv.Quote(string(b[:maxQuoted])) + "..."
	}
	return strconv.Quote(string(b))
}

// oneLine makes sure a reason is a single line.
func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
	}
	return s
}
