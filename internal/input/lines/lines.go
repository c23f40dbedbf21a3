// Package lines splits a byte stream into lines for the line-oriented
// input formats (nginx, JSON access logs, mappings, CloudTrail exports). It
// follows the rules of decode.Reader: LF or CRLF line ends, the final
// newline optional, a UTF-8 byte order mark at the start of the stream
// dropped, and a line longer than the limit consumed without being
// buffered.
package lines

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"

	"github.com/haechi-sec/haechi/internal/decode"
)

const maxReadBuffer = 64 << 10

var bom = []byte("\xef\xbb\xbf")

// Reader returns the lines of a stream one at a time. It is not safe for
// concurrent use.
type Reader struct {
	br      *bufio.Reader
	maxLine int
	line    int
	long    []byte
	err     error // sticky: io.EOF or a read error
}

// NewReader returns a Reader of r. maxLine is the longest accepted line in
// bytes without its terminator; 0 or less means decode.DefaultMaxLine.
func NewReader(r io.Reader, maxLine int) *Reader {
	if maxLine <= 0 {
		maxLine = decode.DefaultMaxLine
	}
	size := maxReadBuffer
	if maxLine+2 < size {
		size = max(maxLine+2, 4096)
	}
	return &Reader{br: bufio.NewReaderSize(r, size), maxLine: maxLine}
}

// Line returns the number of lines consumed so far, blank ones included.
func (r *Reader) Line() int { return r.line }

// Next returns the next line that is not blank (empty or only spaces and
// tabs), without its terminator. The slice is valid until the next call.
// A line longer than the limit is returned as a *decode.LineError with
// Code decode.CodeLineTooLong and Line set. At the end of the stream Next
// returns io.EOF; a read error is returned as is, and again by every later
// call.
func (r *Reader) Next() ([]byte, error) {
	for {
		line, length, err := r.readLine()
		if err != nil {
			return nil, err
		}
		r.line++
		if r.line == 1 {
			line = bytes.TrimPrefix(line, bom)
		}
		if length > r.maxLine {
			return nil, &decode.LineError{
				Line: r.line,
				Code: decode.CodeLineTooLong,
				Reason: "line of " + strconv.Itoa(length) + " bytes exceeds the limit of " +
					strconv.Itoa(r.maxLine) + " bytes",
			}
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

func (r *Reader) readLine() (line []byte, length int, err error) {
	if r.err != nil {
		return nil, 0, r.err
	}
	frag, err := r.br.ReadSlice('\n')
	line = frag
	if err == bufio.ErrBufferFull {
		total := len(frag)
		r.long = append(r.long[:0], frag...)
		var prev byte
		for err == bufio.ErrBufferFull {
			prev = frag[len(frag)-1]
			frag, err = r.br.ReadSlice('\n')
			total += len(frag)
			if total <= r.maxLine+2 {
				r.long = append(r.long, frag...)
			}
		}
		line = r.long
		if total > r.maxLine+2 {
			if cap(r.long) > 4*maxReadBuffer {
				r.long = nil
			}
			if err != nil && !errors.Is(err, io.EOF) {
				r.err = err
				return nil, 0, err
			}
			if err != nil {
				r.err = io.EOF
			}
			length = total
			if err == nil {
				length--
				if (len(frag) >= 2 && frag[len(frag)-2] == '\r') || (len(frag) == 1 && prev == '\r') {
					length--
				}
			}
			return nil, length, nil
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		r.err = io.EOF
		if len(line) == 0 {
			return nil, 0, io.EOF
		}
	default:
		r.err = err
		return nil, 0, err
	}
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line, len(line), nil
}
