// Package snap is the binary encoding of detector state checkpoints: a
// small append-only writer and a reader with sticky errors, over
// little-endian fixed-width floats and varints.
//
// Contract: a Reader over bytes written by a Writer returns the same
// values in the same order; a Reader over anything else (truncated,
// corrupted, another version) returns an error from Err — never panics,
// never allocates more than the input could hold (lengths are checked
// against the bytes left), so a damaged checkpoint is refused and the
// detector starts cold. Callers write a version byte first and check it.
package snap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Writer appends values to a byte slice. The zero value is ready.
type Writer struct{ B []byte }

// Byte appends one byte.
func (w *Writer) Byte(v byte) { w.B = append(w.B, v) }

// Bool appends a bool.
func (w *Writer) Bool(v bool) {
	if v {
		w.B = append(w.B, 1)
	} else {
		w.B = append(w.B, 0)
	}
}

// Uint appends an unsigned varint.
func (w *Writer) Uint(v uint64) { w.B = binary.AppendUvarint(w.B, v) }

// Int appends a signed varint.
func (w *Writer) Int(v int64) { w.B = binary.AppendVarint(w.B, v) }

// Float appends a float64 (8 bytes).
func (w *Writer) Float(v float64) { w.B = binary.LittleEndian.AppendUint64(w.B, math.Float64bits(v)) }

// String appends a length-prefixed string.
func (w *Writer) String(s string) {
	w.Uint(uint64(len(s)))
	w.B = append(w.B, s...)
}

// Bytes appends a length-prefixed byte slice.
func (w *Writer) Bytes(b []byte) {
	w.Uint(uint64(len(b)))
	w.B = append(w.B, b...)
}

// Time appends a time as unix nanoseconds (the zero time as 0).
func (w *Writer) Time(t time.Time) {
	if t.IsZero() {
		w.Int(0)
		return
	}
	w.Int(t.UnixNano())
}

// Reader reads values back. After the first error every read returns a
// zero value and Err reports the error.
type Reader struct {
	b   []byte
	err error
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// ErrCorrupt is returned (wrapped) for truncated or malformed input.
var ErrCorrupt = errors.New("snap: corrupt snapshot")

// Err returns the first error.
func (r *Reader) Err() error { return r.err }

// Len returns how many bytes are left.
func (r *Reader) Len() int { return len(r.b) }

// Fail records a semantic error found by the caller (a value out of
// range), as a corrupt snapshot.
func (r *Reader) Fail(what string) { r.fail(what) }

func (r *Reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	r.b = nil
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.b) < 1 {
		r.fail("byte")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// Bool reads a bool.
func (r *Reader) Bool() bool {
	switch r.Byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("bool")
	return false
}

// Uint reads an unsigned varint.
func (r *Reader) Uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Int reads a signed varint.
func (r *Reader) Int() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Float reads a float64.
func (r *Reader) Float() float64 {
	if len(r.b) < 8 {
		r.fail("float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// Count reads a length or element count and checks it against the bytes
// left, assuming each element takes at least minSize bytes (≥ 1), so a
// corrupted count cannot make the caller allocate more than the input
// could hold.
func (r *Reader) Count(minSize int) int {
	n := r.Uint()
	if minSize < 1 {
		minSize = 1
	}
	if n > uint64(len(r.b)/minSize) {
		r.fail("count beyond the input")
		return 0
	}
	return int(n)
}

// String reads a length-prefixed string.
func (r *Reader) String() string {
	n := r.Count(1)
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// Next returns the next n bytes of the input, not a copy (valid while
// the input is), and moves past them; nil after an error or when fewer
// are left.
func (r *Reader) Next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("read beyond the input")
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

// Bytes reads a length-prefixed byte slice (a copy; never nil unless an
// error occurred).
func (r *Reader) Bytes() []byte {
	n := r.Count(1)
	if r.err != nil {
		return nil
	}
	b := make([]byte, n)
	copy(b, r.b[:n])
	r.b = r.b[n:]
	return b
}

// Time reads a time written by Writer.Time (UTC; 0 reads as the zero time).
func (r *Reader) Time() time.Time {
	v := r.Int()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

// End reports an error if bytes are left over (a snapshot of another
// layout) or an earlier read failed.
func (r *Reader) End() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d bytes left over", len(r.b)))
	}
	return r.err
}
