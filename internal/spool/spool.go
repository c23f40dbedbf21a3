package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Errors.
var (
	// ErrFull is returned by Append when the records would take the spool
	// past Options.MaxBytes. Nothing was written; the caller should shed load
	// (HTTP 429 with Retry-After) and let consumers catch up.
	ErrFull = errors.New("spool: full")
	// ErrClosed is returned once Close has been called.
	ErrClosed = errors.New("spool: closed")
	// ErrLocked is returned by Open when another process (or another Spool in
	// this process) holds the directory.
	ErrLocked = errors.New("spool: directory is locked")
	// ErrCorrupt matches every *CorruptError.
	ErrCorrupt = errors.New("spool: corrupt")
	// ErrOutOfRange is returned for an offset the spool does not hold: below
	// FirstOffset (its segment was deleted) or above NextOffset.
	ErrOutOfRange = errors.New("spool: offset out of range")
	// ErrTooLarge is returned by Append for a record whose frame would not
	// fit in one segment.
	ErrTooLarge = errors.New("spool: record too large")
)

// CorruptError reports data on disk that fails its checks where a torn write
// cannot explain it. It matches ErrCorrupt.
type CorruptError struct {
	File   string // segment or checkpoint path
	Pos    int64  // byte offset in File
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spool: corrupt %s at byte %d: %s", e.File, e.Pos, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Defaults.
const (
	DefaultSegmentBytes = 64 << 20
	DefaultMaxBytes     = 1 << 30
	minSegmentBytes     = 64
)

// Options configure a Spool. Zero values pick the defaults.
type Options struct {
	// Dir holds the spool; created with mode 0700 if missing. Required.
	Dir string
	// SegmentBytes is the size at which the active segment is rolled
	// (0 → 64 MiB). A record's frame (payload + 8 bytes) must fit in it.
	SegmentBytes int64
	// MaxBytes bounds the bytes of all undeleted segments plus the records
	// being appended (0 → 1 GiB). Append answers ErrFull beyond it.
	MaxBytes int64
	// SyncDelay is how long the committer waits after the first record of a
	// group arrives before writing and fsyncing the group, to merge more
	// Appends into one fsync. 0 fsyncs as soon as the previous fsync is done
	// (concurrent Appends still share fsyncs).
	SyncDelay time.Duration
	// NoSync skips every fsync. For tests and benchmarks only: with it a
	// machine crash can lose acknowledged records.
	NoSync bool
	// FS is the file-system seam (nil → OSFS).
	FS FS
	// Logger receives recovery warnings (nil discards).
	Logger *slog.Logger
}

// Stats is a snapshot of the spool's counters.
type Stats struct {
	Bytes            uint64 // bytes in undeleted segments
	Segments         uint64 // undeleted segment files
	FirstOffset      uint64 // oldest record still held (== NextOffset when empty)
	NextOffset       uint64 // offset the next durable record will get
	Committed        uint64 // last committed offset (0: none)
	Appends          uint64 // successful Append calls since Open
	Syncs            uint64 // segment fsyncs since Open
	LastSyncDuration time.Duration
}

// segment describes one segment file. Its fields are guarded by Spool.mu.
type segment struct {
	base   uint64 // offset of its first record
	path   string
	size   int64  // durable bytes: readers never read past it
	sealed bool   // no more appends; end is known
	end    uint64 // offset after its last record, once sealed
}

// request is one Append waiting for the committer.
type request struct {
	data  []byte // framed records
	first uint64
	n     uint64
	done  chan error
}

// Spool is a durable append-only log. Its methods are safe for concurrent
// use. See the package documentation for the format and guarantees.
type Spool struct {
	opts Options
	fs   FS
	log  *slog.Logger
	dir  string
	lock io.Closer

	mu          sync.Mutex
	segs        []*segment // oldest first; the last is the active one
	durableNext uint64     // offset after the last fsynced record
	next        uint64     // offset the next Append will get
	bytes       int64      // durable bytes of segs
	reserved    int64      // bytes of appends not yet durable
	pending     []*request
	committed   uint64
	failed      error
	closed      bool
	notify      chan struct{} // closed and replaced whenever durableNext grows
	appends     uint64
	syncs       uint64
	lastSync    time.Duration

	commitMu sync.Mutex // serialises checkpoint writes

	// Owned by the committer goroutine (and by Open/Close around it).
	active     File
	wpos       int64    // durable size of the active segment
	dirtyPaths []string // segment files a failed append created and could not remove
	needTrunc  bool     // the active segment may hold bytes past wpos
	wbuf       []byte
	closeErr   error

	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	closedCh chan struct{}
}

// Open opens (creating if needed) the spool in opts.Dir, locks it and
// recovers it: a torn or corrupt tail of the last segment is truncated with a
// warning. It fails with ErrLocked if the directory is held.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("spool: Options.Dir is empty")
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.SegmentBytes < minSegmentBytes {
		return nil, fmt.Errorf("spool: SegmentBytes %d below minimum %d", opts.SegmentBytes, minSegmentBytes)
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxBytes < 0 || opts.SyncDelay < 0 {
		return nil, errors.New("spool: negative MaxBytes or SyncDelay")
	}
	if opts.FS == nil {
		opts.FS = OSFS{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Spool{
		opts:     opts,
		fs:       opts.FS,
		log:      opts.Logger,
		dir:      opts.Dir,
		notify:   make(chan struct{}),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		closedCh: make(chan struct{}),
	}
	if err := s.fs.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", s.dir, err)
	}
	lock, err := s.fs.Lock(filepath.Join(s.dir, lockName))
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		return nil, fmt.Errorf("spool: lock %s: %w", s.dir, err)
	}
	s.lock = lock
	if err := s.recover(); err != nil {
		if s.active != nil {
			s.active.Close()
		}
		lock.Close()
		return nil, err
	}
	go s.run()
	return s, nil
}

// recover reads the checkpoint and the segment list and repairs the tail.
func (s *Spool) recover() error {
	ckPath := filepath.Join(s.dir, checkpointNm)
	b, err := s.fs.ReadFile(ckPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("spool: read checkpoint: %w", err)
	default:
		if s.committed, err = decodeCheckpoint(b); err != nil {
			return &CorruptError{File: ckPath, Reason: err.Error()}
		}
	}
	_ = s.fs.Remove(ckPath + ".tmp") // a Commit interrupted before its rename

	entries, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: list %s: %w", s.dir, err)
	}
	type found struct {
		base uint64
		size int64
	}
	var segs []found
	for _, e := range entries {
		base, ok := parseSegName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return fmt.Errorf("spool: stat %s: %w", e.Name(), err)
		}
		segs = append(segs, found{base, fi.Size()})
	}
	slices.SortFunc(segs, func(a, b found) int {
		switch {
		case a.base < b.base:
			return -1
		case a.base > b.base:
			return 1
		}
		return 0
	})

	if len(segs) == 0 {
		return s.createFirst(max(s.committed+1, 1))
	}
	for i, f := range segs[:len(segs)-1] {
		path := filepath.Join(s.dir, segName(f.base))
		end := segs[i+1].base
		// Trusted by size: each record takes at least a frame header.
		if n := end - f.base; f.size < frameHeader || uint64(f.size)/frameHeader < n {
			return &CorruptError{File: path, Pos: f.size,
				Reason: fmt.Sprintf("%d bytes cannot hold the %d records its successor's name implies", f.size, n)}
		}
		s.segs = append(s.segs, &segment{base: f.base, path: path, size: f.size, sealed: true, end: end})
		s.bytes += f.size
	}

	last := segs[len(segs)-1]
	if last.base == 0 {
		return &CorruptError{File: filepath.Join(s.dir, segName(0)), Reason: "segment named offset 0 (offsets start at 1)"}
	}
	path := filepath.Join(s.dir, segName(last.base))
	f, err := s.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("spool: open %s: %w", path, err)
	}
	s.active = f
	n, valid, reason, err := scanFrames(f, last.size)
	if err != nil {
		return fmt.Errorf("spool: scan %s: %w", path, err)
	}
	if valid < last.size {
		s.log.Warn("spool: truncating torn or corrupt tail of last segment",
			"file", path, "offset", valid, "dropped_bytes", last.size-valid,
			"reason", reason, "records_kept", n)
		if err := f.Truncate(valid); err != nil {
			return fmt.Errorf("spool: truncate %s: %w", path, err)
		}
		if err := s.syncFile(f); err != nil {
			return fmt.Errorf("spool: sync %s: %w", path, err)
		}
	}
	s.segs = append(s.segs, &segment{base: last.base, path: path, size: valid})
	s.bytes += valid
	s.wpos = valid
	s.next = last.base + n
	s.durableNext = s.next
	if s.committed >= s.next {
		return &CorruptError{File: path, Pos: valid, Reason: fmt.Sprintf(
			"the spool ends before offset %d but the checkpoint says records through %d were processed; "+
				"durable records are missing (restore them, or remove the spool directory and resume from the caller's stored offset)",
			s.next, s.committed)}
	}
	return nil
}

// createFirst creates the first segment of an empty spool.
func (s *Spool) createFirst(base uint64) error {
	path := filepath.Join(s.dir, segName(base))
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: create %s: %w", path, err)
	}
	s.active = f
	if err := s.syncDir(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", s.dir, err)
	}
	s.segs = []*segment{{base: base, path: path}}
	s.next, s.durableNext = base, base
	return nil
}

// scanFrames verifies the frames of f[0:size) and returns how many are whole
// and valid, the byte length they cover, and why scanning stopped early.
func scanFrames(f File, size int64) (n uint64, valid int64, reason string, err error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20)
	var h [frameHeader]byte
	var p []byte
	for valid < size {
		if size-valid < frameHeader {
			return n, valid, "partial frame header", nil
		}
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return n, valid, "", err
		}
		l := frameLen(h[:])
		if l > size-valid-frameHeader {
			return n, valid, fmt.Sprintf("frame length %d exceeds the %d bytes left", l, size-valid-frameHeader), nil
		}
		if int64(cap(p)) < l {
			p = make([]byte, l)
		}
		p = p[:l]
		if _, err := io.ReadFull(br, p); err != nil {
			return n, valid, "", err
		}
		if !frameOK(h[:], p) {
			return n, valid, "checksum mismatch", nil
		}
		valid += frameHeader + l
		n++
	}
	return n, valid, "", nil
}

func (s *Spool) syncFile(f File) error {
	if s.opts.NoSync {
		return nil
	}
	return f.Sync()
}

func (s *Spool) syncDir() error {
	if s.opts.NoSync {
		return nil
	}
	return s.fs.SyncDir(s.dir)
}

// Append writes recs as consecutive records and returns the offsets of the
// first and the last once all of them are durable (written and fsynced;
// directory fsynced when a segment was created). Concurrent Appends share
// fsyncs. Either every record of the call is durable and err is nil, or err
// is non-nil and none of them was acknowledged.
//
// Append returns ErrFull at once when the records would take the spool past
// MaxBytes, ErrTooLarge for a record that cannot fit in a segment, and the
// write or fsync error when the disk fails; after such a failure the spool is
// truncated back to its last durable record, Healthy reports the error, and
// the next Append tries again. If ctx ends first, Append returns ctx.Err()
// and the records may or may not become durable (like any timed-out
// request): they were not acknowledged, and a retry may store them twice.
func (s *Spool) Append(ctx context.Context, recs ...[]byte) (first, last uint64, err error) {
	return s.AppendAssigned(ctx, nil, recs...)
}

// AppendAssigned is Append that first calls assigned (when not nil) with
// the offset the first of recs is given, once the offsets are assigned and
// before any of the records can be read (Reader.Next). assigned runs under
// the spool's lock, in the order offsets are assigned: it must be quick and
// must not call the Spool. When the Append then fails, the same offsets may
// be assigned again to later records (and assigned called again for them).
func (s *Spool) AppendAssigned(ctx context.Context, assigned func(first uint64), recs ...[]byte) (first, last uint64, err error) {
	if len(recs) == 0 {
		return 0, 0, errors.New("spool: append of no records")
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	size := 0
	for _, r := range recs {
		if int64(len(r))+frameHeader > s.opts.SegmentBytes || int64(len(r)) > maxFrameLen {
			return 0, 0, fmt.Errorf("%w: %d bytes, segments hold %d", ErrTooLarge, len(r), s.opts.SegmentBytes)
		}
		size += frameHeader + len(r)
	}
	data := make([]byte, 0, size)
	for _, r := range recs {
		data = appendFrame(data, r)
	}
	req := &request{data: data, n: uint64(len(recs)), done: make(chan error, 1)}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, 0, ErrClosed
	}
	if used := s.bytes + s.reserved; used+int64(size) > s.opts.MaxBytes {
		s.mu.Unlock()
		return 0, 0, fmt.Errorf("%w: %d of %d bytes used, %d more asked", ErrFull, used, s.opts.MaxBytes, size)
	}
	req.first = s.next
	s.next += req.n
	if assigned != nil {
		assigned(req.first)
	}
	s.reserved += int64(size)
	s.pending = append(s.pending, req)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}

	select {
	case err := <-req.done:
		if err != nil {
			return 0, 0, err
		}
		return req.first, req.first + req.n - 1, nil
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// run is the committer: it takes every pending Append, writes them with as
// few writes as segment boundaries allow, fsyncs once, and answers them.
func (s *Spool) run() {
	defer close(s.done)
	for {
		stopping := false
		select {
		case <-s.kick:
		case <-s.stop:
			stopping = true
		}
		if !stopping && s.opts.SyncDelay > 0 {
			t := time.NewTimer(s.opts.SyncDelay)
			select {
			case <-t.C:
			case <-s.stop:
				t.Stop()
				stopping = true
			}
		}
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		s.mu.Unlock()
		if len(batch) > 0 {
			s.commitBatch(batch)
		}
		if stopping {
			// Close set closed before stopping us, so nothing new arrives.
			// Leave no bytes of a failed append behind.
			if err := s.cleanup(); err != nil {
				s.closeErr = err
			}
			return
		}
	}
}

// batchResult is what writeBatch did, for publishing or undoing it.
type batchResult struct {
	origFile     File
	origSize     int64
	createdPaths []string
	createdFiles []File
	createdBases []uint64
	sealedSizes  []int64 // final sizes of the segments sealed by this batch
	finalSize    int64   // size of the last segment written
	next         uint64
	syncs        uint64
	lastSync     time.Duration
}

func (s *Spool) commitBatch(batch []*request) {
	r := batchResult{origFile: s.active, origSize: s.wpos}
	err := s.cleanup()
	if err == nil {
		err = s.writeBatch(batch, &r)
	}
	if err != nil {
		s.undo(batch, &r, err)
		return
	}
	s.publish(batch, &r)
}

// cleanup finishes undoing an earlier failed append before writing again.
func (s *Spool) cleanup() error {
	if len(s.dirtyPaths) > 0 {
		for _, p := range s.dirtyPaths {
			if err := s.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("spool: undo earlier failed append: %w", err)
			}
		}
		if err := s.syncDir(); err != nil {
			return fmt.Errorf("spool: undo earlier failed append: %w", err)
		}
		s.dirtyPaths = nil
	}
	if s.needTrunc {
		if err := s.active.Truncate(s.wpos); err != nil {
			return fmt.Errorf("spool: undo earlier failed append: %w", err)
		}
		if err := s.syncFile(s.active); err != nil {
			return fmt.Errorf("spool: undo earlier failed append: %w", err)
		}
		s.needTrunc = false
	}
	return nil
}

func writeFull(f File, b []byte, off int64) error {
	if len(b) == 0 {
		return nil
	}
	n, err := f.WriteAt(b, off)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("spool: write %s: %w", f.Name(), err)
	}
	return nil
}

func (s *Spool) timedSync(f File, r *batchResult) error {
	if s.opts.NoSync {
		return nil
	}
	t0 := time.Now()
	err := f.Sync()
	r.lastSync = time.Since(t0)
	r.syncs++
	if err != nil {
		return fmt.Errorf("spool: fsync %s: %w", f.Name(), err)
	}
	return nil
}

func (s *Spool) writeBatch(batch []*request, r *batchResult) error {
	cur, pos := s.active, s.wpos
	w := s.wbuf[:0]
	off := batch[0].first
	for _, req := range batch {
		for p := 0; p < len(req.data); {
			fl := frameHeader + int(frameLen(req.data[p:]))
			if used := pos + int64(len(w)); used > 0 && used+int64(fl) > s.opts.SegmentBytes {
				// Roll: seal the current segment durably before its
				// successor exists, so a non-last segment is always whole.
				if err := writeFull(cur, w, pos); err != nil {
					return err
				}
				pos += int64(len(w))
				w = w[:0]
				if err := s.timedSync(cur, r); err != nil {
					return err
				}
				r.sealedSizes = append(r.sealedSizes, pos)
				path := filepath.Join(s.dir, segName(off))
				r.createdPaths = append(r.createdPaths, path)
				f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return fmt.Errorf("spool: create %s: %w", path, err)
				}
				r.createdFiles = append(r.createdFiles, f)
				r.createdBases = append(r.createdBases, off)
				if err := s.syncDir(); err != nil {
					return fmt.Errorf("spool: fsync %s: %w", s.dir, err)
				}
				cur, pos = f, 0
			}
			w = append(w, req.data[p:p+fl]...)
			p += fl
			off++
		}
	}
	if err := writeFull(cur, w, pos); err != nil {
		return err
	}
	pos += int64(len(w))
	if cap(w) <= 4<<20 {
		s.wbuf = w[:0]
	} else {
		s.wbuf = nil
	}
	if err := s.timedSync(cur, r); err != nil {
		return err
	}
	r.finalSize = pos
	r.next = off
	return nil
}

// publish makes a written batch visible and acknowledges it.
func (s *Spool) publish(batch []*request, r *batchResult) {
	var bytes int64
	for _, req := range batch {
		bytes += int64(len(req.data))
	}
	sizes := append(r.sealedSizes, r.finalSize)
	s.mu.Lock()
	seg := s.segs[len(s.segs)-1]
	for i, size := range sizes {
		if i > 0 {
			seg = &segment{base: r.createdBases[i-1], path: r.createdPaths[i-1]}
			s.segs = append(s.segs, seg)
		}
		seg.size = size
		if i < len(sizes)-1 {
			seg.sealed = true
			seg.end = r.createdBases[i]
		}
	}
	s.bytes += bytes
	s.reserved -= bytes
	s.durableNext = r.next
	s.appends += uint64(len(batch))
	s.syncs += r.syncs
	if r.syncs > 0 {
		s.lastSync = r.lastSync
	}
	s.failed = nil
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()

	if n := len(r.createdFiles); n > 0 {
		r.origFile.Close()
		for _, f := range r.createdFiles[:n-1] {
			f.Close()
		}
		s.active = r.createdFiles[n-1]
	}
	s.wpos = r.finalSize
	for _, req := range batch {
		req.done <- nil
	}
}

// undo removes what a failed batch wrote, fails it and every Append queued
// behind it (their offsets followed the batch's), and marks the spool failed.
func (s *Spool) undo(batch []*request, r *batchResult, cause error) {
	for _, f := range r.createdFiles {
		f.Close()
	}
	// Remove new segments before truncating the old one, so a crash in
	// between never leaves a short non-last segment.
	for _, p := range r.createdPaths {
		if err := s.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.dirtyPaths = append(s.dirtyPaths, p)
		}
	}
	if len(r.createdPaths) > 0 {
		if err := s.syncDir(); err != nil && len(s.dirtyPaths) == 0 {
			s.dirtyPaths = append(s.dirtyPaths, r.createdPaths...)
		}
	}
	s.active, s.wpos = r.origFile, r.origSize
	s.needTrunc = true
	if len(s.dirtyPaths) == 0 {
		if s.active.Truncate(s.wpos) == nil && s.syncFile(s.active) == nil {
			s.needTrunc = false
		}
	}

	s.mu.Lock()
	rest := s.pending
	s.pending = nil
	s.next = s.durableNext
	s.reserved = 0
	s.failed = cause
	s.mu.Unlock()
	for _, req := range batch {
		req.done <- cause
	}
	for _, req := range rest {
		req.done <- fmt.Errorf("spool: append not attempted after a failure in the group before it: %w", cause)
	}
}

// Healthy reports whether the last group commit succeeded; if not, err is
// its failure. The spool stays failed until an Append succeeds.
func (s *Spool) Healthy() (ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed == nil, s.failed
}

// Committed returns the last offset passed to a successful Commit, read from
// the checkpoint file at Open (0: none). The resume point is Committed()+1,
// unless the caller keeps its own offset (see docs/spool.md).
func (s *Spool) Committed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed
}

// Commit records that every record with an offset <= off has been processed
// and its derived state persisted. It writes the checkpoint atomically (temp
// file, fsync, rename, fsync directory) and then deletes the segments
// DeleteThrough(off) allows. off must be a durable record; a value not above
// Committed() is a no-op.
func (s *Spool) Commit(off uint64) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	closed, durable, committed := s.closed, s.durableNext, s.committed
	s.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case off >= durable:
		return fmt.Errorf("%w: commit %d: the last durable record is %d", ErrOutOfRange, off, durable-1)
	case off <= committed:
		return nil
	}
	if err := s.writeCheckpoint(off); err != nil {
		return err
	}
	s.mu.Lock()
	s.committed = off
	s.mu.Unlock()
	return s.DeleteThrough(off)
}

func (s *Spool) writeCheckpoint(off uint64) error {
	path := filepath.Join(s.dir, checkpointNm)
	tmp := path + ".tmp"
	f, err := s.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: checkpoint: %w", err)
	}
	err = writeFull(f, encodeCheckpoint(off), 0)
	if err == nil {
		err = s.syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(tmp, path)
	}
	if err == nil {
		err = s.syncDir()
	}
	if err != nil {
		return fmt.Errorf("spool: checkpoint %d: %w", off, err)
	}
	return nil
}

// DeleteThrough removes every whole segment whose records all have offsets
// <= off. The active (last) segment is never removed. Readers positioned in
// a removed segment finish it (their file stays open); a Reader asked for a
// removed offset gets ErrOutOfRange. Callers that keep the offset in their
// own database call it after their transaction commits; Commit calls it.
func (s *Spool) DeleteThrough(off uint64) error {
	s.mu.Lock()
	var victims []*segment
	for len(s.segs) > 1 && s.segs[0].sealed && s.segs[0].end-1 <= off {
		v := s.segs[0]
		victims = append(victims, v)
		s.bytes -= v.size
		s.segs = s.segs[1:]
	}
	s.mu.Unlock()
	var errs []error
	for _, v := range victims { // oldest first: a crash leaves a suffix
		if err := s.fs.Remove(v.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("spool: delete %s: %w", v.path, err))
		}
	}
	if len(victims) > 0 {
		if err := s.syncDir(); err != nil {
			errs = append(errs, fmt.Errorf("spool: fsync %s: %w", s.dir, err))
		}
	}
	return errors.Join(errs...)
}

// Stats returns a snapshot of the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Bytes:            uint64(s.bytes),
		Segments:         uint64(len(s.segs)),
		FirstOffset:      s.segs[0].base,
		NextOffset:       s.durableNext,
		Committed:        s.committed,
		Appends:          s.appends,
		Syncs:            s.syncs,
		LastSyncDuration: s.lastSync,
	}
}

// Close waits for the Appends already queued to be written and fsynced,
// closes the files and releases the directory lock. Later calls return
// ErrClosed from Append, Commit, Reader and Reader.Next. Close is idempotent.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closedCh)
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.commitMu.Lock() // let a running Commit finish while the lock is held
	defer s.commitMu.Unlock()
	err := s.closeErr
	if cerr := s.active.Close(); err == nil {
		err = cerr
	}
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}
