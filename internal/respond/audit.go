package respond

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/haechi-sec/haechi/internal/store"
)

const auditPage = 1000

// VerifyAudit walks the audit log in order and checks the hash chain: each
// entry's prev_hash must equal the previous entry's hash (the genesis value
// for the first) and its hash must be the SHA-256 of its own fields. It
// returns the sequence number of the first broken entry and an error
// describing it, or 0 and nil when the chain holds. It cannot see the
// removal of the newest entries: anchor the head hash elsewhere for that.
func VerifyAudit(ctx context.Context, st *store.Store) (firstBroken int64, err error) {
	prev, after := store.AuditGenesis, int64(0)
	for {
		recs, err := st.AuditLog(ctx, after, auditPage)
		if err != nil {
			return 0, err
		}
		for _, r := range recs {
			if r.PrevHash != prev {
				return r.Seq, fmt.Errorf("audit entry %d: prev_hash %.12s… does not match the hash of the entry before it (%.12s…): an entry was changed, inserted or removed", r.Seq, r.PrevHash, prev)
			}
			if want := store.AuditHash(r.Seq, r.Time, r.Kind, r.ActionID, r.Detail, r.PrevHash); want != r.Hash {
				return r.Seq, fmt.Errorf("audit entry %d: contents do not match its hash: the entry was modified", r.Seq)
			}
			prev, after = r.Hash, r.Seq
		}
		if len(recs) < auditPage {
			return 0, nil
		}
	}
}

type exportRecord struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	ActionID string    `json:"action_id,omitempty"`
	Detail   any       `json:"detail"`
	PrevHash string    `json:"prev_hash"`
	Hash     string    `json:"hash"`
}

// ExportAudit writes the audit log to w as NDJSON, one entry per line in
// order, with the stored hashes (a detail that is not valid JSON — a
// tampered row — is exported as a string).
func ExportAudit(ctx context.Context, st *store.Store, w io.Writer) error {
	enc := json.NewEncoder(w)
	after := int64(0)
	for {
		recs, err := st.AuditLog(ctx, after, auditPage)
		if err != nil {
			return err
		}
		for _, r := range recs {
			var detail any = r.Detail
			if !json.Valid(r.Detail) {
				detail = string(r.Detail)
			}
			if err := enc.Encode(exportRecord{r.Seq, r.Time, r.Kind, r.ActionID, detail, r.PrevHash, r.Hash}); err != nil {
				return fmt.Errorf("export audit: %w", err)
			}
			after = r.Seq
		}
		if len(recs) < auditPage {
			return nil
		}
	}
}
