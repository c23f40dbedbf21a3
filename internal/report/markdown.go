package report

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The Markdown report interpolates values that an event controls (alert
// and record ids, principals, keys, sources, titles, explanations,
// evidence, action targets and reasons). Every one goes through mdText or
// mdCode, so none can start a block (heading, list, quote, fence, table,
// thematic break, link reference definition), break a table cell or a
// line, or begin an inline construct (emphasis, code span, link, image,
// autolink, raw HTML, entity, footnote, math) — in CommonMark and in
// GitHub Flavored Markdown.

// mdInline are the ASCII characters mdText backslash-escapes wherever they
// occur: every character that opens or closes an inline construct or a
// table cell in CommonMark or GFM (including GFM's autolinks of
// "scheme:" and "user@host", and "$" math), plus "#" so a value can never
// shape a heading or close one. CommonMark guarantees that any
// backslash-escaped ASCII punctuation renders as itself.
const mdInline = "\\`*_~[]<>&|#!$^{}@:"

// mdLineStart are the characters that start a block only at the start of
// a line; mdText escapes them when the value begins with one (it may be
// placed at the start of a line).
const mdLineStart = "-+="

// mdClean maps s to one printable line: invalid UTF-8 becomes U+FFFD, C0
// and C1 control characters (tab, line feed and carriage return among
// them), DEL and the Unicode line and paragraph separators become a space,
// and the bidirectional controls (which reorder what a reader sees)
// become U+FFFD.
func mdClean(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s { // an invalid byte is utf8.RuneError, written as U+FFFD
		switch {
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, r == '\u2028', r == '\u2029':
			b.WriteByte(' ')
		case unicode.Is(unicode.Bidi_Control, r):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdText renders s as inert Markdown text, safe anywhere in a line — at
// its start, in a list item, a heading or a table cell: mdClean, then
// leading spaces dropped (they could indent a code block), then every
// mdInline character backslash-escaped (but "_" between two ASCII letters
// or digits, which cannot delimit emphasis); so are a leading "-", "+" or
// "=", the "." or ")" after a leading run of digits (a list marker, a
// setext underline, a thematic break) and the "." of "www." (a GFM
// autolink; "http:" and "user@host" lose theirs with ":" and "@").
// Rendered, the result reads as the cleaned value; nothing else changes.
func mdText(s string) string {
	s = strings.TrimLeft(mdClean(s), " ")
	var b strings.Builder
	b.Grow(len(s) + 8)
	digits := 0 // length of the leading run of digits, -1 once past it
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' && intraword(s, i):
			// between letters or digits "_" opens and closes nothing
			// (CommonMark's flanking rules): revoke_key stays readable.
		case strings.IndexByte(mdInline, c) >= 0:
			b.WriteByte('\\')
		case i == 0 && strings.IndexByte(mdLineStart, c) >= 0:
			b.WriteByte('\\')
		case digits == i && (c == '.' || c == ')') && i > 0:
			b.WriteByte('\\')
		case c == '.' && i >= 3 && strings.EqualFold(s[i-3:i], "www"):
			b.WriteByte('\\') // GFM links a bare "www."
		}
		if digits == i && c >= '0' && c <= '9' {
			digits++
		}
		b.WriteByte(c)
	}
	return b.String()
}

// intraword reports whether s[i] sits between two ASCII letters or digits.
func intraword(s string, i int) bool {
	return i > 0 && i+1 < len(s) && isAlnum(s[i-1]) && isAlnum(s[i+1])
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// mdCode renders s as a CommonMark code span (its content is literal: no
// emphasis, links or HTML), on one line (mdClean): the fence is one
// backtick longer than the longest run of backticks in s, and a space pads
// a value that begins or ends with a backtick or a space (CommonMark strips
// exactly one on each side). An empty value is a code span of one space.
// Not for table cells: GFM splits cells at "|" even inside code spans.
func mdCode(s string) string {
	s = mdClean(s)
	if s == "" {
		return "` `"
	}
	run, longest := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	pad := ""
	if strings.Trim(s, " ") != "" && (s[0] == '`' || s[0] == ' ' || s[len(s)-1] == '`' || s[len(s)-1] == ' ') {
		pad = " "
	}
	return fence + pad + s + pad + fence
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_.:/@%+=, (so a suggested command line copied from
// the report runs what it says, whatever the id).
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
