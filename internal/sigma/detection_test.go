package sigma

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

const (
	webLS    = "category: webserver"
	ctLS     = "product: aws\nservice: cloudtrail"
	haechiLS = "product: haechi"
)

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func ruleText(logsource, detection string) string {
	return "title: test\nlogsource:\n" + indent(logsource) + "detection:\n" + indent(detection)
}

func mustRule(t testing.TB, logsource, detection string) *Rule {
	t.Helper()
	r, err := Parse([]byte(ruleText(logsource, detection)), "t.yml")
	if err != nil {
		t.Fatalf("%v\n%s", err, ruleText(logsource, detection))
	}
	return r
}

// webEvent is a gateway request; edit adjusts it.
func webEvent(edit func(*event.Event)) *event.Event {
	ev := &event.Event{
		Time:      time.Date(2025, 6, 24, 3, 4, 5, 0, time.UTC),
		Dataset:   event.DatasetGateway,
		Action:    "member.profile.read",
		Outcome:   event.OutcomeSuccess,
		User:      event.User{ID: "m:48213377", Roles: []string{"customer", "vip"}},
		Source:    event.Source{IP: netip.MustParseAddr("211.234.10.9"), ASN: 4766},
		UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X)",
		HTTP:      event.HTTP{Method: "GET", StatusCode: 200, BodyBytes: 734},
		URLPath:   "/api/v2/members/48213377/Profile",
		Records:   event.Records{Type: "customer", IDs: []string{"48213377"}, Fields: []string{"name", "email"}},
	}
	if edit != nil {
		edit(ev)
	}
	return ev
}

func ctEvent(edit func(*event.Event)) *event.Event {
	ev := &event.Event{
		Time:     time.Date(2025, 6, 24, 3, 4, 5, 0, time.UTC),
		Dataset:  "aws.cloudtrail",
		Action:   "GetObject",
		Provider: "s3.amazonaws.com",
		Outcome:  event.OutcomeSuccess,
		User:     event.User{ID: "arn:aws:iam::123456789012:user/jkim"},
	}
	if edit != nil {
		edit(ev)
	}
	return ev
}

type matchCase struct {
	name      string
	logsource string // default webLS
	detection string
	ev        *event.Event
	want      bool
}

func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ls := c.logsource
			if ls == "" {
				ls = webLS
			}
			r := mustRule(t, ls, c.detection)
			got, err := r.Match(c.ev)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("match = %v, want %v\n%s", got, c.want, ruleText(ls, c.detection))
			}
			checkPrefilter(t, r, c.ev)
		})
	}
}

func TestModifiers(t *testing.T) {
	ctDenied := ctEvent(func(e *event.Event) {
		e.Outcome, e.CloudTrail.ErrorCode, e.CloudTrail.ErrorMessage = event.OutcomeFailure, "AccessDenied", "User is not authorized to perform s3:GetObject"
	})
	ctRoot := ctEvent(func(e *event.Event) { e.CloudTrail.IdentityType, e.CloudTrail.EventType = "Root", "AwsApiCall" })
	ctParams := ctEvent(func(e *event.Event) {
		e.CloudTrail.RequestParameters = `{"attribute":"userData","enable":false,"count":3,"layers":["arn:aws:lambda:x:1:layer:evil:1"],` +
			`"versioning":{"Status":"Suspended"},"containerDefinitions":[{"command":["sh"]},{"command":["curl 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]}],"nothing":null}`
		e.CloudTrail.ResponseElements = `{"publiclyAccessible":true}`
	})
	ev := webEvent(nil)
	evq := webEvent(func(e *event.Event) { e.URLQuery = "id=1 UNION SELECT 1" })
	sel := func(body string) string { return "sel:\n" + indent(body) + "condition: sel" }
	runMatchCases(t, []matchCase{
		// plain values: exact, case-insensitive
		{name: "exact", detection: sel("cs-method: GET"), ev: ev, want: true},
		{name: "exact case-insensitive", detection: sel("cs-method: get"), ev: ev, want: true},
		{name: "exact mismatch", detection: sel("cs-method: POST"), ev: ev},
		{name: "exact is not substring", detection: sel("cs-uri-stem: /api"), ev: ev},
		{name: "value list is OR", detection: sel("cs-method: [POST, GET]"), ev: ev, want: true},
		{name: "map is AND", detection: sel("cs-method: GET\nsc-status: 500"), ev: ev},
		{name: "wildcard star", detection: sel("cs-uri-stem: '/api/*/profile'"), ev: ev, want: true},
		{name: "wildcard question", detection: sel("cs-method: 'G?T'"), ev: ev, want: true},
		{name: "wildcard question is one char", detection: sel("cs-method: 'G?'"), ev: ev},
		{name: "escaped star is literal", detection: sel(`cs-uri-stem: '/api\*'`), ev: webEvent(func(e *event.Event) { e.URLPath = "/api*" }), want: true},
		{name: "escaped star no wildcard", detection: sel(`cs-uri-stem: '/api\*'`), ev: ev},
		{name: "escaped question", detection: sel(`cs-uri-stem: '/a\?'`), ev: webEvent(func(e *event.Event) { e.URLPath = "/ab" })},
		{name: "double backslash then star", detection: sel(`cs-uri-stem: 'C:\\*'`), ev: webEvent(func(e *event.Event) { e.URLPath = `C:\x` }), want: true},
		{name: "lone backslash literal", detection: sel(`cs-uri-stem: 'a\b'`), ev: webEvent(func(e *event.Event) { e.URLPath = `a\b` }), want: true},
		{name: "unicode fold", detection: sel("cs-uri-stem|contains: 'straße'"), ev: webEvent(func(e *event.Event) { e.URLPath = "/STRASSE/STRAẞE" }), want: true},
		{name: "kelvin sign folds to k", detection: sel("cs-uri-stem|endswith: 'k'"), ev: webEvent(func(e *event.Event) { e.URLPath = "/\u212a" }), want: true},
		// contains / startswith / endswith
		{name: "contains", detection: sel("cs-uri-stem|contains: MEMBERS"), ev: ev, want: true},
		{name: "contains miss", detection: sel("cs-uri-stem|contains: orders"), ev: ev},
		{name: "contains keeps inner wildcard", detection: sel("cs-uri-stem|contains: 'members/*/prof'"), ev: ev, want: true},
		{name: "startswith", detection: sel("cs-uri-stem|startswith: /API/"), ev: ev, want: true},
		{name: "startswith miss", detection: sel("cs-uri-stem|startswith: /v2"), ev: ev},
		{name: "endswith", detection: sel("cs-uri-stem|endswith: /profile"), ev: ev, want: true},
		{name: "endswith trailing backslash", detection: sel(`cs-uri-stem|endswith: '..\'`), ev: webEvent(func(e *event.Event) { e.URLPath = `/x/..\` }), want: true},
		{name: "contains trailing backslash stays literal", detection: sel(`cs-uri-stem|contains: '..\'`), ev: webEvent(func(e *event.Event) { e.URLPath = `/..\x` }), want: true},
		// all
		{name: "contains all", detection: sel("cs-user-agent|contains|all: [iphone, mac os]"), ev: ev, want: true},
		{name: "contains all miss", detection: sel("cs-user-agent|contains|all: [iphone, android]"), ev: ev},
		{name: "all order free", detection: sel("cs-user-agent|all|contains: [mac os, iphone]"), ev: ev, want: true},
		// cased
		{name: "cased", detection: sel("cs-uri-stem|contains|cased: Profile"), ev: ev, want: true},
		{name: "cased miss", detection: sel("cs-uri-stem|contains|cased: profile"), ev: ev},
		{name: "cased exact", detection: sel("cs-method|cased: get"), ev: ev},
		// re
		{name: "re", detection: sel(`cs-uri-stem|re: '^/api/v[0-9]+/members/\d+/'`), ev: ev, want: true},
		{name: "re case-sensitive", detection: sel("cs-uri-stem|re: 'PROFILE$'"), ev: ev},
		{name: "re i", detection: sel("cs-uri-stem|re|i: 'PROFILE$'"), ev: ev, want: true},
		{name: "re m", detection: sel("cs-uri-stem|re|m: '^b$'"), ev: webEvent(func(e *event.Event) { e.URLPath = "a\nb\nc" }), want: true},
		{name: "re s", detection: sel("cs-uri-stem|re|s: 'a.b'"), ev: webEvent(func(e *event.Event) { e.URLPath = "a\nb" }), want: true},
		{name: "re without s", detection: sel("cs-uri-stem|re: 'a.b'"), ev: webEvent(func(e *event.Event) { e.URLPath = "a\nb" })},
		{name: "re on integer", detection: sel("sc-status|re: '^2\\d\\d$'"), ev: ev, want: true},
		{name: "re on ip", detection: sel(`c-ip|re: '^211\.'`), ev: ev, want: true},
		// cidr
		{name: "cidr", detection: sel("c-ip|cidr: 211.234.0.0/16"), ev: ev, want: true},
		{name: "cidr list", detection: sel("c-ip|cidr: [10.0.0.0/8, 211.234.10.0/24]"), ev: ev, want: true},
		{name: "cidr miss", detection: sel("c-ip|cidr: 10.0.0.0/8"), ev: ev},
		{name: "cidr v6", detection: sel("c-ip|cidr: '2001:db8::/32'"), ev: webEvent(func(e *event.Event) { e.Source.IP = netip.MustParseAddr("2001:db8::7") }), want: true},
		{name: "cidr unmasked", detection: sel("c-ip|cidr: 211.234.10.77/24"), ev: ev, want: true},
		{name: "cidr absent", detection: sel("c-ip|cidr: 0.0.0.0/0"), ev: webEvent(func(e *event.Event) { e.Source.IP = netip.Addr{} })},
		// IP literals and patterns
		{name: "ip exact", detection: sel("c-ip: 211.234.10.9"), ev: ev, want: true},
		{name: "ip exact miss", detection: sel("c-ip: 211.234.10.90"), ev: ev},
		{name: "ip wildcard", detection: sel("c-ip: '211.234.*'"), ev: ev, want: true},
		{name: "ip startswith", detection: sel("c-ip|startswith: '211.23'"), ev: ev, want: true},
		{name: "ipv6 exact any spelling", detection: sel("c-ip: '2001:DB8:0::7'"), ev: webEvent(func(e *event.Event) { e.Source.IP = netip.MustParseAddr("2001:db8::7") }), want: true},
		// numbers
		{name: "int", detection: sel("sc-status: 200"), ev: ev, want: true},
		{name: "int as string", detection: sel("sc-status: '200'"), ev: ev, want: true},
		{name: "int float literal", detection: sel("sc-status: 200.0"), ev: ev, want: true},
		{name: "int list", detection: sel("sc-status: [301, 302]"), ev: ev},
		{name: "int wildcard", detection: sel("sc-status: '2??'"), ev: ev, want: true},
		{name: "int startswith", detection: sel("sc-status|startswith: '5'"), ev: ev},
		{name: "number on string field", detection: sel("cs-username|endswith: 48213377"), ev: ev, want: true},
		{name: "lt", detection: sel("sc-status|lt: 300"), ev: ev, want: true},
		{name: "lt equal", detection: sel("sc-status|lt: 200"), ev: ev},
		{name: "lte", detection: sel("sc-status|lte: 200"), ev: ev, want: true},
		{name: "gt", detection: sel("sc-bytes|gt: 700"), ev: ev, want: true},
		{name: "gt miss", detection: sel("sc-bytes|gt: 734"), ev: ev},
		{name: "gte", detection: sel("sc-bytes|gte: 734"), ev: ev, want: true},
		{name: "gte string number", detection: sel("sc-bytes|gte: '734'"), ev: ev, want: true},
		{name: "gt float", detection: sel("sc-bytes|gt: 733.5"), ev: ev, want: true},
		{name: "gt absent", detection: sel("sc-bytes|lt: 1000"), ev: webEvent(func(e *event.Event) { e.HTTP.BodyBytes = 0 })},
		{name: "float field", logsource: haechiLS, detection: sel("source.geo.location.lat|gt: 37"), ev: webEvent(func(e *event.Event) { e.Source.Located, e.Source.Lat = true, 37.5 }), want: true},
		{name: "float field absent", logsource: haechiLS, detection: sel("source.geo.location.lat|lt: 90"), ev: ev},
		{name: "float field text", logsource: haechiLS, detection: sel("source.geo.location.lat: '37.5'"), ev: webEvent(func(e *event.Event) { e.Source.Located, e.Source.Lat = true, 37.5 }), want: true},
		// exists, null, empty
		{name: "exists true", detection: sel("cs-username|exists: true"), ev: ev, want: true},
		{name: "exists false", detection: sel("cs-username|exists: false"), ev: ev},
		{name: "exists false absent", detection: sel("cs-username|exists: false"), ev: webEvent(func(e *event.Event) { e.User.ID = "" }), want: true},
		{name: "null absent", detection: sel("cs-username: null"), ev: webEvent(func(e *event.Event) { e.User.ID = "" }), want: true},
		{name: "null present", detection: sel("cs-username: null"), ev: ev},
		{name: "null in list", detection: sel("cs-username: [null, 'm:1']"), ev: webEvent(func(e *event.Event) { e.User.ID = "" }), want: true},
		{name: "empty string is absent", detection: sel("cs-username: ''"), ev: webEvent(func(e *event.Event) { e.User.ID = "" }), want: true},
		{name: "star does not match absent", detection: sel("cs-username: '*'"), ev: webEvent(func(e *event.Event) { e.User.ID = "" })},
		{name: "star matches present", detection: sel("cs-username: '*'"), ev: ev, want: true},
		{name: "absent int is null", detection: sel("sc-status: null"), ev: webEvent(func(e *event.Event) { e.HTTP.StatusCode = 0 }), want: true},
		{name: "absent ip exists", detection: sel("c-ip|exists: false"), ev: webEvent(func(e *event.Event) { e.Source.IP = netip.Addr{} }), want: true},
		// neq
		{name: "neq", detection: sel("cs-method|neq: POST"), ev: ev, want: true},
		{name: "neq equal", detection: sel("cs-method|neq: [POST, GET]"), ev: ev},
		{name: "neq absent", detection: sel("cs-username|neq: x"), ev: webEvent(func(e *event.Event) { e.User.ID = "" }), want: true},
		// lists of strings (contract fields used directly)
		{name: "strings any element", logsource: haechiLS, detection: sel("user.roles: VIP"), ev: ev, want: true},
		{name: "strings miss", logsource: haechiLS, detection: sel("user.roles: admin"), ev: ev},
		{name: "strings all", logsource: haechiLS, detection: sel("records.fields|all: [name, email]"), ev: ev, want: true},
		{name: "strings all miss", logsource: haechiLS, detection: sel("records.fields|all: [name, phone]"), ev: ev},
		{name: "strings null", logsource: haechiLS, detection: sel("identity.roles: null"), ev: ev, want: true},
		{name: "strings exists", logsource: haechiLS, detection: sel("records.ids|exists: true"), ev: ev, want: true},
		{name: "strings contains", logsource: haechiLS, detection: sel("records.ids|contains: '8213'"), ev: ev, want: true},
		// time fields
		{name: "time hour", logsource: haechiLS, detection: sel("'@timestamp|hour': 3"), ev: ev, want: true},
		{name: "time hour list", logsource: haechiLS, detection: sel("'@timestamp|hour': [0, 1, 2]"), ev: ev},
		{name: "time hour lt", logsource: haechiLS, detection: sel("'@timestamp|hour|lt': 6"), ev: ev, want: true},
		{name: "time year", logsource: haechiLS, detection: sel("'@timestamp|year': 2025"), ev: ev, want: true},
		{name: "time month day minute week", logsource: haechiLS, detection: sel("'@timestamp|month': 6\n'@timestamp|day': 24\n'@timestamp|minute': 4\n'@timestamp|week': 26"), ev: ev, want: true},
		{name: "time text", logsource: haechiLS, detection: sel("'@timestamp|startswith': '2025-06-24T03:'"), ev: ev, want: true},
		{name: "time absent", logsource: haechiLS, detection: sel("token.issued_at|hour|gte: 0"), ev: ev},
		// list of maps is OR
		{name: "list of maps", detection: "sel:\n  - cs-method: POST\n  - sc-status: 200\ncondition: sel", ev: ev, want: true},
		{name: "list of maps miss", detection: "sel:\n  - cs-method: POST\n  - sc-status: 500\ncondition: sel", ev: ev},
		// keywords
		{name: "keywords in path", detection: "keywords:\n  - members/4821\n  - nothing\ncondition: keywords", ev: ev, want: true},
		{name: "keywords in user agent", detection: "keywords:\n  - IPHONE\ncondition: keywords", ev: ev, want: true},
		{name: "keywords miss", detection: "keywords:\n  - GET\ncondition: keywords", ev: ev},
		{name: "keywords wildcard", detection: "keywords:\n  - 'api/*/members'\ncondition: keywords", ev: ev, want: true},
		{name: "keyword scalar", detection: "keywords: profile\ncondition: keywords", ev: ev, want: true},
		{name: "keywords all", detection: "keywords:\n  '|all':\n    - iphone\n    - members\ncondition: keywords", ev: ev, want: true},
		{name: "keywords in query", detection: "keywords:\n  - 'UNION SELECT'\ncondition: keywords", ev: evq, want: true},
		{name: "keywords across path and query", detection: "keywords:\n  - 'Profile?id=1'\ncondition: keywords", ev: evq, want: true},
		{name: "keywords: no query, no ?", detection: "keywords:\n  - 'Profile?'\ncondition: keywords", ev: ev},
		{name: "query field", detection: sel("cs-uri-query|contains: 'union select'"), ev: evq, want: true},
		{name: "query field absent", detection: sel("cs-uri-query: null"), ev: ev, want: true},
		{name: "query field is not the path", detection: sel("c-uri-query|contains: members"), ev: evq},
		{name: "extension", detection: sel("c-uri-extension: PHP"), ev: webEvent(func(e *event.Event) { e.URLPath = "/up/shell.v2.php" }), want: true},
		{name: "extension of a directory", detection: sel("c-uri-extension: php"), ev: webEvent(func(e *event.Event) { e.URLPath = "/a.php/" })},
		{name: "dot file has no extension", detection: sel("c-uri-extension: htaccess"), ev: webEvent(func(e *event.Event) { e.URLPath = "/a/.htaccess" })},
		{name: "extension absent", detection: sel("c-uri-extension: null"), ev: ev, want: true},
		{name: "uri is path and query", detection: sel("cs-uri|endswith: '/Profile?id=1 UNION SELECT 1'"), ev: evq, want: true},
		{name: "uri without query is the path", detection: sel("cs-uri: '/api/v2/members/48213377/profile'"), ev: ev, want: true},
		{name: "keywords all miss", detection: "keywords:\n  '|all':\n    - iphone\n    - orders\ncondition: keywords", ev: ev},
		// contract names directly, in a mapped logsource
		{name: "contract name in webserver", detection: sel("records.type: customer\nuser.id|startswith: 'm:'"), ev: ev, want: true},
		// cloudtrail mapping and errorCode
		{name: "cloudtrail fields", logsource: ctLS, detection: sel("eventName: getobject\neventSource: s3.amazonaws.com\nuserIdentity.arn|endswith: ':user/jkim'"), ev: ctEvent(nil), want: true},
		{name: "cloudtrail errorCode exists", logsource: ctLS, detection: sel("errorCode|exists: true"), ev: ctEvent(func(e *event.Event) { e.Outcome, e.CloudTrail.ErrorCode = event.OutcomeFailure, "AccessDenied" }), want: true},
		{name: "cloudtrail errorCode exists on success", logsource: ctLS, detection: sel("errorCode|exists: true"), ev: ctEvent(nil)},
		{name: "cloudtrail errorCode null", logsource: ctLS, detection: sel("errorCode: null"), ev: ctEvent(nil), want: true},
		{name: "cloudtrail errorCode null on failure", logsource: ctLS, detection: sel("errorCode: null"), ev: ctEvent(func(e *event.Event) { e.Outcome, e.CloudTrail.ErrorCode = event.OutcomeFailure, "AccessDenied" })},
		{name: "cloudtrail errorCode empty", logsource: ctLS, detection: sel("errorCode: ''"), ev: ctEvent(nil), want: true},
		{name: "cloudtrail errorCode exists false", logsource: ctLS, detection: sel("errorCode|exists: false"), ev: ctEvent(nil), want: true},
		{name: "cloudtrail errorCode value", logsource: ctLS, detection: sel("errorCode: accessdenied"), ev: ctDenied, want: true},
		{name: "cloudtrail errorCode other value", logsource: ctLS, detection: sel("errorCode: NoSuchKey"), ev: ctDenied},
		{name: "cloudtrail errorMessage", logsource: ctLS, detection: sel("errorMessage|contains: 'not authorized'"), ev: ctDenied, want: true},
		{name: "cloudtrail userIdentity.type", logsource: ctLS, detection: sel("userIdentity.type: Root"), ev: ctRoot, want: true},
		{name: "cloudtrail userIdentity.type other", logsource: ctLS, detection: sel("userIdentity.type: Root"), ev: ctEvent(func(e *event.Event) { e.CloudTrail.IdentityType = "IAMUser" })},
		{name: "cloudtrail session issuer type", logsource: ctLS, detection: sel("userIdentity.sessionContext.sessionIssuer.type: Role\nuserIdentity.type: AssumedRole"), ev: ctEvent(func(e *event.Event) { e.CloudTrail.IdentityType, e.CloudTrail.IssuerType = "AssumedRole", "Role" }), want: true},
		{name: "cloudtrail eventType", logsource: ctLS, detection: sel("eventType: AwsServiceEvent"), ev: ctRoot},
		{name: "cloudtrail requestParameters text", logsource: ctLS, detection: sel("requestParameters|contains: '\"Status\":\"Suspended\"'"), ev: ctParams, want: true},
		{name: "cloudtrail requestParameters path", logsource: ctLS, detection: sel("requestParameters.attribute: userData"), ev: ctParams, want: true},
		{name: "cloudtrail requestParameters bool", logsource: ctLS, detection: sel("requestParameters.enable: 'false'"), ev: ctParams, want: true},
		{name: "cloudtrail requestParameters number", logsource: ctLS, detection: sel("requestParameters.count: 3"), ev: ctParams, want: true},
		{name: "cloudtrail requestParameters through arrays", logsource: ctLS, detection: sel("requestParameters.containerDefinitions.command|contains: '$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'"), ev: ctParams, want: true},
		{name: "cloudtrail requestParameters array leaf", logsource: ctLS, detection: sel("requestParameters.layers|contains: 'layer:evil'"), ev: ctParams, want: true},
		{name: "cloudtrail requestParameters object leaf", logsource: ctLS, detection: sel("requestParameters.versioning|contains: 'Suspended'"), ev: ctParams, want: true},
		{name: "cloudtrail requestParameters absent member", logsource: ctLS, detection: sel("requestParameters.nothing: '*'"), ev: ctParams},
		{name: "cloudtrail requestParameters absent member null", logsource: ctLS, detection: sel("requestParameters.nothing: null"), ev: ctParams, want: true},
		{name: "cloudtrail requestParameters no object", logsource: ctLS, detection: sel("requestParameters.attribute: userData"), ev: ctEvent(nil)},
		{name: "cloudtrail responseElements path", logsource: ctLS, detection: sel("responseElements.publiclyAccessible: 'true'"), ev: ctParams, want: true},
		{name: "cloudtrail access key", logsource: ctLS, detection: sel("userIdentity.accessKeyId|startswith: AKIA"), ev: ctEvent(func(e *event.Event) { e.Token.ID = "AKIAEXAMPLE" }), want: true},
		// logsource restricts datasets
		{name: "webserver skips cloudtrail", detection: sel("cs-username|exists: true"), ev: ctEvent(nil)},
		{name: "cloudtrail skips gateway", logsource: ctLS, detection: sel("eventName|exists: true"), ev: ev},
		{name: "webserver sees web.*", detection: sel("cs-method: GET"), ev: webEvent(func(e *event.Event) { e.Dataset = "web.iis" }), want: true},
		{name: "webserver sees nginx*", detection: sel("cs-method: GET"), ev: webEvent(func(e *event.Event) { e.Dataset = "nginx.access" }), want: true},
		{name: "webserver skips auth.login", detection: sel("cs-method: GET"), ev: webEvent(func(e *event.Event) { e.Dataset = event.DatasetLogin })},
		// proxy rules are for outbound forward-proxy logs, not the
		// server's own inbound requests.
		{name: "proxy does not see gateway", logsource: "category: proxy", detection: sel("c-uri|contains: members\nc-useragent|contains: iphone"), ev: ev},
		{name: "proxy does not see web", logsource: "category: proxy", detection: sel("c-useragent|contains: iphone"), ev: webEvent(func(e *event.Event) { e.Dataset = "web.shop" })},
		{name: "proxy sees proxy datasets", logsource: "category: proxy", detection: sel("c-uri|contains: members\nc-useragent|contains: iphone"), ev: webEvent(func(e *event.Event) { e.Dataset = "proxy.squid" }), want: true},
		{name: "webserver does not see proxy", logsource: webLS, detection: sel("c-useragent|contains: iphone"), ev: webEvent(func(e *event.Event) { e.Dataset = "proxy.squid" })},
		{name: "cs-host is url.domain", logsource: "category: proxy", detection: sel("cs-host|endswith: .example.net"), ev: webEvent(func(e *event.Event) { e.Dataset, e.URLDomain = "proxy.squid", "c2.example.net" }), want: true},
		{name: "haechi sees all", logsource: haechiLS, detection: sel("event.action: x"), ev: webEvent(func(e *event.Event) { e.Dataset, e.Action = "hr.roster", "x" }), want: true},
		{name: "haechi service is dataset", logsource: haechiLS + "\nservice: auth.login", detection: sel("event.action: x"), ev: webEvent(func(e *event.Event) { e.Action = "x" })},
	})
}

func TestConditions(t *testing.T) {
	ev := webEvent(nil)
	// a and b are true for ev; c and d false; _e true.
	sels := "a:\n  cs-method: GET\nb:\n  sc-status: 200\nc:\n  cs-method: POST\nd:\n  sc-status: 500\n_e:\n  cs-uri-stem|contains: members\n"
	cond := func(c string) string { return sels + "condition: " + c }
	cases := []struct {
		cond string
		want bool
	}{
		{"a", true},
		{"c", false},
		{"a and b", true},
		{"a and c", false},
		{"c or a", true},
		{"c or d", false},
		{"not c", true},
		{"not a", false},
		{"not not a", true},
		{"a and not c", true},
		{"c or a and d", false},         // and binds tighter: c or (a and d)
		{"a or c and d", true},          // a or (c and d)
		{"(c or a) and d", false},       // parentheses
		{"(c or a) and b", true},        // parentheses
		{"not (c or d)", true},          // not of a group
		{"not c and not d", true},       // not binds tighter than and
		{"1 of them", true},             // a
		{"all of them", false},          // c is false
		{"1 of c*", false},              // only c
		{"all of a*", true},             // only a
		{"1 of _*", true},               // _-identifiers by pattern
		{"1 of them and not _e", false}, // _e is true
		{"a AND NOT c", true},           // keywords are case-insensitive
		{"a and (b or (c or (d or not c)))", true},
		{"all of them or c", false},
		{"not 1 of c* and all of a*", true}, // not binds to "1 of c*"
	}
	for _, c := range cases {
		t.Run(c.cond, func(t *testing.T) {
			r := mustRule(t, webLS, cond(c.cond))
			got, err := r.Match(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("%q = %v, want %v", c.cond, got, c.want)
			}
		})
	}
	// them excludes _-identifiers: with only a (true) and _x (false), all of them is true.
	r := mustRule(t, webLS, "a:\n  cs-method: GET\n_x:\n  cs-method: POST\ncondition: all of them")
	if ok, _ := r.Match(ev); !ok {
		t.Error("all of them included an _identifier")
	}
	// A list of conditions is OR.
	r = mustRule(t, webLS, sels+"condition:\n  - c\n  - a and b")
	if ok, _ := r.Match(ev); !ok || r.Condition != "c or a and b" {
		t.Errorf("condition list: %v %q", ok, r.Condition)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, ls, detection string
		unsupported         bool
		want                string // substring of the message
	}{
		{"windash", webLS, "s:\n  c-uri|windash: x\ncondition: s", true, "modifier windash"},
		{"base64", webLS, "s:\n  c-uri|base64: x\ncondition: s", true, "modifier base64"},
		{"base64offset", webLS, "s:\n  c-uri|base64offset|contains: x\ncondition: s", true, "modifier base64offset"},
		{"utf16le", webLS, "s:\n  c-uri|utf16le: x\ncondition: s", true, "modifier utf16le"},
		{"utf16be", webLS, "s:\n  c-uri|utf16be: x\ncondition: s", true, "modifier utf16be"},
		{"utf16", webLS, "s:\n  c-uri|utf16: x\ncondition: s", true, "modifier utf16"},
		{"wide", webLS, "s:\n  c-uri|wide: x\ncondition: s", true, "modifier wide"},
		{"expand", webLS, "s:\n  c-ip|expand: '%Servers%'\ncondition: s", true, "modifier expand"},
		{"fieldref", webLS, "s:\n  c-ip|fieldref: cs-username\ncondition: s", true, "modifier fieldref"},
		{"lookahead", webLS, "s:\n  c-uri|re: 'a(?=b)'\ncondition: s", true, "lookaround"},
		{"lookbehind", webLS, "s:\n  c-uri|re: '(?<!a)b'\ncondition: s", true, "lookaround"},
		{"backreference", webLS, `s:
  c-uri|re: '(a)\1'
condition: s`, true, "backreference"},
		{"referrer field", webLS, "s:\n  cs-referrer: x\ncondition: s", true, `field "cs-referrer": not in the event contract`},
		{"request bytes", webLS, "s:\n  cs-bytes|gt: 1\ncondition: s", true, `field "cs-bytes"`},
		{"unknown field", webLS, "s:\n  Image: x\ncondition: s", true, `field "Image" (no mapping for logsource webserver`},
		{"cloudtrail field in web", webLS, "s:\n  eventName: x\ncondition: s", true, `field "eventName"`},
		{"additionalEventData", ctLS, "s:\n  additionalEventData.MFAUsed: x\ncondition: s", true, `field "additionalEventData.MFAUsed": not in the event contract`},
		{"requestParameters comparison", ctLS, "s:\n  requestParameters.count|gt: 2\ncondition: s", true, `modifier gt on field aws.cloudtrail.request_parameters.count (list of strings)`},
		{"requestParameters empty segment", ctLS, "s:\n  requestParameters..x: x\ncondition: s", false, `field "requestParameters..x": not a valid path`},
		{"awsRegion", ctLS, "s:\n  awsRegion: us-east-1\ncondition: s", true, `field "awsRegion"`},
		{"cloudtrail keywords", ctLS, "k:\n  - x\ncondition: k", true, "keyword search"},
		{"haechi keywords", haechiLS, "k:\n  - x\ncondition: k", true, "keyword search"},
		{"keyword modifier", webLS, "k:\n  '|contains': x\ncondition: k", true, "keyword search with modifiers"},
		{"aggregation", webLS, "s:\n  c-ip: 1.2.3.4\ncondition: s | count() by c-ip > 10", true, "aggregation"},
		{"near", webLS, "s:\n  c-ip: 1.2.3.4\nt:\n  c-ip: 1.2.3.5\ncondition: s and near t", true, "near"},
		{"2 of", webLS, "s:\n  c-ip: 1.2.3.4\ncondition: 2 of s*", true, `"2" of`},
		{"timeframe", webLS, "s:\n  c-ip: 1.2.3.4\ntimeframe: 5m\ncondition: s", true, "timeframe"},
		{"gt on string", webLS, "s:\n  cs-method|gt: 3\ncondition: s", true, "modifier gt on field http.request.method (string)"},
		{"cidr on int", webLS, "s:\n  sc-status|cidr: 10.0.0.0/8\ncondition: s", true, "modifier cidr on field http.response.status_code"},
		{"hour on string", webLS, "s:\n  cs-method|hour: 3\ncondition: s", true, "modifier hour"},
		{"gt on time", haechiLS, "s:\n  '@timestamp|gt': 3\ncondition: s", true, "modifier gt on field @timestamp (time)"},
		{"logsource", "product: windows\ncategory: process_creation", "s:\n  Image: x\ncondition: s", true, "logsource category=process_creation product=windows"},
		{"webserver with product", "category: webserver\nproduct: apache", "s:\n  c-ip: x\ncondition: s", true, "logsource category=webserver product=apache"},

		{"unknown modifier", webLS, "s:\n  c-uri|contians: x\ncondition: s", false, `unknown modifier "contians"`},
		{"empty modifier", webLS, "s:\n  c-uri|: x\ncondition: s", false, "empty modifier"},
		{"two transforms", webLS, "s:\n  c-uri|contains|endswith: x\ncondition: s", false, "cannot be combined"},
		{"re and contains", webLS, "s:\n  c-uri|contains|re: x\ncondition: s", false, "cannot be combined"},
		{"re flag without re", webLS, "s:\n  c-uri|i: x\ncondition: s", false, "must follow re"},
		{"bad regex", webLS, "s:\n  c-uri|re: '('\ncondition: s", false, "invalid regular expression"},
		{"bad cidr", webLS, "s:\n  c-ip|cidr: 10.0.0.1\ncondition: s", false, "modifier cidr takes a network"},
		{"exists not bool", webLS, "s:\n  c-ip|exists: yes please\ncondition: s", false, "exists takes true or false"},
		{"exists list", webLS, "s:\n  c-ip|exists: [true, false]\ncondition: s", false, "exists takes one value"},
		{"gt not number", webLS, "s:\n  sc-status|gt: many\ncondition: s", false, "take a number"},
		{"null with contains", webLS, "s:\n  c-uri|contains: null\ncondition: s", false, "null takes no modifiers"},
		{"nested map value", webLS, "s:\n  c-uri:\n    a: b\ncondition: s", false, "got a mapping"},
		{"empty list", webLS, "s:\n  c-uri: []\ncondition: s", false, "empty list"},
		{"mixed list", webLS, "s:\n  - c-uri: x\n  - y\ncondition: s", false, "mixes maps and plain values"},
		{"no condition", webLS, "s:\n  c-uri: x", false, "no condition"},
		{"no identifiers", webLS, "condition: s", false, "no search identifiers"},
		{"undefined identifier", webLS, "s:\n  c-uri: x\ncondition: s and t", false, `"t", which is not a search identifier`},
		{"no match pattern", webLS, "s:\n  c-uri: x\ncondition: 1 of f*", false, "matches no search identifier"},
		{"bare wildcard", webLS, "s:\n  c-uri: x\ncondition: s*", false, "needs \"1 of\""},
		{"unbalanced", webLS, "s:\n  c-uri: x\ncondition: (s", false, "missing \")\""},
		{"extra paren", webLS, "s:\n  c-uri: x\ncondition: s)", false, `unexpected ")"`},
		{"dangling and", webLS, "s:\n  c-uri: x\ncondition: s and", false, "ends early"},
		{"empty condition", webLS, "s:\n  c-uri: x\ncondition: ''", false, "empty condition"},
		{"condition not string", webLS, "s:\n  c-uri: x\ncondition: 3", false, "condition must be a string"},
		{"null identifier", webLS, "s:\ncondition: s", false, "is empty"},
		{"alias", webLS, "s: &x\n  c-uri: x\nt: *x\ncondition: s", true, "YAML alias"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(ruleText(c.ls, c.detection)), "t.yml")
			if err == nil {
				t.Fatalf("parsed; want an error with %q", c.want)
			}
			var ue *UnsupportedError
			if errors.As(err, &ue) != c.unsupported {
				t.Errorf("error %v is %T; unsupported=%v", err, err, c.unsupported)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "t.yml:") {
				t.Errorf("error %q lacks the file", err)
			}
		})
	}
}

// Errors point at the offending line and column.
func TestErrorPositions(t *testing.T) {
	src := "title: t\nlogsource:\n    category: webserver\ndetection:\n    sel:\n        cs-method: GET\n        c-uri|base64: x\n    condition: sel and not flt\n"
	_, err := Parse([]byte(src), "p.yml")
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Line != 7 || ue.Col != 9 || ue.Feature != "modifier base64" {
		t.Fatalf("got %#v", err)
	}
	src = strings.Replace(src, "|base64", "", 1)
	_, err = Parse([]byte(src), "p.yml")
	var re *RuleError
	if !errors.As(err, &re) || re.Line != 8 || re.Col != 28 {
		t.Fatalf("got %#v", err)
	}
	if want := `p.yml:8:28: condition names "flt", which is not a search identifier of this detection`; err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
}

// Simple equality and contains on strings must not allocate. (|re is not
// in the list: regexp keeps its matching machines in a sync.Pool, which a
// garbage collection empties, so a regex match allocates whenever one ran
// meanwhile — CI saw it once, with other tests collecting.)
func TestMatchDoesNotAllocate(t *testing.T) {
	ev := webEvent(nil)
	for _, det := range []string{
		"s:\n  cs-method: GET\ncondition: s",
		"s:\n  cs-uri-stem|contains: members\ncondition: s",
		"s:\n  cs-uri-stem|contains|cased: members\ncondition: s",
		"s:\n  cs-user-agent|contains|all: [iphone, os]\n  sc-status: 200\n  c-ip|cidr: 211.0.0.0/8\ncondition: s",
		"s:\n  cs-uri-stem: '/api/*/members/*/pro?ile'\ncondition: s",
		"s:\n  sc-status|startswith: '2'\ncondition: s",
		"k:\n  - iphone\ncondition: k",
	} {
		r := mustRule(t, webLS, det)
		if ok, _ := r.Match(ev); !ok {
			t.Fatalf("no match for %s", det)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = r.Match(ev) }); n != 0 {
			t.Errorf("%d allocations per Match for\n%s", int(n), det)
		}
	}
}

// Match is safe for concurrent use (run with -race).
func TestMatchConcurrent(t *testing.T) {
	rules, errs := ParseDir("testdata/rules")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	events := readEvents(t, "testdata/events.ndjson")
	done := make(chan bool)
	for range 4 {
		go func() {
			for range 20 {
				for _, r := range rules {
					for _, ev := range events {
						if _, err := r.Match(ev); err != nil {
							t.Error(err)
						}
					}
				}
			}
			done <- true
		}()
	}
	for range 4 {
		<-done
	}
}
