package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/haechi-sec/haechi/internal/event"
)

// Incident states (internal/incident.State).
const (
	IncidentOpen      = "open"
	IncidentContained = "contained"
	IncidentClosed    = "closed"
)

// ValidIncidentState reports whether s is a known incident state.
func ValidIncidentState(s string) bool {
	switch s {
	case IncidentOpen, IncidentContained, IncidentClosed:
		return true
	}
	return false
}

// Incident is an incident as the store keeps it: the columns a listing
// filters and shows, and Body, the grouping's full JSON
// (internal/incident.Incident: founding entity, alert ids, timeline,
// entity graph), which the store keeps without reading.
type Incident struct {
	ID string `json:"id"`
	// Founder is the founding (earliest, by time then ID) alert's ID; the
	// incident's ID is a hash of it (incident.IDFor).
	Founder    string         `json:"founder_alert"`
	Title      string         `json:"title"`
	Attack     string         `json:"attack"`
	Severity   event.Severity `json:"severity"`
	State      string         `json:"state"`
	Verdict    string         `json:"verdict,omitempty"`
	VerdictBy  string         `json:"verdict_by,omitempty"`
	VerdictAt  time.Time      `json:"verdict_at,omitzero"`
	Note       string         `json:"note,omitempty"`
	Start      time.Time      `json:"start"` // event time
	End        time.Time      `json:"end"`   // event time
	AlertCount int            `json:"alert_count"`
	// Entities are the entities its exact scope covers (Scope's, in graph
	// order): the attack's credentials, sources and accused principals.
	Entities []event.EntityKey `json:"entities"`
	// Scope is the rule of its exact scope (ledger.IncidentScope answers
	// it); nil on an incident stored before incidents carried one, whose
	// scope is then the union over Entities and Start…End.
	Scope *IncidentScope `json:"scope_rule,omitempty"`
	// Body is the grouping's JSON; nil in listings.
	Body    json.RawMessage `json:"detail,omitempty"`
	Created time.Time       `json:"created"` // wall time
	Updated time.Time       `json:"updated"` // wall time
}

// IncidentScope is the rule of an incident's exact scope (docs/scope.md,
// "Incidents"), as the incident keeper derives it from its alerts: the
// union of the records its Terms select in the access ledger. LeftOut
// names the entities the incident shows that the scope leaves out, and
// why (a victim, the owner of a stolen credential, a shared address).
type IncidentScope struct {
	Terms   []ScopeTerm    `json:"terms"`
	LeftOut []ScopeLeftOut `json:"left_out,omitempty"`
}

// ScopeTerm selects the records Entity touched from From to To (event
// time; the ledger answers by UTC day) — with Within, only those also
// touched under one of the Within terms (the attacker's instruments).
// Why says what the incident accuses the entity of.
type ScopeTerm struct {
	Entity event.EntityKey `json:"entity"`
	From   time.Time       `json:"from"`
	To     time.Time       `json:"to"`
	Within []ScopeTerm     `json:"within,omitempty"`
	Why    string          `json:"why"`
}

// ScopeLeftOut is an entity an incident's scope leaves out, and why.
type ScopeLeftOut struct {
	Entity event.EntityKey `json:"entity"`
	Why    string          `json:"why"`
}

// incidentEntities is the entities column's JSON when the incident has a
// scope rule; a column holding a JSON array is the entities alone (rows
// written before the rule existed).
type incidentEntities struct {
	Entities []event.EntityKey `json:"entities"`
	Scope    *IncidentScope    `json:"scope"`
}

// IncidentKeeper keeps incidents as alerts are stored
// (internal/incident/track implements it). The store calls AlertsSaved
// inside every transaction that saves alerts (SaveAlerts, the Writer's
// commits), after writing them, holding a lock that serialises keepers
// across every process sharing the store; tx reads what the transaction
// wrote. An error aborts the whole transaction, alerts included (the
// Writer retries the batch), so AlertsSaved must be safe to repeat. A
// keeper may remember what it read across transactions only as far as
// tx.Generation says nothing else wrote in between (IncidentGeneration).
type IncidentKeeper interface {
	AlertsSaved(ctx context.Context, tx *IncidentTx, alerts []event.Alert) error
}

// IncidentTx is the incident keeper's view of one save transaction.
type IncidentTx struct {
	s   *Store
	tx  *sql.Tx
	now int64
	gen IncidentGeneration
}

// Generation returns the incident generation this transaction makes
// (IncidentGeneration).
func (t *IncidentTx) Generation() IncidentGeneration { return t.gen }

// IncidentGeneration identifies the state of a store's alerts, findings,
// citations and incidents as one committed transaction left it. Every
// transaction that writes any of them — an alert save (with or without a
// keeper) and an incident verdict — moves the store to a new generation
// and records which one it followed, in every process sharing the store
// (a row of the checkpoints table). A keeper that remembers what it read
// in the generation its own last transaction made may trust it in a
// transaction whose generation Follows that one: its transaction
// committed and nothing else was written in between. A rolled-back
// transaction leaves the generation as it was.
type IncidentGeneration struct {
	s         *Store
	prev, cur int64
}

// Follows reports whether g came right after prev, on the same store.
func (g IncidentGeneration) Follows(prev IncidentGeneration) bool {
	return g.s != nil && g.s == prev.s && prev.cur != 0 && g.prev == prev.cur
}

// incidentGenerationName is the checkpoints row of the incident
// generation: mark is the current generation, a random number (so a
// generation a rolled-back transaction drew is never taken for one
// another process committed), shards the one before it. It shares the
// checkpoints table, as partition checkpoints do: no migration.
const incidentGenerationName = "incidents/generation"

// nextIncidentGeneration moves the store to a new incident generation in
// tx and returns it. On PostgreSQL it row-locks the generation until tx
// ends: a transaction taking the audit lock too takes it first (as
// SetIncidentVerdict and keepIncidents do).
func (s *Store) nextIncidentGeneration(ctx context.Context, tx *sql.Tx) (IncidentGeneration, error) {
	g := IncidentGeneration{s: s, cur: 1 + rand.Int64N(math.MaxInt64-1)} // #nosec G404 -- uniqueness, not secrecy
	err := s.queryRowTx(ctx, tx, `INSERT INTO checkpoints (name, mark, shards, data, saved_at) VALUES (?, ?, 0, ?, ?)
ON CONFLICT (name) DO UPDATE SET shards = checkpoints.mark, mark = excluded.mark, saved_at = excluded.saved_at
RETURNING shards`,
		incidentGenerationName, g.cur, []byte{}, time.Now().UnixNano()).Scan(&g.prev)
	if err != nil {
		return IncidentGeneration{}, fmt.Errorf("incident generation: %w", err)
	}
	return g, nil
}

// incidentLockID names the PostgreSQL advisory lock incident keepers
// take (an arbitrary constant: "haechi-in" in ASCII).
const incidentLockID = 0x68616563686900

// inChunk bounds the values of one IN list.
const inChunk = 500

// keepIncidents runs the keeper over alerts just saved in tx, and
// advances the incident generation (with or without a keeper).
func (s *Store) keepIncidents(ctx context.Context, tx *sql.Tx, alerts []event.Alert, order []int) error {
	if s.incidents == nil {
		_, err := s.nextIncidentGeneration(ctx, tx)
		return err
	}
	if s.dialect.postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", int64(incidentLockID)); err != nil {
			return fmt.Errorf("incidents: lock: %w", err)
		}
	}
	if s.incidentNotice != nil {
		// Notices append to the audit log: its lock is taken before any
		// incident row is, as SetIncidentVerdict takes it (no cycle).
		if err := lockAudit(ctx, s.dialect, tx); err != nil {
			return fmt.Errorf("incidents: %w", err)
		}
	}
	gen, err := s.nextIncidentGeneration(ctx, tx)
	if err != nil {
		return fmt.Errorf("incidents: %w", err)
	}
	saved := make([]event.Alert, len(order))
	for i, j := range order {
		saved[i] = alerts[j]
	}
	if err := s.incidents.AlertsSaved(ctx, &IncidentTx{s: s, tx: tx, now: time.Now().UnixNano(), gen: gen}, saved); err != nil {
		return fmt.Errorf("incidents: %w", err)
	}
	return nil
}

// Notify writes the outbox action Options.IncidentNotice makes of an
// incident event (none without it), in this transaction.
func (t *IncidentTx) Notify(ctx context.Context, kind string, in Incident, detail any) error {
	if t.s.incidentNotice == nil {
		return nil
	}
	a, err := t.s.incidentNotice(kind, in, detail)
	if err != nil || a == nil {
		return err
	}
	if _, err := t.s.insertAction(ctx, t.tx, a, time.Unix(0, t.now).UTC()); err != nil {
		return fmt.Errorf("incident %s %s: %w", in.ID, kind, err)
	}
	return nil
}

// The keeper's multi-row statements (execRowsTx).
func putCitationsSQL(n int) string {
	return `INSERT INTO citations (ref, success, principal, token, key_id, source, asn, user_agent, country)
VALUES ` + valueRows(9, n) + ` ON CONFLICT (ref) DO NOTHING`
}

func insertKeysSQL(n int) string {
	return "INSERT INTO incident_keys (join_key, alert_id, cited) VALUES " + valueRows(3, n)
}

func putIncidentAlertsSQL(n int) string {
	return "INSERT INTO incident_alerts (alert_id, incident_id) VALUES " + valueRows(2, n) +
		" ON CONFLICT (alert_id) DO UPDATE SET incident_id = excluded.incident_id"
}

// chunks calls fn with successive slices of at most inChunk values.
func chunks[T any](vals []T, fn func([]T) error) error {
	for start := 0; start < len(vals); start += inChunk {
		if err := fn(vals[start:min(start+inChunk, len(vals))]); err != nil {
			return err
		}
	}
	return nil
}

// queryStrings runs a query whose rows are (string, string) pairs over
// the IN list vals (its "(?)" stands for the list) and calls fn per row.
func (t *IncidentTx) queryPairs(ctx context.Context, query string, vals []string, fn func(a, b string)) error {
	return chunks(vals, func(c []string) error {
		rows, err := t.s.queryInTx(ctx, t.tx, query, nil, c)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a, b string
			if err := rows.Scan(&a, &b); err != nil {
				return err
			}
			fn(a, b)
		}
		return rows.Err()
	})
}

// PutCitations stores what cited events were; a reference stored before
// keeps its first citation.
func (t *IncidentTx) PutCitations(ctx context.Context, cs []event.Citation) error {
	const cols = 9
	form := t.s.textKeyForm()
	return chunks(cs, func(c []event.Citation) error {
		args := make([]any, 0, cols*len(c))
		for _, x := range c {
			args = append(args, inForm(form, x.Ref), boolInt(x.Success), x.Principal, x.Token, x.Key, x.Source, int64(x.ASN), x.UserAgent, x.Country)
		}
		err := t.s.execRowsTx(ctx, t.tx, putCitationsSQL, cols, len(c), args)
		if err != nil {
			return fmt.Errorf("put citations: %w", err)
		}
		return nil
	})
}

// Citations returns the stored citations of refs (unknown ones absent).
func (t *IncidentTx) Citations(ctx context.Context, refs []string) (map[string]event.Citation, error) {
	out := make(map[string]event.Citation, len(refs))
	// On PostgreSQL refs are stored in textKeyForm; asked is each stored
	// form's refs as given, which the answer is keyed by.
	var asked map[string][]string
	if form := t.s.textKeyForm(); form != nil {
		asked = make(map[string][]string, len(refs))
		stored := make([]string, 0, len(refs))
		for _, r := range refs {
			f := form(r)
			if len(asked[f]) == 0 {
				stored = append(stored, f)
			}
			asked[f] = append(asked[f], r)
		}
		refs = stored
	}
	err := chunks(refs, func(c []string) error {
		rows, err := t.s.queryInTx(ctx, t.tx, `SELECT ref, success, principal, token, key_id, source, asn, user_agent, country
FROM citations WHERE ref IN (?)`, nil, c)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				x            event.Citation
				success, asn int64
			)
			if err := rows.Scan(&x.Ref, &success, &x.Principal, &x.Token, &x.Key, &x.Source, &asn, &x.UserAgent, &x.Country); err != nil {
				return err
			}
			x.Success, x.ASN = success != 0, uint32(asn) // #nosec G115 -- stored from a uint32
			if asked == nil {
				out[x.Ref] = x
				continue
			}
			for _, r := range asked[x.Ref] {
				x.Ref = r
				out[r] = x
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("citations: %w", err)
	}
	return out, nil
}

// SourcePrincipals returns, per address, how many distinct principals
// the stored citations show acting from it successfully (addresses with
// none absent).
func (t *IncidentTx) SourcePrincipals(ctx context.Context, ips []string) (map[string]int, error) {
	out := map[string]int{}
	err := chunks(ips, func(c []string) error {
		rows, err := t.s.queryInTx(ctx, t.tx, `SELECT source, COUNT(DISTINCT principal) FROM citations
WHERE success = 1 AND principal <> '' AND source IN (?) GROUP BY source`, nil, c)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				ip string
				n  int
			)
			if err := rows.Scan(&ip, &n); err != nil {
				return err
			}
			out[ip] = n
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("source principals: %w", err)
	}
	return out, nil
}

// AlertsWithKeys returns the IDs of the alerts stored with any of keys
// (SetAlertKeys) — with namedOnly, only with them as named keys — sorted.
func (t *IncidentTx) AlertsWithKeys(ctx context.Context, keys []string, namedOnly bool) ([]string, error) {
	seen := map[string]bool{}
	q := "SELECT alert_id, join_key FROM incident_keys WHERE join_key IN (?)"
	if namedOnly {
		q += " AND cited = 0"
	}
	if form := t.s.textKeyForm(); form != nil {
		stored := make([]string, len(keys))
		for i, k := range keys {
			stored[i] = form(k)
		}
		keys = stored
	}
	err := t.queryPairs(ctx, q, keys, func(id, _ string) { seen[id] = true })
	if err != nil {
		return nil, fmt.Errorf("alerts with keys: %w", err)
	}
	return sortedSet(seen), nil
}

// SetAlertKeys replaces the join keys stored for alert id: the keys it
// names and those it only cites (a key in both counts as named).
func (t *IncidentTx) SetAlertKeys(ctx context.Context, id string, named, cited []string) error {
	if _, err := t.s.execTx(ctx, t.tx, "DELETE FROM incident_keys WHERE alert_id = ?", id); err != nil {
		return fmt.Errorf("alert %q keys: %w", id, err)
	}
	type key struct {
		k     string
		cited int64
	}
	var keys []key
	seen := map[string]bool{}
	form := t.s.textKeyForm()
	for _, k := range named {
		if k = inForm(form, k); !seen[k] {
			seen[k] = true
			keys = append(keys, key{k, 0})
		}
	}
	for _, k := range cited {
		if k = inForm(form, k); !seen[k] {
			seen[k] = true
			keys = append(keys, key{k, 1})
		}
	}
	return chunks(keys, func(c []key) error {
		args := make([]any, 0, 3*len(c))
		for _, k := range c {
			args = append(args, k.k, id, k.cited)
		}
		if err := t.s.execRowsTx(ctx, t.tx, insertKeysSQL, 3, len(c), args); err != nil {
			return fmt.Errorf("alert %q keys: %w", id, err)
		}
		return nil
	})
}

// AlertKeys are the join keys of one alert (SetAlertsKeys).
type AlertKeys struct {
	ID           string
	Named, Cited []string
	// Stored, when not nil, are the keys stored for the alert now, as the
	// caller knows them (what it last set): only the difference is
	// written. Nil: the stored keys are replaced whole.
	Stored *AlertKeys
}

// keyRow is one row of incident_keys.
type keyRow struct {
	k, id string
	cited int64
}

// rows returns the rows a's keys store: named, then cited keys, each once
// in the store's form (textKeyForm; nil: as they are) (a key in both
// counts as named).
func (a *AlertKeys) rows(id string, form func(string) string) []keyRow {
	var out []keyRow
	seen := make(map[string]bool, len(a.Named)+len(a.Cited))
	for _, k := range a.Named {
		if k = inForm(form, k); !seen[k] {
			seen[k] = true
			out = append(out, keyRow{k, id, 0})
		}
	}
	for _, k := range a.Cited {
		if k = inForm(form, k); !seen[k] {
			seen[k] = true
			out = append(out, keyRow{k, id, 1})
		}
	}
	return out
}

// SetAlertsKeys is SetAlertKeys of each of as in order, in a few
// statements: the stored keys of the alerts given without Stored are
// deleted, then the keys inserted, a few hundred rows a statement; of an
// alert given with Stored, only the rows that differ are deleted and
// inserted. An alert given twice keeps its last keys.
func (t *IncidentTx) SetAlertsKeys(ctx context.Context, as []AlertKeys) error {
	if len(as) == 0 {
		return nil
	}
	last := make(map[string]int, len(as))
	for i := range as {
		last[as[i].ID] = i
	}
	form := t.s.textKeyForm()
	var whole []string
	var dels, ins []keyRow
	for i := range as {
		a := &as[i]
		if last[a.ID] != i {
			continue
		}
		rows := a.rows(a.ID, form)
		if a.Stored == nil {
			whole = append(whole, a.ID)
			ins = append(ins, rows...)
			continue
		}
		now := make(map[string]int64, len(rows))
		for _, r := range rows {
			now[r.k] = r.cited
		}
		was := map[string]int64{}
		for _, r := range a.Stored.rows(a.ID, form) {
			was[r.k] = r.cited
			if c, ok := now[r.k]; !ok || c != r.cited {
				dels = append(dels, r)
			}
		}
		for _, r := range rows {
			if c, ok := was[r.k]; !ok || c != r.cited {
				ins = append(ins, r)
			}
		}
	}
	err := chunks(whole, func(c []string) error {
		return t.s.execInTx(ctx, t.tx, "DELETE FROM incident_keys WHERE alert_id IN (?)", c)
	})
	if err != nil {
		return fmt.Errorf("alert keys: %w", err)
	}
	for _, r := range dels {
		if _, err := t.s.execTx(ctx, t.tx, "DELETE FROM incident_keys WHERE join_key = ? AND alert_id = ?", r.k, r.id); err != nil {
			return fmt.Errorf("alert %q keys: %w", r.id, err)
		}
	}
	return chunks(ins, func(c []keyRow) error {
		args := make([]any, 0, 3*len(c))
		for _, k := range c {
			args = append(args, k.k, k.id, k.cited)
		}
		if err := t.s.execRowsTx(ctx, t.tx, insertKeysSQL, 3, len(c), args); err != nil {
			return fmt.Errorf("alert %q keys: %w", c[0].id, err)
		}
		return nil
	})
}

// IncidentsOfAlerts returns the incident each of the alerts ids is in
// (alerts in none absent).
func (t *IncidentTx) IncidentsOfAlerts(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	err := t.queryPairs(ctx, "SELECT alert_id, incident_id FROM incident_alerts WHERE alert_id IN (?)", ids,
		func(a, in string) { out[a] = in })
	if err != nil {
		return nil, fmt.Errorf("incidents of alerts: %w", err)
	}
	return out, nil
}

// AlertsOfIncidents returns the alerts in the incidents ids, each with
// the incident it is in.
func (t *IncidentTx) AlertsOfIncidents(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	err := t.queryPairs(ctx, "SELECT alert_id, incident_id FROM incident_alerts WHERE incident_id IN (?)", ids,
		func(a, in string) { out[a] = in })
	if err != nil {
		return nil, fmt.Errorf("alerts of incidents: %w", err)
	}
	return out, nil
}

// Alerts returns the stored alerts ids (as this transaction sees them),
// with their findings, in ID order; unknown IDs are left out.
func (t *IncidentTx) Alerts(ctx context.Context, ids []string) ([]event.Alert, error) {
	var out []event.Alert
	err := chunks(ids, func(c []string) error {
		rows, err := t.s.queryInTx(ctx, t.tx, "SELECT "+alertColumns+" FROM alerts WHERE id IN (?) ORDER BY id", nil, c)
		if err != nil {
			return err
		}
		var batch []event.Alert
		for rows.Next() {
			a, err := scanAlert(rows)
			if err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, a)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
		if len(batch) == 0 {
			return nil
		}
		if err := loadFindingsFrom(ctx, txQueryer{t.s, t.tx}, batch); err != nil {
			return err
		}
		out = append(out, batch...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return out, nil
}

// Incidents returns the stored incidents ids (Body included), in ID
// order; unknown IDs are left out.
func (t *IncidentTx) Incidents(ctx context.Context, ids []string) ([]Incident, error) {
	var out []Incident
	err := chunks(ids, func(c []string) error {
		rows, err := t.s.queryInTx(ctx, t.tx, "SELECT "+incidentColumns+", body FROM incidents WHERE id IN (?) ORDER BY id", nil, c)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			in, err := scanIncident(rows, true)
			if err != nil {
				return err
			}
			out = append(out, in)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("incidents: %w", err)
	}
	return out, nil
}

// PutIncident upserts in and makes alertIDs its alerts (moving them from
// any other incident), and returns the incident as stored — as Incidents
// reads it back in this transaction. Created is kept from a stored row of
// the same ID; a zero Created on a new row takes the transaction's wall
// time.
func (t *IncidentTx) PutIncident(ctx context.Context, in Incident, alertIDs []string) (Incident, error) {
	body := string(in.Body)
	if body == "" {
		body = "{}"
	}
	if in.Entities == nil {
		in.Entities = []event.EntityKey{}
	}
	var ents []byte
	var err error
	if in.Scope != nil {
		if ents, err = encodeIncidentEntities(in.Entities, in.Scope); err != nil {
			ents, err = json.Marshal(incidentEntities{Entities: in.Entities, Scope: in.Scope})
		}
	} else {
		ents, err = json.Marshal(in.Entities)
	}
	if err != nil {
		return Incident{}, fmt.Errorf("put incident %q: entities: %w", in.ID, err)
	}
	created := toNanos(in.Created)
	if created == 0 {
		created = t.now
	}
	r := incidentRow{id: in.ID, founder: in.Founder, start: toNanos(in.Start), end: toNanos(in.End), sev: int64(in.Severity),
		state: in.State, verdict: in.Verdict, note: in.Note, by: in.VerdictBy, vat: toNanos(in.VerdictAt), title: in.Title,
		attack: in.Attack, n: int64(in.AlertCount), ents: string(ents), body: body, up: t.now}
	// #nosec G202 -- only placeholders are concatenated
	err = t.s.queryRowTx(ctx, t.tx, `INSERT INTO incidents (id, founder, start_time, end_time, severity, state, verdict,
	verdict_note, verdict_by, verdict_at, title, attack, alert_count, entities, body, created_at, updated_at)
VALUES (`+placeholders(17)+`)
ON CONFLICT (id) DO UPDATE SET
	founder = excluded.founder, start_time = excluded.start_time, end_time = excluded.end_time,
	severity = excluded.severity, state = excluded.state, verdict = excluded.verdict,
	verdict_note = excluded.verdict_note, verdict_by = excluded.verdict_by, verdict_at = excluded.verdict_at,
	title = excluded.title, attack = excluded.attack, alert_count = excluded.alert_count,
	entities = excluded.entities, body = excluded.body,
	updated_at = excluded.updated_at
RETURNING created_at`,
		r.id, r.founder, r.start, r.end, r.sev, r.state, r.verdict, r.note, r.by, r.vat, r.title, r.attack, r.n, r.ents, r.body,
		created, r.up).Scan(&r.cr)
	if err != nil {
		return Incident{}, fmt.Errorf("put incident %q: %w", in.ID, err)
	}
	stored, err := r.storedAs(in)
	if err != nil {
		return Incident{}, fmt.Errorf("put incident %q: %w", in.ID, err)
	}
	err = chunks(alertIDs, func(c []string) error {
		args := make([]any, 0, 2*len(c))
		for _, a := range c {
			args = append(args, a, in.ID)
		}
		if err := t.s.execRowsTx(ctx, t.tx, putIncidentAlertsSQL, 2, len(c), args); err != nil {
			return fmt.Errorf("put incident %q alerts: %w", in.ID, err)
		}
		return nil
	})
	if err != nil {
		return Incident{}, err
	}
	return stored, nil
}

// RetireIncident deletes incident id, whose founding alert is founder,
// and keeps id as an alias resolving through founder, else to successor
// (the incident that took its other alerts; "" when none did). Alerts
// still assigned to it are unassigned.
func (t *IncidentTx) RetireIncident(ctx context.Context, id, founder, successor string) error {
	if _, err := t.s.execTx(ctx, t.tx, "DELETE FROM incidents WHERE id = ?", id); err != nil {
		return fmt.Errorf("retire incident %q: %w", id, err)
	}
	if _, err := t.s.execTx(ctx, t.tx, "DELETE FROM incident_alerts WHERE incident_id = ?", id); err != nil {
		return fmt.Errorf("retire incident %q: %w", id, err)
	}
	if _, err := t.s.execTx(ctx, t.tx, `INSERT INTO incident_aliases (alias, founder, successor) VALUES (?, ?, ?)
ON CONFLICT (alias) DO UPDATE SET founder = excluded.founder, successor = excluded.successor`,
		id, founder, successor); err != nil {
		return fmt.Errorf("retire incident %q: %w", id, err)
	}
	return nil
}

// DropAlerts removes alerts ids from their incidents (a withdrawn alert).
func (t *IncidentTx) DropAlerts(ctx context.Context, ids []string) error {
	return chunks(ids, func(c []string) error {
		if err := t.s.execInTx(ctx, t.tx, "DELETE FROM incident_alerts WHERE alert_id IN (?)", c); err != nil {
			return fmt.Errorf("drop alerts: %w", err)
		}
		return nil
	})
}

// UnaliasIncident removes id from the aliases (it is an incident again).
func (t *IncidentTx) UnaliasIncident(ctx context.Context, id string) error {
	if _, err := t.s.execTx(ctx, t.tx, "DELETE FROM incident_aliases WHERE alias = ?", id); err != nil {
		return fmt.Errorf("unalias incident %q: %w", id, err)
	}
	return nil
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

const incidentColumns = `id, founder, start_time, end_time, severity, state, verdict, verdict_note, verdict_by,
	verdict_at, title, attack, alert_count, entities, created_at, updated_at`

func scanIncident(sc scanner, body bool) (Incident, error) {
	var r incidentRow
	dest := []any{&r.id, &r.founder, &r.start, &r.end, &r.sev, &r.state, &r.verdict, &r.note, &r.by,
		&r.vat, &r.title, &r.attack, &r.n, &r.ents, &r.cr, &r.up}
	if body {
		dest = append(dest, &r.body)
	}
	if err := sc.Scan(dest...); err != nil {
		return Incident{}, err
	}
	return r.decode(body)
}

// incidentRow is an incidents row as stored (incidentColumns, body).
type incidentRow struct {
	id, founder, state, verdict, note, by, title, attack, ents, body string
	start, end, sev, vat, n, cr, up                                  int64
}

// decode returns the incident the row holds (Body only with body).
func (r incidentRow) decode(body bool) (Incident, error) {
	in := Incident{ID: r.id, Founder: r.founder, State: r.state, Verdict: r.verdict, Note: r.note, VerdictBy: r.by,
		Title: r.title, Attack: r.attack}
	in.Start, in.End, in.VerdictAt = fromNanos(r.start), fromNanos(r.end), fromNanos(r.vat)
	in.Created, in.Updated = fromNanos(r.cr), fromNanos(r.up)
	in.Severity, in.AlertCount = event.Severity(r.sev), int(r.n)
	if body {
		in.Body = json.RawMessage(r.body)
	}
	in.Entities = []event.EntityKey{}
	ents := r.ents
	switch {
	case strings.HasPrefix(ents, "{"):
		var x incidentEntities
		if err := json.Unmarshal([]byte(ents), &x); err != nil {
			return Incident{}, fmt.Errorf("incident %q entities: %w", in.ID, err)
		}
		if x.Entities != nil {
			in.Entities = x.Entities
		}
		in.Scope = x.Scope
	case ents != "" && ents != "[]":
		if err := json.Unmarshal([]byte(ents), &in.Entities); err != nil {
			return Incident{}, fmt.Errorf("incident %q entities: %w", in.ID, err)
		}
	}
	return in, nil
}

// storedAs is decode(true) of r, the row PutIncident wrote for in, without
// parsing the entities column again: its Entities and Scope are in's as a
// JSON round trip leaves them (roundTripScope) — unless a string in them
// is not valid UTF-8 (JSON replaces such bytes), when the column is
// parsed. An incident's scope rule runs to hundreds of terms: parsing
// back what was just encoded was most of PutIncident's cost.
func (r incidentRow) storedAs(in Incident) (Incident, error) {
	if !validEntities(in.Entities) || !validScope(in.Scope) {
		return r.decode(true)
	}
	ents := r.ents
	r.ents = ""
	out, err := r.decode(true)
	if err != nil {
		return Incident{}, err
	}
	r.ents = ents
	out.Entities = slices.Clone(in.Entities) // non-nil: PutIncident made it so
	if in.Scope != nil {
		sc, ok := roundTripScope(in.Scope)
		if !ok {
			return r.decode(true)
		}
		out.Scope = sc
	}
	return out, nil
}

// roundTripScope returns a copy of sc as encoding it to JSON and decoding
// it back gives it: empty Within and LeftOut lists (omitempty) nil, times
// without their monotonic reading and in the location their text gives
// (roundTripTime). ok is false if a time cannot be encoded.
func roundTripScope(sc *IncidentScope) (_ *IncidentScope, ok bool) {
	terms, ok := roundTripTerms(sc.Terms, false)
	if !ok {
		return nil, false
	}
	out := &IncidentScope{Terms: terms}
	if len(sc.LeftOut) > 0 {
		out.LeftOut = slices.Clone(sc.LeftOut)
	}
	return out, true
}

// roundTripTerms is roundTripScope of a list of terms: nil stays nil and
// empty stays empty, unless omitEmpty (then empty is nil).
func roundTripTerms(ts []ScopeTerm, omitEmpty bool) ([]ScopeTerm, bool) {
	if ts == nil || (omitEmpty && len(ts) == 0) {
		return nil, true
	}
	out := make([]ScopeTerm, len(ts))
	for i, t := range ts {
		var ok1, ok2, ok3 bool
		t.From, ok1 = roundTripTime(t.From)
		t.To, ok2 = roundTripTime(t.To)
		t.Within, ok3 = roundTripTerms(t.Within, true)
		if !ok1 || !ok2 || !ok3 {
			return nil, false
		}
		out[i] = t
	}
	return out, true
}

// roundTripTime returns t as encoding/json's text of it decodes: a UTC
// time loses only its monotonic reading; another is encoded and decoded.
func roundTripTime(t time.Time) (time.Time, bool) {
	if t.Location() == time.UTC {
		return t.Round(0), true
	}
	b, err := t.MarshalJSON()
	if err != nil {
		return time.Time{}, false
	}
	var u time.Time
	if err := u.UnmarshalJSON(b); err != nil {
		return time.Time{}, false
	}
	return u, true
}

func validKey(e event.EntityKey) bool {
	return utf8.ValidString(string(e.Kind)) && utf8.ValidString(e.ID)
}

func validEntities(es []event.EntityKey) bool {
	for _, e := range es {
		if !validKey(e) {
			return false
		}
	}
	return true
}

func validScope(sc *IncidentScope) bool {
	if sc == nil {
		return true
	}
	for _, l := range sc.LeftOut {
		if !validKey(l.Entity) || !utf8.ValidString(l.Why) {
			return false
		}
	}
	return validTerms(sc.Terms)
}

func validTerms(ts []ScopeTerm) bool {
	for _, t := range ts {
		if !validKey(t.Entity) || !utf8.ValidString(t.Why) || !validTerms(t.Within) {
			return false
		}
	}
	return true
}

// IncidentQuery selects incidents for ListIncidents. The zero value lists
// the DefaultListLimit newest incidents (by start).
type IncidentQuery struct {
	// Limit caps the number returned: ≤0 means DefaultListLimit, capped at
	// MaxListLimit.
	Limit int
	// State, when set, keeps incidents in that state.
	State string
	// MinSeverity, when non-zero, keeps incidents of at least this
	// severity.
	MinSeverity event.Severity
	// Since, when non-zero, keeps incidents whose alerts span reaches it
	// (End >= Since).
	Since time.Time
	// Older, when set, keeps the incidents after it in the listing's order
	// (newest start first, then ID descending): the next page of a listing
	// whose last incident it is (keyset paging, as AlertQuery.Older).
	Older IncidentCursor
}

// IncidentCursor is a position in ListIncidents' order.
type IncidentCursor struct {
	Start time.Time
	ID    string
}

// IsZero reports whether c is unset.
func (c IncidentCursor) IsZero() bool { return c.Start.IsZero() && c.ID == "" }

// ListIncidents returns the incidents q selects, newest start first (then
// ID descending), without their Body.
func (s *Store) ListIncidents(ctx context.Context, q IncidentQuery) ([]Incident, error) {
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
	if q.MinSeverity != 0 {
		where = append(where, "severity >= ?")
		args = append(args, int64(q.MinSeverity))
	}
	if !q.Since.IsZero() {
		where = append(where, "end_time >= ?")
		args = append(args, toNanos(q.Since))
	}
	if !q.Older.IsZero() {
		n := toNanos(q.Older.Start)
		where = append(where, "(start_time < ? OR (start_time = ? AND id < ?))")
		args = append(args, n, n, q.Older.ID)
	}
	query := "SELECT " + incidentColumns + " FROM incidents"
	if len(where) > 0 {
		// #nosec G202 -- constant conditions with placeholders
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY start_time DESC, id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	out := []Incident{}
	for rows.Next() {
		in, err := scanIncident(rows, false)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	return out, nil
}

// GetIncident returns the incident id names, with its Body: the incident
// of that ID, or — for an ID that was merged into another or refounded —
// the incident its founding alert is in now, else (that alert withdrawn)
// the incident that took its other alerts. It returns an error wrapping
// ErrNotFound when there is none.
func (s *Store) GetIncident(ctx context.Context, id string) (Incident, error) {
	const maxHops = 16 // successors chain; a cycle cannot form, but stay bounded
	cur := id
	for range maxHops {
		in, err := scanIncident(s.db.QueryRowContext(ctx, "SELECT "+incidentColumns+", body FROM incidents WHERE id = ?", cur), true)
		if err == nil {
			return in, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Incident{}, fmt.Errorf("get incident %q: %w", id, err)
		}
		var founder, successor, via string
		err = s.db.QueryRowContext(ctx, `SELECT a.founder, a.successor, COALESCE(ia.incident_id, '') FROM incident_aliases a
LEFT JOIN incident_alerts ia ON ia.alert_id = a.founder WHERE a.alias = ?`, cur).Scan(&founder, &successor, &via)
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return Incident{}, fmt.Errorf("get incident %q: %w", id, err)
		}
		switch {
		case via != "" && via != cur:
			cur = via
		case successor != "" && successor != cur:
			cur = successor
		default:
			return Incident{}, fmt.Errorf("get incident %q: %w", id, ErrNotFound)
		}
	}
	return Incident{}, fmt.Errorf("get incident %q: %w", id, ErrNotFound)
}

// IncidentOfAlert returns the ID of the incident alert id is in
// (ErrNotFound, wrapped, when none).
func (s *Store) IncidentOfAlert(ctx context.Context, id string) (string, error) {
	var in string
	err := s.db.QueryRowContext(ctx, "SELECT incident_id FROM incident_alerts WHERE alert_id = ?", id).Scan(&in)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("incident of alert %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("incident of alert %q: %w", id, err)
	}
	return in, nil
}

// IncidentVerdict is an analyst's decision on an incident: its state and
// verdict (the alert verdicts' vocabulary, ValidVerdict).
type IncidentVerdict struct {
	IncidentID string    `json:"incident_id"`
	State      string    `json:"state"`
	Verdict    string    `json:"verdict"`
	Note       string    `json:"note,omitempty"`
	By         string    `json:"by"`
	At         time.Time `json:"at"`
}

// SetIncidentVerdict sets the state and verdict of the incident v names
// (an alias resolves), with an audit entry, in one transaction. It
// returns the incident as updated; an unknown incident is ErrNotFound
// (wrapped). A verdict with no state closes the incident.
func (s *Store) SetIncidentVerdict(ctx context.Context, v IncidentVerdict) (Incident, error) {
	if v.State == "" {
		v.State = IncidentClosed
	}
	if !ValidIncidentState(v.State) {
		return Incident{}, fmt.Errorf("incident verdict: state %q: want %s, %s or %s", v.State, IncidentOpen, IncidentContained, IncidentClosed)
	}
	if v.Verdict != "" && !ValidVerdict(v.Verdict) {
		return Incident{}, fmt.Errorf("incident verdict: verdict %q: want %s, %s or %s", v.Verdict, VerdictTruePositive, VerdictFalsePositive, VerdictBenign)
	}
	cur, err := s.GetIncident(ctx, v.IncidentID)
	if err != nil {
		return Incident{}, fmt.Errorf("incident verdict: %w", err)
	}
	v.IncidentID = cur.ID
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		// The audit lock (withTx) first, then the generation, as keepIncidents.
		if _, err := s.nextIncidentGeneration(ctx, tx); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE incidents SET state = ?, verdict = ?, verdict_note = ?, verdict_by = ?, verdict_at = ?, updated_at = ?
WHERE id = ?`, v.State, v.Verdict, v.Note, v.By, toNanos(v.At), time.Now().UnixNano(), v.IncidentID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return fmt.Errorf("incident %q: %w", v.IncidentID, ErrNotFound) // merged meanwhile
		}
		if err := s.appendAudit(ctx, tx, v.At, "incident_verdict", "", v); err != nil {
			return err
		}
		if s.incidentNotice == nil || (cur.State == v.State && cur.Verdict == v.Verdict) {
			return nil
		}
		in := cur
		in.Body = nil
		in.State, in.Verdict, in.Note, in.VerdictBy, in.VerdictAt = v.State, v.Verdict, v.Note, v.By, v.At
		a, err := s.incidentNotice("state_changed", in, v)
		if err != nil || a == nil {
			return err
		}
		_, err = s.insertAction(ctx, tx, a, time.Now().UTC())
		return err
	})
	if err != nil {
		return Incident{}, fmt.Errorf("incident verdict: %w", err)
	}
	return s.GetIncident(ctx, v.IncidentID)
}

// textKeyForm returns the form in which PostgreSQL stores the text keys
// an event may fill whole — incident join keys (they hold an entity's
// id) and citations' refs (an event's event.id) — or nil when they are
// stored as they are (SQLite). It is pgTextKey, as for ledger values: a
// key longer than 2,600 bytes as its start, "…sha256:" and 128 bits of
// its hash, so that a primary key's btree entry (≈ 2.7 kB at most) holds
// it; before, one such key failed its whole batch. Keys are written and
// looked up in this form; they are not shown.
func (s *Store) textKeyForm() func(string) string {
	if s.dialect.postgres {
		return pgTextKey
	}
	return nil
}

// inForm is form(k), or k when form is nil.
func inForm(form func(string) string, k string) string {
	if form == nil {
		return k
	}
	return form(k)
}
