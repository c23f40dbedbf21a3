package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/input"
)

// Tailing: serve follows log files (config inputs.files) and feeds them
// through the same durable path as HTTP ingest. Each chunk of complete
// lines is appended to the spool with the key
// "tail:<device>:<inode>:<start>-<end>" (byte offsets in the file), so the
// spool itself records how far each file was read: after a restart a file
// resumes at the end of its last stored chunk — nothing read twice,
// nothing skipped. Rotation by rename (logrotate's default) is followed:
// when the path names a new file, the old one is read to its end first;
// a file renamed while haechi was down is found as <path>.1 and finished.
// A file truncated in place (copytruncate) is read again from its start.
// The keys live in the tailer's own scope (tailScope), which no HTTP client
// can reach; in it a key stored again with other lines (a file rewritten
// in place with the same first line) stores them.
// A last line without its newline waits until it is complete.

// TailFile is one followed file.
type TailFile struct {
	Path   string
	Format string // an input format name ("" → ecs)
}

// tailChunk is the most one spool record carries.
const tailChunk = 1 << 20

// Tailer follows one file into an Ingester.
type Tailer struct {
	File TailFile
	In   *Ingester
	// StateDir keeps each file's read position (written after every stored
	// chunk), so a file is resumed even once retention has deleted its
	// chunks from the spool.
	StateDir string
	Log      *slog.Logger
	Poll     time.Duration // default 250ms

	f        *os.File
	dev, ino uint64
	fp       string // checksum of the first line
	off      int64
}

// fingerprint returns the CRC-32C of f's first line ("" while it has none).
func fingerprint(f *os.File) string {
	buf := make([]byte, 4096)
	n, _ := f.ReadAt(buf, 0)
	i := bytes.IndexByte(buf[:n], '\n')
	if i < 0 {
		if n == len(buf) {
			i = n - 1 // a first line longer than the buffer: its start
		} else {
			return ""
		}
	}
	return strconv.FormatUint(uint64(crc32.Checksum(buf[:i+1], crc32.MakeTable(crc32.Castagnoli))), 16)
}

func fileID(fi os.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), st.Ino, true
}

func tailPrefix(dev, ino uint64, fp string) string {
	return api.TailKeyPrefix + strconv.FormatUint(dev, 10) + ":" + strconv.FormatUint(ino, 10) + ":" + fp + ":"
}

// Run follows the file until ctx ends.
func (t *Tailer) Run(ctx context.Context) error {
	if t.Poll <= 0 {
		t.Poll = 250 * time.Millisecond
	}
	if t.File.Format == "" {
		t.File.Format = input.FormatECS
	}
	defer func() {
		if t.f != nil {
			t.f.Close()
		}
	}()
	// A previous generation renamed while haechi was down is finished
	// first, when the spool says it was being read.
	if err := t.finishRotated(ctx); err != nil {
		return err
	}
	for {
		if err := t.step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			t.Log.Warn("tail: retrying", "file", t.File.Path, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(t.Poll):
		}
	}
}

// openStat opens path and stats the open file.
func openStat(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// finishRotated reads the rest of <path>.1 when the spool holds chunks of
// it that do not reach its end.
func (t *Tailer) finishRotated(ctx context.Context) error {
	old, fi, err := openStat(t.File.Path + ".1")
	if err != nil {
		return nil
	}
	dev, ino, ok := fileID(fi)
	fp := fingerprint(old)
	end, seen := t.In.TailEnd(tailPrefix(dev, ino, fp))
	if st, found := t.loadState(); found && st.Dev == dev && st.Ino == ino && st.FP == fp && st.Off > end {
		end, seen = st.Off, true
	}
	if !ok || fp == "" || !seen || end >= fi.Size() {
		old.Close()
		return nil
	}
	t.f, t.dev, t.ino, t.fp, t.off = old, dev, ino, fp, end
	t.Log.Info("tail: finishing a file rotated while haechi was down", "file", old.Name(), "from", end)
	if err := t.drain(ctx); err != nil {
		return err
	}
	old.Close()
	t.f = nil
	return nil
}

// step opens the file when needed, follows rotation and truncation, and
// stores whatever complete lines are available.
func (t *Tailer) step(ctx context.Context) error {
	cur, err := os.Stat(t.File.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // not yet created (or between rotation steps)
		}
		return err
	}
	dev, ino, ok := fileID(cur)
	if !ok {
		return errors.New("tail: no inode numbers on this system")
	}
	if t.f != nil && (dev != t.dev || ino != t.ino) {
		// Rotated: finish the old file, then switch.
		if err := t.drain(ctx); err != nil {
			return err
		}
		t.Log.Info("tail: file rotated", "file", t.File.Path)
		t.f.Close()
		t.f = nil
	}
	if t.f == nil {
		f, fi, err := openStat(t.File.Path)
		if err != nil {
			return err
		}
		fp := fingerprint(f)
		if fp == "" {
			f.Close()
			return nil // no complete first line yet
		}
		t.dev, t.ino, _ = fileID(fi)
		t.f, t.fp = f, fp
		t.off, _ = t.In.TailEnd(tailPrefix(t.dev, t.ino, t.fp))
		if st, ok := t.loadState(); ok && st.Dev == t.dev && st.Ino == t.ino && st.FP == t.fp && st.Off > t.off {
			t.off = st.Off
		}
		if t.off > fi.Size() {
			t.off = 0
		}
		t.Log.Info("tail: following", "file", t.File.Path, "format", t.File.Format, "from", t.off)
	}
	if cur.Size() < t.off {
		t.Log.Warn("tail: file truncated; reading it again from the start", "file", t.File.Path)
		t.off = 0
	}
	return t.drain(ctx)
}

// drain stores every complete line available now.
func (t *Tailer) drain(ctx context.Context) error {
	for {
		n, err := t.readAvailable(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}

// readAvailable stores the next chunk of complete lines from t.off and
// returns its length (0: nothing complete to read).
func (t *Tailer) readAvailable(ctx context.Context) (int, error) {
	buf := make([]byte, tailChunk)
	n, err := t.f.ReadAt(buf, t.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	buf = buf[:n]
	last := bytes.LastIndexByte(buf, '\n')
	if last < 0 {
		if n == tailChunk {
			return 0, fmt.Errorf("tail: %s: a line longer than %d bytes at offset %d", t.File.Path, tailChunk, t.off)
		}
		return 0, nil
	}
	chunk := buf[:last+1]
	end := t.off + int64(len(chunk))
	format := t.File.Format
	if format == input.FormatECS {
		format = ""
	}
	key := tailPrefix(t.dev, t.ino, t.fp) + strconv.FormatInt(t.off, 10) + "-" + strconv.FormatInt(end, 10)
	for {
		_, err := t.In.Append(ctx, api.Stored{Scope: tailScope, Key: key, Format: format, Body: chunk})
		if err == nil {
			break
		}
		if !errors.Is(err, api.ErrBusy) && !errors.Is(err, api.ErrUnavailable) {
			return 0, err
		}
		select { // the spool is full or failing: wait, never skip
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	t.off = end
	if err := t.saveState(); err != nil {
		t.Log.Warn("tail: saving the read position", "file", t.File.Path, "err", err)
	}
	return len(chunk), nil
}

type tailState struct {
	Path string `json:"path"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
	FP   string `json:"first_line_crc"`
	Off  int64  `json:"offset"`
}

func (t *Tailer) statePath() string {
	sum := sha256.Sum256([]byte(t.File.Path))
	return filepath.Join(t.StateDir, hex.EncodeToString(sum[:8])+".json")
}

func (t *Tailer) loadState() (tailState, bool) {
	if t.StateDir == "" {
		return tailState{}, false
	}
	b, err := os.ReadFile(t.statePath())
	if err != nil {
		return tailState{}, false
	}
	var st tailState
	if json.Unmarshal(b, &st) != nil || st.Path != t.File.Path {
		return tailState{}, false
	}
	return st, true
}

// saveState writes the position atomically (temp file, rename).
func (t *Tailer) saveState() error {
	if t.StateDir == "" {
		return nil
	}
	if err := os.MkdirAll(t.StateDir, 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(tailState{Path: t.File.Path, Dev: t.dev, Ino: t.ino, FP: t.fp, Off: t.off})
	tmp := t.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, t.statePath())
}

// TailEnd returns the end offset of the furthest stored chunk whose key
// starts with prefix ("tail:<dev>:<ino>:<fp>:"). Only the tailer's own keys
// count: an HTTP client cannot store a "tail:" key.
func (in *Ingester) TailEnd(prefix string) (end int64, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	end, ok = in.tailEnd[prefix]
	return end, ok
}
