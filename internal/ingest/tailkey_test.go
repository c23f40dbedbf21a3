package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/spool"
)

// In the tailer's scope Append stores a key again when its body differs (a
// file rewritten in place, copytruncate) and replaces the remembered hash
// with the new one; the consumer's table (Run's seen, keyTable.note) must do
// the same. For one tail key stored with bodies A, B, A (the range
// rewritten twice, the second time with the first content again) Append
// stores all three, and the consumer must feed all three: it used to keep
// the first hash and skip the third as a duplicate of it, so lines
// acknowledged as stored never reached the pipeline (found in review).
func TestTailKeyRewrittenTwice(t *testing.T) {
	in, err := Open(Options{Spool: spool.Options{Dir: t.TempDir(), NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	const key = "tail:1:2:abcd:0-10"
	a, b := []byte("line A 1\nline A 2\n"), []byte("line B 1\nline B 2\n")
	for i, body := range [][]byte{a, b, a} {
		dup, err := in.Append(t.Context(), api.Stored{Scope: tailScope, Key: key, Body: body})
		if err != nil || dup {
			t.Fatalf("append %d: dup %v, err %v (want stored)", i, dup, err)
		}
	}
	if n := in.Pending(); n != 3 {
		t.Fatalf("pending %d, want 3 stored", n)
	}
	// The consumer's rule, exactly as Run applies it.
	rd, err := in.sp.Reader(in.first)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := newKeyTable(in.opts.IdempotencyTTL, in.opts.MaxKeysPerScope)
	fed := 0
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, rec, err := rd.Next(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		r, err := decodeSpoolRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if r.Key == "" || !seen.note(idemKey{r.Scope, r.Key}, r.Hash, r.Accepted) {
			fed++
		}
	}
	if fed != 3 {
		t.Errorf("Append stored 3 tail chunks (A, B, A) but the consumer feeds %d: the third is dropped as a duplicate of the first", fed)
	}
}
