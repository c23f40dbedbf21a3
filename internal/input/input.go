// Package input opens the log formats haechi reads — its own event
// contract (ECS NDJSON) and real-world logs (AWS CloudTrail, nginx combined
// and JSON access logs, identity providers' logs, and any JSON-lines log
// through a declarative mapping) — behind one Reader interface, so every
// format feeds the same pipeline as event.Event values. docs/inputs.md
// describes the formats.
//
// The packages below it do the work: internal/decode (ecs),
// internal/input/cloudtrail, internal/input/nginx, internal/input/idp
// (okta, keycloak, entra, ocsf), internal/input/mapping.
package input

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input/cloudtrail"
	"github.com/haechi-sec/haechi/internal/input/idp"
	"github.com/haechi-sec/haechi/internal/input/mapping"
	"github.com/haechi-sec/haechi/internal/input/nginx"
)

// Reader reads events from one input.
//
// Next decodes the next entry into ev. It returns nil with ev filled
// (ev.Input and ev.Line set), a *decode.LineError for an entry it rejects
// (ev is then zero and the next call goes on with the next entry), io.EOF
// at the end of the input, or another error (a read error, or a stream it
// cannot resynchronise) that every later call returns again. Line returns
// the position of the last entry read: its 1-based line number, or for
// CloudTrail files its 1-based record index. A Reader is not safe for
// concurrent use, and the events it returns must not be modified.
type Reader interface {
	Next(ev *event.Event) error
	Line() int
}

// Format names accepted by Open and New's Open.
const (
	FormatECS           = "ecs"
	FormatCloudTrail    = "cloudtrail"
	FormatNginx         = "nginx"
	FormatNginxJSON     = "nginx-json"
	FormatOkta          = idp.FormatOkta
	FormatKeycloak      = idp.FormatKeycloak
	FormatEntra         = idp.FormatEntra
	FormatOCSF          = idp.FormatOCSF
	FormatMappingPrefix = "mapping:"
)

// Route is a route template of the nginx formats.
type Route = nginx.Route

// Mapping and FieldMap are the declarative mapping of "mapping:NAME".
type (
	Mapping  = mapping.Mapping
	FieldMap = mapping.FieldMap
)

// NginxOptions configure the nginx and nginx-json formats; see
// nginx.Options for each field.
type NginxOptions struct {
	Dataset    string // "" means gateway.access
	Action     string // "" means http.request
	UserField  string // nginx-json: key naming the user ("" means remote_user)
	UserPrefix string // prepended to user.id, e.g. "m:"
	TokenField string // nginx-json: key holding token.id
}

// Options configure every format.
type Options struct {
	// MaxLine is the longest accepted line (or CloudTrail record) in
	// bytes; 0 means decode.DefaultMaxLine.
	MaxLine int
	// Routes are the route templates of the nginx formats, first match
	// wins.
	Routes []Route
	// Mappings are the named mappings, opened as "mapping:NAME".
	Mappings map[string]Mapping
	// Nginx configures the nginx formats.
	Nginx NginxOptions
}

// Inputs is the compiled form of Options: routes and mappings validated
// and compiled once, then any number of inputs opened. It is immutable and
// safe for concurrent use.
type Inputs struct {
	maxLine  int
	nginx    *nginx.Parser
	mappings map[string]*mapping.Compiled
}

// New validates and compiles opts. Its errors say which route or mapping
// is wrong.
func New(opts Options) (*Inputs, error) {
	p, err := nginx.New(nginx.Options{
		MaxLine:    opts.MaxLine,
		Dataset:    opts.Nginx.Dataset,
		Action:     opts.Nginx.Action,
		UserField:  opts.Nginx.UserField,
		UserPrefix: opts.Nginx.UserPrefix,
		TokenField: opts.Nginx.TokenField,
		Routes:     opts.Routes,
	})
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	in := &Inputs{maxLine: opts.MaxLine, nginx: p, mappings: map[string]*mapping.Compiled{}}
	for _, name := range slices.Sorted(maps.Keys(opts.Mappings)) {
		c, err := mapping.Compile(name, opts.Mappings[name])
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		in.mappings[name] = c
	}
	return in, nil
}

// Formats returns the format names Open accepts, sorted, with one
// "mapping:NAME" per configured mapping.
func (in *Inputs) Formats() []string {
	out := []string{FormatCloudTrail, FormatECS, FormatEntra, FormatKeycloak, FormatNginx, FormatNginxJSON, FormatOCSF, FormatOkta}
	for _, name := range slices.Sorted(maps.Keys(in.mappings)) {
		out = append(out, FormatMappingPrefix+name)
	}
	return out
}

// ErrUnknownFormat is wrapped by the error of Open for a format name it
// does not know.
var ErrUnknownFormat = errors.New("unknown input format")

// Open returns a Reader of r in the named format; input is stored in
// every event's Input field. r is read as is: the caller undoes any
// compression.
func (in *Inputs) Open(format string, r io.Reader, input uint32) (Reader, error) {
	switch format {
	case FormatECS:
		return decode.NewReader(r, input, in.maxLine), nil
	case FormatCloudTrail:
		return cloudtrail.NewReader(r, input, cloudtrail.Options{MaxRecord: in.maxLine}), nil
	case FormatNginx:
		return in.nginx.NewReader(r, input), nil
	case FormatNginxJSON:
		return in.nginx.NewJSONReader(r, input), nil
	case FormatOkta, FormatKeycloak, FormatEntra, FormatOCSF:
		return idp.NewReader(format, r, input, in.maxLine), nil
	}
	if name, ok := strings.CutPrefix(format, FormatMappingPrefix); ok {
		if c := in.mappings[name]; c != nil {
			return c.NewReader(r, input, in.maxLine), nil
		}
		if len(in.mappings) == 0 {
			return nil, fmt.Errorf("%w %q: no mappings are configured (inputs.mappings)", ErrUnknownFormat, format)
		}
	}
	return nil, fmt.Errorf("%w %q (valid: %s)", ErrUnknownFormat, format, strings.Join(in.Formats(), ", "))
}

// Open compiles opts and opens r in the named format: New(opts) then
// Open. Callers that open many inputs should call New once.
func Open(format string, r io.Reader, input uint32, opts Options) (Reader, error) {
	in, err := New(opts)
	if err != nil {
		return nil, err
	}
	return in.Open(format, r, input)
}
