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
	// searches are unsupported for this logsource.
	Keywords []string
	Fields   []FieldMapping
}

// errorCodeField is the pseudo contract target of CloudTrail's errorCode:
// the contract keeps no error code, only event.outcome, so errorCode
// supports presence tests only (see compileErrorCode).
const errorCodeField = "<errorCode>"

var notInContract = "not in the event contract"

// Mappings returns the supported logsources and their field tables, in the
// order docs/sigma.md lists them. The result is a fresh copy.
func Mappings() []LogsourceMapping {
	web := func(category string) LogsourceMapping {
		return LogsourceMapping{
			Name:            category,
			Logsource:       Logsource{Category: category},
			Datasets:        []string{event.DatasetGateway},
			DatasetPrefixes: []string{"web.", "nginx"},
			Keywords:        []string{"url.path", "user_agent.original"},
			Fields: []FieldMapping{
				{Sigma: "c-ip", Contract: "source.ip"},
				{Sigma: "src_ip", Contract: "source.ip"},
				{Sigma: "ClientIP", Contract: "source.ip"},
				{Sigma: "cs-method", Contract: "http.request.method"},
				{Sigma: "cs-uri-stem", Contract: "url.path"},
				{Sigma: "c-uri-stem", Contract: "url.path"},
				{Sigma: "cs-uri", Contract: "url.path", Note: "path only: the contract has no query string, scheme or host"},
				{Sigma: "c-uri", Contract: "url.path", Note: "path only: the contract has no query string, scheme or host"},
				{Sigma: "uri", Contract: "url.path", Note: "path only"},
				{Sigma: "url", Contract: "url.path", Note: "path only"},
				{Sigma: "cs-uri-query", Note: "query strings are " + notInContract},
				{Sigma: "c-uri-query", Note: "query strings are " + notInContract},
				{Sigma: "c-uri-extension", Note: notInContract},
				{Sigma: "sc-status", Contract: "http.response.status_code"},
				{Sigma: "cs-user-agent", Contract: "user_agent.original"},
				{Sigma: "c-useragent", Contract: "user_agent.original"},
				{Sigma: "cs-username", Contract: "user.id"},
				{Sigma: "sc-bytes", Contract: "http.response.body.bytes", Note: "body bytes; Sigma's count may include headers"},
				{Sigma: "cs-bytes", Note: "request size is " + notInContract},
				{Sigma: "cs-host", Note: notInContract},
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
		web("webserver"),
		web("proxy"),
		{
			Name:      "aws cloudtrail",
			Logsource: Logsource{Product: "aws", Service: "cloudtrail"},
			Datasets:  []string{"aws.cloudtrail"},
			Fields: []FieldMapping{
				{Sigma: "eventName", Contract: "event.action"},
				{Sigma: "eventSource", Contract: "event.provider"},
				{Sigma: "eventID", Contract: "event.id"},
				{Sigma: "sourceIPAddress", Contract: "source.ip", Note: "an AWS service name there (e.g. \"s3.amazonaws.com\") is not an address and is absent"},
				{Sigma: "userAgent", Contract: "user_agent.original"},
				{Sigma: "userIdentity.arn", Contract: "user.id"},
				{Sigma: "userIdentity.accessKeyId", Contract: "token.id"},
				{Sigma: "errorCode", Contract: errorCodeField, Note: "presence only: `errorCode|exists: true` is event.outcome failure; `errorCode|exists: false`, `errorCode: null` and `errorCode: ''` are any other outcome; a specific error code is unsupported"},
				{Sigma: "errorMessage", Note: notInContract},
				{Sigma: "awsRegion", Note: notInContract},
				{Sigma: "eventType", Note: notInContract},
				{Sigma: "recipientAccountId", Note: notInContract},
				{Sigma: "userIdentity.type", Note: notInContract},
				{Sigma: "userIdentity.principalId", Note: notInContract},
				{Sigma: "userIdentity.userName", Contract: "user.name", Note: "for AssumedRole the CloudTrail reader puts the role session name there"},
				{Sigma: "userIdentity.sessionContext.*", Note: notInContract},
				{Sigma: "requestParameters.*", Note: notInContract},
				{Sigma: "responseElements.*", Note: notInContract},
				{Sigma: "additionalEventData.*", Note: notInContract},
			},
		},
		{
			Name:      "haechi",
			Logsource: Logsource{Product: "haechi"},
		},
	}
}

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
			return FieldMapping{Sigma: name, Note: f.Note}, true
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
