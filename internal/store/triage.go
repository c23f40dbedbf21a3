package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// Verdicts an analyst gives an alert.
const (
	VerdictTruePositive  = "true_positive"
	VerdictFalsePositive = "false_positive"
	VerdictBenign        = "benign" // real, but allowed (a sanctioned test, a known job)
)

// ValidVerdict reports whether v is a known verdict.
func ValidVerdict(v string) bool {
	switch v {
	case VerdictTruePositive, VerdictFalsePositive, VerdictBenign:
		return true
	}
	return false
}

// Feedback is an analyst's verdict on an alert.
type Feedback struct {
	AlertID string    `json:"alert_id"`
	Verdict string    `json:"verdict"`
	Note    string    `json:"note,omitempty"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	// SuppressFor, with a false_positive verdict, suppresses the alert's
	// entity's findings of each detector and kind the alert holds for that
	// long (0 → none): they then add no risk (docs/alerts.md). The
	// suppressions are stored (Suppressions, ListSuppressions).
	SuppressFor time.Duration `json:"-"`
	// Suppressions are the ones the verdict created (filled in by
	// AddFeedback).
	Suppressions []Suppression `json:"suppressions,omitempty"`
}

// AddFeedback records a verdict on an existing alert, and an audit entry,
// in one transaction; a false_positive verdict with SuppressFor also
// creates, in the same transaction, one suppression per detector and kind
// of the alert's findings, scoped to its entity (each audited). An unknown
// alert is ErrNotFound (wrapped). It returns f with Suppressions filled in.
func (s *Store) AddFeedback(ctx context.Context, f Feedback) (Feedback, error) {
	if !ValidVerdict(f.Verdict) {
		return f, fmt.Errorf("feedback: verdict %q: want %s, %s or %s", f.Verdict, VerdictTruePositive, VerdictFalsePositive, VerdictBenign)
	}
	f.Suppressions = nil
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		var kind, id string
		if err := tx.QueryRowContext(ctx, "SELECT entity_kind, entity_id FROM alerts WHERE id = ?", f.AlertID).Scan(&kind, &id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("feedback: alert %q: %w", f.AlertID, ErrNotFound)
			}
			return fmt.Errorf("feedback: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO feedback (alert_id, verdict, note, by, at) VALUES (?, ?, ?, ?, ?)",
			f.AlertID, f.Verdict, f.Note, f.By, toNanos(f.At)); err != nil {
			return fmt.Errorf("feedback: %w", err)
		}
		if err := s.appendAudit(ctx, tx, f.At, "feedback", "", f); err != nil {
			return err
		}
		if f.Verdict != VerdictFalsePositive || f.SuppressFor <= 0 {
			return nil
		}
		rows, err := tx.QueryContext(ctx, "SELECT DISTINCT detector, kind FROM findings WHERE alert_id = ? ORDER BY detector, kind", f.AlertID)
		if err != nil {
			return fmt.Errorf("feedback: findings: %w", err)
		}
		var pairs [][2]string
		for rows.Next() {
			var p [2]string
			if err := rows.Scan(&p[0], &p[1]); err != nil {
				rows.Close()
				return fmt.Errorf("feedback: findings: %w", err)
			}
			pairs = append(pairs, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("feedback: findings: %w", err)
		}
		reason := "false positive: " + f.AlertID
		if f.Note != "" {
			reason += ": " + f.Note
		}
		for _, p := range pairs {
			sp := Suppression{Entity: event.EntityKey{Kind: event.EntityKind(kind), ID: id}, Detector: p[0], Kind: p[1],
				Until: f.At.Add(f.SuppressFor), Reason: reason, By: f.By, Created: f.At, Alert: f.AlertID}
			if err := s.insertSuppression(ctx, tx, &sp); err != nil {
				return err
			}
			f.Suppressions = append(f.Suppressions, sp)
		}
		return nil
	})
	return f, err
}

// ListFeedback returns the verdicts on an alert, oldest first.
func (s *Store) ListFeedback(ctx context.Context, alertID string) ([]Feedback, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT alert_id, verdict, note, by, at FROM feedback WHERE alert_id = ? ORDER BY at, rowid", alertID)
	if err != nil {
		return nil, fmt.Errorf("list feedback: %w", err)
	}
	defer rows.Close()
	out := []Feedback{}
	for rows.Next() {
		var f Feedback
		var at int64
		if err := rows.Scan(&f.AlertID, &f.Verdict, &f.Note, &f.By, &at); err != nil {
			return nil, fmt.Errorf("list feedback: %w", err)
		}
		f.At = fromNanos(at)
		out = append(out, f)
	}
	return out, rows.Err()
}

// Suppression covers one entity until Until. Without Kind it stops
// response (not detection) for the entity's alerts — of one detector, or
// of every detector when Detector is "". With Kind (an analyst's
// false-positive verdict creates those) it covers the entity's findings of
// that detector and kind, which then add no risk; response to an alert
// raised on other evidence goes ahead.
type Suppression struct {
	ID       string          `json:"id"`
	Entity   event.EntityKey `json:"entity"`
	Detector string          `json:"detector,omitempty"`
	Kind     string          `json:"kind,omitempty"`
	Alert    string          `json:"alert,omitempty"` // the alert whose verdict created it
	Until    time.Time       `json:"until"`
	Reason   string          `json:"reason"`
	By       string          `json:"by"`
	Created  time.Time       `json:"created"`
	Removed  time.Time       `json:"removed,omitzero"`
}

// Matches reports whether s stops response to alert a at time now: a
// suppression of the entity (or of one detector's alerts about it).
// Suppressions of a finding kind never do — their findings add no risk,
// so an alert raised anyway stands on other evidence.
func (s Suppression) Matches(a event.Alert, now time.Time) bool {
	return s.Kind == "" && s.Removed.IsZero() && now.Before(s.Until) && s.Entity == a.Entity && (s.Detector == "" || s.Detector == a.Detector)
}

// MatchesFinding reports whether s covers finding f at time now: its
// entity, and its detector and kind when s names them.
func (s Suppression) MatchesFinding(f *event.Finding, now time.Time) bool {
	return s.Removed.IsZero() && now.Before(s.Until) && s.Entity == f.Entity &&
		(s.Detector == "" || s.Detector == f.Detector) && (s.Kind == "" || s.Kind == f.Kind)
}

// AddSuppression stores a suppression (a fresh ID is assigned) and an
// audit entry in one transaction, and returns it.
func (s *Store) AddSuppression(ctx context.Context, sp Suppression) (Suppression, error) {
	if sp.Entity.Kind == "" || sp.Entity.ID == "" {
		return Suppression{}, errors.New("suppression: entity kind and id are required")
	}
	if !sp.Until.After(sp.Created) {
		return Suppression{}, fmt.Errorf("suppression: until %s is not after now", sp.Until.Format(time.RFC3339))
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error { return s.insertSuppression(ctx, tx, &sp) })
	if err != nil {
		return Suppression{}, err
	}
	return sp, nil
}

// insertSuppression assigns sp a fresh ID, stores it and audits it.
func (s *Store) insertSuppression(ctx context.Context, tx *sql.Tx, sp *Suppression) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	sp.ID = "sup-" + hex.EncodeToString(b[:])
	if _, err := tx.ExecContext(ctx, `INSERT INTO suppressions (id, entity_kind, entity_id, detector, kind, alert, until, reason, by, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, sp.ID, string(sp.Entity.Kind), sp.Entity.ID, sp.Detector, sp.Kind, sp.Alert,
		toNanos(sp.Until), sp.Reason, sp.By, toNanos(sp.Created)); err != nil {
		return fmt.Errorf("suppression: %w", err)
	}
	return s.appendAudit(ctx, tx, sp.Created, "suppression", "", sp)
}

// RemoveSuppression lifts a suppression (kept, marked removed) with an
// audit entry. An unknown or already lifted one is ErrNotFound (wrapped).
func (s *Store) RemoveSuppression(ctx context.Context, id, by string, now time.Time) error {
	return s.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE suppressions SET removed = ? WHERE id = ? AND removed = 0", toNanos(now), id)
		if err != nil {
			return fmt.Errorf("remove suppression: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("remove suppression %q: %w", id, ErrNotFound)
		}
		return s.appendAudit(ctx, tx, now, "suppression_removed", "", map[string]string{"id": id, "by": by})
	})
}

// ListSuppressions returns the suppressions in force at now (all of them,
// lifted and expired included, when all is set), newest first.
func (s *Store) ListSuppressions(ctx context.Context, now time.Time, all bool) ([]Suppression, error) {
	q := "SELECT id, entity_kind, entity_id, detector, kind, alert, until, reason, by, created, removed FROM suppressions"
	var args []any
	if !all {
		q += " WHERE removed = 0 AND until > ?"
		args = append(args, toNanos(now))
	}
	rows, err := s.db.QueryContext(ctx, q+" ORDER BY created DESC, id", args...)
	if err != nil {
		return nil, fmt.Errorf("list suppressions: %w", err)
	}
	defer rows.Close()
	out := []Suppression{}
	for rows.Next() {
		var sp Suppression
		var kind string
		var until, created, removed int64
		if err := rows.Scan(&sp.ID, &kind, &sp.Entity.ID, &sp.Detector, &sp.Kind, &sp.Alert, &until, &sp.Reason, &sp.By, &created, &removed); err != nil {
			return nil, fmt.Errorf("list suppressions: %w", err)
		}
		sp.Entity.Kind = event.EntityKind(kind)
		sp.Until, sp.Created = fromNanos(until), fromNanos(created)
		if removed != 0 {
			sp.Removed = fromNanos(removed)
		}
		out = append(out, sp)
	}
	return out, rows.Err()
}
