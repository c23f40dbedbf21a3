package respond

import (
	"bytes"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/store"
)

// Review of issue 17 (audit log). These tests FAIL on the current code:
// each demonstrates a hole in the MAC-chained audit log.

// TestReviewAuditLegacyRewriteLaunderedByNextKeyedAppend: a database
// writer without the key rewrites the whole log as legacy (scheme 0)
// entries — editing entry 1 — which VerifyAudit rightly reports as a
// downgrade. But the very next entry any keyed process appends (serve
// raising an alert, a CLI scope read, serve's own audit_keyed on restart)
// chains onto the forged legacy head with a valid MAC, and from then on
// VerifyAudit says the log is intact: the forged entries count as the
// legacy prefix "pinned" by the first keyed entry. docs/response.md
// promises a database-only writer cannot "rewrite the log as legacy
// entries, without verify naming the entry". Only an intact witness
// catches it; without one (audit.witness.enabled: false, or the file gone)
// the rewrite is undetectable.
func TestReviewAuditLegacyRewriteLaunderedByNextKeyedAppend(t *testing.T) {
	st, db, _ := auditStore(t, testAuditKey, 5)
	// The database writer rewrites every entry as a plain SHA-256 chain,
	// entry 1's detail edited (rechain), scheme 0.
	rechain(t, st, db, 1, nil, store.AuditSchemeSHA256)
	_, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	wantBreak(t, err, 1, ProblemDowngrade) // holds so far
	// serve keeps running and audits its next event: a keyed store appends
	// after a legacy head without complaint.
	if err := st.AppendAudit(t.Context(), auditT0.Add(time.Hour), "alert_raised", "", map[string]string{"id": "a-1"}); err != nil {
		t.Fatalf("append: %v", err)
	}
	rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	if err == nil {
		t.Fatalf("HOLE: the forged legacy log verifies as intact once a keyed entry follows it: %+v (want a downgrade break at entry 1)", rep)
	}
}

// TestReviewAuditAppendWithWrongKey: only serve checks that its key
// authenticates the log's head (CheckAuditHead). Every other command
// (tokens, actions approve, scope, report… — storeOptions) opens the store
// with whatever key HAECHI_AUDIT_KEY or the key file on that host holds,
// and appends entries MACed under it. A CLI run with another key (a stale
// key file on a second host of a shared PostgreSQL, a mistyped
// HAECHI_AUDIT_KEY, or deliberately) breaks the chain for good: VerifyAudit
// stops at that entry ("modified … or the audit key is not the one"), so
// nothing after it — including later tampering — is checked any more.
func TestReviewAuditAppendWithWrongKey(t *testing.T) {
	st, db, dir := auditStore(t, testAuditKey, 3)
	other, err := store.Open(t.Context(), dir, store.Options{AuditKey: bytes.Repeat([]byte{0x17}, store.AuditKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	appendErr := other.AppendAudit(t.Context(), auditT0.Add(time.Hour), "scope_read", "", map[string]string{"by": "cli:mallory"})
	// serve goes on appending, then a database writer edits a later entry
	// without recomputing anything.
	appendN(t, st, 2)
	mustExec(t, db, `UPDATE audit SET detail = '{"n":999}' WHERE seq = 6`)
	_, verr := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	if appendErr == nil {
		t.Errorf("HOLE: a store whose key does not authenticate the head appended entry 4 (want a refusal like serve's CheckAuditHead); verify now says: %v", verr)
	}
	if ab, ok := verr.(*AuditBreak); ok && ab.Seq != 6 {
		t.Errorf("HOLE: the edit of entry 6 is masked by the first break (entry %d, %s): VerifyAudit stops at the first problem", ab.Seq, ab.Problem)
	}
}
