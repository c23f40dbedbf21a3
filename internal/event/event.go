// Package event is haechi's domain vocabulary: the decoded access event, the
// entity an event or finding is about, findings and alerts. It imports only
// the standard library so every stage can depend on it.
//
// An Event is immutable once it has left the decoder: the engine hands the
// same *Event to several shard goroutines at once, so no stage may modify it.
package event

import (
	"net/netip"
	"strconv"
	"time"
)

// Well-known values of event.dataset (see docs/events.md).
const (
	DatasetGateway = "gateway.access"
	DatasetToken   = "auth.token"
	DatasetLogin   = "auth.login"
	DatasetRoster  = "hr.roster"
	DatasetKeys    = "keys.inventory"
)

// Well-known values of event.action.
const (
	ActionTokenIssued        = "token.issued"
	ActionIdentityUpsert     = "identity.upsert"
	ActionIdentityTerminated = "identity.terminated"
	ActionKeyCreated         = "key.created"
	ActionKeyRetired         = "key.retired"
)

// Outcome is ECS event.outcome.
type Outcome uint8

const (
	OutcomeUnset Outcome = iota
	OutcomeSuccess
	OutcomeFailure
	OutcomeUnknown
)

// String returns the ECS spelling, or "" when unset.
func (o Outcome) String() string {
	switch o {
	case OutcomeSuccess:
		return "success"
	case OutcomeFailure:
		return "failure"
	case OutcomeUnknown:
		return "unknown"
	}
	return ""
}

// ParseOutcome maps the ECS spelling to an Outcome; anything else is
// OutcomeUnknown.
func ParseOutcome(s string) Outcome {
	switch s {
	case "success":
		return OutcomeSuccess
	case "failure":
		return OutcomeFailure
	case "":
		return OutcomeUnset
	}
	return OutcomeUnknown
}

// Event is one decoded line of the event contract (ECS-aligned NDJSON).
// Zero values mean "absent". Field groups mirror the contract's field sets.
type Event struct {
	Time    time.Time // @timestamp (required)
	Dataset string    // event.dataset (required)
	Action  string    // event.action (required)
	ID      string    // event.id
	Outcome Outcome   // event.outcome
	// Provider is ECS event.provider: the service that produced the event
	// (e.g. CloudTrail's eventSource "s3.amazonaws.com").
	Provider string

	User      User
	Source    Source
	UserAgent string // user_agent.original
	HTTP      HTTP
	URLPath   string // url.path
	// URLQuery is ECS url.query: the request's query string as sent
	// (still percent-encoded), without the leading "?".
	URLQuery string
	// URLDomain is ECS url.domain: the host the request named (the Host
	// header, or the host of an absolute-form request target), without a
	// port.
	URLDomain string
	Token     Token
	Records   Records
	Identity  Identity // hr.roster events
	Key       Key      // keys.inventory events
	// CloudTrail holds what a CloudTrail record says beyond the common
	// fields (aws.cloudtrail.*, as Elastic's AWS integration names them).
	CloudTrail CloudTrail

	// Provenance, set by the decoder and the ingest stage, never by the
	// sender: where the event came from, so findings can cite it even when
	// event.id is absent.
	Input uint32 // index of the input (file, request) in the run's input table
	Line  uint32 // 1-based line number within that input
	Late  bool   // arrived after the engine's watermark had passed its time
	// Restored marks an event replayed after a restart that the restored
	// detector checkpoint already covers: detectors whose state was
	// restored skip it; the others (whose state is rebuilt by the replay)
	// process it.
	Restored bool
	// Drill marks an event of a drill (internal/drill): serve's drill
	// runner stored it in the spool under the drill scope, and only the
	// ingest stage sets it — never a sender, whatever ids the event
	// carries. Detectors see drill events as any other (the drill proves
	// they work); the access ledger and baselines leave them out.
	Drill bool
}

// User is ECS user.*.
type User struct {
	ID    string
	Name  string
	Roles []string
}

// Source is ECS source.* with optional upstream geo/AS enrichment.
type Source struct {
	IP      netip.Addr
	Country string // source.geo.country_iso_code
	ASN     uint32 // source.as.number
	ASOrg   string // source.as.organization.name
	// Located reports that Lat and Lon (source.geo.location, degrees) are
	// set; (0, 0) is a valid point, so Located is the only presence test.
	Located  bool
	Lat, Lon float64
}

// HTTP is ECS http.* (the parts haechi uses).
type HTTP struct {
	Method     string
	StatusCode int
	BodyBytes  int64
}

// Token is the contract's token.* extension (JWT claims of the access token).
type Token struct {
	ID        string // jti
	KeyID     string // kid
	Issuer    string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Records is the contract's records.* extension: what personal data the
// request touched.
type Records struct {
	Type   string
	IDs    []string
	Fields []string
	// Numbers, when not nil, are the access ledger's 32-bit numbers of
	// IDs (internal/ledger), in order, assigned once by the pipeline
	// before the event is routed, so that the ledger's shards — one per
	// dimension — do not each look every id up again. Not part of the
	// contract: decoders leave it nil, and nil means the ledger numbers
	// IDs itself.
	Numbers []uint32
}

// Identity is the roster feed's identity.* field set.
type Identity struct {
	ID           string
	Kind         string // employee, contractor, service, customer
	Roles        []string
	Status       string // active, terminated
	TerminatedAt time.Time
	Country      string
	// LastActive is when the identity last acted before this roster
	// entry, as the identity provider knows it (identity.last_active,
	// optional; an addition to the shared contract, docs/events.md).
	LastActive time.Time
}

// CloudTrail is the contract's aws.cloudtrail.* field set: the parts of
// a CloudTrail record that say who called and how the call went, which
// Sigma's CloudTrail rules test.
type CloudTrail struct {
	// IdentityType is userIdentity.type: Root, IAMUser, AssumedRole,
	// FederatedUser, AWSService, ...
	IdentityType string
	// IssuerType is userIdentity.sessionContext.sessionIssuer.type (Role,
	// IAMUser, Root) for temporary credentials.
	IssuerType string
	// EventType is eventType: AwsApiCall, AwsServiceEvent,
	// AwsConsoleSignIn, ...
	EventType    string
	ErrorCode    string // errorCode, e.g. AccessDenied; "" when the call succeeded
	ErrorMessage string // errorMessage
	// RequestParameters and ResponseElements are the JSON objects as the
	// record has them (compact JSON text, "" when absent or null).
	RequestParameters string
	ResponseElements  string
}

// Key is the key inventory's key.* field set.
type Key struct {
	ID         string
	Status     string // active, retired
	RetiredAt  time.Time
	Custodians []string
}

// RefWith returns a stable reference to the event for evidence: event.id
// when the sender gave one, otherwise "<inputName>:<line>".
func (e *Event) RefWith(inputName string) string {
	if e.ID != "" {
		return e.ID
	}
	return inputName + ":" + strconv.FormatUint(uint64(e.Line), 10)
}

// IsActivity reports whether the event is something a principal did (as
// opposed to reference data about identities or keys). Roster and key
// inventory events are not activity even when they carry user.id.
func (e *Event) IsActivity() bool {
	if e.User.ID == "" {
		return false
	}
	switch e.Dataset {
	case DatasetRoster, DatasetKeys:
		return false
	}
	return true
}

// PrincipalKey returns the principal an event is about, for detectors that
// keep state per principal and learn from the roster: identity.id on
// hr.roster events, user.id on activity. ok is false for anything else
// (key inventory, events without a principal).
func (e *Event) PrincipalKey() (key EntityKey, ok bool) {
	if e.Dataset == DatasetRoster {
		if e.Identity.ID == "" {
			return EntityKey{}, false
		}
		return EntityKey{Kind: EntityPrincipal, ID: e.Identity.ID}, true
	}
	if !e.IsActivity() {
		return EntityKey{}, false
	}
	return EntityKey{Kind: EntityPrincipal, ID: e.User.ID}, true
}
