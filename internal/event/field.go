package event

import (
	"net/netip"
	"time"
)

// FieldKind is the type of a contract field's value as returned by Field.
type FieldKind uint8

const (
	KindString  FieldKind = iota + 1 // string
	KindStrings                      // []string
	KindInt                          // int64
	KindFloat                        // float64
	KindTime                         // time.Time
	KindIP                           // netip.Addr
)

// fieldKinds lists every contract field that Field can read, by its dotted
// ECS name.
var fieldKinds = map[string]FieldKind{
	"@timestamp":                        KindTime,
	"event.dataset":                     KindString,
	"event.action":                      KindString,
	"event.id":                          KindString,
	"event.outcome":                     KindString,
	"event.provider":                    KindString,
	"user.id":                           KindString,
	"user.name":                         KindString,
	"user.roles":                        KindStrings,
	"source.ip":                         KindIP,
	"source.geo.country_iso_code":       KindString,
	"source.geo.location.lat":           KindFloat,
	"source.geo.location.lon":           KindFloat,
	"source.as.number":                  KindInt,
	"source.as.organization.name":       KindString,
	"user_agent.original":               KindString,
	"http.request.method":               KindString,
	"http.response.status_code":         KindInt,
	"http.response.body.bytes":          KindInt,
	"url.path":                          KindString,
	"url.query":                         KindString,
	"url.domain":                        KindString,
	"token.id":                          KindString,
	"token.key_id":                      KindString,
	"token.issuer":                      KindString,
	"token.issued_at":                   KindTime,
	"token.expires_at":                  KindTime,
	"records.type":                      KindString,
	"records.ids":                       KindStrings,
	"records.fields":                    KindStrings,
	"identity.id":                       KindString,
	"identity.kind":                     KindString,
	"identity.roles":                    KindStrings,
	"identity.status":                   KindString,
	"identity.terminated_at":            KindTime,
	"identity.last_active":              KindTime,
	"identity.country":                  KindString,
	"key.id":                            KindString,
	"key.status":                        KindString,
	"key.retired_at":                    KindTime,
	"key.custodians":                    KindStrings,
	"aws.cloudtrail.user_identity.type": KindString,
	"aws.cloudtrail.user_identity.session_context.session_issuer.type": KindString,
	"aws.cloudtrail.event_type":                                        KindString,
	"aws.cloudtrail.error_code":                                        KindString,
	"aws.cloudtrail.error_message":                                     KindString,
	"aws.cloudtrail.request_parameters":                                KindString,
	"aws.cloudtrail.response_elements":                                 KindString,
}

// FieldKindOf returns the kind of the contract field name (dotted ECS
// spelling), or ok=false for a name the contract does not have.
func FieldKindOf(name string) (kind FieldKind, ok bool) {
	kind, ok = fieldKinds[name]
	return kind, ok
}

// FieldNames returns every name FieldKindOf and Field accept (unordered).
func FieldNames() []string {
	out := make([]string, 0, len(fieldKinds))
	for n := range fieldKinds {
		out = append(out, n)
	}
	return out
}

// Field returns the value of the contract field name in e: a string,
// []string, int64, float64, time.Time or netip.Addr as FieldKindOf says.
// ok is false when the name is unknown or the field is absent (zero
// value, empty slice, location not given), so rules can tell "absent" from
// "empty". The returned slices are the event's own and must not be
// modified.
func (e *Event) Field(name string) (v any, ok bool) {
	switch name {
	case "@timestamp":
		return timeField(e.Time)
	case "event.dataset":
		return strField(e.Dataset)
	case "event.action":
		return strField(e.Action)
	case "event.id":
		return strField(e.ID)
	case "event.outcome":
		return strField(e.Outcome.String())
	case "event.provider":
		return strField(e.Provider)
	case "user.id":
		return strField(e.User.ID)
	case "user.name":
		return strField(e.User.Name)
	case "user.roles":
		return strsField(e.User.Roles)
	case "source.ip":
		return ipField(e.Source.IP)
	case "source.geo.country_iso_code":
		return strField(e.Source.Country)
	case "source.geo.location.lat":
		return e.Source.Lat, e.Source.Located
	case "source.geo.location.lon":
		return e.Source.Lon, e.Source.Located
	case "source.as.number":
		return intField(int64(e.Source.ASN))
	case "source.as.organization.name":
		return strField(e.Source.ASOrg)
	case "user_agent.original":
		return strField(e.UserAgent)
	case "http.request.method":
		return strField(e.HTTP.Method)
	case "http.response.status_code":
		return intField(int64(e.HTTP.StatusCode))
	case "http.response.body.bytes":
		return intField(e.HTTP.BodyBytes)
	case "url.path":
		return strField(e.URLPath)
	case "url.query":
		return strField(e.URLQuery)
	case "url.domain":
		return strField(e.URLDomain)
	case "token.id":
		return strField(e.Token.ID)
	case "token.key_id":
		return strField(e.Token.KeyID)
	case "token.issuer":
		return strField(e.Token.Issuer)
	case "token.issued_at":
		return timeField(e.Token.IssuedAt)
	case "token.expires_at":
		return timeField(e.Token.ExpiresAt)
	case "records.type":
		return strField(e.Records.Type)
	case "records.ids":
		return strsField(e.Records.IDs)
	case "records.fields":
		return strsField(e.Records.Fields)
	case "identity.id":
		return strField(e.Identity.ID)
	case "identity.kind":
		return strField(e.Identity.Kind)
	case "identity.roles":
		return strsField(e.Identity.Roles)
	case "identity.status":
		return strField(e.Identity.Status)
	case "identity.terminated_at":
		return timeField(e.Identity.TerminatedAt)
	case "identity.last_active":
		return timeField(e.Identity.LastActive)
	case "identity.country":
		return strField(e.Identity.Country)
	case "key.id":
		return strField(e.Key.ID)
	case "key.status":
		return strField(e.Key.Status)
	case "key.retired_at":
		return timeField(e.Key.RetiredAt)
	case "key.custodians":
		return strsField(e.Key.Custodians)
	case "aws.cloudtrail.user_identity.type":
		return strField(e.CloudTrail.IdentityType)
	case "aws.cloudtrail.user_identity.session_context.session_issuer.type":
		return strField(e.CloudTrail.IssuerType)
	case "aws.cloudtrail.event_type":
		return strField(e.CloudTrail.EventType)
	case "aws.cloudtrail.error_code":
		return strField(e.CloudTrail.ErrorCode)
	case "aws.cloudtrail.error_message":
		return strField(e.CloudTrail.ErrorMessage)
	case "aws.cloudtrail.request_parameters":
		return strField(e.CloudTrail.RequestParameters)
	case "aws.cloudtrail.response_elements":
		return strField(e.CloudTrail.ResponseElements)
	}
	return nil, false
}

func strField(s string) (any, bool)     { return s, s != "" }
func strsField(s []string) (any, bool)  { return s, len(s) > 0 }
func intField(n int64) (any, bool)      { return n, n != 0 }
func timeField(t time.Time) (any, bool) { return t, !t.IsZero() }
func ipField(a netip.Addr) (any, bool)  { return a, a.IsValid() }

// stringGetters read the string fields without boxing.
var stringGetters = map[string]func(*Event) string{
	"event.dataset":                     func(e *Event) string { return e.Dataset },
	"event.action":                      func(e *Event) string { return e.Action },
	"event.id":                          func(e *Event) string { return e.ID },
	"event.outcome":                     func(e *Event) string { return e.Outcome.String() },
	"event.provider":                    func(e *Event) string { return e.Provider },
	"user.id":                           func(e *Event) string { return e.User.ID },
	"user.name":                         func(e *Event) string { return e.User.Name },
	"source.geo.country_iso_code":       func(e *Event) string { return e.Source.Country },
	"source.as.organization.name":       func(e *Event) string { return e.Source.ASOrg },
	"user_agent.original":               func(e *Event) string { return e.UserAgent },
	"http.request.method":               func(e *Event) string { return e.HTTP.Method },
	"url.path":                          func(e *Event) string { return e.URLPath },
	"url.query":                         func(e *Event) string { return e.URLQuery },
	"url.domain":                        func(e *Event) string { return e.URLDomain },
	"token.id":                          func(e *Event) string { return e.Token.ID },
	"token.key_id":                      func(e *Event) string { return e.Token.KeyID },
	"token.issuer":                      func(e *Event) string { return e.Token.Issuer },
	"records.type":                      func(e *Event) string { return e.Records.Type },
	"identity.id":                       func(e *Event) string { return e.Identity.ID },
	"identity.kind":                     func(e *Event) string { return e.Identity.Kind },
	"identity.status":                   func(e *Event) string { return e.Identity.Status },
	"identity.country":                  func(e *Event) string { return e.Identity.Country },
	"key.id":                            func(e *Event) string { return e.Key.ID },
	"key.status":                        func(e *Event) string { return e.Key.Status },
	"aws.cloudtrail.user_identity.type": func(e *Event) string { return e.CloudTrail.IdentityType },
	"aws.cloudtrail.user_identity.session_context.session_issuer.type": func(e *Event) string { return e.CloudTrail.IssuerType },
	"aws.cloudtrail.event_type":                                        func(e *Event) string { return e.CloudTrail.EventType },
	"aws.cloudtrail.error_code":                                        func(e *Event) string { return e.CloudTrail.ErrorCode },
	"aws.cloudtrail.error_message":                                     func(e *Event) string { return e.CloudTrail.ErrorMessage },
	"aws.cloudtrail.request_parameters":                                func(e *Event) string { return e.CloudTrail.RequestParameters },
	"aws.cloudtrail.response_elements":                                 func(e *Event) string { return e.CloudTrail.ResponseElements },
}

// StringGetter returns a reader of the string field name (KindString) that
// does not allocate, or ok=false for a name that is not a string field. It
// reads "" where Field reports the field absent.
func StringGetter(name string) (get func(*Event) string, ok bool) {
	get, ok = stringGetters[name]
	return get, ok
}

// IntGetter returns a reader of the integer field name (KindInt) that does
// not allocate, or ok=false for another name. It reads 0 where Field
// reports the field absent.
func IntGetter(name string) (get func(*Event) int64, ok bool) {
	switch name {
	case "http.response.status_code":
		return func(e *Event) int64 { return int64(e.HTTP.StatusCode) }, true
	case "http.response.body.bytes":
		return func(e *Event) int64 { return e.HTTP.BodyBytes }, true
	case "source.as.number":
		return func(e *Event) int64 { return int64(e.Source.ASN) }, true
	}
	return nil, false
}

// StringsGetter returns a reader of the list field name (KindStrings),
// or ok=false for another name. The slice is the event's own.
func StringsGetter(name string) (get func(*Event) []string, ok bool) {
	switch name {
	case "user.roles":
		return func(e *Event) []string { return e.User.Roles }, true
	case "records.ids":
		return func(e *Event) []string { return e.Records.IDs }, true
	case "records.fields":
		return func(e *Event) []string { return e.Records.Fields }, true
	case "identity.roles":
		return func(e *Event) []string { return e.Identity.Roles }, true
	case "key.custodians":
		return func(e *Event) []string { return e.Key.Custodians }, true
	}
	return nil, false
}
