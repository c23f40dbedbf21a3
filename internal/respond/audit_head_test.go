package respond

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/store"
)

// A database writer without the key rewrites the whole log as plain
// SHA-256 entries (entry 1 edited). Verify reports the downgrade, and no
// keyed process can launder it by chaining an ordinary keyed entry onto
// the forged head: the store refuses the append (it used to accept it, and
// from then on verify called the log intact, the forged entries counting as
// the legacy prefix the first keyed entry pins). Found in review.
func TestAuditLegacyRewriteNotLaundered(t *testing.T) {
	st, db, _ := auditStore(t, testAuditKey, 5)
	rechain(t, st, db, 1, nil, store.AuditSchemeSHA256)
	_, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	wantBreak(t, err, 1, ProblemDowngrade)
	err = st.AppendAudit(t.Context(), auditT0.Add(time.Hour), "alert_raised", "", map[string]string{"id": "a-1"})
	if !errors.Is(err, store.ErrAuditHead) {
		t.Fatalf("a keyed append onto the forged legacy head: %v, want ErrAuditHead", err)
	}
	_, err = VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	wantBreak(t, err, 1, ProblemDowngrade)

	// The same forgery with a keyed entry chained on by other means (a
	// store without this check): the first keyed entry after plain SHA-256
	// ones must be the one serve writes to pin them.
	head, err := st.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	at := auditT0.Add(2 * time.Hour)
	mac := store.AuditMAC(testAuditKey, head.Seq+1, at, "alert_raised", "", []byte(`{}`), head.Hash)
	mustExec(t, db, "INSERT INTO audit (seq, time, kind, action_id, detail, prev_hash, hash, scheme) VALUES (?, ?, ?, '', '{}', ?, ?, ?)",
		head.Seq+1, at.UnixNano(), "alert_raised", head.Hash, mac, store.AuditSchemeHMAC)
	_, err = VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	wantBreak(t, err, head.Seq+1, ProblemDowngrade)
}

// Only serve checked that its key authenticates the log's head. A command
// run with another key (a stale key file on a second host of a shared
// PostgreSQL, a mistyped HAECHI_AUDIT_KEY) appended entries MACed under
// it, which broke the chain for good: verify stops at the first break, so
// nothing after it was checked any more. Now every keyed append checks the
// head. Found in review.
func TestAuditAppendWithWrongKeyRefused(t *testing.T) {
	st, db, dir := auditStore(t, testAuditKey, 3)
	other, err := store.Open(t.Context(), dir, store.Options{AuditKey: bytes.Repeat([]byte{0x17}, store.AuditKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = other.AppendAudit(t.Context(), auditT0.Add(time.Hour), "scope_read", "", map[string]string{"by": "cli:mallory"})
	if !errors.Is(err, store.ErrAuditHead) {
		t.Fatalf("append with another key: %v, want ErrAuditHead", err)
	}
	appendN(t, st, 2)
	if rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey}); err != nil || rep.Entries != 5 {
		t.Fatalf("after the refused append: %+v, %v", rep, err)
	}
	// An entry modified in place is found, and this key refuses to vouch
	// for a chain whose head does not authenticate.
	mustExec(t, db, `UPDATE audit SET detail = '{"n":999}' WHERE seq = 5`)
	_, err = VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	wantBreak(t, err, 5, ProblemModified)
	if err := st.AppendAudit(t.Context(), auditT0.Add(2*time.Hour), "scope_read", "", nil); !errors.Is(err, store.ErrAuditHead) {
		t.Fatalf("append onto a modified head: %v, want ErrAuditHead", err)
	}
}
