package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// ScoredFinding is a finding as the alert stage scored it, as the store
// keeps it in its risk index (every finding, alerting or not). Its JSON
// form is the finding's (event.Finding, with contribution) plus these
// fields; `haechi findings -o json`, `replay --findings` and
// GET /v1/findings print it (docs/alerts.md).
type ScoredFinding struct {
	// ID is FindingID of the finding.
	ID string `json:"id"`
	event.Finding
	// Risk is the entity's risk right after the finding and Threshold the
	// risk at which the stage alerted.
	Risk      float64 `json:"risk"`
	Threshold float64 `json:"threshold"`
	// Alert is the id of the alert the finding raised or joined; "" when
	// it stayed below the threshold.
	Alert string `json:"alert,omitempty"`
	// Suppressed: an analyst's suppression covered it (no risk added).
	Suppressed bool `json:"suppressed,omitempty"`
}

// FindingID is the deterministic id of a finding (event.Finding.ID: a
// hash of its detector, kind, entity, event time and evidence — the id a
// withdrawal names), so a replay of the same input stores each finding
// once.
func FindingID(f *event.Finding) string { return f.ID().String() }

const findingLogColumns = `id, time, entity_kind, entity_id, detector, kind, title, score, severity,
	explanation, evidence, tags, related, figures, contribution, risk, threshold, alert_id, suppressed, line, privileged`

var findingLogParams = strings.Count(findingLogColumns, ",") + 1

// upsertFindingsSQL upserts n findings (of distinct IDs) in one statement:
// a finding stored again (a replay, a late finding reopening an alert)
// takes the latest scoring, and a row whose scoring did not change is not
// rewritten. The conflict target is (time, id) — migration 17: a
// finding's time is part of its id's hash, so the pair is as unique as the
// id — and the columns compared are NOT NULL, so <> is exact.
func upsertFindingsSQL(n int) string {
	return `INSERT INTO finding_log (` + findingLogColumns + `) VALUES ` + valueRows(findingLogParams, n) + `
ON CONFLICT (time, id) DO UPDATE SET
	contribution = excluded.contribution,
	risk = excluded.risk,
	threshold = excluded.threshold,
	alert_id = excluded.alert_id,
	suppressed = excluded.suppressed,
	explanation = excluded.explanation
WHERE finding_log.contribution <> excluded.contribution OR finding_log.risk <> excluded.risk
	OR finding_log.threshold <> excluded.threshold OR finding_log.alert_id <> excluded.alert_id
	OR finding_log.suppressed <> excluded.suppressed OR finding_log.explanation <> excluded.explanation`
}

// findingKey is how finding_log stores a finding's id: its integer with
// the top bit flipped, so the keys order as signed integers as the ids do
// as unsigned ones (and as their "fd-%016x" texts), and the newest-first
// listing and its cursors keep their order.
func findingKey(id event.FindingID) int64 { return int64(uint64(id) ^ 1<<63) }

// findingIDOfKey inverts findingKey.
func findingIDOfKey(k int64) event.FindingID { return event.FindingID(uint64(k) ^ 1<<63) }

// scoredFindingID is the id sf is stored under: sf.ID parsed, or
// FindingID when sf.ID is "".
func scoredFindingID(sf *ScoredFinding) (event.FindingID, error) {
	if sf.ID == "" {
		return sf.Finding.ID(), nil
	}
	var id event.FindingID
	if err := id.UnmarshalText([]byte(sf.ID)); err != nil || id == 0 {
		return 0, fmt.Errorf("finding id %q: not a finding id (fd- and 16 hex digits)", sf.ID)
	}
	return id, nil
}

// SaveFindings upserts scored findings in one transaction (by ID: a later
// entry wins over an earlier one with the same ID; an empty ID is set to
// FindingID, and a set one must be a FindingID, as FindingID renders it).
// An empty batch is a no-op.
func (s *Store) SaveFindings(ctx context.Context, fs []ScoredFinding) error {
	if len(fs) == 0 {
		return nil
	}
	err := s.writerTx(ctx, func(tx *sql.Tx) error { return s.saveFindings(ctx, tx, fs) })
	if err != nil {
		return fmt.Errorf("save findings: %w", err)
	}
	return nil
}

// saveFindings writes fs in tx, in key order (so concurrent writers lock
// rows in the same order), 64 rows a statement.
func (s *Store) saveFindings(ctx context.Context, tx *sql.Tx, fs []ScoredFinding) error {
	keys := make([]int64, len(fs))
	last := make(map[int64]int, len(fs))
	for i := range fs {
		id, err := scoredFindingID(&fs[i])
		if err != nil {
			return err
		}
		keys[i] = findingKey(id)
		last[keys[i]] = i
	}
	order := make([]int, 0, len(last))
	for i := range fs {
		if last[keys[i]] == i {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })

	sctx := context.WithoutCancel(ctx) // see saveAlerts
	up := newChunkStmt(s, tx, upsertFindingsSQL, findingLogParams)
	defer up.close()
	args := make([]any, 0, saveChunk*findingLogParams)
	var evBuf []byte
	for start := 0; start < len(order); start += saveChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := order[start:min(start+saveChunk, len(order))]
		args = args[:0]
		for _, i := range chunk {
			sf := &fs[i]
			f := &sf.Finding
			var err error
			evBuf, err = appendEvidence(evBuf[:0], f.Evidence)
			if err != nil {
				return fmt.Errorf("finding %v evidence: %w", findingIDOfKey(keys[i]), err)
			}
			tags, related, err := findingContext(f)
			if err != nil {
				return fmt.Errorf("finding %v: %w", findingIDOfKey(keys[i]), err)
			}
			figures, err := findingFigures(f)
			if err != nil {
				return fmt.Errorf("finding %v: %w", findingIDOfKey(keys[i]), err)
			}
			args = append(args,
				keys[i], toNanos(f.Time), string(f.Entity.Kind), f.Entity.ID, f.Detector, f.Kind, f.Title,
				score(f.Score), int64(f.Severity), f.Explanation, string(evBuf), tags, related, figures,
				finite(f.Contribution), finite(sf.Risk), finite(sf.Threshold), sf.Alert, boolInt(sf.Suppressed), f.Line, boolInt(f.Privileged))
		}
		if err := up.exec(sctx, len(chunk), args); err != nil {
			return fmt.Errorf("upsert findings: %w", err)
		}
	}
	return nil
}

// convertFindingKeys is migration 17's step: it copies the rows of
// finding_log_v16 (text ids) into finding_log under their findingKey,
// then drops finding_log_v16. A stored id is parsed in SQL when it is a
// FindingID as FindingID renders it ("fd-" and 16 lower-case hex digits,
// which every version of main wrote); a row with any other id (a build
// that hashed findings otherwise) is keyed by the id its finding has now
// (event.Finding.ID of its stored detector, kind, entity, time and
// evidence), and dropped when that finding is stored under its own id
// too.
func convertFindingKeys(ctx context.Context, s *Store, tx *sql.Tx) error {
	rest := strings.TrimPrefix(findingLogColumns, "id, ")
	isID := findingTextSQL(s.dialect.postgres, "id") + ` = id`
	if s.dialect.postgres {
		// The hex cast fails on a text that is no hex: test the shape first.
		isID = `(id ~ '^fd-[0-9a-f]{16}$' AND ` + isID + `)`
	}
	// #nosec G202 -- built from constant column lists and dialect SQL, no input
	if _, err := tx.ExecContext(ctx, `INSERT INTO finding_log (`+findingLogColumns+`) SELECT `+
		findingKeySQL(s.dialect.postgres, "id", true)+`, `+rest+` FROM finding_log_v16 WHERE `+isID); err != nil {
		return err
	}
	after := ""
	for {
		// #nosec G202 -- isID is constant dialect SQL; the id is a parameter
		rows, err := tx.QueryContext(ctx, `SELECT id, time, entity_kind, entity_id, detector, kind, evidence
FROM finding_log_v16 WHERE id > ? AND NOT `+isID+` ORDER BY id LIMIT 256`, after)
		if err != nil {
			return err
		}
		type rekey struct {
			old string
			key int64
		}
		var page []rekey
		for rows.Next() {
			var (
				old, kind, evidence string
				tm                  int64
				f                   event.Finding
			)
			if err := rows.Scan(&old, &tm, &kind, &f.Entity.ID, &f.Detector, &f.Kind, &evidence); err != nil {
				rows.Close()
				return err
			}
			f.Entity.Kind, f.Time = event.EntityKind(kind), fromNanos(tm)
			if evidence != "" && evidence != "[]" {
				if err := json.Unmarshal([]byte(evidence), &f.Evidence); err != nil {
					rows.Close()
					return fmt.Errorf("finding %q evidence: %w", old, err)
				}
			}
			page = append(page, rekey{old, findingKey(f.ID())})
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range page {
			// #nosec G202 -- constant column lists; the keys are parameters
			if _, err := tx.ExecContext(ctx, `INSERT INTO finding_log (`+findingLogColumns+`) SELECT ?, `+rest+
				` FROM finding_log_v16 WHERE id = ? ON CONFLICT (time, id) DO NOTHING`, r.key, r.old); err != nil {
				return err
			}
		}
		if len(page) < 256 {
			break
		}
		after = page[len(page)-1].old
	}
	_, err := tx.ExecContext(ctx, `DROP TABLE finding_log_v16`)
	return err
}

// findingKeySQL is an SQL expression of the 64-bit integer of the finding
// id text in col ("fd-%016x"), with the top bit flipped when flip
// (findingKey). On SQLite, which parses no hex, it sums the 16 digits;
// a text that is no finding id gives some integer, which
// convertFindingKeys's check catches.
func findingKeySQL(postgres bool, col string, flip bool) string {
	if postgres {
		e := `('x' || substr(` + col + `, 4))::bit(64)::bigint`
		if flip {
			e = `(` + e + ` # (1::bigint << 63))`
		}
		return e
	}
	var b strings.Builder
	b.WriteString("(")
	for i := range 16 {
		if i > 0 {
			b.WriteString(" | ")
		}
		d := fmt.Sprintf("(instr('0123456789abcdef', substr(%s, %d, 1)) - 1)", col, 4+i)
		if i == 0 && flip {
			d = "((" + d + " + 8) % 16)"
		}
		fmt.Fprintf(&b, "(%s << %d)", d, 4*(15-i))
	}
	b.WriteString(")")
	return b.String()
}

// findingTextSQL is an SQL expression rendering findingKeySQL(col, no
// flip) back as "fd-%016x": equal to col exactly when col is a finding id
// as FindingID renders it.
func findingTextSQL(postgres bool, col string) string {
	if postgres {
		return `('fd-' || lpad(to_hex(` + findingKeySQL(true, col, false) + `), 16, '0'))`
	}
	return `printf('fd-%016x', ` + findingKeySQL(false, col, false) + `)`
}

// finite is f, or 0 when f is not a finite number (for NOT NULL columns).
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// FindingQuery selects scored findings for ListFindings. The zero value
// lists the DefaultListLimit newest findings.
type FindingQuery struct {
	// Limit caps the findings returned: ≤0 means DefaultListLimit, and it
	// is capped at MaxListLimit.
	Limit int
	// Cursor, when set, continues a listing where the page that returned
	// it ended (ListFindings' next cursor).
	Cursor string
	// Since and Before, when non-zero, keep findings with Since ≤ Time <
	// Before.
	Since, Before time.Time
	// Entity, when its ID is set, keeps the findings about that entity
	// (kind and ID); when only its Kind is set, about entities of that
	// kind.
	Entity event.EntityKey
	// Detector and Kind, when set, keep the findings of that detector and
	// finding kind.
	Detector, Kind string
	// BelowThreshold keeps only the findings that raised or joined no
	// alert.
	BelowThreshold bool
}

// ErrBadCursor is returned (wrapped) by ListFindings for a cursor it did
// not issue.
var ErrBadCursor = errors.New("bad cursor")

// findingCursor is the position after the last finding of a page.
type findingCursor struct {
	time int64
	id   event.FindingID
}

func (c findingCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.time, 10) + ":" + c.id.String()))
}

func parseFindingCursor(s string) (findingCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return findingCursor{}, ErrBadCursor
	}
	t, text, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(t, 10, 64)
	var id event.FindingID
	if !ok || err != nil || !strings.HasPrefix(text, "fd-") || id.UnmarshalText([]byte(text)) != nil {
		return findingCursor{}, ErrBadCursor
	}
	return findingCursor{time: n, id: id}, nil
}

// ListFindings returns the findings q selects, newest first (by time,
// then ID, both descending), and the cursor of the next page ("" when
// this page is the last).
func (s *Store) ListFindings(ctx context.Context, q FindingQuery) ([]ScoredFinding, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var (
		where []string
		args  []any
	)
	if q.Cursor != "" {
		c, err := parseFindingCursor(q.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("list findings: %w", err)
		}
		where = append(where, "(time < ? OR (time = ? AND id < ?))")
		args = append(args, c.time, c.time, findingKey(c.id))
	}
	if !q.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, q.Since.UTC().UnixNano())
	}
	if !q.Before.IsZero() {
		where = append(where, "time < ?")
		args = append(args, q.Before.UTC().UnixNano())
	}
	if q.Entity.Kind != "" {
		where = append(where, "entity_kind = ?")
		args = append(args, string(q.Entity.Kind))
	}
	if q.Entity.ID != "" {
		where = append(where, "entity_id = ?")
		args = append(args, q.Entity.ID)
		if s.dialect.postgres {
			where = append(where, entityPrefixCond)
			args = append(args, q.Entity.ID)
		}
	}
	if q.Detector != "" {
		where = append(where, "detector = ?")
		args = append(args, q.Detector)
	}
	if q.Kind != "" {
		where = append(where, "kind = ?")
		args = append(args, q.Kind)
	}
	if q.BelowThreshold {
		where = append(where, "alert_id = ''")
	}
	var sb strings.Builder
	sb.WriteString("SELECT " + findingLogColumns + " FROM finding_log")
	if len(where) > 0 {
		sb.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	sb.WriteString(" ORDER BY time DESC, id DESC LIMIT ?")
	args = append(args, limit+1) // one more: is there a next page?

	rows, err := s.db.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list findings: %w", err)
	}
	defer rows.Close()
	out := make([]ScoredFinding, 0, min(limit, 64))
	for rows.Next() {
		sf, err := scanScoredFinding(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list findings: %w", err)
		}
		out = append(out, sf)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list findings: %w", err)
	}
	var next string
	if len(out) > limit {
		out = out[:limit]
		l := &out[limit-1]
		var id event.FindingID
		if err := id.UnmarshalText([]byte(l.ID)); err != nil {
			return nil, "", fmt.Errorf("list findings: %w", err)
		}
		next = findingCursor{time: toNanos(l.Time), id: id}.String()
	}
	return out, next, nil
}

func scanScoredFinding(sc scanner) (ScoredFinding, error) {
	var (
		sf                            ScoredFinding
		entityKind, evidence          string
		tags, related, figures        string
		key, tm, sev, suppressed      int64
		privileged                    int64
		sco                           sql.NullFloat64
		contribution, risk, threshold float64
	)
	f := &sf.Finding
	if err := sc.Scan(&key, &tm, &entityKind, &f.Entity.ID, &f.Detector, &f.Kind, &f.Title, &sco, &sev,
		&f.Explanation, &evidence, &tags, &related, &figures, &contribution, &risk, &threshold, &sf.Alert, &suppressed, &f.Line, &privileged); err != nil {
		return sf, err
	}
	sf.ID = findingIDOfKey(key).String()
	f.Time = fromNanos(tm)
	f.Entity.Kind = event.EntityKind(entityKind)
	f.Score = sco.Float64
	f.Severity = event.Severity(sev)
	f.Contribution, sf.Risk, sf.Threshold, sf.Suppressed = contribution, risk, threshold, suppressed != 0
	f.Privileged = privileged != 0
	f.Evidence = []string{}
	for _, c := range []struct {
		name, src string
		dst       any
	}{{"evidence", evidence, &f.Evidence}, {"tags", tags, &f.Tags}, {"related", related, &f.Related}, {"figures", figures, &f.Figures}} {
		if c.src == "" || c.src == "[]" {
			continue
		}
		if err := json.Unmarshal([]byte(c.src), c.dst); err != nil {
			return sf, fmt.Errorf("finding %q %s: %w", sf.ID, c.name, err)
		}
	}
	if f.Evidence == nil {
		f.Evidence = []string{}
	}
	return sf, nil
}

// PruneFindings deletes the findings whose event time is before before
// and returns how many it deleted.
func (s *Store) PruneFindings(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, "DELETE FROM finding_log WHERE time < ?", before.UTC().UnixNano())
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune findings: %w", err)
	}
	return n, nil
}

// LatestFindingTime returns the event time of the newest stored finding
// (the zero time when there is none).
func (s *Store) LatestFindingTime(ctx context.Context) (time.Time, error) {
	var n sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT MAX(time) FROM finding_log").Scan(&n); err != nil {
		return time.Time{}, fmt.Errorf("latest finding: %w", err)
	}
	return fromNanos(n.Int64), nil
}
