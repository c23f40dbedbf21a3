package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// openT opens a spool in dir with NoSync unless the options say otherwise.
func openT(t testing.TB, opts Options) *Spool {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type rec struct {
	off  uint64
	data []byte
}

// readAll reads every durable record from from on, without waiting.
func readAll(t testing.TB, s *Spool, from uint64) ([]rec, error) {
	t.Helper()
	end := s.Stats().NextOffset
	r, err := s.Reader(from)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []rec
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for off := from; off < end; off++ {
		got, data, err := r.Next(ctx)
		if err != nil {
			return out, err
		}
		if got != off {
			t.Fatalf("Next offset = %d, want %d", got, off)
		}
		out = append(out, rec{got, bytes.Clone(data)})
	}
	return out, nil
}

func mustReadAll(t testing.TB, s *Spool, from uint64) []rec {
	t.Helper()
	out, err := readAll(t, s, from)
	if err != nil {
		t.Fatalf("read from %d: %v", from, err)
	}
	return out
}

func payload(rng *rand.Rand, i, maxLen int) []byte {
	n := rng.IntN(maxLen + 1)
	b := fmt.Appendf(nil, "#%d:", i)
	for len(b) < n {
		b = append(b, byte('a'+rng.IntN(26)))
	}
	return b
}

func TestRoundTripAcrossRolls(t *testing.T) {
	for _, tc := range []struct {
		name    string
		segment int64
		maxLen  int
		batch   int
	}{
		{"tiny segments one record each", 64, 40, 1},
		{"small segments batches", 300, 100, 5},
		{"default segments", 0, 2000, 3},
		{"empty records", 64, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: tc.segment, NoSync: true}
			s := openT(t, opts)
			rng := rand.New(rand.NewPCG(1, 2))
			var want [][]byte
			for i := 0; len(want) < 400; i++ {
				var recs [][]byte
				for range tc.batch {
					recs = append(recs, payload(rng, len(want)+len(recs), tc.maxLen))
				}
				first, last, err := s.Append(context.Background(), recs...)
				if err != nil {
					t.Fatal(err)
				}
				if first != uint64(len(want))+1 || last != first+uint64(len(recs))-1 {
					t.Fatalf("Append = [%d,%d], want first %d", first, last, len(want)+1)
				}
				want = append(want, recs...)
			}
			check := func(s *Spool) {
				got := mustReadAll(t, s, 1)
				if len(got) != len(want) {
					t.Fatalf("read %d records, want %d", len(got), len(want))
				}
				for i, g := range got {
					if !bytes.Equal(g.data, want[i]) {
						t.Fatalf("record %d = %q, want %q", g.off, g.data, want[i])
					}
				}
			}
			check(s)
			if st := s.Stats(); tc.segment != 0 && st.Segments < 2 {
				t.Fatalf("no segment roll: %+v", st)
			}
			// Reopen: same records, appends continue.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, opts)
			check(s)
			first, _, err := s.Append(context.Background(), []byte("after"))
			if err != nil || first != uint64(len(want))+1 {
				t.Fatalf("Append after reopen = %d, %v; want %d", first, err, len(want)+1)
			}
			// Readers can start anywhere.
			for _, from := range []uint64{1, 2, 57, uint64(len(want)), uint64(len(want)) + 1} {
				got := mustReadAll(t, s, from)
				if got[0].off != from {
					t.Fatalf("Reader(%d) starts at %d", from, got[0].off)
				}
			}
		})
	}
}

func TestSecondOpenFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := openT(t, Options{Dir: dir, NoSync: true})
	_, err := Open(Options{Dir: dir, NoSync: true})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	s.Close()
	s2, err := Open(Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v", fi.Mode(), err)
	}
}

// writeRecords creates a spool in dir holding n records and returns them.
func writeRecords(t *testing.T, dir string, n int, segment int64) [][]byte {
	t.Helper()
	s, err := Open(Options{Dir: dir, SegmentBytes: segment, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var recs [][]byte
	for i := range n {
		p := payload(rng, i, 30)
		if _, _, err := s.Append(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, p)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(m) == 0 {
		t.Fatal("no segments")
	}
	return m[len(m)-1]
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	m, _ := filepath.Glob(filepath.Join(src, "*"))
	for _, p := range m {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(p)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// checkPrefix asserts dir recovers exactly want, then continues at the right offset.
func checkPrefix(t *testing.T, dir string, want [][]byte, segment int64) {
	t.Helper()
	s, err := Open(Options{Dir: dir, SegmentBytes: segment, NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	got := mustReadAll(t, s, 1)
	if len(got) != len(want) {
		t.Fatalf("recovered %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].data, want[i]) {
			t.Fatalf("record %d = %q, want %q", i+1, got[i].data, want[i])
		}
	}
	first, _, err := s.Append(context.Background(), []byte("next"))
	if err != nil || first != uint64(len(want))+1 {
		t.Fatalf("Append after recovery = %d, %v; want %d", first, err, len(want)+1)
	}
	got = mustReadAll(t, s, first)
	if string(got[0].data) != "next" {
		t.Fatalf("read back %q", got[0].data)
	}
}

func TestRecoverTornTail(t *testing.T) {
	const segment = 200
	src := t.TempDir()
	recs := writeRecords(t, src, 25, segment)
	last := lastSegment(t, src)
	data, _ := os.ReadFile(last)
	frame := frameHeader + len(recs[len(recs)-1])
	start := len(data) - frame
	for cut := start; cut < len(data); cut++ {
		dir := copyDir(t, src)
		if err := os.Truncate(filepath.Join(dir, filepath.Base(last)), int64(cut)); err != nil {
			t.Fatal(err)
		}
		checkPrefix(t, dir, recs[:len(recs)-1], segment)
	}
	// The intact file recovers everything.
	checkPrefix(t, copyDir(t, src), recs, segment)
}

func TestRecoverBitFlipInTail(t *testing.T) {
	const segment = 200
	src := t.TempDir()
	recs := writeRecords(t, src, 25, segment)
	last := lastSegment(t, src)
	data, _ := os.ReadFile(last)
	start := len(data) - frameHeader - len(recs[len(recs)-1])
	for i := start; i < len(data); i++ {
		for bit := range 8 {
			dir := copyDir(t, src)
			b := bytes.Clone(data)
			b[i] ^= 1 << bit
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(last)), b, 0o600); err != nil {
				t.Fatal(err)
			}
			checkPrefix(t, dir, recs[:len(recs)-1], segment)
		}
	}
}

func TestCorruptionInEarlierSegmentIsAnError(t *testing.T) {
	const segment = 200
	dir := t.TempDir()
	writeRecords(t, dir, 40, segment)
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	first := m[0]
	b, _ := os.ReadFile(first)
	b[len(b)/2] ^= 0x10
	os.WriteFile(first, b, 0o600)

	s := openT(t, Options{Dir: dir, SegmentBytes: segment, NoSync: true})
	_, err := readAll(t, s, 1)
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.File != first {
		t.Fatalf("read = %v, want *CorruptError in %s", err, first)
	}
	s.Close()

	// A non-last segment too short for its records fails Open.
	os.Truncate(first, 3)
	if _, err := Open(Options{Dir: dir, SegmentBytes: segment, NoSync: true}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with short segment = %v, want ErrCorrupt", err)
	}
}

func TestTruncationBelowCheckpointIsAnError(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir, NoSync: true})
	for i := range 10 {
		s.Append(context.Background(), []byte{byte(i)})
	}
	if err := s.Commit(9); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Corrupt record 5: recovery would drop 5..10, but 5..9 were processed.
	seg := lastSegment(t, dir)
	b, _ := os.ReadFile(seg)
	b[4*(frameHeader+1)+frameHeader] ^= 1
	os.WriteFile(seg, b, 0o600)
	if _, err := Open(Options{Dir: dir, NoSync: true}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}

func TestErrFull(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir, SegmentBytes: 100, MaxBytes: 1000, NoSync: true})
	rec := make([]byte, 42) // 50-byte frames, two per segment
	var n int
	for {
		_, _, err := s.Append(context.Background(), rec)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 20 {
		t.Fatalf("accepted %d records, want 20", n)
	}
	if st := s.Stats(); st.Bytes != 1000 || st.Segments != 10 {
		t.Fatalf("stats %+v", st)
	}
	if _, _, err := s.Append(context.Background(), rec); !errors.Is(err, ErrFull) {
		t.Fatalf("still full: %v", err)
	}
	if ok, err := s.Healthy(); !ok {
		t.Fatalf("ErrFull made the spool unhealthy: %v", err)
	}
	// Processing frees whole segments.
	if err := s.Commit(5); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Segments != 8 || st.FirstOffset != 5 || st.Committed != 5 {
		t.Fatalf("after commit: %+v", st)
	}
	first, _, err := s.Append(context.Background(), rec, rec)
	if err != nil || first != 21 {
		t.Fatalf("Append after commit = %d, %v", first, err)
	}
	if _, err := s.Reader(4); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Reader(deleted) = %v", err)
	}
	if _, err := s.Reader(24); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Reader(future) = %v", err)
	}
	if got := mustReadAll(t, s, 5); len(got) != 18 {
		t.Fatalf("read %d", len(got))
	}
}

func TestTooLarge(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir(), SegmentBytes: 100, NoSync: true})
	if _, _, err := s.Append(context.Background(), make([]byte, 93)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append = %v", err)
	}
	if _, _, err := s.Append(context.Background(), make([]byte, 92)); err != nil {
		t.Fatalf("Append exact fit = %v", err)
	}
}

func TestCommitPersistsAndDeletes(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 64, NoSync: true}
	s := openT(t, opts)
	for i := range 30 {
		s.Append(context.Background(), []byte(fmt.Sprint(i)))
	}
	if err := s.Commit(31); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Commit beyond end = %v", err)
	}
	if err := s.Commit(17); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(3); err != nil { // going back is a no-op
		t.Fatal(err)
	}
	before := s.Stats()
	s.Close()
	s = openT(t, opts)
	st := s.Stats()
	if st.Committed != 17 || st.FirstOffset != before.FirstOffset || st.FirstOffset > 18 || st.NextOffset != 31 {
		t.Fatalf("after reopen %+v (before %+v)", st, before)
	}
	got := mustReadAll(t, s, s.Committed()+1)
	if len(got) != 13 || string(got[0].data) != "17" {
		t.Fatalf("resume read %d records from %q", len(got), got[0].data)
	}
	// Commit everything: the active segment stays, so offsets survive.
	if err := s.Commit(30); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openT(t, opts)
	if first, _, err := s.Append(context.Background(), []byte("x")); err != nil || first != 31 {
		t.Fatalf("Append = %d, %v", first, err)
	}
}

func TestEmptyDirAfterCheckpoint(t *testing.T) {
	// An operator removed every segment but the checkpoint: offsets resume
	// after it rather than reusing processed offsets.
	dir := t.TempDir()
	s := openT(t, Options{Dir: dir, NoSync: true})
	s.Append(context.Background(), []byte("a"), []byte("b"))
	s.Commit(2)
	s.Close()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, p := range m {
		os.Remove(p)
	}
	s = openT(t, Options{Dir: dir, NoSync: true})
	if first, _, err := s.Append(context.Background(), []byte("c")); err != nil || first != 3 {
		t.Fatalf("Append = %d, %v", first, err)
	}
}

func TestReaderWaits(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir(), SegmentBytes: 64, NoSync: true})
	r, err := s.Reader(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if _, _, err := r.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on empty = %v", err)
	}
	cancel()
	done := make(chan error)
	go func() {
		for i := 1; i <= 50; i++ {
			off, data, err := r.Next(context.Background())
			if err != nil {
				done <- err
				return
			}
			if off != uint64(i) || string(data) != fmt.Sprint(i) {
				done <- fmt.Errorf("got %d %q", off, data)
				return
			}
		}
		done <- nil
	}()
	for i := 1; i <= 50; i++ {
		time.Sleep(time.Duration(i%3) * time.Millisecond)
		if _, _, err := s.Append(context.Background(), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _, err := r.Next(context.Background())
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	s.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
	if _, _, err := s.Append(context.Background(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
}

// TestGroupCommit appends from many goroutines with real fsync while a
// reader follows: every record is read once, in each writer's order, and
// the fsyncs are shared.
func TestGroupCommit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{{"no delay", 0}, {"sync delay", 2 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			const writers, each = 32, 40
			s := openT(t, Options{Dir: t.TempDir(), SegmentBytes: 16 << 10, SyncDelay: tc.delay})
			r, err := s.Reader(1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			seen := make(chan map[string]uint64)
			go func() {
				m := map[string]uint64{}
				for range writers * each {
					off, data, err := r.Next(context.Background())
					if err != nil {
						t.Error(err)
						break
					}
					if _, dup := m[string(data)]; dup {
						t.Errorf("record %q read twice", data)
					}
					m[string(data)] = off
				}
				seen <- m
			}()
			acked := make([]map[string]uint64, writers)
			var wg sync.WaitGroup
			for w := range writers {
				acked[w] = map[string]uint64{}
				wg.Go(func() {
					var prev uint64
					for i := range each {
						p := fmt.Sprintf("w%d-%d", w, i)
						first, _, err := s.Append(context.Background(), []byte(p))
						if err != nil {
							t.Error(err)
							return
						}
						if first <= prev {
							t.Errorf("writer %d: offset %d after %d", w, first, prev)
						}
						prev = first
						acked[w][p] = first
					}
				})
			}
			wg.Wait()
			m := <-seen
			for _, a := range acked {
				for p, off := range a {
					if m[p] != off {
						t.Fatalf("%s acked at %d, read at %d", p, off, m[p])
					}
				}
			}
			st := s.Stats()
			if st.Appends != writers*each || st.Syncs >= st.Appends {
				t.Fatalf("no group commit: %+v", st)
			}
			t.Logf("appends %d, syncs %d, last sync %v", st.Appends, st.Syncs, st.LastSyncDuration)
		})
	}
}

func TestAppendContextCancelled(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir(), NoSync: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Append(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append = %v", err)
	}
	if _, _, err := s.Append(context.Background()); err == nil {
		t.Fatal("Append of nothing succeeded")
	}
}

// AppendAssigned names each call's first offset — the one Append returns —
// before a Reader can return any of its records, also with concurrent
// appends sharing commits.
func TestAppendAssigned(t *testing.T) {
	s := openT(t, Options{Dir: t.TempDir(), SegmentBytes: 256, NoSync: true})
	r, err := s.Reader(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const writers, each = 4, 50
	var mu sync.Mutex
	named := map[uint64]string{} // offset → record, as assigned said
	readErr := make(chan error, 1)
	go func() {
		for range writers * each * 2 {
			off, data, err := r.Next(context.Background())
			if err != nil {
				readErr <- err
				return
			}
			mu.Lock()
			rec, ok := named[off]
			if !ok && off%2 == 0 { // second of a pair: named by its first
				rec, ok = named[off-1]
				rec += "b"
			}
			mu.Unlock()
			if !ok || rec != string(data) {
				readErr <- fmt.Errorf("record %d %q read, assigned named %q (%v)", off, data, rec, ok)
				return
			}
		}
		readErr <- nil
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				rec := fmt.Sprintf("%d-%d", w, i)
				var got uint64
				first, last, err := s.AppendAssigned(context.Background(), func(first uint64) {
					got = first
					mu.Lock()
					named[first] = rec
					mu.Unlock()
				}, []byte(rec), []byte(rec+"b"))
				if err != nil || got != first || last != first+1 {
					t.Errorf("AppendAssigned: first %d last %d err %v, assigned %d", first, last, err, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
}
