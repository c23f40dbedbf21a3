package mint

import (
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/snap"
)

// snapshotV1 encodes r in version 1's format (no key revocations), as
// a registry before key revocations wrote it.
func snapshotV1(r *Registry) []byte {
	var w snap.Writer
	w.Byte(1)
	w.Time(r.since)
	w.Bool(r.inv)
	w.Uint(uint64(len(r.keys) - 1))
	for _, k := range r.keys[1:] {
		w.String(k.id)
		w.Bool(k.listed)
		w.Time(k.retiredAt)
	}
	for i := range r.stripes {
		for _, s := range r.stripes[i].t.s {
			if s.h == 0 {
				continue
			}
			for _, v := range []uint64{s.h, uint64(s.exp), uint64(s.user) /* where version 1 stored the AS number */, uint64(s.key), uint64(s.cc), uint64(s.ua), uint64(s.flags)} {
				w.Uint(v)
			}
		}
	}
	w.Uint(0)
	return w.B
}

// A version 1 snapshot (written before key revocations) still restores,
// with the same verdicts; its slots' AS numbers do not bind a user.
func TestRestoreVersion1(t *testing.T) {
	r := fixture(t)
	r.Add(Mint{TokenID: "tok-bound", KeyID: "k1", At: t0, UserID: "c:1"})
	c := New(r.opts)
	if err := c.Restore(snapshotV1(r)); err != nil {
		t.Fatal(err)
	}
	if c.Len() != r.Len() {
		t.Fatalf("restored %d tokens, want %d", c.Len(), r.Len())
	}
	now := t0.Add(15 * time.Minute)
	if v := c.Verify(Query{TokenID: "tok-bound", KeyID: "k1", User: "c:2", Now: now}).Verdict; v != Known {
		t.Errorf("version 1's AS number bound a user: %s", v)
	}
	for _, id := range []string{"tok-a", "tok-old", "tok-late", "tok-rev", "tok-forged"} {
		for _, kid := range []string{"k1", "k2", "k9", ""} {
			q := Query{TokenID: id, KeyID: kid, Now: now}
			if a, b := r.Verify(q), c.Verify(q); a.Verdict != b.Verdict {
				t.Errorf("%s/%s: restored says %s, original %s", id, kid, b.Verdict, a.Verdict)
			}
		}
	}
}
