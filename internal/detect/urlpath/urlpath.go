// Package urlpath names the route of a request the way detectors compare
// them: the URL path with every segment that holds a digit replaced by {},
// so /admin/tickets/T-41/customers/7 and …/T-98/customers/3 are one route.
// peer_route judges routes against a role's peers; behaviour counts the
// distinct routes an identity uses.
package urlpath

import "strings"

// Template replaces every path segment holding a digit with {} and drops
// the query; it keeps at most 12 segments.
func Template(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	var b strings.Builder
	n := 0
	for seg := range strings.SplitSeq(path, "/") {
		if n > 0 {
			b.WriteByte('/')
		}
		if n == 12 {
			b.WriteString("…")
			break
		}
		n++
		if strings.ContainsAny(seg, "0123456789") {
			b.WriteString("{}")
		} else {
			b.WriteString(seg)
		}
	}
	return b.String()
}
