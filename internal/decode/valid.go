package decode

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// maxDepth bounds the nesting of arrays and objects, as jsontext does.
const maxDepth = 10000

// valid reports whether v is exactly one JSON value (RFC 8259) with
// optional surrounding whitespace, whose strings are valid UTF-8 with valid
// escapes (surrogate pairs included), nested at most maxDepth deep. It
// accepts exactly what jsontext accepts with AllowDuplicateNames — a fuzz
// test holds the two to that — in one pass without allocating: it is the
// hot path's syntax check. On a false result the decoder asks jsontext for
// a precise reason; invalid lines are rare, valid ones are not.
//
// stack is scratch space for the nesting; it is returned (grown) for reuse.
func valid(v []byte, stack []byte) (bool, []byte) {
	stack = stack[:0]
	n := len(v)
	i := 0
value:
	i = skipSpace(v, i)
	if i >= n {
		return false, stack
	}
	switch c := v[i]; c {
	case '{':
		if len(stack) >= maxDepth {
			return false, stack
		}
		stack = append(stack, '{')
		i = skipSpace(v, i+1)
		if i < n && v[i] == '}' {
			stack = stack[:len(stack)-1]
			i++
			goto after
		}
		goto member
	case '[':
		if len(stack) >= maxDepth {
			return false, stack
		}
		stack = append(stack, '[')
		i = skipSpace(v, i+1)
		if i < n && v[i] == ']' {
			stack = stack[:len(stack)-1]
			i++
			goto after
		}
		goto value
	case '"':
		var ok bool
		if i, ok = validString(v, i); !ok {
			return false, stack
		}
	case 't':
		if !hasLit(v, i, "true") {
			return false, stack
		}
		i += 4
	case 'f':
		if !hasLit(v, i, "false") {
			return false, stack
		}
		i += 5
	case 'n':
		if !hasLit(v, i, "null") {
			return false, stack
		}
		i += 4
	default:
		var ok bool
		if i, ok = validNumber(v, i); !ok {
			return false, stack
		}
	}
after:
	i = skipSpace(v, i)
	if len(stack) == 0 {
		return i == n, stack
	}
	if i >= n {
		return false, stack
	}
	switch top := stack[len(stack)-1]; {
	case v[i] == ',':
		i = skipSpace(v, i+1)
		if top == '{' {
			goto member
		}
		goto value
	case (top == '{' && v[i] == '}') || (top == '[' && v[i] == ']'):
		stack = stack[:len(stack)-1]
		i++
		goto after
	}
	return false, stack
member:
	// i is at the first non-space byte where an object member's name
	// must start.
	if i >= n || v[i] != '"' {
		return false, stack
	}
	{
		var ok bool
		if i, ok = validString(v, i); !ok {
			return false, stack
		}
	}
	i = skipSpace(v, i)
	if i >= n || v[i] != ':' {
		return false, stack
	}
	i++
	goto value
}

func hasLit(v []byte, i int, lit string) bool {
	return len(v)-i >= len(lit) && string(v[i:i+len(lit)]) == lit
}

// validNumber checks the JSON number starting at v[i] and returns the
// index just after it.
func validNumber(v []byte, i int) (int, bool) {
	n := len(v)
	if i < n && v[i] == '-' {
		i++
	}
	switch {
	case i >= n:
		return i, false
	case v[i] == '0':
		i++
	case v[i] >= '1' && v[i] <= '9':
		for i++; i < n && v[i] >= '0' && v[i] <= '9'; i++ {
		}
	default:
		return i, false
	}
	if i < n && v[i] == '.' {
		i++
		if i >= n || v[i] < '0' || v[i] > '9' {
			return i, false
		}
		for i++; i < n && v[i] >= '0' && v[i] <= '9'; i++ {
		}
	}
	if i < n && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < n && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if i >= n || v[i] < '0' || v[i] > '9' {
			return i, false
		}
		for i++; i < n && v[i] >= '0' && v[i] <= '9'; i++ {
		}
	}
	return i, true
}

// validString checks the JSON string starting at v[i] == '"' and returns
// the index just after its closing quote. Eight bytes at a time it skips
// what needs no attention: printable ASCII other than '"' and '\\'.
func validString(v []byte, i int) (int, bool) {
	const (
		lo = 0x0101010101010101
		hi = 0x8080808080808080
		qq = lo * '"'
		bs = lo * '\\'
	)
	n := len(v)
	i++
	for i < n {
		if i+8 <= n {
			x := binary.LittleEndian.Uint64(v[i:])
			q, b := x^qq, x^bs
			// Bytes that are '"', '\\', < 0x20 or ≥ 0x80 (the high bit of x
			// itself catches the last).
			m := ((q-lo)&^q | (b-lo)&^b | (x-lo*0x20)&^x | x) & hi
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		c := v[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			var ok bool
			if i, ok = validEscape(v, i); !ok {
				return i, false
			}
		case c < 0x20:
			return i, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && size == 1 {
				return i, false
			}
			i += size
		}
	}
	return n, false
}

// validEscape checks the escape sequence at v[i] == '\\' and returns the
// index after it. A \u escape of a high surrogate must be followed by one
// of a low surrogate; a lone low surrogate is invalid.
func validEscape(v []byte, i int) (int, bool) {
	if i+1 >= len(v) {
		return i, false
	}
	switch v[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2, true
	case 'u':
	default:
		return i, false
	}
	r, ok := hex4(v, i+2)
	if !ok {
		return i, false
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return i, false
	case r >= 0xD800 && r <= 0xDBFF:
		if i+7 >= len(v) || v[i+6] != '\\' || v[i+7] != 'u' {
			return i, false
		}
		r2, ok := hex4(v, i+8)
		if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
			return i, false
		}
		return i + 12, true
	}
	return i + 6, true
}

func hex4(v []byte, i int) (rune, bool) {
	if i+4 > len(v) {
		return 0, false
	}
	var r rune
	for _, c := range v[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
