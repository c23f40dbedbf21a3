package decode

// field identifies one contract field. fieldNone means "not a field".
type field uint8

const (
	fieldNone field = iota
	fTimestamp
	fDataset
	fAction
	fEventID
	fOutcome
	fUserID
	fUserName
	fUserRoles
	fSourceIP
	fCountry
	fASN
	fASOrg
	fUserAgent
	fMethod
	fStatus
	fBodyBytes
	fURLPath
	fTokenID
	fTokenKeyID
	fTokenIssuer
	fTokenIssuedAt
	fTokenExpiresAt
	fRecType
	fRecIDs
	fRecFields
	fIdentID
	fIdentKind
	fIdentRoles
	fIdentStatus
	fIdentTerminatedAt
	fIdentCountry
	fIdentLastActive
	fKeyID
	fKeyStatus
	fKeyRetiredAt
	fKeyCustodians
	fProvider
	fLat
	fLon
	fURLQuery
	fURLDomain
	fCTIdentityType
	fCTIssuerType
	fCTEventType
	fCTErrorCode
	fCTErrorMessage
	fCTRequestParameters
	fCTResponseElements
	numFields
)

// Seen-fields bitmask must fit in a uint64.
var _ [64 - numFields]struct{}

// fieldNames are the canonical (dotted ECS) names used in error reasons.
var fieldNames = [numFields]string{
	fTimestamp:           "@timestamp",
	fDataset:             "event.dataset",
	fAction:              "event.action",
	fEventID:             "event.id",
	fOutcome:             "event.outcome",
	fUserID:              "user.id",
	fUserName:            "user.name",
	fUserRoles:           "user.roles",
	fSourceIP:            "source.ip",
	fCountry:             "source.geo.country_iso_code",
	fASN:                 "source.as.number",
	fASOrg:               "source.as.organization.name",
	fUserAgent:           "user_agent.original",
	fMethod:              "http.request.method",
	fStatus:              "http.response.status_code",
	fBodyBytes:           "http.response.body.bytes",
	fURLPath:             "url.path",
	fTokenID:             "token.id",
	fTokenKeyID:          "token.key_id",
	fTokenIssuer:         "token.issuer",
	fTokenIssuedAt:       "token.issued_at",
	fTokenExpiresAt:      "token.expires_at",
	fRecType:             "records.type",
	fRecIDs:              "records.ids",
	fRecFields:           "records.fields",
	fIdentID:             "identity.id",
	fIdentKind:           "identity.kind",
	fIdentRoles:          "identity.roles",
	fIdentStatus:         "identity.status",
	fIdentTerminatedAt:   "identity.terminated_at",
	fIdentCountry:        "identity.country",
	fIdentLastActive:     "identity.last_active",
	fKeyID:               "key.id",
	fKeyStatus:           "key.status",
	fKeyRetiredAt:        "key.retired_at",
	fKeyCustodians:       "key.custodians",
	fProvider:            "event.provider",
	fLat:                 "source.geo.location.lat",
	fLon:                 "source.geo.location.lon",
	fURLQuery:            "url.query",
	fURLDomain:           "url.domain",
	fCTIdentityType:      "aws.cloudtrail.user_identity.type",
	fCTIssuerType:        "aws.cloudtrail.user_identity.session_context.session_issuer.type",
	fCTEventType:         "aws.cloudtrail.event_type",
	fCTErrorCode:         "aws.cloudtrail.error_code",
	fCTErrorMessage:      "aws.cloudtrail.error_message",
	fCTRequestParameters: "aws.cloudtrail.request_parameters",
	fCTResponseElements:  "aws.cloudtrail.response_elements",
}

// FieldNames returns the dotted names of every field the decoder knows, in
// a stable order (for documentation and tests).
func FieldNames() []string {
	out := make([]string, 0, numFields-1)
	out = append(out, fieldNames[1:]...)
	return out
}

// lookup classifies a dotted path: a contract field, a group (an object
// that may contain contract fields), or neither (skipped).
func lookup(path []byte) (f field, group bool) {
	switch string(path) {
	case "@timestamp":
		return fTimestamp, false
	case "event.dataset":
		return fDataset, false
	case "event.action":
		return fAction, false
	case "event.id":
		return fEventID, false
	case "event.outcome":
		return fOutcome, false
	case "user.id":
		return fUserID, false
	case "user.name":
		return fUserName, false
	case "user.roles":
		return fUserRoles, false
	case "source.ip":
		return fSourceIP, false
	case "source.geo.country_iso_code":
		return fCountry, false
	case "source.as.number":
		return fASN, false
	case "source.as.organization.name":
		return fASOrg, false
	case "user_agent.original":
		return fUserAgent, false
	case "http.request.method":
		return fMethod, false
	case "http.response.status_code":
		return fStatus, false
	case "http.response.body.bytes":
		return fBodyBytes, false
	case "url.path":
		return fURLPath, false
	case "url.query":
		return fURLQuery, false
	case "url.domain":
		return fURLDomain, false
	case "aws.cloudtrail.user_identity.type":
		return fCTIdentityType, false
	case "aws.cloudtrail.user_identity.session_context.session_issuer.type":
		return fCTIssuerType, false
	case "aws.cloudtrail.event_type":
		return fCTEventType, false
	case "aws.cloudtrail.error_code":
		return fCTErrorCode, false
	case "aws.cloudtrail.error_message":
		return fCTErrorMessage, false
	case "aws.cloudtrail.request_parameters":
		return fCTRequestParameters, false
	case "aws.cloudtrail.response_elements":
		return fCTResponseElements, false
	case "token.id":
		return fTokenID, false
	case "token.key_id":
		return fTokenKeyID, false
	case "token.issuer":
		return fTokenIssuer, false
	case "token.issued_at":
		return fTokenIssuedAt, false
	case "token.expires_at":
		return fTokenExpiresAt, false
	case "records.type":
		return fRecType, false
	case "records.ids":
		return fRecIDs, false
	case "records.fields":
		return fRecFields, false
	case "identity.id":
		return fIdentID, false
	case "identity.kind":
		return fIdentKind, false
	case "identity.roles":
		return fIdentRoles, false
	case "identity.status":
		return fIdentStatus, false
	case "identity.terminated_at":
		return fIdentTerminatedAt, false
	case "identity.country":
		return fIdentCountry, false
	case "identity.last_active":
		return fIdentLastActive, false
	case "key.id":
		return fKeyID, false
	case "key.status":
		return fKeyStatus, false
	case "key.retired_at":
		return fKeyRetiredAt, false
	case "key.custodians":
		return fKeyCustodians, false
	case "event.provider":
		return fProvider, false
	case "source.geo.location.lat":
		return fLat, false
	case "source.geo.location.lon":
		return fLon, false
	case "event", "user", "source", "source.geo", "source.as",
		"source.as.organization", "source.geo.location", "user_agent", "http", "http.request",
		"http.response", "http.response.body", "url", "token", "records",
		"identity", "key", "aws", "aws.cloudtrail", "aws.cloudtrail.user_identity",
		"aws.cloudtrail.user_identity.session_context", "aws.cloudtrail.user_identity.session_context.session_issuer":
		return fieldNone, true
	}
	return fieldNone, false
}
