package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

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
	// Kind, when set, keeps alerts whose entity is of this kind.
	Kind event.EntityKind
	// MinSeverity, when non-zero, keeps alerts of at least this severity.
	MinSeverity event.Severity
	// State and Detector, when set, keep alerts in this state and raised
	// by this detector.
	State    event.AlertState
	Detector string
	// Incident, when set, keeps the alerts of the incident of that ID
	// (exactly; resolve an alias with GetIncident first).
	Incident string
	// Older, when set, keeps the alerts after it in the list's order
	// (strictly older, or as old with a smaller ID): the next page of a
	// listing whose last alert it is. Newer, when set, keeps the alerts
	// before it — the Limit of them nearest to it, still returned newest
	// first: the previous page of a listing whose first alert it is.
	// Paging so (keyset) is stable under concurrent inserts: an alert
	// raised meanwhile never shifts a later page. Setting both is an
	// error.
	Older, Newer AlertCursor
	// WithFindings loads each alert's stored findings; otherwise Findings is
	// empty.
	WithFindings bool
}

// AlertCursor is a position in ListAlerts' order: an alert's time and ID.
type AlertCursor struct {
	Time time.Time
	ID   string
}

// CursorOf returns the position of a.
func CursorOf(a *event.Alert) AlertCursor { return AlertCursor{Time: a.Time, ID: a.ID} }

// IsZero reports whether c is unset.
func (c AlertCursor) IsZero() bool { return c.Time.IsZero() && c.ID == "" }

const alertColumns = `id, time, entity_kind, entity_id, detector, severity, score, title,
	explanation, state, window_start, window_end, last_time, finding_count, risk`

// Parameters per row of upsertAlertsSQL (alertColumns and updated_at) and
// of insertFindingsSQL.
var (
	alertParams   = strings.Count(alertColumns, ",") + 2
	findingParams = strings.Count(findingColumns, ",") + 1
)

// upsertAlertsSQL upserts n alerts (of distinct IDs) in one statement.
func upsertAlertsSQL(n int) string {
	return `INSERT INTO alerts (` + alertColumns + `, updated_at) VALUES ` + valueRows(alertParams, n) + `
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
	risk = excluded.risk,
	updated_at = excluded.updated_at`
}

const findingColumns = `alert_id, seq, detector, kind, title, entity_kind, entity_id, time,
	score, severity, explanation, evidence, tags, related, contribution, figures`

// insertFindingsSQL inserts n findings in one statement.
func insertFindingsSQL(n int) string {
	return `INSERT INTO findings (` + findingColumns + `) VALUES ` + valueRows(findingParams, n)
}

// valueRows returns n rows of cols placeholders: "(?, ?), (?, ?)".
func valueRows(cols, n int) string {
	row := "(" + placeholders(cols) + ")"
	return row + strings.Repeat(", "+row, n-1)
}

// placeholders returns n placeholders: "?, ?, ?".
func placeholders(n int) string {
	return "?" + strings.Repeat(", ?", n-1)
}

// saveChunk is the most rows one statement of SaveAlerts writes: 64 × 15
// parameters stays far below both engines' limits (SQLite 32766,
// PostgreSQL 65535), and one statement per
// 64 rows instead of one per row is what makes a batch cheap over a
// network (PostgreSQL) and in SQLite's VM alike.
const saveChunk = 64

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
	order := saveOrder(alerts)
	err = s.writerTx(ctx, func(tx *sql.Tx) error { return s.saveAlerts(ctx, tx, alerts, order) })
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	return nil
}

// saveBatch stores alerts (as SaveAlerts) and scored findings (as
// SaveFindings) in one transaction: the Writer's commit.
func (s *Store) saveBatch(ctx context.Context, alerts []event.Alert, findings []ScoredFinding) error {
	if len(alerts) == 0 {
		return s.SaveFindings(ctx, findings)
	}
	if len(findings) == 0 {
		return s.SaveAlerts(ctx, alerts)
	}
	for i := range alerts {
		if alerts[i].ID == "" {
			return fmt.Errorf("save alerts: alert %d has an empty id", i)
		}
	}
	order := saveOrder(alerts)
	err := s.writerTx(ctx, func(tx *sql.Tx) error {
		if err := s.saveAlerts(ctx, tx, alerts, order); err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		if err := s.saveFindings(ctx, tx, findings); err != nil {
			return fmt.Errorf("findings: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save alerts and findings: %w", err)
	}
	return nil
}

// saveOrder returns the indices of the alerts to write: the last entry of
// each ID, sorted by ID. Every writer then locks alert rows in the same
// order, so two processes saving overlapping batches cannot deadlock.
func saveOrder(alerts []event.Alert) []int {
	if len(alerts) == 1 {
		return []int{0}
	}
	last := make(map[string]int, len(alerts))
	for i := range alerts {
		last[alerts[i].ID] = i
	}
	order := make([]int, 0, len(last))
	for i := range alerts {
		if last[alerts[i].ID] == i {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(alerts[a].ID, alerts[b].ID) })
	return order
}

func (s *Store) saveAlerts(ctx context.Context, tx *sql.Tx, alerts []event.Alert, order []int) error {
	// Statements run under a context without cancellation: with a
	// cancellable one the driver starts a watcher goroutine per statement.
	// Cancellation is still honoured between chunks below, and database/sql
	// rolls the transaction back when ctx ends.
	sctx := context.WithoutCancel(ctx)
	upsert := newChunkStmt(s, tx, upsertAlertsSQL, alertParams)
	defer upsert.close()
	ins := newChunkStmt(s, tx, insertFindingsSQL, findingParams)
	defer ins.close()
	// One alert's findings at a time: "alert_id = ?" is planned as an index
	// lookup whatever the statistics say, where a long IN list may not be.
	del, err := s.oneStmt(ctx, tx, "DELETE FROM findings WHERE alert_id = ?")
	if err != nil {
		return err
	}
	defer del.Close()

	now := time.Now().UnixNano()
	args := make([]any, 0, saveChunk*max(alertParams, findingParams))
	var evBuf []byte
	for start := 0; start < len(order); start += saveChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := order[start:min(start+saveChunk, len(order))]
		// The alert rows (locked in ID order on PostgreSQL), then their
		// findings replaced.
		args = args[:0]
		for _, i := range chunk {
			a := &alerts[i]
			args = append(args,
				a.ID, toNanos(a.Time), string(a.Entity.Kind), a.Entity.ID, a.Detector,
				int64(a.Severity), score(a.Score), a.Title, a.Explanation, string(a.State),
				toNanos(a.WindowStart), toNanos(a.WindowEnd), toNanos(a.LastTime),
				int64(a.FindingCount), score(a.Risk), now)
		}
		if err := upsert.exec(sctx, len(chunk), args); err != nil {
			return fmt.Errorf("upsert alerts: %w", err)
		}
		for _, i := range chunk {
			if _, err := del.ExecContext(sctx, alerts[i].ID); err != nil {
				return fmt.Errorf("alert %q: delete findings: %w", alerts[i].ID, err)
			}
		}
		args = args[:0]
		rows := 0
		for _, i := range chunk {
			a := &alerts[i]
			for seq := range a.Findings {
				f := &a.Findings[seq]
				evBuf, err = appendEvidence(evBuf[:0], f.Evidence)
				if err != nil {
					return fmt.Errorf("alert %q: finding %d evidence: %w", a.ID, seq, err)
				}
				tags, related, err := findingContext(f)
				if err != nil {
					return fmt.Errorf("alert %q: finding %d: %w", a.ID, seq, err)
				}
				figures, err := findingFigures(f)
				if err != nil {
					return fmt.Errorf("alert %q: finding %d: %w", a.ID, seq, err)
				}
				args = append(args,
					a.ID, seq, f.Detector, f.Kind, f.Title, string(f.Entity.Kind), f.Entity.ID,
					toNanos(f.Time), score(f.Score), int64(f.Severity), f.Explanation, string(evBuf),
					tags, related, score(f.Contribution), figures)
				if rows++; rows == saveChunk {
					if err := ins.exec(sctx, rows, args); err != nil {
						return fmt.Errorf("insert findings: %w", err)
					}
					args, rows = args[:0], 0
				}
			}
		}
		if rows > 0 {
			if err := ins.exec(sctx, rows, args); err != nil {
				return fmt.Errorf("insert findings: %w", err)
			}
		}
	}
	return s.keepIncidents(sctx, tx, alerts, order)
}

// score is a score as stored: NaN as NULL (SQLite stores a NaN as NULL by
// itself; PostgreSQL would keep the NaN).
func score(f float64) any {
	if math.IsNaN(f) {
		return nil
	}
	return f
}

// findingFigures returns the JSON of a finding's figures ("[]" when
// none). A figure that is not a finite number is stored as 0.
func findingFigures(f *event.Finding) (string, error) {
	if len(f.Figures) == 0 {
		return "[]", nil
	}
	figs := make([]event.Figure, len(f.Figures))
	for i, g := range f.Figures {
		if math.IsNaN(g.Value) || math.IsInf(g.Value, 0) {
			g.Value = 0
		}
		figs[i] = g
	}
	b, err := json.Marshal(figs)
	if err != nil {
		return "", fmt.Errorf("figures: %w", err)
	}
	return string(b), nil
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

	if !q.Older.IsZero() && !q.Newer.IsZero() {
		return nil, errors.New("list alerts: both an older and a newer cursor")
	}

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
		if s.dialect.postgres {
			where = append(where, entityPrefixCond)
			args = append(args, q.Entity.ID)
		}
	}
	if q.Kind != "" {
		where = append(where, "entity_kind = ?")
		args = append(args, string(q.Kind))
	}
	if q.MinSeverity != 0 {
		where = append(where, "severity >= ?")
		args = append(args, int64(q.MinSeverity))
	}
	if q.State != "" {
		where = append(where, "state = ?")
		args = append(args, string(q.State))
	}
	if q.Detector != "" {
		where = append(where, "detector = ?")
		args = append(args, q.Detector)
	}
	if q.Incident != "" {
		where = append(where, "id IN (SELECT alert_id FROM incident_alerts WHERE incident_id = ?)")
		args = append(args, q.Incident)
	}
	// The cursor's comparison is spelled out rather than as a row value,
	// (time, id) < (?, ?), which both engines accept but not all plan as
	// a range on the (time, id) index.
	order := " ORDER BY time DESC, id DESC"
	switch {
	case !q.Older.IsZero():
		where = append(where, "(time < ? OR (time = ? AND id < ?))")
		n := toNanos(q.Older.Time)
		args = append(args, n, n, q.Older.ID)
	case !q.Newer.IsZero():
		where = append(where, "(time > ? OR (time = ? AND id > ?))")
		n := toNanos(q.Newer.Time)
		args = append(args, n, n, q.Newer.ID)
		order = " ORDER BY time ASC, id ASC"
	}
	var sb strings.Builder
	sb.WriteString("SELECT " + alertColumns + " FROM alerts")
	if len(where) > 0 {
		sb.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	sb.WriteString(order + " LIMIT ?")
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
	if !q.Newer.IsZero() {
		slices.Reverse(alerts)
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

// AlertFacets are the values the stored alerts take, for a filter's
// choices.
type AlertFacets struct {
	Detectors []string
	States    []string
}

// ListAlertFacets returns the distinct detectors and states of the stored
// alerts, each sorted.
func (s *Store) ListAlertFacets(ctx context.Context) (AlertFacets, error) {
	var f AlertFacets
	for _, c := range []struct {
		col string
		dst *[]string
	}{{"detector", &f.Detectors}, {"state", &f.States}} {
		// #nosec G202 -- a constant column name
		rows, err := s.db.QueryContext(ctx, "SELECT DISTINCT "+c.col+" FROM alerts ORDER BY "+c.col)
		if err != nil {
			return AlertFacets{}, fmt.Errorf("alert facets: %w", err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return AlertFacets{}, fmt.Errorf("alert facets: %w", err)
			}
			*c.dst = append(*c.dst, v)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return AlertFacets{}, fmt.Errorf("alert facets: %w", err)
		}
		if err := rows.Close(); err != nil {
			return AlertFacets{}, fmt.Errorf("alert facets: %w", err)
		}
	}
	return f, nil
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
	return loadFindingsFrom(ctx, s.db, alerts)
}

// rowsQueryer is a *sql.DB or *sql.Tx.
type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// txQueryer is a write transaction of the store, whose statements come
// from its cache (queryInTx).
type txQueryer struct {
	s  *Store
	tx *sql.Tx
}

func (q txQueryer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.tx.QueryContext(ctx, query, args...)
}

// loadFindingsFrom is loadFindings reading through q (a transaction sees
// what it wrote).
func loadFindingsFrom(ctx context.Context, q rowsQueryer, alerts []event.Alert) error {
	idx := make(map[string]int, len(alerts))
	args := make([]any, len(alerts))
	for i := range alerts {
		idx[alerts[i].ID] = i
		args[i] = alerts[i].ID
		alerts[i].Findings = []event.Finding{}
	}
	var rows *sql.Rows
	var err error
	if tq, ok := q.(txQueryer); ok {
		ids := make([]string, len(alerts))
		for i := range alerts {
			ids[i] = alerts[i].ID
		}
		rows, err = tq.s.queryInTx(ctx, tq.tx, "SELECT "+findingColumns+" FROM findings WHERE alert_id IN (?) ORDER BY alert_id, seq", nil, ids)
	} else {
		query := "SELECT " + findingColumns + " FROM findings WHERE alert_id IN (?" + // #nosec G202 -- a constant column list and placeholders
			strings.Repeat(", ?", len(alerts)-1) + ") ORDER BY alert_id, seq"
		rows, err = q.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return fmt.Errorf("load findings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			alertID, entityKind, evidence string
			tags, related, figures        string
			seq, tm, sev                  int64
			score, contribution           sql.NullFloat64
			f                             event.Finding
		)
		if err := rows.Scan(&alertID, &seq, &f.Detector, &f.Kind, &f.Title, &entityKind,
			&f.Entity.ID, &tm, &score, &sev, &f.Explanation, &evidence, &tags, &related, &contribution, &figures); err != nil {
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
		f.Contribution = contribution.Float64
		if figures != "" && figures != "[]" {
			if err := json.Unmarshal([]byte(figures), &f.Figures); err != nil {
				return fmt.Errorf("load findings of alert %q: finding %d figures: %w", alertID, seq, err)
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
		score, risk                     sql.NullFloat64
	)
	if err := sc.Scan(&a.ID, &tm, &entityKind, &a.Entity.ID, &a.Detector, &sev, &score,
		&a.Title, &a.Explanation, &state, &ws, &we, &last, &findings, &risk); err != nil {
		return event.Alert{}, err
	}
	a.Time = fromNanos(tm)
	a.Entity.Kind = event.EntityKind(entityKind)
	a.Severity = event.Severity(sev)
	a.Score = score.Float64
	a.Risk = risk.Float64
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

// StoredAlert returns a as the store reads it back once saved — what
// IncidentTx.Alerts, GetAlert and ListAlerts return for it: its stored
// columns alone, times in UTC without a monotonic reading, NaN scores as
// 0, its findings' evidence, tags, related entities and figures as their
// JSON leaves them — without reading it, and true. It returns false when
// a holds something whose stored form it does not reproduce: text that
// is not valid UTF-8 or holds a NUL, an infinite score or a negative
// zero.
func StoredAlert(a *event.Alert) (event.Alert, bool) {
	out := event.Alert{ID: a.ID, Time: fromNanos(toNanos(a.Time)), Entity: a.Entity, Severity: a.Severity,
		Title: a.Title, Explanation: a.Explanation, State: a.State, Detector: a.Detector,
		WindowStart: fromNanos(toNanos(a.WindowStart)), WindowEnd: fromNanos(toNanos(a.WindowEnd)),
		FindingCount: a.FindingCount, LastTime: fromNanos(toNanos(a.LastTime))}
	var ok bool
	if out.Score, ok = storedScore(a.Score); !ok {
		return event.Alert{}, false
	}
	if out.Risk, ok = storedScore(a.Risk); !ok {
		return event.Alert{}, false
	}
	if !plainText(a.ID, string(a.Entity.Kind), a.Entity.ID, a.Title, a.Explanation, string(a.State), a.Detector) {
		return event.Alert{}, false
	}
	out.Findings = make([]event.Finding, len(a.Findings))
	for i := range a.Findings {
		f := &a.Findings[i]
		g := &out.Findings[i]
		*g = event.Finding{Detector: f.Detector, Kind: f.Kind, Title: f.Title, Entity: f.Entity,
			Time: fromNanos(toNanos(f.Time)), Severity: f.Severity, Explanation: f.Explanation}
		if g.Score, ok = storedScore(f.Score); !ok {
			return event.Alert{}, false
		}
		if g.Contribution, ok = storedScore(f.Contribution); !ok {
			return event.Alert{}, false
		}
		if !plainText(f.Detector, f.Kind, f.Title, string(f.Entity.Kind), f.Entity.ID, f.Explanation) ||
			!plainText(f.Evidence...) || !plainText(f.Tags...) {
			return event.Alert{}, false
		}
		g.Evidence = append(make([]string, 0, len(f.Evidence)), f.Evidence...)
		if len(f.Tags) > 0 {
			g.Tags = slices.Clone(f.Tags)
		}
		if len(f.Related) > 0 {
			for _, r := range f.Related {
				if !plainText(string(r.Kind), r.ID) {
					return event.Alert{}, false
				}
			}
			g.Related = slices.Clone(f.Related)
		}
		if len(f.Figures) > 0 {
			g.Figures = make([]event.Figure, len(f.Figures))
			for j, fig := range f.Figures {
				if !plainText(fig.Name) {
					return event.Alert{}, false
				}
				if math.IsNaN(fig.Value) || math.IsInf(fig.Value, 0) { // findingFigures
					fig.Value = 0
				}
				g.Figures[j] = fig
			}
		}
	}
	return out, true
}

// storedScore is f as a score column reads back (score): NaN as 0, and
// false for what it does not reproduce (an infinity, a negative zero).
func storedScore(f float64) (float64, bool) {
	switch {
	case math.IsNaN(f):
		return 0, true
	case math.IsInf(f, 0), f == 0 && math.Signbit(f):
		return 0, false
	}
	return f, true
}

// plainText reports whether every s is stored and read back as it is, by
// the columns and by a JSON round trip: valid UTF-8 without NUL.
func plainText(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}
