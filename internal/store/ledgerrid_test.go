package store

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// pgLedgerRID gives PostgreSQL a name it can store and index for every
// record id: short valid ids unchanged, the others valid UTF-8 without
// NUL of at most pgMaxLedgerRID bytes, long ids that differ anywhere
// apart, and a stored name its own form (a look-up of it finds it).
func TestPGLedgerRID(t *testing.T) {
	long := strings.Repeat("é", pgMaxLedgerRID) // 2 bytes a rune: cut inside one
	for _, tc := range []struct {
		name, in string
		same     bool
	}{
		{"short", "o:123:4", true},
		{"limit", strings.Repeat("x", pgMaxLedgerRID), true},
		{"nul", "a\x00b", false},
		{"invalid", "a\xffb", false},
		{"long", long, false},
		{"long-nul", long + "\x00", false},
		{"long-invalid", "\xff" + long, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := pgLedgerRID(tc.in)
			if (f == tc.in) != tc.same {
				t.Fatalf("form %q, unchanged %v, want %v", f, f == tc.in, tc.same)
			}
			if len(f) > pgMaxLedgerRID || !utf8.ValidString(f) || strings.IndexByte(f, 0) >= 0 {
				t.Fatalf("form of %d bytes, valid %v", len(f), utf8.ValidString(f))
			}
			if g := pgLedgerRID(f); g != f {
				t.Fatalf("form of the form %q, want %q", g, f)
			}
		})
	}
	if pgLedgerRID(long+"a") == pgLedgerRID(long+"b") || pgLedgerRID(long+"\x00") == pgLedgerRID(long+"\xff") {
		t.Fatal("long ids that differ share a form")
	}
}
