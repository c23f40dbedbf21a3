// Package longtext makes long text for the tests of fields longer than a
// store's index entry (PostgreSQL's btree holds ≈ 2.7 kB and compresses a
// long entry before it checks its size, so the text must not compress).
// It uses the standard library only and is imported by tests alone.
package longtext

import (
	"fmt"
	"strings"
)

// Incompressible returns prefix followed by hexadecimal digits of a
// linear congruential sequence, about n bytes in all (at least n, at most
// n+12): text that compresses poorly, the same for the same arguments.
func Incompressible(prefix string, n int) string {
	var b strings.Builder
	b.WriteString(prefix)
	for x := uint64(1); b.Len() < n; x = x*6364136223846793005 + 1442695040888963407 {
		fmt.Fprintf(&b, "%x", x>>20)
	}
	return b.String()
}
