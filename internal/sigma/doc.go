// Package sigma loads Sigma detection rules (https://sigmahq.io,
// specification v2) and evaluates them against decoded events
// (docs/events.md). It is a small evaluator of its own over the event
// contract's fields, not a query converter: each rule is compiled once into
// matchers (wildcard patterns with precomputed fast paths, compiled regular
// expressions, parsed networks), and Rule.Match runs them on an
// *event.Event without allocating for string comparisons.
//
// Sigma field names are mapped onto contract fields per logsource
// (Mappings, listed in docs/sigma.md); contract field names may also be
// used directly. A logsource also restricts which events a rule sees, by
// event.dataset.
//
// Nothing is silently skipped: a rule that uses anything this package
// cannot evaluate faithfully — an unmapped field, an encoding modifier, an
// aggregation, a correlation rule, an unknown logsource — is not loaded,
// and Parse reports an *UnsupportedError naming the feature with its file,
// line and column. Invalid rules yield a *RuleError. ParseDir returns the
// rules that loaded together with one error per rule that did not.
package sigma
