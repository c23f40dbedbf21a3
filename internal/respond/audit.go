package respond

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/haechi-sec/haechi/internal/store"
)

const auditPage = 1000

// Problems an AuditBreak names.
const (
	ProblemLink      = "link"      // prev_hash is not the previous entry's hash
	ProblemModified  = "modified"  // an entry's hash or MAC does not match it
	ProblemDowngrade = "downgrade" // an unkeyed entry after a keyed one
	ProblemNoKey     = "no_key"    // keyed entries, and no audit key to check them
	ProblemTruncated = "truncated" // the log ends before an entry the witness saw
	ProblemRewritten = "rewritten" // an entry differs from what the witness saw
	// ProblemWitnessMissing: keyed entries, and the witness file serve
	// writes whenever it holds the key does not exist.
	ProblemWitnessMissing = "witness_missing"
)

// AuditBreak is the error VerifyAudit returns when the log does not hold:
// the first entry concerned (for a truncation, the first one missing) and
// what is wrong.
type AuditBreak struct {
	Seq     int64
	Problem string // one of the Problem constants
	msg     string
}

func (b *AuditBreak) Error() string { return b.msg }

// VerifyOptions configure VerifyAudit.
type VerifyOptions struct {
	// Key is the audit key. Without it, keyed entries cannot be checked
	// (a ProblemNoKey break) and neither can witness lines.
	Key []byte
	// Witness is the witness file; "" when none is configured.
	Witness string
}

// AuditReport is what VerifyAudit checked.
type AuditReport struct {
	// Entries is the number of entries checked; Keyed of them carry a MAC
	// (store.AuditSchemeHMAC), Legacy a plain SHA-256 (written before the
	// audit key existed; always the first Legacy entries of the log).
	Entries, Keyed, Legacy int64
	// Head is the newest entry's seq (0: empty log).
	Head int64
	// Witness is the witness file read ("" when none was given);
	// WitnessMissing is set when it does not exist. Witnessed is the
	// newest line whose signature verified, if HaveWitness.
	Witness        string
	WitnessMissing bool
	WitnessFile    WitnessFile
	Witnessed      WitnessLine
	HaveWitness    bool
}

// VerifyAudit walks the audit log in order and checks, for each entry,
// that its prev_hash is the previous entry's hash (the genesis value for
// the first) and that its hash is right for its own fields — the plain
// SHA-256 for a legacy entry, the HMAC under o.Key for a keyed one — and
// that no legacy entry follows a keyed one. With a witness file it then
// checks every line of it whose signature verifies under the key derived
// from o.Key: the log must hold the witnessed seq with the witnessed hash,
// so entries removed from the end (truncation) or a log rewritten by
// someone holding the key are found too, back to the last witnessed head.
//
// A log that holds entries but not one keyed entry, checked with a key, is
// taken for a wholesale rewrite without the key (serve writes a keyed
// entry as it starts). It returns what it checked, and on the first problem an *AuditBreak
// naming the entry. Lines that do not verify are counted in the report
// (WitnessFile.Forged, .Unreadable), never trusted. Without a witness the
// removal of the newest entries cannot be detected; without the key,
// neither can a rewrite of keyed entries (VerifyAudit then fails).
func VerifyAudit(ctx context.Context, st *store.Store, o VerifyOptions) (AuditReport, error) {
	rep := AuditReport{Witness: o.Witness}
	witnessed := map[int64][]WitnessLine{}
	if o.Witness != "" && o.Key != nil {
		wf, err := ReadWitness(o.Witness, WitnessKey(o.Key).Public().(ed25519.PublicKey))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			rep.WitnessMissing = true
		case err != nil:
			return rep, err
		}
		rep.WitnessFile = wf
		rep.Witnessed, rep.HaveWitness = wf.Newest()
		for _, l := range wf.Valid {
			if l.Seq > 0 {
				witnessed[l.Seq] = append(witnessed[l.Seq], l)
			}
		}
	}
	prev, after := store.AuditGenesis, int64(0)
	for {
		recs, err := st.AuditLog(ctx, after, auditPage)
		if err != nil {
			return rep, err
		}
		for _, r := range recs {
			if r.PrevHash != prev {
				return rep, &AuditBreak{Seq: r.Seq, Problem: ProblemLink,
					msg: fmt.Sprintf("audit entry %d: prev_hash %.12s… does not match the hash of the entry before it (%.12s…): an entry was changed, inserted or removed", r.Seq, r.PrevHash, prev)}
			}
			switch {
			case r.Scheme == store.AuditSchemeSHA256 && rep.Keyed > 0:
				return rep, &AuditBreak{Seq: r.Seq, Problem: ProblemDowngrade,
					msg: fmt.Sprintf("audit entry %d: a plain SHA-256 entry after MAC-protected ones: it was rewritten without the audit key", r.Seq)}
			case r.Scheme == store.AuditSchemeHMAC && rep.Keyed == 0 && rep.Legacy > 0 && r.Kind != store.AuditKeyedKind:
				// Only serve's audit_keyed entry is chained onto plain
				// SHA-256 entries (store.ErrAuditHead): any other keyed
				// entry there follows a log rewritten without the key.
				return rep, &AuditBreak{Seq: r.Seq, Problem: ProblemDowngrade,
					msg: fmt.Sprintf("audit entry %d is the first MAC-protected entry but not the %s entry that pins the plain SHA-256 entries before it: those entries were rewritten without the audit key", r.Seq, store.AuditKeyedKind)}
			case r.Scheme == store.AuditSchemeHMAC && o.Key == nil:
				return rep, &AuditBreak{Seq: r.Seq, Problem: ProblemNoKey,
					msg: fmt.Sprintf("audit entry %d and the ones after it are MAC-protected, and no audit key was found to check them", r.Seq)}
			}
			if err := store.CheckAuditRecord(o.Key, r); err != nil {
				return rep, &AuditBreak{Seq: r.Seq, Problem: ProblemModified, msg: fmt.Sprintf("audit entry %d: %v", r.Seq, err)}
			}
			for _, l := range witnessed[r.Seq] {
				if l.Head != r.Hash {
					return rep, rewritten(l, r)
				}
			}
			rep.Entries++
			if r.Scheme == store.AuditSchemeHMAC {
				rep.Keyed++
			} else {
				rep.Legacy++
			}
			prev, after, rep.Head = r.Hash, r.Seq, r.Seq
		}
		if len(recs) < auditPage {
			break
		}
	}
	if rep.HaveWitness && rep.Witnessed.Seq > rep.Head {
		return rep, truncated(rep.Witnessed, rep.Head)
	}
	if rep.WitnessMissing && rep.Keyed > 0 {
		return rep, &AuditBreak{Seq: rep.Head, Problem: ProblemWitnessMissing,
			msg: fmt.Sprintf("the witness file %s does not exist although %d entries are MAC-protected and serve writes it whenever it holds the key: it was deleted or moved (or the witness was only now enabled: start serve once), so the removal of the newest entries cannot be ruled out", o.Witness, rep.Keyed)}
	}
	if o.Key != nil && rep.Entries > 0 && rep.Keyed == 0 {
		// Every process holding the key writes keyed entries, and serve
		// writes one as it starts: a log without any was rewritten
		// wholesale by someone without the key.
		return rep, &AuditBreak{Seq: 1, Problem: ProblemDowngrade,
			msg: "no audit entry is MAC-protected although there is an audit key: the log was rewritten without the key, or no haechi process holding the key has written to it yet (start serve once)"}
	}
	return rep, nil
}

type exportRecord struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	ActionID string    `json:"action_id,omitempty"`
	Detail   any       `json:"detail"`
	PrevHash string    `json:"prev_hash"`
	Hash     string    `json:"hash"`
	Scheme   int       `json:"scheme"`
}

// ExportAudit writes the audit log to w as NDJSON, one entry per line in
// order, with the stored hashes and schemes (a detail that is not valid JSON — a
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
			if err := enc.Encode(exportRecord{r.Seq, r.Time, r.Kind, r.ActionID, detail, r.PrevHash, r.Hash, r.Scheme}); err != nil {
				return fmt.Errorf("export audit: %w", err)
			}
			after = r.Seq
		}
		if len(recs) < auditPage {
			return nil
		}
	}
}
