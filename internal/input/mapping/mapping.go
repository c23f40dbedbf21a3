// Package mapping reads any JSON-lines log through a declarative mapping
// from its fields to the fields of the event contract (docs/inputs.md).
//
// Each line is turned into a contract line (dotted ECS keys, every value a
// JSON string or an array of strings) and decoded by internal/decode, so a
// mapped log obeys exactly the rules of the contract: the same required
// fields, types, leniencies and rejection codes.
package mapping

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input/lines"
)

// Mapping describes how to build contract events from a JSON-lines log.
type Mapping struct {
	// Dataset is event.dataset of every event, unless Fields maps
	// "event.dataset" (give one or the other).
	Dataset string `json:"dataset,omitempty" yaml:"dataset,omitempty"`
	// Fields maps contract field names (dotted ECS spelling, as in
	// docs/events.md) to where their values come from. "@timestamp" and
	// "event.action" are required.
	Fields map[string]FieldMap `json:"fields" yaml:"fields"`
}

// FieldMap says where one contract field's value comes from. Exactly one
// of From and Const is given. The value then goes through Regex, Split,
// TimeLayout and Prefix, in that order, each when given.
type FieldMap struct {
	// From is the dotted path of the value in the source object:
	// "user.id" finds {"user":{"id":..}} and also {"user.id":..}. String,
	// number and boolean values are taken as their text; an array gives
	// a list (for list fields); null or a missing path means absent.
	From string `json:"from,omitempty" yaml:"from,omitempty"`
	// Const is a fixed value.
	Const string `json:"const,omitempty" yaml:"const,omitempty"`
	// Regex, with exactly one capture group, replaces the value by what
	// the group captured; a value it does not match is absent.
	Regex string `json:"regex,omitempty" yaml:"regex,omitempty"`
	// Split (list fields only) splits a string value on this separator;
	// surrounding white space is trimmed and empty parts dropped.
	Split string `json:"split,omitempty" yaml:"split,omitempty"`
	// TimeLayout (time fields only) is how the value is written:
	// "rfc3339" (the default), "unix" (seconds, fraction allowed),
	// "unix_ms" (milliseconds), or a Go time layout such as
	// "2006-01-02 15:04:05.000 -0700" (a layout without a zone reads UTC).
	TimeLayout string `json:"time_layout,omitempty" yaml:"time_layout,omitempty"`
	// Prefix (string and list fields) is prepended to the value, e.g. "m:".
	Prefix string `json:"prefix,omitempty" yaml:"prefix,omitempty"`
}

// Compiled is a validated Mapping, ready to read logs. It is immutable and
// safe for concurrent use.
type Compiled struct {
	name   string
	fields []field
}

type field struct {
	name   string // contract field
	kind   event.FieldKind
	path   string
	isCon  bool
	con    []string // the constant, after the value pipeline
	re     *regexp.Regexp
	split  string
	layout string
	prefix string
}

// Compile validates m and compiles it. Errors name the mapping and the
// field: `mapping "app": field "user.id": regex: ...`.
func Compile(name string, m Mapping) (*Compiled, error) {
	if name == "" {
		return nil, fmt.Errorf("mapping: empty name")
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("mapping %q: "+format, append([]any{name}, a...)...)
	}
	fields := m.Fields
	if m.Dataset != "" {
		if _, ok := fields["event.dataset"]; ok {
			return nil, fail(`give dataset or fields["event.dataset"], not both`)
		}
		fields = make(map[string]FieldMap, len(m.Fields)+1)
		for k, v := range m.Fields {
			fields[k] = v
		}
		fields["event.dataset"] = FieldMap{Const: m.Dataset}
	}
	for _, req := range []string{"@timestamp", "event.dataset", "event.action"} {
		if _, ok := fields[req]; !ok {
			if req == "event.dataset" {
				return nil, fail(`no dataset: give dataset or fields["event.dataset"]`)
			}
			return nil, fail("no rule for the required field %q", req)
		}
	}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	c := &Compiled{name: name}
	for _, n := range names {
		f, err := compileField(n, fields[n])
		if err != nil {
			return nil, fail("field %q: %w", n, err)
		}
		c.fields = append(c.fields, f)
	}
	return c, nil
}

func compileField(name string, fm FieldMap) (field, error) {
	kind, ok := event.FieldKindOf(name)
	if !ok {
		return field{}, fmt.Errorf("not a field of the event contract (see docs/events.md)")
	}
	f := field{name: name, kind: kind, path: fm.From, split: fm.Split, prefix: fm.Prefix}
	switch {
	case fm.From != "" && fm.Const != "":
		return field{}, fmt.Errorf("give from or const, not both")
	case fm.From == "" && fm.Const == "":
		return field{}, fmt.Errorf("give from or const")
	case fm.From != "":
		for p := range strings.SplitSeq(fm.From, ".") {
			if p == "" {
				return field{}, fmt.Errorf("from %q: empty path element", fm.From)
			}
		}
	}
	if fm.Regex != "" {
		re, err := regexp.Compile(fm.Regex)
		if err != nil {
			return field{}, fmt.Errorf("regex: %w", err)
		}
		if re.NumSubexp() != 1 {
			return field{}, fmt.Errorf("regex %q has %d capture groups, want exactly 1", fm.Regex, re.NumSubexp())
		}
		f.re = re
	}
	if fm.Split != "" && kind != event.KindStrings {
		return field{}, fmt.Errorf("split applies only to list fields")
	}
	if fm.Prefix != "" {
		if kind != event.KindString && kind != event.KindStrings {
			return field{}, fmt.Errorf("prefix applies only to string and list fields")
		}
		if !utf8.ValidString(fm.Prefix) {
			return field{}, fmt.Errorf("prefix is not valid UTF-8")
		}
	}
	switch {
	case kind != event.KindTime && fm.TimeLayout != "":
		return field{}, fmt.Errorf("time_layout applies only to time fields")
	case kind == event.KindTime:
		switch fm.TimeLayout {
		case "", "rfc3339":
			f.layout = "rfc3339"
		case "unix", "unix_ms":
			f.layout = fm.TimeLayout
		default:
			ref := time.Date(2025, 6, 24, 9, 0, 3, 0, time.UTC)
			if _, err := time.Parse(fm.TimeLayout, ref.Format(fm.TimeLayout)); err != nil ||
				ref.Format(fm.TimeLayout) == fm.TimeLayout {
				return field{}, fmt.Errorf("time_layout %q is not a Go time layout (nor rfc3339, unix, unix_ms)", fm.TimeLayout)
			}
			f.layout = fm.TimeLayout
		}
	}
	if fm.Const != "" {
		if !utf8.ValidString(fm.Const) {
			return field{}, fmt.Errorf("const is not valid UTF-8")
		}
		vals, err := f.transform([]string{fm.Const})
		if err != nil {
			return field{}, fmt.Errorf("const: %w", err)
		}
		f.isCon, f.con = true, vals
	}
	return f, nil
}

// transform runs the value pipeline: regex, split, time layout, prefix.
func (f *field) transform(vals []string) ([]string, error) {
	out := vals[:0:0]
	for _, v := range vals {
		if f.re != nil {
			m := f.re.FindStringSubmatch(v)
			if m == nil {
				continue
			}
			v = m[1]
		}
		if f.split != "" {
			for p := range strings.SplitSeq(v, f.split) {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, f.prefix+p)
				}
			}
			continue
		}
		if v == "" {
			continue
		}
		if f.kind == event.KindTime {
			t, err := parseTime(f.layout, v)
			if err != nil {
				return nil, err
			}
			v = t
		}
		out = append(out, f.prefix+v)
	}
	return out, nil
}

func parseTime(layout, v string) (string, error) {
	switch layout {
	case "rfc3339":
		return v, nil // decode parses and checks it
	case "unix", "unix_ms":
		sec, frac, _ := strings.Cut(v, ".")
		n, err := strconv.ParseInt(sec, 10, 64)
		if err != nil || len(frac) > 9 || strings.Trim(frac, "0123456789") != "" || n <= 0 {
			return "", fmt.Errorf("want %s time, got %s", layout, quote(v))
		}
		frac += strings.Repeat("0", 9-len(frac))
		ns, _ := strconv.ParseInt(frac, 10, 64)
		var t time.Time
		if layout == "unix" {
			if n > 1<<36 {
				return "", fmt.Errorf("want unix time, got %s", quote(v))
			}
			t = time.Unix(n, ns)
		} else {
			if n > 1<<46 {
				return "", fmt.Errorf("want unix_ms time, got %s", quote(v))
			}
			t = time.UnixMilli(n).Add(time.Duration(ns / 1000))
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	t, err := time.Parse(layout, v)
	if err != nil {
		return "", fmt.Errorf("%s", err)
	}
	return t.UTC().Format(time.RFC3339Nano), nil
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.Quote(s)
}

// Name returns the mapping's name.
func (c *Compiled) Name() string { return c.name }

// Reader reads a JSON-lines log through a mapping. It implements the
// contract of decode.Reader and is not safe for concurrent use.
type Reader struct {
	c     *Compiled
	lr    *lines.Reader
	input uint32
	dec   *decode.Decoder
	out   []byte
	top   map[string]jsontext.Value
}

// NewReader returns a Reader of r; input is stored in every event's Input
// field, maxLine bounds line length (0: decode.DefaultMaxLine).
func (c *Compiled) NewReader(r io.Reader, input uint32, maxLine int) *Reader {
	return &Reader{c: c, lr: lines.NewReader(r, maxLine), input: input, dec: decode.NewDecoder()}
}

// Line returns the number of lines consumed so far.
func (r *Reader) Line() int { return r.lr.Line() }

// Next decodes the next non-blank line into ev: nil with ev filled, a
// *decode.LineError (ev zero; reading may go on), io.EOF, or a sticky read
// error.
func (r *Reader) Next(ev *event.Event) error {
	line, err := r.lr.Next()
	if err != nil {
		*ev = event.Event{}
		if le, ok := err.(*decode.LineError); ok {
			return le
		}
		return err
	}
	if err := r.Decode(line, ev); err != nil {
		le := err.(*decode.LineError)
		le.Line = r.lr.Line()
		return le
	}
	ev.Input = r.input
	ev.Line = uint32(r.lr.Line())
	return nil
}

var lenient = json.JoinOptions(jsontext.AllowDuplicateNames(true))

// Decode maps one line (a JSON object) into ev. A rejected line yields a
// *decode.LineError with Line 0 and a zero ev.
func (r *Reader) Decode(line []byte, ev *event.Event) error {
	*ev = event.Event{}
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		if len(line) > 0 && !jsontext.Value(line).IsValid(lenient) {
			return decode.JSONSyntaxError(json.Unmarshal(line, new(any), lenient))
		}
		return &decode.LineError{Code: decode.CodeInvalidJSON, Reason: "not a JSON object"}
	}
	clear(r.top)
	if err := json.Unmarshal(line, &r.top, lenient); err != nil {
		return decode.JSONSyntaxError(err)
	}
	out := append(r.out[:0], '{')
	for i := range r.c.fields {
		f := &r.c.fields[i]
		vals := f.con
		if !f.isCon {
			v, ok := lookup(r.top, f.path)
			if !ok {
				continue
			}
			raw, err := values(v, f.kind == event.KindStrings)
			if err != nil {
				return fieldErr(f, err.Error())
			}
			if vals, err = f.transform(raw); err != nil {
				return fieldErr(f, err.Error())
			}
		}
		if len(vals) == 0 {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out, _ = jsontext.AppendQuote(out, f.name)
		out = append(out, ':')
		if f.kind == event.KindStrings {
			out = append(out, '[')
			for k, v := range vals {
				if k > 0 {
					out = append(out, ',')
				}
				out, _ = jsontext.AppendQuote(out, v)
			}
			out = append(out, ']')
		} else {
			out, _ = jsontext.AppendQuote(out, vals[0])
		}
	}
	out = append(out, '}')
	if cap(out) <= 64<<10 {
		r.out = out
	}
	if err := r.dec.Decode(out, ev); err != nil {
		if le, ok := err.(*decode.LineError); ok {
			return le
		}
		return &decode.LineError{Code: decode.CodeMissingField, Reason: "no mapped fields"}
	}
	return nil
}

func fieldErr(f *field, why string) *decode.LineError {
	src := f.path
	return &decode.LineError{Code: decode.CodeInvalidField,
		Reason: fmt.Sprintf("invalid %q (from %q): %s", f.name, src, oneLine(why))}
}

func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

// lookup finds the dotted path in obj: a member named by the whole
// remaining path wins, then the shortest prefix naming an object member
// that holds the rest.
func lookup(obj map[string]jsontext.Value, path string) (jsontext.Value, bool) {
	if v, ok := obj[path]; ok {
		return v, v.Kind() != 'n'
	}
	for k := 0; k < len(path); k++ {
		if path[k] != '.' {
			continue
		}
		v, ok := obj[path[:k]]
		if !ok || v.Kind() != '{' {
			continue
		}
		var inner map[string]jsontext.Value
		if json.Unmarshal(v, &inner, lenient) != nil {
			continue
		}
		if got, ok := lookup(inner, path[k+1:]); ok {
			return got, true
		}
	}
	return nil, false
}

// values returns a JSON value as strings: a scalar as one, an array's
// scalar elements (list fields only) as several; nulls are dropped.
func values(v jsontext.Value, list bool) ([]string, error) {
	if v.Kind() == '[' {
		if !list {
			return nil, fmt.Errorf("want a string or a number, got an array")
		}
		var elems []jsontext.Value
		if err := json.Unmarshal(v, &elems, lenient); err != nil {
			return nil, err
		}
		out := make([]string, 0, len(elems))
		for _, e := range elems {
			s, ok, err := scalar(e)
			if err != nil {
				return nil, fmt.Errorf("array element: %w", err)
			}
			if ok {
				out = append(out, s)
			}
		}
		return out, nil
	}
	s, ok, err := scalar(v)
	if err != nil || !ok {
		return nil, err
	}
	return []string{s}, nil
}

func scalar(v jsontext.Value) (string, bool, error) {
	switch v.Kind() {
	case '"':
		b, err := jsontext.AppendUnquote(nil, v)
		return string(b), err == nil, err
	case '0':
		return string(v), true, nil
	case 't':
		return "true", true, nil
	case 'f':
		return "false", true, nil
	case 'n':
		return "", false, nil
	case '{':
		return "", false, fmt.Errorf("want a string or a number, got an object")
	}
	return "", false, fmt.Errorf("want a string or a number, got an array")
}
