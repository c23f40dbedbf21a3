// Package lines splits a byte stream into lines for the line-oriented
// input formats (nginx, JSON access logs, mappings, CloudTrail exports).
// It reads them with decode.Lines, so its rules are those of decode.Reader:
// LF or CRLF line ends, the final newline optional, a UTF-8 byte order mark
// at the start of the stream dropped, and a line longer than the limit
// consumed without being buffered; on top of that it skips blank lines.
package lines

import (
	"io"

	"github.com/haechi-sec/haechi/internal/decode"
)

// Reader returns the lines of a stream one at a time. It is not safe for
// concurrent use.
type Reader struct {
	lines *decode.Lines
}

// NewReader returns a Reader of r. maxLine is the longest accepted line in
// bytes without its terminator; 0 or less means decode.DefaultMaxLine.
func NewReader(r io.Reader, maxLine int) *Reader {
	return &Reader{lines: decode.NewLines(r, maxLine)}
}

// Line returns the number of lines consumed so far, blank ones included.
func (r *Reader) Line() int { return r.lines.Line() }

// Next returns the next line that is not blank (empty or only spaces and
// tabs), without its terminator. The slice is valid until the next call.
// A line longer than the limit is returned as a *decode.LineError with
// Code decode.CodeLineTooLong and Line set. At the end of the stream Next
// returns io.EOF; a read error is returned as is, and again by every later
// call.
func (r *Reader) Next() ([]byte, error) {
	for {
		line, err := r.lines.Next()
		if err != nil {
			return nil, err
		}
		if !blank(line) {
			return line, nil
		}
	}
}

func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
