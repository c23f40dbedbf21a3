package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationSteps are Go steps run after a migration's SQL, in its
// transaction, for what SQL alone cannot do (re-encoding data).
var migrationSteps = map[int]func(ctx context.Context, s *Store, tx *sql.Tx) error{
	8:  convertLedgerCells,
	17: convertFindingKeys,
	18: shortenStoredKeys,
}

type migration struct {
	version int
	name    string
	sql     string
}

var (
	migrationsOnce sync.Once
	migrationList  []migration
	migrationsErr  error
)

// migrations returns the embedded migrations in version order. Files are
// named NNNN_description.sql and must number 1, 2, 3, … without gaps.
func migrations() ([]migration, error) {
	migrationsOnce.Do(func() {
		migrationList, migrationsErr = loadMigrations(migrationFS)
	})
	return migrationList, migrationsErr
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version and '_'", base)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// SchemaVersion returns the latest schema version this binary knows.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		panic(err) // embedded at build time; covered by tests
	}
	return len(ms)
}

// migrationLockSQL takes (and migrationUnlockSQL releases) a PostgreSQL
// session advisory lock keyed by the current schema, so that of several
// workers starting at once exactly one migrates and the others wait, then
// find nothing left to do. Stores in other schemas do not contend.
const (
	migrationLockSQL   = `SELECT pg_advisory_lock(hashtextextended('haechi.migrate.' || current_schema(), 0))`
	migrationUnlockSQL = `SELECT pg_advisory_unlock(hashtextextended('haechi.migrate.' || current_schema(), 0))`
)

// migrationConn is what migrating needs: *sql.DB (SQLite) or the *sql.Conn
// holding the advisory lock (PostgreSQL).
type migrationConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

func (s *Store) migrate(ctx context.Context) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	s.writeLock()
	defer s.writeUnlock()
	if !s.dialect.postgres {
		return s.migrateOn(ctx, s.db, ms)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, migrationLockSQL); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.ExecContext(context.WithoutCancel(ctx), migrationUnlockSQL); uerr != nil {
			// Never return a connection that may still hold the lock to
			// the pool: closing the session releases it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			if err == nil {
				err = fmt.Errorf("release the migration lock: %w", uerr)
			}
		}
	}()
	return s.migrateOn(ctx, conn, ms)
}

func (s *Store) migrateOn(ctx context.Context, db migrationConn, ms []migration) error {
	latest := len(ms)
	if _, err := db.ExecContext(ctx, s.dialect.translateMigration(`CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
)`)); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	cur, err := schemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if cur > latest {
		return fmt.Errorf("store schema version %d is newer than this haechi (%d); upgrade haechi", cur, latest)
	}
	for _, m := range ms {
		if m.version <= cur {
			continue
		}
		applied, err := s.applyMigration(ctx, db, m, latest)
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
		if applied {
			s.logger.Info("store: applied migration", "version", m.version, "name", m.name, "path", s.path)
		}
	}
	return nil
}

// applyMigration applies m in its own transaction (PostgreSQL's DDL is
// transactional too). The version is re-read inside the transaction: on
// SQLite (an immediate, so write-locked, transaction) another process may
// have migrated the same file meanwhile; on PostgreSQL the advisory lock
// already excludes that.
func (s *Store) applyMigration(ctx context.Context, db migrationConn, m migration, latest int) (applied bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	cur, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	if cur > latest {
		return false, fmt.Errorf("store schema version %d is newer than this haechi (%d); upgrade haechi", cur, latest)
	}
	if cur >= m.version {
		return false, tx.Rollback()
	}
	if cur != m.version-1 {
		return false, fmt.Errorf("schema version is %d, expected %d", cur, m.version-1)
	}
	if _, err := tx.ExecContext(ctx, s.dialect.translateMigration(m.sql)); err != nil {
		return false, err
	}
	if step := migrationSteps[m.version]; step != nil {
		if err := step(ctx, s, tx); err != nil {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
		m.version, time.Now().UnixNano()); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q queryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
