package decode

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"

	"github.com/haechi-sec/haechi/internal/event"
)

// DefaultMaxLine is the line length limit used when NewReader is given 0.
const DefaultMaxLine = 1 << 20

const maxReadBuffer = 64 << 10

var bom = []byte("\xef\xbb\xbf")

// Reader decodes an NDJSON stream line by line. Like Decoder it is not
// safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	dec     *Decoder
	input   uint32
	maxLine int
	line    int
	long    []byte // a line longer than the bufio buffer, reassembled
	err     error  // sticky: io.EOF or a read error
}

// NewReader returns a Reader of the NDJSON stream r. input is stored in
// every decoded Event's Input field. maxLine is the longest accepted line
// in bytes, not counting its line terminator; 0 means DefaultMaxLine.
func NewReader(r io.Reader, input uint32, maxLine int) *Reader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	size := maxReadBuffer
	if maxLine+2 < size {
		size = max(maxLine+2, 4096)
	}
	return &Reader{
		br:      bufio.NewReaderSize(r, size),
		dec:     NewDecoder(),
		input:   input,
		maxLine: maxLine,
	}
}

// Line returns the number of lines consumed so far, including empty and
// rejected ones; after Next returns an event or a *LineError it is that
// line's number.
func (r *Reader) Line() int { return r.line }

// Next decodes the next non-empty line into ev. It returns nil with ev
// filled (ev.Input and ev.Line set), a *LineError with Line set for a
// rejected line (ev is then zero; the next call continues with the next
// line), or io.EOF at the end of the stream. A read error other than
// io.EOF is returned as is, and again by every later call. Empty and
// whitespace-only lines are skipped. The first line may start with a UTF-8
// byte order mark.
func (r *Reader) Next(ev *event.Event) error {
	for {
		line, length, err := r.readLine()
		if err != nil {
			*ev = event.Event{}
			return err
		}
		r.line++
		if r.line == 1 {
			line = bytes.TrimPrefix(line, bom)
		}
		if length > r.maxLine {
			*ev = event.Event{}
			return &LineError{
				Line: r.line,
				Code: CodeLineTooLong,
				Reason: "line of " + strconv.Itoa(length) + " bytes exceeds the limit of " +
					strconv.Itoa(r.maxLine) + " bytes",
			}
		}
		err = r.dec.Decode(line, ev)
		switch e := err.(type) {
		case nil:
			ev.Input = r.input
			ev.Line = uint32(r.line)
			return nil
		case *LineError:
			e.Line = r.line
			return e
		}
		if err != ErrEmpty {
			return err
		}
	}
}

// readLine returns the next line without its terminator ("\n" or "\r\n")
// and its length. A line longer than maxLine is consumed but not kept: line
// is then nil and length > maxLine. err is io.EOF when no line is left, or
// a read error.
func (r *Reader) readLine() (line []byte, length int, err error) {
	if r.err != nil {
		return nil, 0, r.err
	}
	frag, err := r.br.ReadSlice('\n')
	line = frag
	if err == bufio.ErrBufferFull {
		// Longer than the buffer: reassemble up to maxLine, then only count.
		total := len(frag)
		r.long = append(r.long[:0], frag...)
		var prev byte // last byte of the previous fragment
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
			if err == nil { // ends with '\n'
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
