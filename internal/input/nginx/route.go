package nginx

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Route maps requests whose method and path match a template to the
// personal-data records they touch.
//
// Path is a template of slash-separated segments; a segment is either
// literal text, matched exactly (case-sensitive), or a parameter {name},
// matching any one non-empty segment: "/api/v2/members/{customer}/addresses".
// Empty segments (doubled or trailing slashes) are ignored on both sides, and
// the query string is never part of the match. Method is an HTTP method
// (case-insensitive) or "" or "*" for any.
type Route struct {
	Method     string   `json:"method,omitempty" yaml:"method,omitempty"`
	Path       string   `json:"path" yaml:"path"`
	RecordType string   `json:"record_type,omitempty" yaml:"record_type,omitempty"` // records.type of a matching request
	IDParam    string   `json:"id_param,omitempty" yaml:"id_param,omitempty"`       // the {param} whose value is the record id (records.ids)
	Action     string   `json:"action,omitempty" yaml:"action,omitempty"`           // event.action of a matching request; "" keeps the default
	Fields     []string `json:"fields,omitempty" yaml:"fields,omitempty"`           // records.fields of a matching request
	// UserParam optionally names the {param} that identifies the acting
	// principal (a customer reading their own data). It sets user.id
	// (with the user prefix) only when the log line names no user itself.
	UserParam string `json:"user_param,omitempty" yaml:"user_param,omitempty"`
}

type segment struct {
	lit   string
	param bool
}

type route struct {
	method  string // upper case; "" for any
	segs    []segment
	idIdx   int // index into segs of IDParam, or -1
	userIdx int // index into segs of UserParam, or -1
	action  string
	rtype   string
	fields  []string
}

// maxSegments bounds the segments of a template and of a matched path;
// longer paths match no route.
const maxSegments = 32

// router is an ordered list of compiled routes, bucketed by segment count:
// only templates with as many segments as the path can match, and within a
// bucket the routes keep their configured order, so the first matching
// route in configuration order wins.
type router struct {
	byLen [maxSegments + 1][]*route
	n     int
}

func compileRoutes(routes []Route) (*router, error) {
	rt := &router{}
	for i, r := range routes {
		c, err := compileRoute(r)
		if err != nil {
			return nil, fmt.Errorf("route %d (%s %q): %w", i, orAny(r.Method), r.Path, err)
		}
		rt.byLen[len(c.segs)] = append(rt.byLen[len(c.segs)], c)
		rt.n++
	}
	return rt, nil
}

func orAny(m string) string {
	if m == "" {
		return "*"
	}
	return m
}

func compileRoute(r Route) (*route, error) {
	if !strings.HasPrefix(r.Path, "/") {
		return nil, fmt.Errorf("path must start with /")
	}
	if strings.ContainsAny(r.Path, "?# ") {
		return nil, fmt.Errorf("path must not contain '?', '#' or spaces")
	}
	c := &route{idIdx: -1, userIdx: -1, action: r.Action, rtype: r.RecordType}
	if len(r.Fields) > 0 {
		c.fields = append([]string(nil), r.Fields...)
	}
	switch m := strings.ToUpper(strings.TrimSpace(r.Method)); m {
	case "", "*":
	default:
		for _, ch := range m {
			if ch < 'A' || ch > 'Z' {
				return nil, fmt.Errorf("invalid method %q", r.Method)
			}
		}
		c.method = m
	}
	seen := map[string]bool{}
	for s := range strings.SplitSeq(r.Path, "/") {
		if s == "" {
			continue
		}
		if strings.HasPrefix(s, "{") || strings.HasSuffix(s, "}") {
			name, ok := strings.CutPrefix(s, "{")
			name, ok2 := strings.CutSuffix(name, "}")
			if !ok || !ok2 || name == "" || strings.ContainsAny(name, "{}") {
				return nil, fmt.Errorf("malformed parameter segment %q (want {name})", s)
			}
			if seen[name] {
				return nil, fmt.Errorf("parameter {%s} given twice", name)
			}
			seen[name] = true
			if name == r.IDParam {
				c.idIdx = len(c.segs)
			}
			if name == r.UserParam {
				c.userIdx = len(c.segs)
			}
			c.segs = append(c.segs, segment{lit: name, param: true})
		} else {
			if strings.ContainsAny(s, "{}") {
				return nil, fmt.Errorf("malformed segment %q: a parameter must be a whole segment", s)
			}
			c.segs = append(c.segs, segment{lit: s})
		}
		if len(c.segs) > maxSegments {
			return nil, fmt.Errorf("more than %d segments", maxSegments)
		}
	}
	if r.IDParam != "" && c.idIdx < 0 {
		return nil, fmt.Errorf("id_param %q is not a {parameter} of the path", r.IDParam)
	}
	if r.UserParam != "" && c.userIdx < 0 {
		return nil, fmt.Errorf("user_param %q is not a {parameter} of the path", r.UserParam)
	}
	if r.IDParam != "" && r.RecordType == "" {
		return nil, fmt.Errorf("id_param %q needs a record_type", r.IDParam)
	}
	if r.RecordType == "" && r.Action == "" && len(r.Fields) == 0 && r.UserParam == "" {
		return nil, fmt.Errorf("route sets nothing (give record_type, action, fields or user_param)")
	}
	return c, nil
}

// match returns the first route matching method and path (without the
// query) and the path's segment bounds, or nil.
func (rt *router) match(method, path string, bounds *[maxSegments][2]int) (*route, int) {
	if rt == nil || rt.n == 0 {
		return nil, 0
	}
	n := 0
	for i := 0; i < len(path); {
		for i < len(path) && path[i] == '/' {
			i++
		}
		if i == len(path) {
			break
		}
		j := i
		for j < len(path) && path[j] != '/' {
			j++
		}
		if n == maxSegments {
			return nil, 0
		}
		bounds[n] = [2]int{i, j}
		n++
		i = j
	}
next:
	for _, r := range rt.byLen[n] {
		if r.method != "" && r.method != method {
			continue
		}
		for k, s := range r.segs {
			if !s.param && s.lit != path[bounds[k][0]:bounds[k][1]] {
				continue next
			}
		}
		return r, n
	}
	return nil, 0
}

// param returns the value of segment k, percent-decoded when it holds an
// escape that decodes; otherwise as written.
func param(path string, b [2]int) string {
	s := path[b[0]:b[1]]
	if strings.IndexByte(s, '%') >= 0 {
		if u, err := url.PathUnescape(s); err == nil && utf8.ValidString(u) {
			return u
		}
	}
	return s
}
