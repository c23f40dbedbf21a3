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
	lines Lines
	dec   *Decoder
	input uint32
}

// NewReader returns a Reader of the NDJSON stream r. input is stored in
// every decoded Event's Input field. maxLine is the longest accepted line
// in bytes, not counting its line terminator; 0 means DefaultMaxLine.
func NewReader(r io.Reader, input uint32, maxLine int) *Reader {
	rd := &Reader{dec: NewDecoder(), input: input}
	rd.lines.init(r, maxLine)
	return rd
}

// Line returns the number of lines consumed so far, including empty and
// rejected ones; after Next returns an event or a *LineError it is that
// line's number.
func (r *Reader) Line() int { return r.lines.line }

// Next decodes the next non-empty line into ev. It returns nil with ev
// filled (ev.Input and ev.Line set), a *LineError with Line set for a
// rejected line (ev is then zero; the next call continues with the next
// line), or io.EOF at the end of the stream. A read error other than
// io.EOF is returned as is, and again by every later call. Empty and
// whitespace-only lines are skipped. The first line may start with a UTF-8
// byte order mark.
func (r *Reader) Next(ev *event.Event) error {
	for {
		line, err := r.lines.Next()
		if err != nil {
			*ev = event.Event{}
			return err
		}
		err = r.dec.Decode(line, ev)
		switch e := err.(type) {
		case nil:
			ev.Input = r.input
			ev.Line = uint32(r.lines.line)
			return nil
		case *LineError:
			e.Line = r.lines.line
			return e
		}
		if err != ErrEmpty {
			return err
		}
	}
}

// Lines splits a stream into lines by the rules of the contract: LF or
// CRLF line ends, the final newline optional, a UTF-8 byte order mark at
// the start of the stream dropped, and a line longer than the limit
// consumed without being buffered whole. Reader decodes the lines it
// returns; the line-oriented input formats (internal/input) read theirs
// with it. It is not safe for concurrent use.
type Lines struct {
	br      *bufio.Reader
	maxLine int
	line    int
	long    []byte // a line longer than the bufio buffer, reassembled
	err     error  // sticky: io.EOF or a read error
}

// NewLines returns a Lines of r. maxLine is the longest accepted line in
// bytes without its terminator; 0 or less means DefaultMaxLine.
func NewLines(r io.Reader, maxLine int) *Lines {
	l := &Lines{}
	l.init(r, maxLine)
	return l
}

func (l *Lines) init(r io.Reader, maxLine int) {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	size := maxReadBuffer
	if maxLine+2 < size {
		size = max(maxLine+2, 4096)
	}
	l.br = bufio.NewReaderSize(r, size)
	l.maxLine = maxLine
}

// Line returns the number of lines consumed so far, empty and rejected
// ones included; after Next returns a line or a *LineError it is that
// line's number.
func (l *Lines) Line() int { return l.line }

// Next returns the next line, empty ones included, without its terminator.
// The slice is valid until the next call. A line longer than the limit is
// returned as a *LineError with Code CodeLineTooLong and Line set (the
// next call continues with the next line). At the end of the stream Next
// returns io.EOF; a read error is returned as is, and again by every later
// call.
func (l *Lines) Next() ([]byte, error) {
	line, length, err := l.readLine()
	if err != nil {
		return nil, err
	}
	l.line++
	if l.line == 1 {
		line = bytes.TrimPrefix(line, bom)
	}
	if length > l.maxLine {
		return nil, &LineError{
			Line: l.line,
			Code: CodeLineTooLong,
			Reason: "line of " + strconv.Itoa(length) + " bytes exceeds the limit of " +
				strconv.Itoa(l.maxLine) + " bytes",
		}
	}
	return line, nil
}

// readLine returns the next line without its terminator ("\n" or "\r\n")
// and its length. A line longer than maxLine is consumed but not kept: line
// is then nil and length > maxLine. err is io.EOF when no line is left, or
// a read error.
func (l *Lines) readLine() (line []byte, length int, err error) {
	if l.err != nil {
		return nil, 0, l.err
	}
	frag, err := l.br.ReadSlice('\n')
	line = frag
	if err == bufio.ErrBufferFull {
		// Longer than the buffer: reassemble up to maxLine, then only count.
		total := len(frag)
		l.long = append(l.long[:0], frag...)
		var prev byte // last byte of the previous fragment
		for err == bufio.ErrBufferFull {
			prev = frag[len(frag)-1]
			frag, err = l.br.ReadSlice('\n')
			total += len(frag)
			if total <= l.maxLine+2 {
				l.long = append(l.long, frag...)
			}
		}
		line = l.long
		if total > l.maxLine+2 {
			if cap(l.long) > 4*maxReadBuffer {
				l.long = nil
			}
			if err != nil && !errors.Is(err, io.EOF) {
				l.err = err
				return nil, 0, err
			}
			if err != nil {
				l.err = io.EOF
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
		l.err = io.EOF
		if len(line) == 0 {
			return nil, 0, io.EOF
		}
	default:
		l.err = err
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
