package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// Listing limits for AlertQuery.Limit.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// AlertQuery selects alerts for ListAlerts. The zero value lists the
// DefaultListLimit newest alerts without their findings.
type AlertQuery struct {
	// Limit caps the number of alerts returned: ≤0 means DefaultListLimit,
	// and it is capped at MaxListLimit.
	Limit int
	// Since, when non-zero, keeps alerts with Time >= Since.
	Since time.Time
	// Before, when non-zero, keeps alerts with Time < Before.
	Before time.Time
	// Entity, when non-zero, keeps alerts whose Entity equals it exactly
	// (both kind and ID).
	Entity event.EntityKey
	// WithFindings loads each alert's stored findings; otherwise Findings is
	// empty.
	WithFindings bool
}

const alertColumns = `id, time, entity_kind, entity_id, detector, severity, score, title,
	explanation, state, window_start, window_end, last_time, finding_count`

const upsertAlertSQL = `INSERT INTO alerts (` + alertColumns + `, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	time = excluded.time,
	entity_kind = excluded.entity_kind,
	entity_id = excluded.entity_id,
	detector = excluded.detector,
	severity = excluded.severity,
	score = excluded.score,
	title = excluded.title,
	explanation = excluded.explanation,
	state = excluded.state,
	window_start = excluded.window_start,
	window_end = excluded.window_end,
	last_time = excluded.last_time,
	finding_count = excluded.finding_count,
	updated_at = excluded.updated_at`

const findingColumns = `alert_id, seq, detector, kind, title, entity_kind, entity_id, time,
	score, severity, explanation, evidence, tags, related`

const insertFindingSQL = `INSERT INTO findings (` + findingColumns + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// SaveAlerts upserts alerts in one transaction, replacing each alert's
// stored findings with a.Findings. Later entries win over earlier ones with
// the same ID. An empty batch is a no-op.
func (s *Store) SaveAlerts(ctx context.Context, alerts []event.Alert) (err error) {
	if len(alerts) == 0 {
		return nil
	}
	for i := range alerts {
		if alerts[i].ID == "" {
			return fmt.Errorf("save alerts: alert %d has an empty id", i)
		}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save alerts: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	upsert, err := tx.PrepareContext(ctx, upsertAlertSQL)
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	defer upsert.Close()
	del, err := tx.PrepareContext(ctx, "DELETE FROM findings WHERE alert_id = ?")
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	defer del.Close()
	ins, err := tx.PrepareContext(ctx, insertFindingSQL)
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	defer ins.Close()

	// Statements run under a context without cancellation: with a
	// cancellable one the driver starts a watcher goroutine per statement.
	// Cancellation is still honoured between alerts below, and database/sql
	// rolls the transaction back when ctx ends.
	sctx := context.WithoutCancel(ctx)
	now := time.Now().UnixNano()
	var evBuf []byte
	for i := range alerts {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("save alerts: %w", err)
		}
		a := &alerts[i]
		if _, err := upsert.ExecContext(sctx,
			a.ID, toNanos(a.Time), string(a.Entity.Kind), a.Entity.ID, a.Detector,
			int64(a.Severity), a.Score, a.Title, a.Explanation, string(a.State),
			toNanos(a.WindowStart), toNanos(a.WindowEnd), toNanos(a.LastTime),
			int64(a.FindingCount), now,
		); err != nil {
			return fmt.Errorf("save alert %q: %w", a.ID, err)
		}
		if _, err := del.ExecContext(sctx, a.ID); err != nil {
			return fmt.Errorf("save alert %q: delete findings: %w", a.ID, err)
		}
		for seq := range a.Findings {
			f := &a.Findings[seq]
			evBuf, err = appendEvidence(evBuf[:0], f.Evidence)
			if err != nil {
				return fmt.Errorf("save alert %q: finding %d evidence: %w", a.ID, seq, err)
			}
			tags, related, err := findingContext(f)
			if err != nil {
				return fmt.Errorf("save alert %q: finding %d: %w", a.ID, seq, err)
			}
			if _, err := ins.ExecContext(sctx,
				a.ID, seq, f.Detector, f.Kind, f.Title, string(f.Entity.Kind), f.Entity.ID,
				toNanos(f.Time), f.Score, int64(f.Severity), f.Explanation, string(evBuf),
				tags, related,
			); err != nil {
				return fmt.Errorf("save alert %q: finding %d: %w", a.ID, seq, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save alerts: commit: %w", err)
	}
	return nil
}

// findingContext returns the JSON of a finding's tags and related
// entities ("[]" when none).
func findingContext(f *event.Finding) (tags, related string, err error) {
	tags, related = "[]", "[]"
	if len(f.Tags) > 0 {
		b, err := json.Marshal(f.Tags)
		if err != nil {
			return "", "", fmt.Errorf("tags: %w", err)
		}
		tags = string(b)
	}
	if len(f.Related) > 0 {
		b, err := json.Marshal(f.Related)
		if err != nil {
			return "", "", fmt.Errorf("related: %w", err)
		}
		related = string(b)
	}
	return tags, related, nil
}

func appendEvidence(dst []byte, ev []string) ([]byte, error) {
	if len(ev) == 0 {
		return append(dst, "[]"...), nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// ListAlerts returns the alerts q selects, newest first (by time, then ID,
// both descending).
func (s *Store) ListAlerts(ctx context.Context, q AlertQuery) ([]event.Alert, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)

	var (
		where []string
		args  []any
	)
	if !q.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, q.Since.UTC().UnixNano())
	}
	if !q.Before.IsZero() {
		where = append(where, "time < ?")
		args = append(args, q.Before.UTC().UnixNano())
	}
	if !q.Entity.IsZero() {
		where = append(where, "entity_kind = ? AND entity_id = ?")
		args = append(args, string(q.Entity.Kind), q.Entity.ID)
	}
	var sb strings.Builder
	sb.WriteString("SELECT " + alertColumns + " FROM alerts")
	if len(where) > 0 {
		sb.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	sb.WriteString(" ORDER BY time DESC, id DESC LIMIT ?")
	args = append(args, limit)

	rows, err := s.db.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	alerts := make([]event.Alert, 0, min(limit, 64))
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		alerts = append(alerts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	if q.WithFindings && len(alerts) > 0 {
		if err := s.loadFindings(ctx, alerts); err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
	}
	return alerts, nil
}

// GetAlert returns the alert with id, with its findings. It returns an error
// wrapping ErrNotFound when there is none.
func (s *Store) GetAlert(ctx context.Context, id string) (event.Alert, error) {
	row := s.db.QueryRowContext(ctx, "SELECT "+alertColumns+" FROM alerts WHERE id = ?", id)
	a, err := scanAlert(row)
	if errors.Is(err, sql.ErrNoRows) {
		return event.Alert{}, fmt.Errorf("get alert %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return event.Alert{}, fmt.Errorf("get alert %q: %w", id, err)
	}
	alerts := []event.Alert{a}
	if err := s.loadFindings(ctx, alerts); err != nil {
		return event.Alert{}, fmt.Errorf("get alert %q: %w", id, err)
	}
	return alerts[0], nil
}

// CountAlerts returns the number of stored alerts.
func (s *Store) CountAlerts(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM alerts").Scan(&n); err != nil {
		return 0, fmt.Errorf("count alerts: %w", err)
	}
	return n, nil
}

// loadFindings fills in the Findings of alerts (whose IDs are distinct).
func (s *Store) loadFindings(ctx context.Context, alerts []event.Alert) error {
	idx := make(map[string]int, len(alerts))
	args := make([]any, len(alerts))
	for i := range alerts {
		idx[alerts[i].ID] = i
		args[i] = alerts[i].ID
		alerts[i].Findings = []event.Finding{}
	}
	query := "SELECT " + findingColumns + " FROM findings WHERE alert_id IN (?" +
		strings.Repeat(", ?", len(alerts)-1) + ") ORDER BY alert_id, seq"
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("load findings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			alertID, entityKind, evidence string
			tags, related                 string
			seq, tm, sev                  int64
			score                         sql.NullFloat64
			f                             event.Finding
		)
		if err := rows.Scan(&alertID, &seq, &f.Detector, &f.Kind, &f.Title, &entityKind,
			&f.Entity.ID, &tm, &score, &sev, &f.Explanation, &evidence, &tags, &related); err != nil {
			return fmt.Errorf("load findings: %w", err)
		}
		f.Entity.Kind = event.EntityKind(entityKind)
		f.Time = fromNanos(tm)
		f.Score = score.Float64
		f.Severity = event.Severity(sev)
		f.Evidence = []string{}
		if evidence != "" && evidence != "[]" {
			if err := json.Unmarshal([]byte(evidence), &f.Evidence); err != nil {
				return fmt.Errorf("load findings of alert %q: finding %d evidence: %w", alertID, seq, err)
			}
			if f.Evidence == nil { // "null"
				f.Evidence = []string{}
			}
		}
		if tags != "" && tags != "[]" {
			if err := json.Unmarshal([]byte(tags), &f.Tags); err != nil {
				return fmt.Errorf("load findings of alert %q: finding %d tags: %w", alertID, seq, err)
			}
		}
		if related != "" && related != "[]" {
			if err := json.Unmarshal([]byte(related), &f.Related); err != nil {
				return fmt.Errorf("load findings of alert %q: finding %d related: %w", alertID, seq, err)
			}
		}
		i, ok := idx[alertID]
		if !ok {
			continue
		}
		alerts[i].Findings = append(alerts[i].Findings, f)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load findings: %w", err)
	}
	return nil
}

type scanner interface {
	Scan(dest ...any) error
}

func scanAlert(sc scanner) (event.Alert, error) {
	var (
		a                               event.Alert
		entityKind, state               string
		tm, sev, ws, we, last, findings int64
		score                           sql.NullFloat64
	)
	if err := sc.Scan(&a.ID, &tm, &entityKind, &a.Entity.ID, &a.Detector, &sev, &score,
		&a.Title, &a.Explanation, &state, &ws, &we, &last, &findings); err != nil {
		return event.Alert{}, err
	}
	a.Time = fromNanos(tm)
	a.Entity.Kind = event.EntityKind(entityKind)
	a.Severity = event.Severity(sev)
	a.Score = score.Float64
	a.State = event.AlertState(state)
	a.WindowStart = fromNanos(ws)
	a.WindowEnd = fromNanos(we)
	a.LastTime = fromNanos(last)
	a.FindingCount = int(findings)
	a.Findings = []event.Finding{}
	return a, nil
}

// toNanos maps t to UTC unix nanoseconds, the zero time to 0.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is the inverse of toNanos, returning UTC times.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
