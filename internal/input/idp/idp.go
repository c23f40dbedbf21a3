// Package idp reads identity providers' logs as event.Event values of the
// event contract: the Okta System Log ("okta"), Keycloak user and admin
// events ("keycloak"), Microsoft Entra ID sign-in and audit logs ("entra")
// and OCSF Authentication (3002) and API Activity (6003) events ("ocsf").
// docs/inputs.md has each field mapping.
//
// Every format is mapped onto one model, so the token detectors work on
// all of them. An identity provider's session (and each token it issues)
// is a bearer credential bound to the client it was issued to:
//
//   - a successful login that opens a session is a login (auth.login,
//     success) and the session minted (auth.token / token.issued with
//     token.id = the session id);
//   - a token the provider issues (Keycloak's access and refresh tokens,
//     Entra's uniqueTokenIdentifier) is minted (auth.token / token.issued);
//   - a later request that presents the session or a refresh token (Okta
//     SSO into an app, an Entra non-interactive sign-in, a Keycloak token
//     refresh, an OCSF API call in a session) is a use of it
//     (gateway.access with token.id), which token_binding compares with
//     where it was minted;
//   - a failed login is auth.login with outcome failure;
//   - deprovisioning (Okta user.lifecycle.deactivate, Entra "Delete user" /
//     "Disable account", Keycloak DELETE of a user) is a roster event
//     (hr.roster / identity.terminated), reactivation identity.upsert with
//     status active, so activity after it is terminated_identity's;
//   - anything else keeps the provider's own event type as event.action
//     under a dataset of the provider (okta.system, keycloak.event,
//     keycloak.admin, azure.signinlogs, azure.auditlogs, ocsf.*).
//
// One line can thus give several events (a login and its session; a
// refresh, the access token and the new refresh token); they share the
// line's position, and when the provider gives an event id the extra
// events' ids are that id with "#session" or "#token" appended.
package idp

import (
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input/lines"
)

// Format names.
const (
	FormatOkta     = "okta"
	FormatKeycloak = "keycloak"
	FormatEntra    = "entra"
	FormatOCSF     = "ocsf"
)

// Datasets of events that are neither logins, mints, uses nor roster
// events.
const (
	DatasetOkta          = "okta.system"
	DatasetKeycloak      = "keycloak.event"
	DatasetKeycloakAdmin = "keycloak.admin"
	DatasetEntraSignIn   = "azure.signinlogs"
	DatasetEntraAudit    = "azure.auditlogs"
	DatasetOCSFAuth      = "ocsf.authentication"
	DatasetOCSFAPI       = "ocsf.api_activity"
)

// Suffixes of the event ids of the extra events of one line.
const (
	SessionSuffix = "#session"
	TokenSuffix   = "#token"
)

// result is one event or one rejection produced by a line.
type result struct {
	ev  event.Event
	err *decode.LineError
}

// decodeFunc appends what one line gives to out.
type decodeFunc func(line []byte, out []result) []result

// Reader reads one of the formats, one JSON object per line. It
// implements the contract of decode.Reader: Next returns nil with an
// event, a *decode.LineError for a rejected entry (reading goes on), io.EOF
// at the end, or another error (a read error) that every later call
// returns again. Line is the 1-based line number of the last entry; the
// events of one line share it. It is not safe for concurrent use.
type Reader struct {
	lr    *lines.Reader
	input uint32
	dec   decodeFunc
	queue []result
	next  int
	err   error
}

// NewReader returns a Reader of r in the named format (FormatOkta,
// FormatKeycloak, FormatEntra or FormatOCSF); input is stored in every
// event's Input field; maxLine is the longest accepted line (0:
// decode.DefaultMaxLine). It returns nil for an unknown format.
func NewReader(format string, r io.Reader, input uint32, maxLine int) *Reader {
	var dec decodeFunc
	switch format {
	case FormatOkta:
		dec = decodeOkta
	case FormatKeycloak:
		dec = decodeKeycloak
	case FormatEntra:
		dec = decodeEntra
	case FormatOCSF:
		dec = decodeOCSF
	default:
		return nil
	}
	return &Reader{lr: lines.NewReader(r, maxLine), input: input, dec: dec}
}

// Formats lists the format names NewReader accepts.
func Formats() []string { return []string{FormatEntra, FormatKeycloak, FormatOCSF, FormatOkta} }

// Line returns the number of lines consumed.
func (r *Reader) Line() int { return r.lr.Line() }

// Next decodes the next event into ev.
func (r *Reader) Next(ev *event.Event) error {
	*ev = event.Event{}
	if r.err != nil {
		return r.err
	}
	for r.next >= len(r.queue) {
		line, err := r.lr.Next()
		if err != nil {
			if le, ok := err.(*decode.LineError); ok {
				return le
			}
			r.err = err
			return err
		}
		clear(r.queue)
		r.queue, r.next = r.dec(line, r.queue[:0]), 0
	}
	res := &r.queue[r.next]
	r.next++
	if res.err != nil {
		le := *res.err
		le.Line = r.lr.Line()
		return &le
	}
	*ev = res.ev
	ev.Input = r.input
	ev.Line = uint32(r.lr.Line())
	return nil
}

// Decode decodes one line of the named format and returns its events, or
// the first rejection among them (Line 0). For tests and tools.
func Decode(format string, line []byte) ([]event.Event, error) {
	r := NewReader(format, strings.NewReader(""), 0, 0)
	if r == nil {
		return nil, errors.New("idp: unknown format " + strconv.Quote(format))
	}
	var evs []event.Event
	for _, res := range r.dec(line, nil) {
		if res.err != nil {
			return nil, res.err
		}
		evs = append(evs, res.ev)
	}
	return evs, nil
}

// dupOK: providers do not repeat member names; if one did the last wins.
var dupOK = jsontext.AllowDuplicateNames(true)

// unmarshalLine decodes a whole line into v; a line that is not a JSON
// object is invalid_json, a wrong type invalid_field.
func unmarshalLine(line []byte, v any) *decode.LineError {
	line = trimWS(line)
	if len(line) == 0 || line[0] != '{' {
		if jsontext.Value(line).IsValid() {
			return &decode.LineError{Code: decode.CodeInvalidJSON, Reason: "not a JSON object"}
		}
		return decode.JSONSyntaxError(json.Unmarshal(line, new(any)))
	}
	if err := json.Unmarshal(line, v, dupOK); err != nil {
		return decode.JSONShapeError(err, "entry")
	}
	return nil
}

func trimWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

func missing(field string) *decode.LineError {
	return &decode.LineError{Code: decode.CodeMissingField, Reason: "missing required field " + strconv.Quote(field)}
}

func invalid(field, why string) *decode.LineError {
	return &decode.LineError{Code: decode.CodeInvalidField, Reason: "invalid " + strconv.Quote(field) + ": " + why}
}

// parseTime reads an RFC 3339 time (the providers' ISO 8601 with a zone)
// named field; empty is missing_field.
func parseTime(field, s string) (time.Time, *decode.LineError) {
	if s == "" {
		return time.Time{}, missing(field)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}, invalid(field, "want an RFC 3339 time, got "+quote(s))
	}
	return checkTime(field, t)
}

// unixMillis reads a time in milliseconds since 1970 (Keycloak, OCSF).
func unixMillis(field string, ms jsontext.Value) (time.Time, *decode.LineError) {
	if len(ms) == 0 || ms.Kind() == 'n' {
		return time.Time{}, missing(field)
	}
	if ms.Kind() != '0' {
		return time.Time{}, invalid(field, "want milliseconds since 1970, got "+quote(string(ms)))
	}
	f, err := strconv.ParseFloat(string(ms), 64)
	if err != nil || f <= 0 || f > 9.2e15 {
		return time.Time{}, invalid(field, "want milliseconds since 1970, got "+quote(string(ms)))
	}
	sec := int64(f / 1000)
	t := time.Unix(sec, int64((f-float64(sec)*1000)*1e6)).UTC()
	return checkTime(field, t)
}

func checkTime(field string, t time.Time) (time.Time, *decode.LineError) {
	if err := event.CheckTime(t); err != nil {
		return time.Time{}, invalid(field, err.Error())
	}
	return t.UTC(), nil
}

// optMillis reads an optional time in milliseconds; a bad one is dropped
// (it is about something else than the event: a session's creation).
func optMillis(v jsontext.Value) time.Time {
	t, err := unixMillis("", v)
	if err != nil {
		return time.Time{}
	}
	return event.ClampTime(t)
}

// addr parses a client address; anything else (a host name, "unknown")
// leaves it absent, as CloudTrail's service principals do.
func addr(s string) netip.Addr {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.Quote(s)
}

// known returns s unless it is a placeholder providers write for "none".
func known(s string) string {
	switch strings.ToLower(s) {
	case "unknown", "null", "none", "-", "n/a", "00000000-0000-0000-0000-000000000000":
		return ""
	}
	return s
}

// withID returns a copy of ev as the extra event of its line: event.id
// suffixed (when it has one), dataset and action replaced.
func extra(ev event.Event, suffix, dataset, action string) event.Event {
	x := ev
	if x.ID != "" {
		x.ID += suffix
	}
	x.Dataset, x.Action = dataset, action
	return x
}

// mint returns ev as the mint of token id (auth.token / token.issued,
// outcome success, issued at the event's time).
func mint(ev event.Event, suffix, id, issuer string) event.Event {
	m := extra(ev, suffix, event.DatasetToken, event.ActionTokenIssued)
	m.Outcome = event.OutcomeSuccess
	m.Token = event.Token{ID: id, Issuer: issuer, IssuedAt: ev.Time}
	return m
}

// roster returns a hr.roster event about identity id at ev's time:
// terminated when terminated, else an upsert with status active.
func roster(ev event.Event, suffix, id string, terminated bool) event.Event {
	r := extra(ev, suffix, event.DatasetRoster, event.ActionIdentityUpsert)
	r.Identity = event.Identity{ID: id, Status: "active"}
	if terminated {
		r.Action = event.ActionIdentityTerminated
		r.Identity.Status = "terminated"
		r.Identity.TerminatedAt = ev.Time
	}
	return r
}

// lowerType turns a resource type into a records-style name: lower case,
// runs of anything but letters and digits as one '_'.
func lowerType(t string) string {
	var b strings.Builder
	sep := false
	for _, c := range strings.ToLower(t) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('_')
		}
		sep = false
		b.WriteRune(c)
	}
	return b.String()
}
