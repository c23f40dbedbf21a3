// Package decode turns lines of the event contract (docs/events.md) into
// event.Event values. It is the hot path of every input (HTTP ingest, file
// replay, Kafka): each line is validated in a single pass by a reused
// jsontext.Decoder (syntax, UTF-8, nesting), then its validated bytes are
// walked without further copying. Repetitive strings (dataset, action,
// country, user agent, key ids, …) are interned in small bounded caches,
// so only high-cardinality values (user.id, token.id, url.path,
// records.ids) allocate.
//
// # The contract, as this package enforces it
//
// One JSON object per line (NDJSON, UTF-8, LF or CRLF line ends, the final
// newline optional). Field names follow ECS and may be written nested
// ({"event":{"dataset":"x"}}), with ECS dotted keys ({"event.dataset":"x"}),
// or any mixture of the two ({"http.response":{"status_code":200}}).
//
//   - Required: @timestamp (RFC 3339, any offset, fractional seconds
//     allowed; stored in UTC), event.dataset, event.action.
//   - Unknown fields are ignored. JSON null and the empty string mean
//     "absent", as do empty arrays and null or empty array elements.
//   - Arrays (user.roles, records.ids, records.fields, identity.roles,
//     key.custodians) may also be given as a single string. records.ids
//     elements may be JSON numbers; integers are kept as written, other
//     integral numbers are converted to a decimal string.
//   - http.response.status_code (0-999), http.response.body.bytes (>= 0)
//     and source.as.number (0-4294967295) are integers, also accepted as a
//     string holding one. source.ip is an IPv4 or IPv6 address; an IPv6 zone
//     is dropped and IPv4-mapped IPv6 addresses are unmapped.
//   - A contract field given twice with a value (as a nested and a dotted
//     key, or as a repeated object member) is rejected; repeated unknown
//     members and repeated groups with distinct fields are not. Invalid
//     UTF-8, anything after the object, and a line that is not a JSON
//     object are rejected.
//
// A rejected line yields a *LineError carrying the line number, a stable
// Code (CodeInvalidJSON, CodeMissingField, CodeInvalidField,
// CodeLineTooLong) and a one-line Reason. When a line has several problems,
// malformed JSON wins over an invalid field, which wins over a missing one.
// An empty or whitespace-only line is not an error: Decode returns ErrEmpty
// and Reader skips it.
//
// The strings and slices in a decoded Event may be shared with other events
// decoded by the same Decoder (interning); like the Event itself they must
// not be modified.
package decode
