package sigma

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// accessor reads one contract field of an event without boxing it in an
// interface (event.Event.Field returns any, which allocates for strings and
// slices). event.Field and event.FieldKindOf stay the source of truth:
// accessors are chosen by the kind FieldKindOf reports, fields without a
// fast accessor here fall back to Event.Field, and TestAccessorsAgreeWithField
// holds every fast accessor to Event.Field's answer.
type accessor struct {
	name string
	kind event.FieldKind
	str  func(*event.Event) string
	strs func(*event.Event) []string
	num  func(*event.Event) int64
	flt  func(*event.Event) (float64, bool)
	ip   func(*event.Event) netip.Addr
	tm   func(*event.Event) time.Time
}

var fastStr = map[string]func(*event.Event) string{
	"event.dataset":               func(e *event.Event) string { return e.Dataset },
	"event.action":                func(e *event.Event) string { return e.Action },
	"event.id":                    func(e *event.Event) string { return e.ID },
	"event.outcome":               func(e *event.Event) string { return e.Outcome.String() },
	"event.provider":              func(e *event.Event) string { return e.Provider },
	"user.id":                     func(e *event.Event) string { return e.User.ID },
	"user.name":                   func(e *event.Event) string { return e.User.Name },
	"source.geo.country_iso_code": func(e *event.Event) string { return e.Source.Country },
	"source.as.organization.name": func(e *event.Event) string { return e.Source.ASOrg },
	"user_agent.original":         func(e *event.Event) string { return e.UserAgent },
	"http.request.method":         func(e *event.Event) string { return e.HTTP.Method },
	"url.path":                    func(e *event.Event) string { return e.URLPath },
	"url.query":                   func(e *event.Event) string { return e.URLQuery },
	"url.domain":                  func(e *event.Event) string { return e.URLDomain },
	"token.id":                    func(e *event.Event) string { return e.Token.ID },
	"token.key_id":                func(e *event.Event) string { return e.Token.KeyID },
	"token.issuer":                func(e *event.Event) string { return e.Token.Issuer },
	"records.type":                func(e *event.Event) string { return e.Records.Type },
	"identity.id":                 func(e *event.Event) string { return e.Identity.ID },
	"identity.kind":               func(e *event.Event) string { return e.Identity.Kind },
	"identity.status":             func(e *event.Event) string { return e.Identity.Status },
	"identity.country":            func(e *event.Event) string { return e.Identity.Country },
	"key.id":                      func(e *event.Event) string { return e.Key.ID },
	"key.status":                  func(e *event.Event) string { return e.Key.Status },
}

var fastStrs = map[string]func(*event.Event) []string{
	"user.roles":     func(e *event.Event) []string { return e.User.Roles },
	"records.ids":    func(e *event.Event) []string { return e.Records.IDs },
	"records.fields": func(e *event.Event) []string { return e.Records.Fields },
	"identity.roles": func(e *event.Event) []string { return e.Identity.Roles },
	"key.custodians": func(e *event.Event) []string { return e.Key.Custodians },
}

var fastInt = map[string]func(*event.Event) int64{
	"source.as.number":          func(e *event.Event) int64 { return int64(e.Source.ASN) },
	"http.response.status_code": func(e *event.Event) int64 { return int64(e.HTTP.StatusCode) },
	"http.response.body.bytes":  func(e *event.Event) int64 { return e.HTTP.BodyBytes },
}

var fastFloat = map[string]func(*event.Event) (float64, bool){
	"source.geo.location.lat": func(e *event.Event) (float64, bool) { return e.Source.Lat, e.Source.Located },
	"source.geo.location.lon": func(e *event.Event) (float64, bool) { return e.Source.Lon, e.Source.Located },
}

var fastIP = map[string]func(*event.Event) netip.Addr{
	"source.ip": func(e *event.Event) netip.Addr { return e.Source.IP },
}

var fastTime = map[string]func(*event.Event) time.Time{
	"@timestamp":             func(e *event.Event) time.Time { return e.Time },
	"token.issued_at":        func(e *event.Event) time.Time { return e.Token.IssuedAt },
	"token.expires_at":       func(e *event.Event) time.Time { return e.Token.ExpiresAt },
	"identity.terminated_at": func(e *event.Event) time.Time { return e.Identity.TerminatedAt },
	"identity.last_active":   func(e *event.Event) time.Time { return e.Identity.LastActive },
	"key.retired_at":         func(e *event.Event) time.Time { return e.Key.RetiredAt },
}

// accessorFor returns the accessor of the contract field name, or ok=false
// when event.FieldKindOf does not know it.
func accessorFor(name string) (accessor, bool) {
	switch name {
	case targetField:
		return accessor{name: name, kind: event.KindString, str: requestTarget}, true
	case extensionField:
		return accessor{name: name, kind: event.KindString, str: urlExtension}, true
	}
	for _, o := range jsonObjects {
		if rest, ok := strings.CutPrefix(name, o.field+"."); ok {
			path := strings.Split(rest, ".")
			if slices.Contains(path, "") {
				return accessor{}, false
			}
			get := o.get
			return accessor{name: name, kind: event.KindStrings, strs: func(e *event.Event) []string {
				return jsonPathValues(get(e), path)
			}}, true
		}
	}
	kind, ok := event.FieldKindOf(name)
	if !ok {
		return accessor{}, false
	}
	a := accessor{name: name, kind: kind}
	switch kind {
	case event.KindString:
		a.str = fastStr[name]
		if a.str == nil {
			a.str = func(e *event.Event) string { v, _ := e.Field(name); s, _ := v.(string); return s }
		}
	case event.KindStrings:
		a.strs = fastStrs[name]
		if a.strs == nil {
			a.strs = func(e *event.Event) []string { v, _ := e.Field(name); s, _ := v.([]string); return s }
		}
	case event.KindInt:
		a.num = fastInt[name]
		if a.num == nil {
			a.num = func(e *event.Event) int64 { v, _ := e.Field(name); n, _ := v.(int64); return n }
		}
	case event.KindFloat:
		a.flt = fastFloat[name]
		if a.flt == nil {
			a.flt = func(e *event.Event) (float64, bool) { v, ok := e.Field(name); f, _ := v.(float64); return f, ok }
		}
	case event.KindIP:
		a.ip = fastIP[name]
		if a.ip == nil {
			a.ip = func(e *event.Event) netip.Addr { v, _ := e.Field(name); ip, _ := v.(netip.Addr); return ip }
		}
	case event.KindTime:
		a.tm = fastTime[name]
		if a.tm == nil {
			a.tm = func(e *event.Event) time.Time { v, _ := e.Field(name); t, _ := v.(time.Time); return t }
		}
	default:
		return accessor{}, false
	}
	return a, true
}

// kindName spells a field kind for messages.
func kindName(k event.FieldKind) string {
	switch k {
	case event.KindString:
		return "string"
	case event.KindStrings:
		return "list of strings"
	case event.KindInt:
		return "integer"
	case event.KindFloat:
		return "number"
	case event.KindTime:
		return "time"
	case event.KindIP:
		return "IP address"
	}
	return "unknown"
}

// urlExtension is the extension of url.path's last segment without the
// dot: "php" for "/a/shell.php", "" for "/a/", "/a.b/c" and "/a/.htaccess"
// (a leading dot names a file, not an extension).
func urlExtension(e *event.Event) string {
	p := e.URLPath
	seg := p[strings.LastIndexByte(p, '/')+1:]
	k := strings.LastIndexByte(seg, '.')
	if k <= 0 {
		return ""
	}
	return seg[k+1:]
}

// requestTarget is the request target as a web server logs it: url.path,
// then "?" and url.query when the request had a query.
func requestTarget(e *event.Event) string {
	if e.URLQuery == "" {
		return e.URLPath
	}
	return e.URLPath + "?" + e.URLQuery
}

// jsonObjects are the contract fields that hold a JSON object as text,
// whose members Sigma rules name by path (requestParameters.attribute).
var jsonObjects = []struct {
	field string
	get   func(*event.Event) string
}{
	{"aws.cloudtrail.request_parameters", func(e *event.Event) string { return e.CloudTrail.RequestParameters }},
	{"aws.cloudtrail.response_elements", func(e *event.Event) string { return e.CloudTrail.ResponseElements }},
}

// jsonPathValues returns the values at path in the JSON object doc, as
// text: strings as they are, numbers as written, true and false; an
// object or array at the end of the path as compact JSON, except that an
// array's elements are the values (as Sigma matches a list). An array on
// the way is walked element by element, so
// "containerDefinitions.command" collects every definition's commands.
// null, absent members and a doc that does not parse give nothing. It
// parses doc on every call: only events whose earlier conditions matched
// pay for it.
func jsonPathValues(doc string, path []string) []string {
	if doc == "" {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(doc))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil
	}
	var out []string
	var walk func(v any, path []string)
	walk = func(v any, path []string) {
		switch x := v.(type) {
		case nil:
		case []any:
			for _, e := range x {
				walk(e, path)
			}
		case map[string]any:
			if len(path) == 0 {
				b, _ := json.Marshal(x)
				out = append(out, string(b))
				return
			}
			if m, ok := x[path[0]]; ok {
				walk(m, path[1:])
			}
		case string:
			if len(path) == 0 {
				out = append(out, x)
			}
		case json.Number:
			if len(path) == 0 {
				out = append(out, x.String())
			}
		case bool:
			if len(path) == 0 {
				out = append(out, strconv.FormatBool(x))
			}
		}
	}
	walk(v, path)
	return out
}
