package sigma

import (
	"strings"

	"github.com/haechi-sec/haechi/internal/event"
)

// FieldMapping maps one Sigma field name of a logsource onto a contract
// field. Contract is empty when the field is known but cannot be
// evaluated: a rule using it is rejected with an *UnsupportedError that
// quotes Note.
type FieldMapping struct {
	Sigma    string // field name as written in Sigma rules
	Contract string // dotted contract field name (docs/events.md); "" = unsupported
	Note     string // caveat or, for an unsupported field, the reason
	// Weakened marks a mapped field whose contract counterpart holds less
	// than the Sigma field (Note says what is missing): a rule using it
	// loads, and Rule.Weakened names the use, so `rules lint --sigma` can
	// list every rule that runs weaker than written.
	Weakened bool
}

// LogsourceMapping is one supported Sigma logsource: which logsource
// attributes select it, which events a rule on it sees, and its fields.
type LogsourceMapping struct {
	Name      string    // short name used in docs and messages
	Logsource Logsource // the attributes a rule must carry (see Matches)
	// Datasets and DatasetPrefixes restrict the events a rule sees by
	// event.dataset (exact values, or prefixes). Both empty: every event.
	Datasets        []string
	DatasetPrefixes []string
	// Keywords are the contract fields a Sigma keyword search (a list of
	// plain values under a search identifier) looks in; empty means keyword
	// searches are unsupported for this logsource. KeywordsNote says what
	// a keyword search does not see (Sigma searches the whole log line): a
	// rule with a keyword search loads, weakened (Rule.Weakened).
	Keywords     []string
	KeywordsNote string
	Fields       []FieldMapping
}

// extensionField is the pseudo contract target of c-uri-extension: the
// extension of url.path's last segment (ECS url.extension), derived, not
// sent.
const extensionField = "<url.extension>"

// targetField is the pseudo contract target of the URI fields (cs-uri,
// c-uri, uri, url): the request target as a web server logs it, url.path
// followed by "?" and url.query when the request had a query (the one
// accessor here that allocates, and only for a request with a query).
const targetField = "<url.path?url.query>"

var notInContract = "not in the event contract"

// Mappings returns the supported logsources and their field tables, in the
// order docs/sigma.md lists them. The result is a fresh copy.
func Mappings() []LogsourceMapping {
	web := func(category string, datasets, prefixes []string) LogsourceMapping {
		// A web server logs the request target, path and query; a proxy
		// logs the absolute URL, whose scheme and host url.path and
		// url.query do not hold.
		uriNote, uriWeak := "the request target: url.path, and ?url.query when there is a query", false
		if category == "proxy" {
			uriNote, uriWeak = "url.path, and ?url.query when there is a query: no scheme or host (a proxy logs the absolute URL; its host is cs-host)", true
		}
		return LogsourceMapping{
			Name:            category,
			Logsource:       Logsource{Category: category},
			Datasets:        datasets,
			DatasetPrefixes: prefixes,
			Keywords:        []string{targetField, "user_agent.original"},
			KeywordsNote:    "a keyword search looks in the request target (url.path?url.query) and user_agent.original, not in the rest of the log line (referrer, status, cookies)",
			Fields: []FieldMapping{
				{Sigma: "c-ip", Contract: "source.ip"},
				{Sigma: "src_ip", Contract: "source.ip"},
				{Sigma: "ClientIP", Contract: "source.ip"},
				{Sigma: "cs-method", Contract: "http.request.method"},
				{Sigma: "cs-uri-stem", Contract: "url.path"},
				{Sigma: "c-uri-stem", Contract: "url.path"},
				{Sigma: "cs-uri-query", Contract: "url.query", Note: "the query string as logged, without \"?\""},
				{Sigma: "c-uri-query", Contract: "url.query", Note: "the query string as logged, without \"?\""},
				{Sigma: "cs-uri", Contract: targetField, Note: uriNote, Weakened: uriWeak},
				{Sigma: "c-uri", Contract: targetField, Note: uriNote, Weakened: uriWeak},
				{Sigma: "uri", Contract: targetField, Note: uriNote, Weakened: uriWeak},
				{Sigma: "url", Contract: targetField, Note: uriNote, Weakened: uriWeak},
				{Sigma: "cs-host", Contract: "url.domain", Note: "the Host header or the host of an absolute URL, without port"},
				{Sigma: "c-uri-extension", Contract: extensionField, Note: "the extension of url.path's last segment, without the dot (ECS url.extension)"},
				{Sigma: "sc-status", Contract: "http.response.status_code"},
				{Sigma: "cs-user-agent", Contract: "user_agent.original"},
				{Sigma: "c-useragent", Contract: "user_agent.original"},
				{Sigma: "cs-username", Contract: "user.id"},
				{Sigma: "sc-bytes", Contract: "http.response.body.bytes", Note: "body bytes; Sigma's count may include headers", Weakened: true},
				{Sigma: "cs-bytes", Note: "request size is " + notInContract},
				{Sigma: "cs-referrer", Note: notInContract},
				{Sigma: "cs-referer", Note: notInContract},
				{Sigma: "cs-cookie", Note: notInContract},
				{Sigma: "cs-version", Note: notInContract},
				{Sigma: "r-dns", Note: notInContract},
				{Sigma: "dst_ip", Note: notInContract},
			},
		}
	}
	return []LogsourceMapping{
		// webserver rules are written for the logs of the server that
		// receives the requests: haechi's access logs.
		web("webserver", []string{event.DatasetGateway}, []string{"web.", "nginx"}),
		// proxy rules are written for an outbound forward proxy: the
		// requests the organisation's own machines send out. Their lists
		// (crawler and framework user agents, paste sites, dynamic DNS)
		// mean something else on a server's inbound traffic, where
		// Googlebot is a visitor, not malware. They see only proxy.*
		// datasets, e.g. a mapping input of Squid or Zscaler logs.
		web("proxy", nil, []string{ProxyDatasetPrefix}),
		{
			Name:      "aws cloudtrail",
			Logsource: Logsource{Product: "aws", Service: "cloudtrail"},
			Datasets:  []string{"aws.cloudtrail"},
			Fields: []FieldMapping{
				{Sigma: "eventName", Contract: "event.action"},
				{Sigma: "eventSource", Contract: "event.provider"},
				{Sigma: "eventID", Contract: "event.id"},
				{Sigma: "eventType", Contract: "aws.cloudtrail.event_type"},
				{Sigma: "sourceIPAddress", Contract: "source.ip", Note: "an AWS service name there (e.g. \"s3.amazonaws.com\") is not an address and is absent", Weakened: true},
				{Sigma: "userAgent", Contract: "user_agent.original"},
				{Sigma: "userIdentity.arn", Contract: "user.id"},
				{Sigma: "userIdentity.accessKeyId", Contract: "token.id"},
				{Sigma: "userIdentity.type", Contract: "aws.cloudtrail.user_identity.type"},
				{Sigma: "userIdentity.userName", Contract: "user.name", Note: "for AssumedRole the CloudTrail reader puts the role session name there"},
				{Sigma: "userIdentity.sessionContext.sessionIssuer.type", Contract: "aws.cloudtrail.user_identity.session_context.session_issuer.type"},
				{Sigma: "errorCode", Contract: "aws.cloudtrail.error_code", Note: "absent when the call succeeded"},
				{Sigma: "errorMessage", Contract: "aws.cloudtrail.error_message"},
				{Sigma: "requestParameters", Contract: "aws.cloudtrail.request_parameters", Note: "the object as compact JSON text"},
				{Sigma: "requestParameters.*", Contract: "aws.cloudtrail.request_parameters.*", Note: "the values at that path of the object; through arrays, every element's"},
				{Sigma: "responseElements", Contract: "aws.cloudtrail.response_elements", Note: "the object as compact JSON text"},
				{Sigma: "responseElements.*", Contract: "aws.cloudtrail.response_elements.*", Note: "the values at that path of the object; through arrays, every element's"},
				{Sigma: "awsRegion", Note: notInContract},
				{Sigma: "recipientAccountId", Note: notInContract},
				{Sigma: "userIdentity.principalId", Note: notInContract},
				{Sigma: "userIdentity.sessionContext.*", Note: notInContract},
				{Sigma: "additionalEventData.*", Note: notInContract},
			},
		},
		{
			Name:      "haechi",
			Logsource: Logsource{Product: "haechi"},
		},
	}
}

// ProxyDatasetPrefix is the event.dataset prefix of forward-proxy logs,
// the only events `category: proxy` rules see (e.g. "proxy.squid").
const ProxyDatasetPrefix = "proxy."

// Matches reports whether a rule's logsource selects m. webserver and
// proxy take the category alone; aws/cloudtrail takes product and service
// alone; product haechi takes an optional service, which is then the
// event.dataset the rule sees.
func (m *LogsourceMapping) Matches(ls Logsource) bool {
	if m.Logsource.Product == "haechi" {
		return ls.Category == "" && ls.Product == "haechi"
	}
	return ls.Category == m.Logsource.Category && ls.Product == m.Logsource.Product && ls.Service == m.Logsource.Service
}

// lookup returns the mapping of a Sigma field name: its own table first,
// then a contract field name used directly.
func (m *LogsourceMapping) lookup(name string) (FieldMapping, bool) {
	for _, f := range m.Fields {
		if f.Sigma == name {
			return f, true
		}
		if prefix, ok := strings.CutSuffix(f.Sigma, "*"); ok && strings.HasPrefix(name, prefix) {
			fm := FieldMapping{Sigma: name, Note: f.Note, Weakened: f.Weakened}
			if c, ok := strings.CutSuffix(f.Contract, "*"); ok {
				fm.Contract = c + strings.TrimPrefix(name, prefix)
			}
			return fm, true
		}
	}
	if _, ok := event.FieldKindOf(name); ok {
		return FieldMapping{Sigma: name, Contract: name}, true
	}
	return FieldMapping{}, false
}

// datasetFilter is the compiled event.dataset restriction of a logsource.
type datasetFilter struct {
	exact    []string
	prefixes []string
}

func (f *datasetFilter) accepts(ds string) bool {
	if len(f.exact) == 0 && len(f.prefixes) == 0 {
		return true
	}
	for _, e := range f.exact {
		if ds == e {
			return true
		}
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(ds, p) {
			return true
		}
	}
	return false
}
