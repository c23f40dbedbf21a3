package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// DrillRun is one drill run's verdict as the store keeps it (package drill's
// Result, which the store does not import).
type DrillRun struct {
	Run         string        `json:"run"`
	Drill       string        `json:"drill"`
	Kind        string        `json:"kind"`
	Started     time.Time     `json:"started"`
	Status      string        `json:"status"`
	Reason      string        `json:"reason,omitempty"`
	TimeToAlert time.Duration `json:"time_to_alert_ns,omitempty"`
	Alerts      []string      `json:"alerts,omitempty"`
	Entity      string        `json:"entity,omitempty"`
	// Detail is what the run produced, as JSON (serve: its alerts with
	// their findings, its other findings, the actions planned for it):
	// kept with the run and in no alert or finding list. Only GetDrillRun
	// reads it back.
	Detail json.RawMessage `json:"detail,omitempty"`
}

// PutDrillRun stores a run's verdict; a run stored before is replaced.
// A run without an id (one that could not run) gets "<drill>-<started>".
func (s *Store) PutDrillRun(ctx context.Context, r DrillRun) error {
	if r.Run == "" {
		r.Run = fmt.Sprintf("%s-%d", r.Drill, toNanos(r.Started))
	}
	alerts, err := json.Marshal(r.Alerts)
	if err != nil {
		return fmt.Errorf("drill run: %w", err)
	}
	if r.Alerts == nil {
		alerts = []byte("[]")
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO drill_runs (run, drill, kind, started, status, reason, time_to_alert_ns, alerts, entity, detail)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run) DO UPDATE SET status = excluded.status, reason = excluded.reason,
	time_to_alert_ns = excluded.time_to_alert_ns, alerts = excluded.alerts, detail = excluded.detail`,
		r.Run, r.Drill, r.Kind, toNanos(r.Started), r.Status, r.Reason, int64(r.TimeToAlert), string(alerts), r.Entity, string(r.Detail)); err != nil {
		return fmt.Errorf("drill run %s: %w", r.Run, err)
	}
	return nil
}

// ListDrillRuns returns the latest runs, newest first: of drill only when
// drill is not "", at most limit (≤0 → DefaultListLimit, capped at
// MaxListLimit).
func (s *Store) ListDrillRuns(ctx context.Context, drill string, limit int) ([]DrillRun, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	q := "SELECT run, drill, kind, started, status, reason, time_to_alert_ns, alerts, entity FROM drill_runs"
	var args []any
	if drill != "" {
		q += " WHERE drill = ?"
		args = append(args, drill)
	}
	rows, err := s.db.QueryContext(ctx, q+" ORDER BY started DESC, run DESC LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list drill runs: %w", err)
	}
	defer rows.Close()
	out := []DrillRun{}
	for rows.Next() {
		r, err := scanDrillRun(rows, nil)
		if err != nil {
			return nil, fmt.Errorf("list drill runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// scanDrillRun reads a row of the columns ListDrillRuns selects, then
// detail into *detail when detail is not nil.
func scanDrillRun(rows interface{ Scan(...any) error }, detail *string) (DrillRun, error) {
	var r DrillRun
	var started, tta int64
	var alerts string
	dest := []any{&r.Run, &r.Drill, &r.Kind, &started, &r.Status, &r.Reason, &tta, &alerts, &r.Entity}
	if detail != nil {
		dest = append(dest, detail)
	}
	if err := rows.Scan(dest...); err != nil {
		return r, err
	}
	r.Started, r.TimeToAlert = fromNanos(started), time.Duration(tta)
	if err := json.Unmarshal([]byte(alerts), &r.Alerts); err != nil {
		return r, fmt.Errorf("drill run %s: alerts: %w", r.Run, err)
	}
	return r, nil
}

// GetDrillRun returns run with its Detail, wrapping ErrNotFound when there
// is none.
func (s *Store) GetDrillRun(ctx context.Context, run string) (DrillRun, error) {
	var detail string
	r, err := scanDrillRun(s.db.QueryRowContext(ctx, `SELECT run, drill, kind, started, status, reason, time_to_alert_ns, alerts, entity, detail
FROM drill_runs WHERE run = ?`, run), &detail)
	if errors.Is(err, sql.ErrNoRows) {
		return DrillRun{}, fmt.Errorf("get drill run %q: %w", run, ErrNotFound)
	}
	if err != nil {
		return DrillRun{}, fmt.Errorf("get drill run %q: %w", run, err)
	}
	if detail != "" {
		r.Detail = json.RawMessage(detail)
	}
	return r, nil
}

// InterruptDrillRuns marks every run stored as running as interrupted with
// reason (serve at start: those runs' process stopped before deciding
// them) and returns how many it marked.
func (s *Store) InterruptDrillRuns(ctx context.Context, reason string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE drill_runs SET status = 'interrupted', reason = ? WHERE status = 'running'`, reason)
	if err != nil {
		return 0, fmt.Errorf("interrupt drill runs: %w", err)
	}
	return res.RowsAffected()
}
