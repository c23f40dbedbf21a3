package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fault fails an operation: after `after` successes, the next `times` fail.
type fault struct {
	after, times int
	err          error
	short        bool // writes: write half the bytes, then fail
}

func (f *fault) fire() (error, bool) {
	if f.times == 0 {
		return nil, false
	}
	if f.after > 0 {
		f.after--
		return nil, false
	}
	f.times--
	return f.err, f.short
}

// faultFS is the OS file system with injected failures on segment files.
type faultFS struct {
	OSFS
	mu                                  sync.Mutex
	write, sync, trunc, syncDir, create fault
}

func (fs *faultFS) fire(f *fault) (error, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return f.fire()
}

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if flag&os.O_CREATE != 0 && strings.HasSuffix(name, segExt) {
		if err, _ := fs.fire(&fs.create); err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
	f, err := fs.OSFS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, segExt) {
		return f, err
	}
	return &faultFile{File: f, fs: fs}, nil
}

func (fs *faultFS) SyncDir(dir string) error {
	if err, _ := fs.fire(&fs.syncDir); err != nil {
		return err
	}
	return fs.OSFS.SyncDir(dir)
}

type faultFile struct {
	File
	fs *faultFS
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	if err, short := f.fs.fire(&f.fs.write); err != nil {
		if short {
			n, _ := f.File.WriteAt(b[:len(b)/2], off)
			return n, err
		}
		return 0, err
	}
	return f.File.WriteAt(b, off)
}

func (f *faultFile) Sync() error {
	if err, _ := f.fs.fire(&f.fs.sync); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if err, _ := f.fs.fire(&f.fs.trunc); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// TestFaults injects disk failures while appending: every acknowledged record
// is read back exactly once, in order, before and after reopening; no record
// of a failed Append is ever read; failures make the spool unhealthy until
// the next successful Append.
func TestFaults(t *testing.T) {
	eio, enospc := syscall.EIO, syscall.ENOSPC
	for _, tc := range []struct {
		name  string
		setup func(*faultFS)
		want  error // Join of several: any of them
	}{
		{"ENOSPC on write", func(f *faultFS) { f.write = fault{after: 5, times: 1, err: enospc} }, enospc},
		{"ENOSPC repeatedly", func(f *faultFS) { f.write = fault{after: 5, times: 4, err: enospc} }, enospc},
		{"short write", func(f *faultFS) { f.write = fault{after: 7, times: 1, err: io.ErrShortWrite, short: true} }, io.ErrShortWrite},
		{"EIO on fsync", func(f *faultFS) { f.sync = fault{after: 4, times: 1, err: eio} }, eio},
		{"EIO on fsync and on the undo's fsync", func(f *faultFS) { f.sync = fault{after: 4, times: 2, err: eio} }, eio},
		{"short write then truncate fails", func(f *faultFS) {
			f.write = fault{after: 6, times: 1, err: enospc, short: true}
			f.trunc = fault{times: 2, err: eio}
		}, errors.Join(enospc, eio)},
		{"EIO on directory fsync at roll", func(f *faultFS) { f.syncDir = fault{after: 1, times: 1, err: eio} }, eio},
		{"ENOSPC creating a segment", func(f *faultFS) { f.create = fault{after: 1, times: 1, err: enospc} }, enospc},
		{"ENOSPC on the write after a roll", func(f *faultFS) { f.write = fault{after: 9, times: 1, err: enospc} }, enospc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ffs := &faultFS{}
			opts := Options{Dir: dir, SegmentBytes: 120, FS: ffs}
			s := openT(t, opts)
			tc.setup(ffs)
			var acked [][]byte
			failures := 0
			for i := 0; i < 40; i++ {
				recs := [][]byte{fmt.Appendf(nil, "rec-%d-a", i)}
				if i%3 == 0 {
					recs = append(recs, fmt.Appendf(nil, "rec-%d-b", i))
				}
				first, last, err := s.Append(context.Background(), recs...)
				if err != nil {
					failures++
					if !isAny(err, tc.want) {
						t.Fatalf("Append %d = %v, want %v", i, err, tc.want)
					}
					if ok, herr := s.Healthy(); ok || !isAny(herr, tc.want) {
						t.Fatalf("Healthy after failure = %v, %v", ok, herr)
					}
					continue
				}
				if first != uint64(len(acked))+1 || last != first+uint64(len(recs))-1 {
					t.Fatalf("Append %d = [%d,%d] after %d acknowledged", i, first, last, len(acked))
				}
				if ok, _ := s.Healthy(); !ok {
					t.Fatalf("unhealthy after a successful Append")
				}
				acked = append(acked, recs...)
			}
			if failures == 0 {
				t.Fatal("no fault fired")
			}
			check := func(s *Spool) {
				got := mustReadAll(t, s, 1)
				if len(got) != len(acked) {
					t.Fatalf("read %d records, acknowledged %d", len(got), len(acked))
				}
				for i := range got {
					if !bytes.Equal(got[i].data, acked[i]) {
						t.Fatalf("record %d = %q, want %q", i+1, got[i].data, acked[i])
					}
				}
			}
			check(s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			s = openT(t, Options{Dir: dir, SegmentBytes: 120, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			check(s)
			if logs.Len() > 0 {
				t.Fatalf("recovery after a clean Close found garbage: %s", logs.String())
			}
		})
	}
}

// TestFailedAppendThenCrash: a failed Append whose undo could not truncate
// leaves a partial frame; recovery without a clean Close drops it.
func TestFailedAppendThenCrash(t *testing.T) {
	dir := t.TempDir()
	ffs := &faultFS{}
	s, err := Open(Options{Dir: dir, FS: ffs})
	if err != nil {
		t.Fatal(err)
	}
	s.Append(context.Background(), []byte("one"), []byte("two"))
	ffs.write = fault{times: 1, err: syscall.ENOSPC, short: true}
	ffs.trunc = fault{times: 100, err: syscall.EIO}
	if _, _, err := s.Append(context.Background(), bytes.Repeat([]byte("x"), 100)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append = %v", err)
	}
	// "Crash": release the lock without Close's cleanup.
	s.lock.Close()

	var logs bytes.Buffer
	s2, err := Open(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got := mustReadAll(t, s2, 1)
	if len(got) != 2 || string(got[1].data) != "two" {
		t.Fatalf("recovered %v", got)
	}
	seg := filepath.Join(dir, segName(1))
	for _, want := range []string{"file=" + seg, "offset=22", "dropped_bytes=54"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("warning %q lacks %q", logs.String(), want)
		}
	}
}

func isAny(err, want error) bool {
	if j, ok := want.(interface{ Unwrap() []error }); ok {
		for _, w := range j.Unwrap() {
			if errors.Is(err, w) {
				return true
			}
		}
		return false
	}
	return errors.Is(err, want)
}
