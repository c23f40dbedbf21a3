package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/spool"
)

// encodeV1 frames a record as version 1 did (before keys were scoped).
func encodeV1(accepted time.Time, key, format string, body []byte) []byte {
	b := []byte{spoolRecordV1}
	b = binary.LittleEndian.AppendUint64(b, uint64(accepted.UnixNano()))
	b = binary.LittleEndian.AppendUint64(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	b = append(b, byte(len(format)))
	b = append(b, format...)
	return append(b, body...)
}

func TestSpoolRecordRoundTrip(t *testing.T) {
	at := time.Unix(1750755603, 123)
	for _, tc := range []struct{ scope, key, format, body string }{
		{"", "", "", ""}, {"tok-1", "k-1", "ecs", `{"a":1}` + "\n"}, {"", "x", "mapping:orders", "line\n\nline"}, {tailScope, "tail:1:2:ab:0-9", "", "l\n"},
	} {
		in := spoolRecord{Accepted: at, NotAfter: at.Add(time.Hour), Scope: tc.scope, Key: tc.key, Format: tc.format, Body: []byte(tc.body)}
		if tc.key != "" {
			in.Hash = bodyHash(tc.format, in.Body)
		}
		r, err := decodeSpoolRecord(encodeSpoolRecord(in))
		if err != nil || !r.Accepted.Equal(at) || !r.NotAfter.Equal(at.Add(time.Hour)) || r.Scope != tc.scope || r.Key != tc.key ||
			r.Hash != in.Hash || r.Format != tc.format || string(r.Body) != tc.body {
			t.Errorf("%+v: got %+v, %v", tc, r, err)
		}
	}
	if r, err := decodeSpoolRecord(encodeSpoolRecord(spoolRecord{Accepted: at})); err != nil || !r.NotAfter.IsZero() {
		t.Errorf("no limit: %+v %v", r, err)
	}
	// Version 1 records (written before the upgrade) are still read: their
	// keys are anonymous, "tail:" keys the tailer's, the hash computed.
	for _, tc := range []struct{ key, format, body, scope string }{
		{"k-1", "", "{}\n", ""}, {"tail:1:2:ab:0-3", "nginx", "l\n", tailScope}, {"", "", "{}\n", ""},
	} {
		r, err := decodeSpoolRecord(encodeV1(at, tc.key, tc.format, []byte(tc.body)))
		want := [32]byte{}
		if tc.key != "" {
			want = bodyHash(tc.format, []byte(tc.body))
		}
		if err != nil || !r.Accepted.Equal(at) || r.Scope != tc.scope || r.Key != tc.key || r.Hash != want || r.Format != tc.format || string(r.Body) != tc.body {
			t.Errorf("v1 %+v: got %+v, %v", tc, r, err)
		}
	}
	z8 := []byte{0, 0, 0, 0, 0, 0, 0, 0}
	rec := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	for _, bad := range [][]byte{nil,
		rec([]byte{3}, z8, z8, []byte{0, 0, 0, 0}),           // unknown version
		rec([]byte{1}, z8, z8, []byte{9, 0, 'k'}),            // v1 key past the end
		rec([]byte{1}, z8, z8, []byte{0, 0, 5, 'e'}),         // v1 format past the end
		rec([]byte{2}, z8, z8, []byte{4, 't'}),               // v2 scope past the end
		rec([]byte{2}, z8, z8, []byte{0, 1, 0, 'k', 0}),      // v2 key without its hash
		rec([]byte{2}, z8, z8, []byte{0, 0, 0, 3, 'e', 'c'}), // v2 format past the end
		rec([]byte{2}, z8, z8, []byte{0, 0}),                 // v2 cut before the key length
	} {
		if _, err := decodeSpoolRecord(bad); err == nil {
			t.Errorf("decodeSpoolRecord(%v) accepted", bad)
		}
	}
}

// FuzzDecodeSpoolRecord: any bytes decode or fail, never panic, and a
// decoded version 2 record encodes back to the same bytes.
func FuzzDecodeSpoolRecord(f *testing.F) {
	at := time.Unix(1750755603, 123)
	f.Add(encodeSpoolRecord(spoolRecord{Accepted: at, Scope: "tok-1", Key: "k", Hash: bodyHash("", []byte("{}\n")), Body: []byte("{}\n")}))
	f.Add(encodeSpoolRecord(spoolRecord{Accepted: at, Format: "nginx", Body: []byte("l\n")}))
	f.Add(encodeV1(at, "tail:1:2:ab:0-3", "", []byte("l\n")))
	f.Fuzz(func(t *testing.T, rec []byte) {
		r, err := decodeSpoolRecord(rec)
		if err != nil || rec[0] != spoolRecordVersion {
			return
		}
		if got := encodeSpoolRecord(r); !bytes.Equal(got, rec) {
			t.Fatalf("re-encoded %x, want %x", got, rec)
		}
	})
}

// A retried request (same Idempotency-Key) is stored once, also after a
// restart; what was stored waits for the pipeline across the restart.
func TestIngesterIdempotentAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *Ingester {
		in, err := Open(Options{Spool: spool.Options{Dir: dir, NoSync: true}})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	in := open()
	for i, c := range []struct {
		key     string
		wantDup bool
	}{{"a", false}, {"b", false}, {"a", true}, {"", false}, {"", false}} {
		dup, err := in.Append(t.Context(), api.Stored{Key: c.key, Body: []byte("{}\n")})
		if err != nil || dup != c.wantDup {
			t.Fatalf("append %d (%q): dup %v, err %v", i, c.key, dup, err)
		}
	}
	if n := in.Pending(); n != 4 {
		t.Errorf("pending %d, want 4", n)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	in = open()
	defer in.Close()
	if dup, err := in.Append(t.Context(), api.Stored{Key: "b", Body: []byte("{}\n")}); err != nil || !dup {
		t.Errorf("after restart: dup %v, err %v", dup, err)
	}
	if n := in.Pending(); n != 4 {
		t.Errorf("pending after restart %d, want 4", n)
	}
}

// fakeClock is a settable clock for key expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Idempotency keys are scoped per token, bound to the body's hash and
// expire: the same key with another body is refused (ErrKeyReused, never a
// silent duplicate answer), another token's key is its own, the "tail:"
// space is the tailer's, and an expired key stores again — also after a
// restart, which reads keys, scopes and hashes back from the spool.
func TestIngesterIdempotencyKeys(t *testing.T) {
	dir := t.TempDir()
	clk := &fakeClock{now: time.Date(2025, 6, 24, 9, 0, 0, 0, time.UTC)}
	open := func() *Ingester {
		in, err := Open(Options{Spool: spool.Options{Dir: dir, NoSync: true}, IdempotencyTTL: 24 * time.Hour, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	const (
		stored = iota
		dup
		reused
		refused
	)
	type step struct {
		scope, key, body string
		advance          time.Duration // before the append
		want             int
	}
	b1, b2, b3 := `{"n":1}`+"\n", `{"n":2}`+"\n", `{"n":3}`+"\n"
	run := func(in *Ingester, steps []step) {
		t.Helper()
		for i, c := range steps {
			clk.Add(c.advance)
			before := in.Pending()
			isDup, err := in.Append(t.Context(), api.Stored{Scope: c.scope, Key: c.key, Body: []byte(c.body)})
			got := stored
			switch {
			case errors.Is(err, api.ErrKeyReused):
				got = reused
				if !strings.Contains(err.Error(), strconv.Quote(c.key)) || !strings.Contains(err.Error(), "24h0m0s") {
					t.Errorf("step %d: the error names neither the key nor the TTL: %v", i, err)
				}
			case err != nil:
				got = refused
			case isDup:
				got = dup
			}
			if got != c.want {
				t.Errorf("step %d %+v: got %d (dup %v, err %v), want %d", i, c, got, isDup, err, c.want)
			}
			if n := in.Pending() - before; (n == 1) != (got == stored) {
				t.Errorf("step %d %+v: %d records stored", i, c, n)
			}
		}
	}
	in := open()
	run(in, []step{
		{scope: "tok-a", key: "batch-1", body: b1, want: stored},
		{scope: "tok-a", key: "batch-1", body: b1, want: dup},
		{scope: "tok-a", key: "batch-1", body: b2, want: reused}, // a restarted batch counter: told, not dropped
		{scope: "tok-b", key: "batch-1", body: b2, want: stored}, // another token's key cannot suppress it
		{scope: "", key: "batch-1", body: b3, want: stored},      // nor the anonymous scope's
		{scope: "tok-b", key: "batch-1", body: b2, want: dup},    // tok-b's own retry
		{scope: "tok-a", key: "tail:1:2:ab:0-99", body: b1, want: refused},
		{scope: tailScope, key: "batch-1", body: b1, want: refused},
		{scope: "tok-a", key: "batch-1", body: b2, advance: 23 * time.Hour, want: reused},
		{scope: "tok-a", key: "batch-1", body: b2, advance: time.Hour, want: stored}, // expired: a new request
		{scope: "tok-a", key: "batch-1", body: b2, want: dup},
		{scope: "tok-a", key: "batch-1", body: b1, want: reused}, // bound to the new body now
	})
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	in = open()
	run(in, []step{
		{scope: "tok-a", key: "batch-1", body: b2, want: dup},
		{scope: "tok-a", key: "batch-1", body: b1, want: reused},
		{scope: "tok-c", key: "batch-1", body: b1, want: stored}, // the scopes came back too
		{scope: "tok-b", key: "batch-1", body: b1, want: stored}, // tok-b's, accepted 24 h ago, has expired
		{scope: "tok-b", key: "batch-1", body: b1, want: dup},
	})
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Add(25 * time.Hour) // every key expired while serve was down
	in = open()
	defer in.Close()
	run(in, []step{{scope: "tok-a", key: "batch-1", body: b1, want: stored}})
}

// keyTable.note is the rule the consumer and start-up apply: a duplicate
// is the same scope, key and hash within the TTL of the key's first
// acceptance; sweep forgets expired keys but not one being stored.
func TestKeyTable(t *testing.T) {
	t0 := time.Date(2025, 6, 24, 9, 0, 0, 0, time.UTC)
	h1, h2 := bodyHash("", []byte("1")), bodyHash("", []byte("2"))
	kt := newKeyTable(time.Hour, 0)
	for i, c := range []struct {
		k    idemKey
		hash [32]byte
		at   time.Duration
		dup  bool
	}{
		{idemKey{"tok-a", "k"}, h1, 0, false},
		{idemKey{"tok-a", "k"}, h1, 59 * time.Minute, true},
		{idemKey{"tok-b", "k"}, h1, 59 * time.Minute, false},
		{idemKey{"tok-a", "k"}, h2, 59 * time.Minute, false}, // another body: not a duplicate, the first stays
		{idemKey{"tok-a", "k"}, h1, 59 * time.Minute, true},
		{idemKey{"tok-a", "k"}, h1, time.Hour, false}, // expired: counts anew
		{idemKey{"tok-a", "k"}, h1, 90 * time.Minute, true},
	} {
		if dup := kt.note(c.k, c.hash, t0.Add(c.at)); dup != c.dup {
			t.Errorf("note %d %+v: duplicate %v", i, c, dup)
		}
	}
	kt.put(idemKey{"tok-c", "k"}, &idemEntry{hash: h1, done: make(chan struct{})}) // being stored
	kt.sweep(t0.Add(3 * time.Hour))
	if len(kt.m) != 1 || kt.m[idemKey{"tok-c", "k"}] == nil {
		t.Errorf("after the sweep: %v", kt.m)
	}
	if len(kt.scopes) != 1 || kt.held("tok-c") != 1 {
		t.Errorf("after the sweep, %d scopes, %d keys of tok-c", len(kt.scopes), kt.held("tok-c"))
	}
}

// One scope past the cap loses its own oldest keys, never another scope's
// nor a key being stored: a token holder sending fresh keys without end
// holds at most max of them.
func TestKeyTableCap(t *testing.T) {
	t0 := time.Date(2025, 6, 24, 9, 0, 0, 0, time.UTC)
	h := bodyHash("", []byte("1"))
	kt := newKeyTable(24*time.Hour, 20)
	kt.note(idemKey{"tok-b", "b-0"}, h, t0)
	kt.put(idemKey{"tok-a", "in-flight"}, &idemEntry{hash: h, done: make(chan struct{})})
	for i := range 1000 {
		kt.note(idemKey{"tok-a", fmt.Sprint("a-", i)}, h, t0.Add(time.Duration(i)*time.Second))
		if n := kt.held("tok-a"); n > 20 {
			t.Fatalf("after %d keys, tok-a holds %d (cap 20)", i+1, n)
		}
	}
	if kt.m[idemKey{"tok-b", "b-0"}] == nil || kt.held("tok-b") != 1 {
		t.Error("another token's key was forgotten")
	}
	if kt.m[idemKey{"tok-a", "in-flight"}] == nil {
		t.Error("a key being stored was forgotten")
	}
	if kt.m[idemKey{"tok-a", "a-999"}] == nil || kt.m[idemKey{"tok-a", "a-0"}] != nil {
		t.Error("the cap did not forget the oldest keys first")
	}
	if len(kt.m) != kt.held("tok-a")+kt.held("tok-b") || kt.evicted == 0 {
		t.Errorf("%d keys held, %d of tok-a, %d of tok-b, %d evicted", len(kt.m), kt.held("tok-a"), kt.held("tok-b"), kt.evicted)
	}
	if q := kt.scopes["tok-a"]; len(q.q)-q.head > 2*(20+64) {
		t.Errorf("tok-a's queue holds %d elements for %d keys", len(q.q)-q.head, q.n)
	}
}

// Requests that could not be stored leave nothing behind, and keys expire
// from the front of their scope's queue by the sweep.
func TestKeyTableQueue(t *testing.T) {
	t0 := time.Date(2025, 6, 24, 9, 0, 0, 0, time.UTC)
	h := bodyHash("", []byte("1"))
	kt := newKeyTable(time.Hour, 0)
	for i := range 10_000 { // reserved, then the store failed
		k := idemKey{"tok-a", fmt.Sprint("k-", i)}
		kt.put(k, &idemEntry{hash: h, done: make(chan struct{})})
		kt.remove(k)
	}
	if len(kt.m) != 0 || len(kt.scopes) != 0 {
		t.Fatalf("after failed stores: %d keys, %d scopes", len(kt.m), len(kt.scopes))
	}
	for i := range 100 {
		kt.note(idemKey{"tok-a", fmt.Sprint("k-", i)}, h, t0.Add(time.Duration(i)*time.Minute))
	}
	// At t0+100m the keys of t0+0m … t0+40m are an hour old.
	kt.sweep(t0.Add(100 * time.Minute))
	if got := kt.held("tok-a"); got != 59 {
		t.Errorf("after the sweep at +100m, %d keys held, want 59 (those accepted after +40m)", got)
	}
	if q := kt.scopes["tok-a"]; len(q.q)-q.head != 59 {
		t.Errorf("the queue holds %d elements for 59 keys", len(q.q)-q.head)
	}
}

// held is how many keys scope holds.
func (t *keyTable) held(scope string) int {
	if sq := t.scopes[scope]; sq != nil {
		return sq.n
	}
	return 0
}

// Concurrent requests with one key in one scope store it once: one is
// stored, the others wait for it and are answered as its retries — a
// duplicate for the same body, ErrKeyReused for another.
func TestIngesterConcurrentSameKey(t *testing.T) {
	// SyncDelay holds each append open long enough for the others to
	// arrive while it is in flight.
	in, err := Open(Options{Spool: spool.Options{Dir: t.TempDir(), SyncDelay: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	const n = 16
	var wg sync.WaitGroup
	var stored, dups, reused atomic.Int32
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body := []byte(`{"n":1}` + "\n")
			if i%2 == 1 {
				body = []byte(`{"n":2}` + "\n")
			}
			dup, err := in.Append(context.Background(), api.Stored{Scope: "tok-a", Key: "k", Body: body})
			switch {
			case errors.Is(err, api.ErrKeyReused):
				reused.Add(1)
			case err != nil:
				t.Error(err)
			case dup:
				dups.Add(1)
			default:
				stored.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if stored.Load() != 1 || in.Pending() != 1 || dups.Load()+reused.Load() != n-1 || dups.Load() != n/2-1 || reused.Load() != n/2 {
		t.Errorf("stored %d (pending %d), duplicates %d, refused %d; want 1, %d, %d", stored.Load(), in.Pending(), dups.Load(), reused.Load(), n/2-1, n/2)
	}
}

// A spool written before keys were scoped (version 1 records) is read
// after the upgrade: its keys are anonymous — an authenticated client's
// same key is its own — with the hash of the stored body, and its tail
// keys still tell the tailer where each file was.
func TestIngesterReadsVersion1Keys(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(spool.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body := []byte(`{"n":1}` + "\n")
	if _, _, err := sp.Append(t.Context(), encodeV1(now, "batch-1", "", body), encodeV1(now, "tail:1:2:ab:0-700", "", body)); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	in, err := Open(Options{Spool: spool.Options{Dir: dir, NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if dup, err := in.Append(t.Context(), api.Stored{Key: "batch-1", Body: body}); err != nil || !dup {
		t.Errorf("anonymous retry of a version 1 request: dup %v, err %v", dup, err)
	}
	if _, err := in.Append(t.Context(), api.Stored{Key: "batch-1", Body: []byte("{}\n")}); !errors.Is(err, api.ErrKeyReused) {
		t.Errorf("anonymous reuse with another body: %v", err)
	}
	if dup, err := in.Append(t.Context(), api.Stored{Scope: "tok-a", Key: "batch-1", Body: body}); err != nil || dup {
		t.Errorf("a token's own key: dup %v, err %v", dup, err)
	}
	if end, ok := in.TailEnd("tail:1:2:ab:"); !ok || end != 700 {
		t.Errorf("TailEnd after the upgrade: %d %v, want 700", end, ok)
	}
}

// faultyFS fails every write while full is set: a full disk.
type faultyFS struct {
	spool.OSFS
	full *atomic.Bool
}

func (f faultyFS) OpenFile(name string, flag int, perm os.FileMode) (spool.File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return faultyFile{File: file, full: f.full}, nil
}

type faultyFile struct {
	spool.File
	full *atomic.Bool
}

func (f faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if f.full.Load() {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(p, off)
}

// A full disk is never acknowledged: Append reports ErrUnavailable (the
// API answers 503) and the ingester is unhealthy until a write succeeds.
func TestIngesterDiskFull(t *testing.T) {
	var full atomic.Bool
	in, err := Open(Options{Spool: spool.Options{Dir: t.TempDir(), FS: faultyFS{full: &full}}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := in.Append(t.Context(), api.Stored{Key: "", Body: []byte("{}\n")}); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	_, err = in.Append(t.Context(), api.Stored{Key: "k", Body: []byte("{}\n")})
	if !errors.Is(err, api.ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v", err)
	}
	if in.Health() == nil {
		t.Error("healthy after a failed write")
	}
	if dup, err := in.Append(t.Context(), api.Stored{Key: "k", Body: []byte("{}\n")}); err == nil || dup {
		t.Errorf("a failed key was remembered: dup %v err %v", dup, err)
	}
	full.Store(false)
	if _, err := in.Append(t.Context(), api.Stored{Key: "k", Body: []byte("{}\n")}); err != nil {
		t.Fatalf("after the disk recovered: %v", err)
	}
	if err := in.Health(); err != nil {
		t.Errorf("unhealthy after recovery: %v", err)
	}
	if n := in.Pending(); n != 2 {
		t.Errorf("pending %d, want 2 (nothing unacknowledged stored)", n)
	}
}

// Requests waiting longer than MaxLag for the pipeline turn new ones away
// with ErrBusy (429) — but a retry of a stored one is still answered.
func TestIngesterMaxLag(t *testing.T) {
	in, err := Open(Options{Spool: spool.Options{Dir: t.TempDir(), NoSync: true}, MaxLag: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if in.Backlog() != 0 {
		t.Fatal("backlog before any request")
	}
	if _, err := in.Append(t.Context(), api.Stored{Key: "a", Body: []byte("{}\n")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if b := in.Backlog(); b < 30*time.Millisecond {
		t.Fatalf("backlog %s", b)
	}
	if _, err := in.Append(t.Context(), api.Stored{Key: "b", Body: []byte("{}\n")}); !errors.Is(err, api.ErrBusy) || !strings.Contains(err.Error(), "behind") {
		t.Fatalf("append while behind: %v", err)
	}
	if dup, err := in.Append(t.Context(), api.Stored{Key: "a", Body: []byte("{}\n")}); err != nil || !dup {
		t.Fatalf("retry of a stored request while behind: dup %v err %v", dup, err)
	}
}

// BenchmarkKeyTableAtCap puts fresh keys into a scope held at its cap:
// each put forgets the oldest key, from the front of the scope's queue.
func BenchmarkKeyTableAtCap(b *testing.B) {
	t0 := time.Date(2025, 6, 24, 9, 0, 0, 0, time.UTC)
	h := bodyHash("", []byte("1"))
	kt := newKeyTable(24*time.Hour, 100_000)
	keys := make([]string, 200_000)
	for i := range keys {
		keys[i] = fmt.Sprint("batch-", i)
	}
	b.ResetTimer()
	for i := range b.N {
		kt.note(idemKey{"tok-a", keys[i%len(keys)]}, h, t0.Add(time.Duration(i)*time.Millisecond))
	}
}
