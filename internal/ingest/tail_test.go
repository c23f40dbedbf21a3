package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/spool"
)

// storedLines reads every line stored in the spool, in order.
func storedLines(t *testing.T, in *Ingester) []string {
	t.Helper()
	st := in.sp.Stats()
	rd, err := in.sp.Reader(st.FirstOffset)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []string
	for off := st.FirstOffset; off < st.NextOffset; off++ {
		_, rec, err := rd.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		r, err := decodeSpoolRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Split(strings.TrimSuffix(string(r.Body), "\n"), "\n")...)
	}
	return out
}

func TestTailerFollowsRotationAndRestarts(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	spoolDir := filepath.Join(dir, "spool")
	appendLines := func(path string, from, to int) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			fmt.Fprintf(f, "line %d\n", i)
		}
		f.Close()
	}
	open := func() *Ingester {
		in, err := Open(Options{Spool: spool.Options{Dir: spoolDir, NoSync: true}})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	follow := func(in *Ingester, until func() bool, wait ...time.Duration) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		tl := &Tailer{File: TailFile{Path: logPath, Format: "nginx"}, In: in, Log: slog.New(slog.DiscardHandler),
			StateDir: filepath.Join(dir, "tail"), Poll: 10 * time.Millisecond}
		done := make(chan struct{})
		go func() { defer close(done); tl.Run(ctx) }()
		deadline := time.Now().Add(5 * time.Second)
		if len(wait) > 0 {
			deadline = time.Now().Add(wait[0])
		}
		for !until() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
	}
	want := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("line %d", i))
		}
		return out
	}
	check := func(in *Ingester, n int) {
		t.Helper()
		if got := storedLines(t, in); strings.Join(got, "|") != strings.Join(want(n), "|") {
			t.Fatalf("stored %d lines %v…, want lines 0..%d once each, in order", len(got), got[:min(len(got), 5)], n-1)
		}
	}

	appendLines(logPath, 0, 10)
	in := open()
	follow(in, func() bool { return len(storedLines(t, in)) >= 10 })
	check(in, 10)

	// A half-written last line waits for its newline.
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("line 10")
	f.Close()
	follow(in, func() bool { return false }, 200*time.Millisecond)
	check(in, 10)
	f, _ = os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n")
	f.Close()

	// Rotated while haechi is down, with more lines in both generations.
	appendLines(logPath, 11, 15)
	in.Close()
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(logPath, 15, 20)
	in = open()
	follow(in, func() bool { return len(storedLines(t, in)) >= 20 })
	check(in, 20)

	// Rotated while following.
	in2done := make(chan struct{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		appendLines(logPath, 20, 25)
		os.Rename(logPath, logPath+".1")
		appendLines(logPath, 25, 30)
		close(in2done)
	}()
	follow(in, func() bool {
		select {
		case <-in2done:
			return len(storedLines(t, in)) >= 30
		default:
			return false
		}
	})
	check(in, 30)

	// A restart resumes where the spool says: nothing twice.
	in.Close()
	in = open()
	defer in.Close()
	appendLines(logPath, 30, 33)
	follow(in, func() bool { return len(storedLines(t, in)) >= 33 })
	check(in, 33)
}

// A file truncated in place and rewritten with the same first line gives
// the same chunk keys for new lines: they are stored, not refused as a
// reused key (the tailer would retry forever) nor taken for a duplicate
// (they would be lost).
func TestTailerCopyTruncateSameFirstLine(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app.log")
	if err := os.WriteFile(logPath, []byte("header\nAAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := Open(Options{Spool: spool.Options{Dir: filepath.Join(dir, "spool"), NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ctx, cancel := context.WithCancel(context.Background())
	tl := &Tailer{File: TailFile{Path: logPath, Format: "nginx"}, In: in, Log: slog.New(slog.DiscardHandler),
		StateDir: filepath.Join(dir, "tail"), Poll: 5 * time.Millisecond}
	done := make(chan struct{})
	go func() { defer close(done); tl.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(n int) []string {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if got := storedLines(t, in); len(got) >= n {
				return got
			}
		}
		t.Fatalf("stored %v, want %d lines", storedLines(t, in), n)
		return nil
	}
	waitFor(2)
	if err := os.Truncate(logPath, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the tailer sees the file shrink
	f, err := os.OpenFile(logPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("header\nBBBB\n") // the same byte range, the same first line
	f.Close()
	if got := strings.Join(waitFor(4), "|"); got != "header|AAAA|header|BBBB" {
		t.Errorf("stored %s", got)
	}
}
