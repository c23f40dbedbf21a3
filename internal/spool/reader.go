package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
)

// readAhead is how much a Reader reads from its segment at a time.
const readAhead = 256 << 10

// Reader reads records in offset order. It sees only durable records — those
// a successful Append has acknowledged — so a consumer never processes a
// record that a crash could un-write. A Reader is not safe for concurrent
// use; several Readers may read one Spool.
type Reader struct {
	s    *Spool
	seg  *segment
	f    File
	pos  int64  // byte offset of the next frame in seg
	next uint64 // offset of the next record

	buf    []byte
	bufOff int64 // file offset of buf[0]
}

// Reader returns a Reader whose first record is from. from must lie in
// [FirstOffset, NextOffset] (NextOffset: wait for the next Append); anything
// else is ErrOutOfRange. Positioning reads the segment holding from up to it.
func (s *Spool) Reader(from uint64) (*Reader, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	first, durable := s.segs[0].base, s.durableNext
	if from < first || from > durable {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %d is outside [%d, %d]", ErrOutOfRange, from, first, durable)
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].base > from }) - 1
	seg := s.segs[i]
	s.mu.Unlock()

	r := &Reader{s: s}
	if err := r.open(seg); err != nil {
		return nil, err
	}
	for r.next < from {
		_, ok, _, err := r.step()
		if err != nil {
			r.Close()
			return nil, err
		}
		if !ok { // cannot happen: from <= durable
			r.Close()
			return nil, fmt.Errorf("%w: %d not found", ErrOutOfRange, from)
		}
	}
	return r, nil
}

func (r *Reader) open(seg *segment) error {
	f, err := r.s.fs.OpenFile(seg.path, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: segment %s was deleted", ErrOutOfRange, seg.path)
		}
		return fmt.Errorf("spool: open %s: %w", seg.path, err)
	}
	if r.f != nil {
		r.f.Close()
	}
	r.seg, r.f, r.pos, r.next = seg, f, 0, seg.base
	r.buf, r.bufOff = r.buf[:0], 0
	return nil
}

// Next returns the next record and its offset, waiting until one is durable
// or ctx is done. rec is valid only until the next call to Next (it aliases
// the Reader's buffer); copy it to keep it. A checksum failure is a
// *CorruptError: the Reader does not skip it.
func (r *Reader) Next(ctx context.Context) (off uint64, rec []byte, err error) {
	for {
		rec, ok, wait, err := r.step()
		if err != nil {
			return 0, nil, err
		}
		if ok {
			return r.next - 1, rec, nil
		}
		if wait == nil {
			continue // moved to the next segment
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-r.s.closedCh:
			return 0, nil, ErrClosed
		}
	}
}

// step reads one durable record if there is one. Otherwise it returns the
// channel to wait on, or nil after moving to the next segment.
func (r *Reader) step() (rec []byte, ok bool, wait <-chan struct{}, err error) {
	s := r.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, false, nil, ErrClosed
	}
	size, sealed, end := r.seg.size, r.seg.sealed, r.seg.end
	wait = s.notify
	var nextSeg *segment
	if sealed && r.pos >= size {
		i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].base >= end })
		if i < len(s.segs) {
			nextSeg = s.segs[i]
		}
	}
	s.mu.Unlock()

	if r.pos < size {
		if sealed && r.next >= end {
			return nil, false, nil, &CorruptError{File: r.seg.path, Pos: r.pos,
				Reason: fmt.Sprintf("data after the %d records the next segment's name allows", end-r.seg.base)}
		}
		rec, err := r.readFrame(size)
		if err != nil {
			return nil, false, nil, err
		}
		r.next++
		return rec, true, nil, nil
	}
	if !sealed {
		return nil, false, wait, nil
	}
	if r.next != end {
		return nil, false, nil, &CorruptError{File: r.seg.path, Pos: r.pos,
			Reason: fmt.Sprintf("segment ends after %d records, the next segment's name implies %d", r.next-r.seg.base, end-r.seg.base)}
	}
	if nextSeg == nil || nextSeg.base != end {
		return nil, false, nil, fmt.Errorf("%w: records from %d were deleted", ErrOutOfRange, end)
	}
	if err := r.open(nextSeg); err != nil {
		return nil, false, nil, err
	}
	return nil, false, nil, nil
}

// readFrame reads and verifies the frame at r.pos, which must end by limit.
func (r *Reader) readFrame(limit int64) ([]byte, error) {
	if limit-r.pos < frameHeader {
		return nil, &CorruptError{File: r.seg.path, Pos: r.pos, Reason: "partial frame header"}
	}
	h, err := r.fill(frameHeader, limit)
	if err != nil {
		return nil, err
	}
	n := frameLen(h)
	if n > limit-r.pos-frameHeader {
		return nil, &CorruptError{File: r.seg.path, Pos: r.pos,
			Reason: fmt.Sprintf("frame length %d exceeds the %d bytes left", n, limit-r.pos-frameHeader)}
	}
	b, err := r.fill(frameHeader+n, limit)
	if err != nil {
		return nil, err
	}
	if !frameOK(b[:frameHeader], b[frameHeader:]) {
		return nil, &CorruptError{File: r.seg.path, Pos: r.pos, Reason: "checksum mismatch"}
	}
	r.pos += frameHeader + n
	return b[frameHeader:len(b):len(b)], nil
}

// fill returns the n bytes at r.pos, reading ahead up to limit.
func (r *Reader) fill(n, limit int64) ([]byte, error) {
	if r.pos >= r.bufOff && r.pos+n <= r.bufOff+int64(len(r.buf)) {
		i := r.pos - r.bufOff
		return r.buf[i : i+n], nil
	}
	want := min(max(n, readAhead), limit-r.pos)
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	m, err := r.f.ReadAt(r.buf, r.pos)
	if int64(m) < want {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		r.buf = r.buf[:0]
		return nil, fmt.Errorf("spool: read %s at %d: %w", r.seg.path, r.pos, err)
	}
	r.bufOff = r.pos
	return r.buf[:n], nil
}

// Close releases the Reader's file.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
