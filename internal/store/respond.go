package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Action states. An action is written in one of planned, pending_approval,
// dry_run or skipped; the dispatcher moves planned and failed actions to
// delivering and from there to delivered, failed (retry later) or dead.
const (
	ActionPlanned         = "planned"
	ActionPendingApproval = "pending_approval"
	ActionDelivering      = "delivering"
	ActionDelivered       = "delivered"
	ActionFailed          = "failed"
	ActionDead            = "dead"
	ActionRejected        = "rejected"
	ActionSkipped         = "skipped"
	ActionDryRun          = "dry_run"
	// ActionCancelled: the alert the action answered was withdrawn
	// (WithdrawAlert) before the action was attempted.
	ActionCancelled = "cancelled"
)

// ErrActionState is returned (wrapped) when an action is not in a state
// that allows the requested change (approving an action that is not
// pending approval, for instance).
var ErrActionState = errors.New("action state does not allow this")

// AuditGenesis is the prev_hash of the first audit entry.
const AuditGenesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Audit entry schemes (AuditRecord.Scheme).
const (
	// AuditSchemeSHA256: Hash is AuditHash, a plain SHA-256 anyone who can
	// write the database can recompute. Entries written before the audit
	// key existed (or by a store opened without one, while the log has no
	// keyed entry yet) carry it.
	AuditSchemeSHA256 = 0
	// AuditSchemeHMAC: Hash is AuditMAC, an HMAC-SHA-256 keyed by the audit
	// key, which lives outside the database.
	AuditSchemeHMAC = 1
)

// AuditKeySize is the length of the audit key in bytes.
const AuditKeySize = 32

// ErrNoAuditKey is returned (wrapped) when an entry must be appended to an
// audit log whose newest entry is keyed (AuditSchemeHMAC) by a store opened
// without Options.AuditKey: appending an unkeyed entry there would be a
// silent downgrade.
var ErrNoAuditKey = errors.New("the audit log is MAC-protected and this process has no audit key")

// ErrAuditHead is returned (wrapped) by an append with an audit key that
// may not be chained onto the log's newest entry: a keyed entry this key
// does not authenticate (another key, or a modified entry), or a plain
// SHA-256 entry that only an AuditKeyedKind entry may follow. Nothing is
// appended; run haechi audit verify.
var ErrAuditHead = errors.New("the audit log's newest entry cannot be vouched for by this audit key")

// AuditKeyedKind is the kind of the entry serve appends as it first holds
// the audit key: the first MAC-protected entry, which pins the plain
// SHA-256 entries before it.
const AuditKeyedKind = "audit_keyed"

// Action is one response action in the outbox. ID is its idempotency key.
type Action struct {
	ID          string          `json:"id"`
	Kind        string          `json:"kind"`
	Target      string          `json:"target"`
	AlertID     string          `json:"alert_id"`
	Playbook    string          `json:"playbook"`
	Receiver    string          `json:"receiver"`
	State       string          `json:"state"`
	Reason      string          `json:"reason,omitempty"`
	Attempts    int             `json:"attempts"`
	NextAttempt time.Time       `json:"next_attempt"`
	CreatedAt   time.Time       `json:"created_at"`  // event time of the alert
	EnqueuedAt  time.Time       `json:"enqueued_at"` // wall clock when first written
	UpdatedAt   time.Time       `json:"updated_at"`
	LastError   string          `json:"last_error,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`

	// Hold says why the guardrails hold the action for a decision, as a
	// code; Reason says it in words. Not part of the JSON form.
	Hold Hold `json:"-"`
}

// Hold is why the guardrails hold an action for a person's decision, as a
// code rules rest on (the wording of Action.Reason may change).
type Hold string

// Holds. An action the guardrails did not hold, or held for a reason no
// rule rests on (a rate limit), has the empty Hold.
const (
	// HoldProtected: the action contains a protected principal, key or
	// network; deciding it needs an admin.
	HoldProtected Hold = "protected"
)

// NeedsAdmin reports whether deciding the action needs an admin: the
// guardrails held it because it contains a protected principal, key or
// network, as opposed to one held by a rate limit.
func (a Action) NeedsAdmin() bool { return a.Hold == HoldProtected }

// AuditRecord is one entry of the audit log.
type AuditRecord struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	Kind     string          `json:"kind"`
	ActionID string          `json:"action_id,omitempty"`
	Detail   json.RawMessage `json:"detail"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
	// Scheme says what Hash is: AuditSchemeSHA256 or AuditSchemeHMAC.
	Scheme int `json:"scheme"`
}

// AuditHash computes the hash an AuditSchemeSHA256 entry carries: the hex
// SHA-256 over its sequence number, time (unix nanoseconds), kind, action
// id, detail and the previous entry's hash, separated by newlines.
func AuditHash(seq int64, t time.Time, kind, actionID string, detail []byte, prevHash string) string {
	h := sha256.New()
	var b []byte
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, toNanos(t), 10)
	b = append(b, '\n')
	b = append(b, kind...)
	b = append(b, '\n')
	b = append(b, actionID...)
	b = append(b, '\n')
	b = append(b, detail...)
	b = append(b, '\n')
	b = append(b, prevHash...)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// auditMACDomain starts every MACed message, so the audit key's MACs can
// never be mistaken for anything else computed with it (the witness's
// signing key is derived from the same key under another label).
const auditMACDomain = "haechi audit entry v1\x00"

// AuditMAC computes the hash an AuditSchemeHMAC entry carries: the hex
// HMAC-SHA-256, keyed by key (the audit key), of a domain label, the
// sequence number and time (unix nanoseconds) as 8-byte big-endian
// integers, and kind, action id, detail and the previous entry's hash each
// preceded by its length as an 8-byte big-endian integer. Unlike
// AuditHash's newline-joined fields the encoding is unambiguous whatever
// the fields hold.
func AuditMAC(key []byte, seq int64, t time.Time, kind, actionID string, detail []byte, prevHash string) string {
	m := hmac.New(sha256.New, key)
	b := make([]byte, 0, len(auditMACDomain)+48+len(kind)+len(actionID)+len(detail)+len(prevHash))
	b = append(b, auditMACDomain...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = binary.BigEndian.AppendUint64(b, uint64(toNanos(t)))
	for _, f := range [][]byte{[]byte(kind), []byte(actionID), detail, []byte(prevHash)} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// CheckAuditRecord reports whether r's Hash is right for its own fields
// under its scheme; key is the audit key (needed for AuditSchemeHMAC
// entries: without it they are ErrNoAuditKey). It does not look at the
// chain (whether PrevHash is the previous entry's Hash).
func CheckAuditRecord(key []byte, r AuditRecord) error {
	var want string
	switch r.Scheme {
	case AuditSchemeSHA256:
		want = AuditHash(r.Seq, r.Time, r.Kind, r.ActionID, r.Detail, r.PrevHash)
	case AuditSchemeHMAC:
		if len(key) == 0 {
			return ErrNoAuditKey
		}
		want = AuditMAC(key, r.Seq, r.Time, r.Kind, r.ActionID, r.Detail, r.PrevHash)
		if !hmac.Equal([]byte(want), []byte(r.Hash)) {
			return errors.New("its MAC does not match its contents: the entry was modified, or the audit key is not the one it was written with")
		}
		return nil
	default:
		return fmt.Errorf("unknown scheme %d", r.Scheme)
	}
	if want != r.Hash {
		return errors.New("its contents do not match its hash: the entry was modified")
	}
	return nil
}

const actionColumns = `id, kind, target, alert_id, playbook, receiver, state, reason, attempts,
	next_attempt, created_at, enqueued_at, updated_at, last_error, payload, hold`

type execQueryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// appendAudit appends one entry inside tx, chaining it to the last one.
// With an audit key (Options.AuditKey) the entry is AuditSchemeHMAC; without
// one it is AuditSchemeSHA256, which is refused (ErrNoAuditKey) once the
// newest entry is keyed: the log only ever moves from unkeyed to keyed.
//
// The chain cannot fork: seq is the primary key, so of two transactions
// that read the same last entry only one can commit the next; on
// PostgreSQL the other would fail with a unique violation of audit_pkey,
// which dialect.retryable treats as retryable, so its transaction runs
// again on top of the winner's entry. withTx takes the audit lock up front,
// so in practice appenders queue instead of retrying.
func (s *Store) appendAudit(ctx context.Context, tx execQueryer, t time.Time, kind, actionID string, detail any) error {
	d, err := marshalDetail(detail)
	if err != nil {
		return fmt.Errorf("audit detail: %w", err)
	}
	head, err := scanAudit(tx.QueryRowContext(ctx, "SELECT "+auditColumns+" FROM audit ORDER BY seq DESC LIMIT 1"))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		head = AuditRecord{Hash: AuditGenesis, Scheme: AuditSchemeSHA256}
	case err != nil:
		return fmt.Errorf("audit: read last entry: %w", err)
	}
	if s.auditKey != nil && head.Seq > 0 {
		// A keyed entry vouches for the chain before it, so it is chained
		// only onto a head this key authenticates, or onto plain SHA-256
		// entries by the one entry that pins them (AuditKeyedKind, which
		// serve writes as it first holds the key): otherwise a wrong key
		// would break the chain for good, and an ordinary entry would
		// launder a log rewritten as plain SHA-256 by whoever can write
		// the database.
		switch head.Scheme {
		case AuditSchemeHMAC:
			if err := CheckAuditRecord(s.auditKey, head); err != nil {
				return fmt.Errorf("audit: append %s: newest entry %d: %w: %w", kind, head.Seq, ErrAuditHead, err)
			}
		case AuditSchemeSHA256:
			if kind != AuditKeyedKind {
				return fmt.Errorf("audit: append %s: %w: newest entry %d is plain SHA-256, and only serve pins such entries (it writes %s as it first holds the audit key)", kind, ErrAuditHead, head.Seq, AuditKeyedKind)
			}
		default:
			return fmt.Errorf("audit: append %s: %w: newest entry %d has unknown scheme %d", kind, ErrAuditHead, head.Seq, head.Scheme)
		}
	}
	seq, prev, scheme := head.Seq, head.Hash, head.Scheme
	seq++
	t = fromNanos(toNanos(t))
	var hash string
	switch {
	case s.auditKey != nil:
		scheme = AuditSchemeHMAC
		hash = AuditMAC(s.auditKey, seq, t, kind, actionID, d, prev)
	case scheme == AuditSchemeSHA256:
		hash = AuditHash(seq, t, kind, actionID, d, prev)
	default:
		return fmt.Errorf("audit: append %s: %w (set audit.key_file or %s to the key serve uses)", kind, ErrNoAuditKey, "HAECHI_AUDIT_KEY")
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO audit (seq, time, kind, action_id, detail, prev_hash, hash, scheme) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		seq, toNanos(t), kind, actionID, string(d), prev, hash, scheme); err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	return nil
}

func marshalDetail(detail any) ([]byte, error) {
	switch d := detail.(type) {
	case nil:
		return []byte("{}"), nil
	case json.RawMessage:
		if len(d) == 0 {
			return []byte("{}"), nil
		}
		if !json.Valid(d) {
			return nil, errors.New("invalid JSON")
		}
		return d, nil
	}
	return json.Marshal(detail)
}

// withTx runs fn in a write transaction that may append to the audit log
// (see writeTx: under writeLock, and run again when the backend reports a
// serialization failure or deadlock, so fn must be safe to repeat). On
// PostgreSQL it takes the audit lock first, before any row lock: audited
// transactions from every process queue in one order, so they neither fork
// the chain nor deadlock each other. Hot paths that never audit (SaveAlerts,
// MergeLedger) use writeTx and run concurrently.
func (s *Store) withTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		if err := lockAudit(ctx, s.dialect, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// auditTx is withTx, named for a transaction that appends to the audit log.
func (s *Store) auditTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.withTx(ctx, fn)
}

// lockAudit makes tx the only appender to the audit log until it ends
// (see dialect.lockAuditSQL); a no-op on SQLite.
func lockAudit(ctx context.Context, d *dialect, tx execQueryer) error {
	if q := d.lockAuditSQL(); q != "" {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("audit: lock: %w", err)
		}
	}
	return nil
}

// InsertActions writes actions that do not exist yet (by ID) and appends a
// "planned" audit entry for each one written, all in one transaction.
// Actions whose ID is already stored are left untouched. It returns the IDs
// written. EnqueuedAt and UpdatedAt are set to now.
func (s *Store) InsertActions(ctx context.Context, actions []Action, now time.Time) (inserted []string, err error) {
	if len(actions) == 0 {
		return nil, nil
	}
	for i := range actions {
		if actions[i].ID == "" || actions[i].Kind == "" || actions[i].State == "" {
			return nil, fmt.Errorf("insert actions: action %d lacks id, kind or state", i)
		}
	}
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		inserted = inserted[:0]
		for i := range actions {
			ok, err := s.insertAction(ctx, tx, &actions[i], now)
			if err != nil {
				return err
			}
			if ok {
				inserted = append(inserted, actions[i].ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("insert actions: %w", err)
	}
	return inserted, nil
}

// insertAction writes a unless its ID is stored, with a "planned" audit
// entry, inside tx (which holds the audit lock); it reports whether a was
// written.
func (s *Store) insertAction(ctx context.Context, tx *sql.Tx, a *Action, now time.Time) (bool, error) {
	payload := string(a.Payload)
	if payload == "" {
		payload = "{}"
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO actions (`+actionColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		a.ID, a.Kind, a.Target, a.AlertID, a.Playbook, a.Receiver, a.State, a.Reason, a.Attempts,
		toNanos(a.NextAttempt), toNanos(a.CreatedAt), toNanos(now), toNanos(now), a.LastError, payload, string(a.Hold))
	if err != nil {
		return false, fmt.Errorf("insert action %q: %w", a.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	detail := map[string]any{
		"state": a.State, "kind": a.Kind, "target": a.Target, "alert_id": a.AlertID,
		"playbook": a.Playbook, "receiver": a.Receiver,
	}
	if a.Reason != "" {
		detail["reason"] = a.Reason
	}
	if err := s.appendAudit(ctx, tx, now, "planned", a.ID, detail); err != nil {
		return false, err
	}
	return true, nil
}

// ClaimDueActions claims up to limit actions that are due at now: planned
// or failed with NextAttempt <= now, or delivering whose lease (a claim by
// a process that died or stalled) has run out. Each claimed action moves
// to delivering with Attempts incremented and NextAttempt = now + lease,
// and an "attempted" audit entry is appended. The returned actions carry
// the new state and attempt number, which FinishAction must present.
func (s *Store) ClaimDueActions(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Action, error) {
	if limit <= 0 {
		limit = 16
	}
	var out []Action
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		// Row-locked (skipping rows another claimer holds), so two
		// workers never claim the same action.
		// #nosec G202 -- a constant column list, placeholders and the dialect's constant suffix
		rows, err := tx.QueryContext(ctx, `SELECT `+actionColumns+` FROM actions
WHERE state IN (?, ?, ?) AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?`+s.dialect.skipLocked(),
			ActionPlanned, ActionFailed, ActionDelivering, toNanos(now), limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			a, err := scanAction(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		next := now.Add(lease)
		for i := range out {
			a := &out[i]
			a.Attempts++
			a.State = ActionDelivering
			a.NextAttempt = fromNanos(toNanos(next))
			a.UpdatedAt = fromNanos(toNanos(now))
			if _, err := tx.ExecContext(ctx,
				"UPDATE actions SET state = ?, attempts = ?, next_attempt = ?, updated_at = ? WHERE id = ?",
				a.State, a.Attempts, toNanos(next), toNanos(now), a.ID); err != nil {
				return err
			}
			if err := s.appendAudit(ctx, tx, now, "attempted", a.ID, map[string]any{
				"attempt": a.Attempts, "receiver": a.Receiver,
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim due actions: %w", err)
	}
	return out, nil
}

// ActionResult is the outcome of one delivery attempt, for FinishAction.
type ActionResult struct {
	ID      string
	Attempt int    // the attempt number ClaimDueActions returned
	State   string // delivered, failed, dead or skipped
	// NextAttempt is when a failed action is due again.
	NextAttempt time.Time
	Error       string
	// Detail is added to the audit entry (status code, duration, …).
	Detail map[string]any
}

// FinishAction records the result of an attempt and appends an audit entry
// of kind r.State, in one transaction. It applies only if the action is
// still delivering under the same attempt number (a claim whose lease ran
// out and was taken over is fenced off); ok reports whether it applied.
func (s *Store) FinishAction(ctx context.Context, r ActionResult, now time.Time) (ok bool, err error) {
	switch r.State {
	case ActionDelivered, ActionFailed, ActionDead, ActionSkipped:
	default:
		return false, fmt.Errorf("finish action %q: invalid state %q", r.ID, r.State)
	}
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		ok = false
		res, err := tx.ExecContext(ctx, `UPDATE actions SET state = ?, next_attempt = ?, last_error = ?, updated_at = ?
WHERE id = ? AND state = ? AND attempts = ?`,
			r.State, toNanos(r.NextAttempt), r.Error, toNanos(now), r.ID, ActionDelivering, r.Attempt)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		ok = true
		detail := map[string]any{"attempt": r.Attempt}
		for k, v := range r.Detail {
			detail[k] = v
		}
		if r.Error != "" {
			detail["error"] = r.Error
		}
		if !r.NextAttempt.IsZero() && r.State == ActionFailed {
			detail["next_attempt"] = r.NextAttempt.UTC().Format(time.RFC3339Nano)
		}
		return s.appendAudit(ctx, tx, now, r.State, r.ID, detail)
	})
	if err != nil {
		return false, fmt.Errorf("finish action %q: %w", r.ID, err)
	}
	return ok, nil
}

// DecideAction approves (→ planned, due now) or rejects (→ rejected) an
// action pending approval, appending an "approved" or "rejected" audit
// entry naming by and note. It returns the updated action; ErrNotFound or
// ErrActionState (wrapped) when the action is missing or not pending.
func (s *Store) DecideAction(ctx context.Context, id string, approve bool, by, note string, now time.Time) (Action, error) {
	var out Action
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		a, err := scanAction(tx.QueryRowContext(ctx, "SELECT "+actionColumns+" FROM actions WHERE id = ?"+s.dialect.forUpdate(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("action %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if a.State != ActionPendingApproval {
			return fmt.Errorf("action %q is %s, not %s: %w", id, a.State, ActionPendingApproval, ErrActionState)
		}
		state, kind := ActionRejected, "rejected"
		if approve {
			state, kind = ActionPlanned, "approved"
		}
		if _, err := tx.ExecContext(ctx, "UPDATE actions SET state = ?, next_attempt = ?, updated_at = ? WHERE id = ?",
			state, toNanos(now), toNanos(now), id); err != nil {
			return err
		}
		a.State, a.NextAttempt, a.UpdatedAt = state, fromNanos(toNanos(now)), fromNanos(toNanos(now))
		out = a
		return s.appendAudit(ctx, tx, now, kind, id, map[string]any{"by": by, "note": note})
	})
	if err != nil {
		return Action{}, fmt.Errorf("decide action: %w", err)
	}
	return out, nil
}

// WithdrawAlert records that alert alertID was withdrawn (a late event
// proved its findings wrong), in one transaction: every action of the alert
// not yet attempted — planned, pending approval, or failed and waiting to
// be retried — moves to cancelled with an audit entry "cancelled" each; an
// "alert_withdrawn" audit entry then carries detail with "cancelled" (the
// ids cancelled) and "not_undone" (the actions already delivered or being
// delivered: their effect stays — a revoked key stays revoked — until
// someone reverses it). It returns the cancelled actions and those not
// undone. Actions dry-run, skipped, rejected or dead are left as they are.
// An action being delivered is not stopped; it finishes as it would have.
func (s *Store) WithdrawAlert(ctx context.Context, alertID string, detail map[string]any, now time.Time) (cancelled, notUndone []Action, err error) {
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		cancelled, notUndone = nil, nil
		// #nosec G202 -- a constant column list and the dialect's constant locking clause; the alert id is a placeholder
		rows, err := tx.QueryContext(ctx, "SELECT "+actionColumns+" FROM actions WHERE alert_id = ? ORDER BY id"+s.dialect.forUpdate(), alertID)
		if err != nil {
			return err
		}
		var all []Action
		for rows.Next() {
			a, err := scanAction(rows)
			if err != nil {
				rows.Close()
				return err
			}
			all = append(all, a)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		reason := "alert " + alertID + " withdrawn"
		ids, kept := []string{}, []string{}
		for _, a := range all {
			switch a.State {
			case ActionPlanned, ActionPendingApproval, ActionFailed:
				if _, err := tx.ExecContext(ctx, "UPDATE actions SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
					ActionCancelled, reason, toNanos(now), a.ID); err != nil {
					return err
				}
				if err := s.appendAudit(ctx, tx, now, ActionCancelled, a.ID, map[string]any{"from": a.State, "alert_id": alertID, "reason": reason}); err != nil {
					return err
				}
				a.State, a.Reason, a.UpdatedAt = ActionCancelled, reason, fromNanos(toNanos(now))
				cancelled = append(cancelled, a)
				ids = append(ids, a.ID)
			case ActionDelivered, ActionDelivering:
				notUndone = append(notUndone, a)
				kept = append(kept, a.ID)
			}
		}
		d := map[string]any{}
		for k, v := range detail {
			d[k] = v
		}
		d["alert"], d["cancelled"], d["not_undone"] = alertID, ids, kept
		return s.appendAudit(ctx, tx, now, "alert_withdrawn", "", d)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("withdraw alert %q: %w", alertID, err)
	}
	return cancelled, notUndone, nil
}

// AppendAudit appends one audit entry (for events that are not action
// state changes, such as a verification run or a configuration change).
func (s *Store) AppendAudit(ctx context.Context, t time.Time, kind, actionID string, detail any) error {
	if err := s.withTx(ctx, func(tx *sql.Tx) error {
		return s.appendAudit(ctx, tx, t, kind, actionID, detail)
	}); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// ActionQuery selects actions for ListActions.
type ActionQuery struct {
	State   string // "" → every state
	AlertID string // "" → every alert
	Kind    string // "" → every kind
	Target  string // "" → every target
	// Since keeps actions whose CreatedAt (event time) is >= Since.
	Since time.Time
	Limit int // ≤0 → DefaultListLimit, capped at MaxListLimit
}

// ListActions returns the actions q selects, newest (by EnqueuedAt) first.
func (s *Store) ListActions(ctx context.Context, q ActionQuery) ([]Action, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var (
		where []string
		args  []any
	)
	if q.State != "" {
		where = append(where, "state = ?")
		args = append(args, q.State)
	}
	if q.AlertID != "" {
		where = append(where, "alert_id = ?")
		args = append(args, q.AlertID)
	}
	if q.Kind != "" {
		where = append(where, "kind = ?")
		args = append(args, q.Kind)
	}
	if q.Target != "" {
		where = append(where, "target = ?")
		args = append(args, q.Target)
	}
	if !q.Since.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, toNanos(q.Since))
	}
	query := "SELECT " + actionColumns + " FROM actions"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ") // #nosec G202 -- constant conditions with placeholders
	}
	query += " ORDER BY enqueued_at DESC, id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	defer rows.Close()
	out := []Action{}
	for rows.Next() {
		a, err := scanAction(rows)
		if err != nil {
			return nil, fmt.Errorf("list actions: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	return out, nil
}

// RecentActions returns, without a limit, the actions created (in event
// time) within span before the newest action's creation time, oldest
// first: what a planner needs to resume its rate limits and escalation
// after a restart. An empty outbox returns none.
func (s *Store) RecentActions(ctx context.Context, span time.Duration) ([]Action, error) {
	var newest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT MAX(created_at) FROM actions").Scan(&newest); err != nil {
		return nil, fmt.Errorf("recent actions: %w", err)
	}
	if !newest.Valid {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+actionColumns+" FROM actions WHERE created_at >= ? ORDER BY created_at, id",
		newest.Int64-int64(span))
	if err != nil {
		return nil, fmt.Errorf("recent actions: %w", err)
	}
	defer rows.Close()
	var out []Action
	for rows.Next() {
		a, err := scanAction(rows)
		if err != nil {
			return nil, fmt.Errorf("recent actions: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recent actions: %w", err)
	}
	return out, nil
}

// GetAction returns one action, or ErrNotFound (wrapped).
func (s *Store) GetAction(ctx context.Context, id string) (Action, error) {
	a, err := scanAction(s.db.QueryRowContext(ctx, "SELECT "+actionColumns+" FROM actions WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Action{}, fmt.Errorf("get action %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Action{}, fmt.Errorf("get action %q: %w", id, err)
	}
	return a, nil
}

// AuditLog returns up to limit audit entries with seq > after, in order.
func (s *Store) AuditLog(ctx context.Context, after int64, limit int) ([]AuditRecord, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	rows, err := s.db.QueryContext(ctx,
		"SELECT "+auditColumns+" FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
		after, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

// AuditHead returns the newest audit entry; in an empty log, an
// AuditRecord with Seq 0 and Hash AuditGenesis.
func (s *Store) AuditHead(ctx context.Context) (AuditRecord, error) {
	r, err := scanAudit(s.db.QueryRowContext(ctx, "SELECT "+auditColumns+" FROM audit ORDER BY seq DESC LIMIT 1"))
	if errors.Is(err, sql.ErrNoRows) {
		return AuditRecord{Hash: AuditGenesis}, nil
	}
	if err != nil {
		return AuditRecord{}, fmt.Errorf("read audit head: %w", err)
	}
	return r, nil
}

// HasAuditKey reports whether the store was opened with an audit key.
func (s *Store) HasAuditKey() bool { return s.auditKey != nil }

// CheckAuditHead checks the newest audit entry against the store's audit
// key: nil when the log is empty, its newest entry is unkeyed, or its MAC
// verifies; ErrNoAuditKey (wrapped) when it is keyed and the store has no
// key; else an error saying the key does not authenticate it (a different
// key than the log was written with, or an altered entry). serve runs it
// at start, so a wrong key is found before entries nobody can verify are
// chained on.
func (s *Store) CheckAuditHead(ctx context.Context) error {
	h, err := s.AuditHead(ctx)
	if err != nil {
		return err
	}
	if h.Seq == 0 || h.Scheme == AuditSchemeSHA256 {
		return nil
	}
	if err := CheckAuditRecord(s.auditKey, h); err != nil {
		return fmt.Errorf("newest audit entry %d: %w", h.Seq, err)
	}
	return nil
}

const auditColumns = "seq, time, kind, action_id, detail, prev_hash, hash, scheme"

func scanAudit(r rowScanner) (AuditRecord, error) {
	var (
		a      AuditRecord
		t      int64
		detail string
		scheme int64
	)
	if err := r.Scan(&a.Seq, &t, &a.Kind, &a.ActionID, &detail, &a.PrevHash, &a.Hash, &scheme); err != nil {
		return AuditRecord{}, err
	}
	a.Time = fromNanos(t)
	a.Detail = json.RawMessage(detail)
	a.Scheme = int(scheme)
	return a, nil
}

type rowScanner interface {
	Scan(dest ...any) error
}

func scanAction(r rowScanner) (Action, error) {
	var (
		a                                Action
		attempts                         int64
		next, created, enqueued, updated int64
		payload, hold                    string
	)
	if err := r.Scan(&a.ID, &a.Kind, &a.Target, &a.AlertID, &a.Playbook, &a.Receiver, &a.State, &a.Reason,
		&attempts, &next, &created, &enqueued, &updated, &a.LastError, &payload, &hold); err != nil {
		return Action{}, err
	}
	a.Hold = Hold(hold)
	a.Attempts = int(attempts)
	a.NextAttempt, a.CreatedAt, a.EnqueuedAt, a.UpdatedAt = fromNanos(next), fromNanos(created), fromNanos(enqueued), fromNanos(updated)
	a.Payload = json.RawMessage(payload)
	return a, nil
}
