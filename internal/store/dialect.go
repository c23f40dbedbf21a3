package store

import (
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is every difference between the two backends, in one place. The
// store's SQL is written once, in the dialect both engines share (SQLite's
// "?" placeholders, ON CONFLICT … DO UPDATE SET x = excluded.x, LIMIT),
// and a dialect adapts it:
//
//   - Placeholders: "?" becomes "$1", "$2", … on PostgreSQL. The rewrite
//     happens below database/sql, in the driver connection (pgConn), once per
//     distinct statement text (cached), so every query the package runs —
//     through *sql.DB, *sql.Tx or *sql.Conn — is portable without a helper.
//   - Migrations: see translateMigration.
//   - Row locks: forUpdate and skipLocked are appended to the SELECTs of a
//     read-modify-write (SQLite has neither, and needs neither: its writes
//     are serialised by the write lock BEGIN IMMEDIATE takes).
//   - The audit chain: lockAudit serialises appenders across processes.
//   - Retries: retryable tells which errors mean "run the transaction again".
//   - Case and ordering: on PostgreSQL every TEXT column is declared
//     COLLATE "C", so comparisons and ORDER BY are bytewise, as in SQLite,
//     whatever the database's default collation is. The store uses no LIKE.
type dialect struct {
	postgres bool

	// rebound caches placeholder rewrites by statement text (PostgreSQL).
	rebound   sync.Map // string → string
	nRebound  int
	reboundMu sync.Mutex
}

var (
	sqliteDialect   = &dialect{}
	postgresDialect = &dialect{postgres: true}
)

func (d *dialect) String() string {
	if d.postgres {
		return "postgres"
	}
	return "sqlite"
}

// maxRebound bounds the rewrite cache; statements built with a variable
// number of placeholders (IN lists) are few, but the bound keeps a caller
// that builds unbounded variants from growing it for ever.
const maxRebound = 4096

// rebind rewrites "?" placeholders to PostgreSQL's "$n", leaving string
// literals, quoted identifiers, dollar-quoted strings and comments alone.
// SQLite statements are returned unchanged.
func (d *dialect) rebind(query string) string {
	if !d.postgres || strings.IndexByte(query, '?') < 0 {
		return query
	}
	if q, ok := d.rebound.Load(query); ok {
		return q.(string)
	}
	q := rebindDollar(query)
	d.reboundMu.Lock()
	if d.nRebound < maxRebound {
		if _, loaded := d.rebound.LoadOrStore(query, q); !loaded {
			d.nRebound++
		}
	}
	d.reboundMu.Unlock()
	return q
}

// rebindDollar is rebind's rewrite, uncached.
func rebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i++
			continue
		case c == '\'' || c == '"':
			j := skipQuoted(query, i, c)
			b.WriteString(query[i:j])
			i = j
			continue
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j
			continue
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			j := skipBlockComment(query, i)
			b.WriteString(query[i:j])
			i = j
			continue
		case c == '$':
			if j, ok := skipDollarQuoted(query, i); ok {
				b.WriteString(query[i:j])
				i = j
				continue
			}
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

// skipQuoted returns the index just past the literal or identifier opened
// by q at i (a doubled quote inside is an escaped quote).
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// skipBlockComment returns the index just past the (possibly nested, as in
// PostgreSQL) block comment starting at i.
func skipBlockComment(s string, i int) int {
	depth := 0
	for j := i; j+1 < len(s); {
		switch s[j : j+2] {
		case "/*":
			depth++
			j += 2
		case "*/":
			depth--
			j += 2
			if depth == 0 {
				return j
			}
		default:
			j++
		}
	}
	return len(s)
}

// skipDollarQuoted recognises $tag$…$tag$ at i and returns the index past
// it; ok is false when i does not open one ($1 parameters, for instance).
func skipDollarQuoted(s string, i int) (int, bool) {
	j := i + 1
	for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' ||
		j > i+1 && s[j] >= '0' && s[j] <= '9') {
		j++
	}
	if j >= len(s) || s[j] != '$' {
		return 0, false
	}
	tag := s[i : j+1]
	end := strings.Index(s[j+1:], tag)
	if end < 0 {
		return len(s), true
	}
	return j + 1 + end + len(tag), true
}

// forUpdate is appended to a SELECT whose rows the transaction will write
// back (a read-modify-write): it row-locks them on PostgreSQL, so a
// concurrent writer in another process waits and then reads the new
// version (READ COMMITTED re-reads a locked row once it is released).
func (d *dialect) forUpdate() string {
	if d.postgres {
		return " FOR UPDATE"
	}
	return ""
}

// skipLocked is forUpdate for a queue: rows another transaction holds are
// skipped instead of waited for (outbox claims).
func (d *dialect) skipLocked() string {
	if d.postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// lockAuditSQL, run inside a transaction before it reads the audit log's
// last entry, makes the transaction the audit chain's only appender until
// it ends, so the chain stays one chain with writers in several processes.
// The table lock (SHARE ROW EXCLUSIVE conflicts with itself and with every
// write, not with plain reads) is scoped to this schema's audit table, so
// stores in other schemas of the same database do not contend. "" on
// SQLite, whose write transactions are already exclusive.
func (d *dialect) lockAuditSQL() string {
	if d.postgres {
		return "LOCK TABLE audit IN SHARE ROW EXCLUSIVE MODE"
	}
	return ""
}

// retryable reports whether err aborted a transaction that may simply be
// run again: on PostgreSQL a serialization failure (40001), a deadlock the
// server broke (40P01), or a lost race for the next audit sequence number
// (a unique violation of audit_pkey, see appendAudit); on SQLite a busy or
// locked database that outlasted the busy timeout.
func (d *dialect) retryable(err error) bool {
	if err == nil {
		return false
	}
	if d.postgres {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return false
		}
		switch pe.Code {
		case "40001", "40P01":
			return true
		case "23505":
			return pe.ConstraintName == "audit_pkey"
		}
		return false
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// maxTxAttempts bounds the runs of one write transaction that keeps failing
// with retryable errors. On SQLite each attempt has already waited out the
// 5 s busy timeout, so a few are plenty; on PostgreSQL a retry follows a
// deadlock or a lost race, cheap to run again.
func (d *dialect) maxTxAttempts() int {
	if d.postgres {
		return 8
	}
	return 3
}

// translateMigration adapts a migration to the dialect. Migrations are
// written once, in SQLite's DDL restricted to what PostgreSQL also accepts,
// with type names in upper case and identifiers in lower case. On
// PostgreSQL, outside string literals, quoted identifiers and comments:
//
//	INTEGER        → BIGINT            (times are unix nanoseconds)
//	REAL           → DOUBLE PRECISION  (SQLite's REAL is 8 bytes)
//	BLOB           → BYTEA
//	TEXT           → TEXT COLLATE "C"  (bytewise comparison, as in SQLite)
//	WITHOUT ROWID  → (dropped: PostgreSQL tables have no rowid)
//
// and a comment line "-- postgres: SQL" becomes "SQL" (for the rare clause
// only PostgreSQL needs; SQLite reads a comment). Only upper-case words are
// types: a column named "text" or "real" is left alone. On SQLite the text
// is used as written.
func (d *dialect) translateMigration(src string) string {
	if !d.postgres {
		return src
	}
	var b strings.Builder
	b.Grow(len(src) + 256)
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\'' || c == '"':
			j := skipQuoted(src, i, c)
			b.WriteString(src[i:j])
			i = j
			continue
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			j := strings.IndexByte(src[i:], '\n')
			if j < 0 {
				j = len(src) - i
			}
			line := src[i : i+j]
			if rest, ok := strings.CutPrefix(line, "-- postgres:"); ok {
				b.WriteString(d.translateMigration(strings.TrimPrefix(rest, " ")))
			} else {
				b.WriteString(line)
			}
			i += j
			continue
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			j := skipBlockComment(src, i)
			b.WriteString(src[i:j])
			i = j
			continue
		case isWordByte(c):
			j := i
			for j < len(src) && isWordByte(src[j]) {
				j++
			}
			word := src[i:j]
			switch word {
			case "INTEGER":
				b.WriteString("BIGINT")
			case "REAL":
				b.WriteString("DOUBLE PRECISION")
			case "BLOB":
				b.WriteString("BYTEA")
			case "TEXT":
				b.WriteString(`TEXT COLLATE "C"`)
			case "WITHOUT":
				// WITHOUT ROWID, possibly across whitespace.
				k := j
				for k < len(src) && (src[k] == ' ' || src[k] == '\t' || src[k] == '\n' || src[k] == '\r') {
					k++
				}
				if strings.HasPrefix(src[k:], "ROWID") && (k+5 == len(src) || !isWordByte(src[k+5])) {
					j = k + 5
					break
				}
				b.WriteString(word)
			default:
				b.WriteString(word)
			}
			i = j
			continue
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// entityPrefixCond is the condition by which a PostgreSQL query by entity
// finds its rows in an entity index (alerts_entity_idx,
// finding_log_entity_idx; migration 0018): those indexes hold the first
// 512 characters of entity_id, so that an attacker's long entity (a
// 64 KiB principal) does not exceed a btree entry and fail its batch. Its
// one parameter is the entity's id, also compared whole.
const entityPrefixCond = "substr(entity_id, 1, 512) = substr(?, 1, 512)"
