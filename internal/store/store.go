// Package store persists alerts, with the findings folded into them, the
// response outbox, the audit log and the access ledger, in an embedded
// SQLite database (modernc.org/sqlite, pure Go) or, when several haechi
// processes share state, in PostgreSQL (github.com/jackc/pgx/v5 through its
// database/sql adapter). Both sit behind the one *Store API; the
// differences between them are in dialect.go, and PostgreSQL's connection
// plumbing in postgres.go (docs/store.md).
//
// Contract:
//
//   - Open(ctx, target, …) opens PostgreSQL when target is a postgres:// or
//     postgresql:// URL, else SQLite in the directory target.
//   - On SQLite, Open creates the directory (0o750) if needed and the
//     database file <dir>/haechi.db (0o600), in WAL mode with busy_timeout
//     5000 ms, foreign keys on and synchronous NORMAL. It applies pending
//     schema migrations, each in its own transaction, and refuses a
//     database whose schema version is newer than SchemaVersion.
//   - On PostgreSQL, Open connects to the database the URL names (its
//     schema is the URL's search_path, by default public, and must exist),
//     takes a session advisory lock for the schema while it migrates (so
//     workers starting together apply each migration once) and applies the
//     same migrations, translated by the dialect.
//   - An alert is identified by its ID. SaveAlerts upserts a batch of alerts
//     in one transaction and replaces each alert's stored findings with the
//     ones it carries; a batch either commits whole or not at all.
//   - Times are stored as UTC unix nanoseconds and read back as UTC
//     time.Time; the zero time is stored as 0 and read back as the zero time
//     (so the instant 1970-01-01T00:00:00Z itself also reads back as zero).
//     Times outside the years 1678–2262 cannot be represented.
//   - Finding.Immediate is not stored and reads back false. A NaN score is
//     stored as NULL and reads back 0. Findings and Evidence read back as
//     non-nil (possibly empty) slices.
//   - ListAlerts returns newest first, by time then ID, both descending.
//   - The audit log is one chain: each entry's prev_hash is the previous
//     entry's hash. With Options.AuditKey every appended entry's hash is an
//     HMAC-SHA-256 under that key (AuditSchemeHMAC); entries from before
//     the key are plain SHA-256 (AuditSchemeSHA256), and a store without
//     the key refuses to append after a keyed entry (ErrNoAuditKey).
//     Verifying the chain is respond.VerifyAudit's job.
//   - A Writer takes alerts off the hot path: Put enqueues (blocking when the
//     queue is full, never dropping), Run batches and commits them, retrying
//     failed batches, and Close drains everything queued before returning.
//
// A Store is safe for concurrent use. On SQLite, writes from one process are
// serialised in-process; several processes may share a database, relying on
// SQLite's locking and the busy timeout. On PostgreSQL, any number of
// processes may share a database: transactions run at READ COMMITTED, and
// every read-modify-write either is one statement (upserts with ON CONFLICT,
// conditional updates) or row-locks what it reads (ledger merges, approval
// decisions, outbox claims); the audit log's sequence number is its primary
// key and its appenders queue on a lock of the audit table, so the hash
// chain stays one chain. Transactions that fail with a serialization
// failure or a deadlock are retried.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// FileName is the database file's name inside the store directory.
const FileName = "haechi.db"

// maxOpenConns bounds the connection pool: every modernc connection carries
// its own page cache and libc state, and WAL lets readers run beside the one
// writer, so a handful is plenty.
const maxOpenConns = 4

// ErrNotFound is returned (wrapped) when a requested alert does not exist.
var ErrNotFound = errors.New("not found")

// Options configure Open.
type Options struct {
	// Logger receives migration and diagnostic messages; nil discards them.
	Logger *slog.Logger
	// AuditKey, when set, is the audit key (AuditKeySize bytes, kept
	// outside the database): every audit entry this store appends is then
	// MACed with it (AuditSchemeHMAC). Without it entries are plain SHA-256
	// (AuditSchemeSHA256) while the log holds no keyed entry, and appending
	// is refused (ErrNoAuditKey) once it does. Every process that appends to
	// one log must use the same key (docs/response.md).
	AuditKey []byte
	// Incidents, when set, keeps incidents as alerts are saved
	// (IncidentKeeper); nil: alerts are stored without incidents.
	Incidents IncidentKeeper
	// IncidentNotice, when set, turns an incident event — "opened",
	// "grew" (IncidentTx.Notify) or "state_changed" (SetIncidentVerdict)
	// — into an outbox action written in the same transaction (the
	// outbox's delivery guarantee); a nil action writes none, an error
	// aborts the transaction.
	IncidentNotice func(kind string, in Incident, detail any) (*Action, error)
	// LedgerEngine is where an embedded (SQLite) store keeps the access
	// ledger: LedgerSQLite (its tables), LedgerPebble (a pebble LSM in
	// <dir>/ledger, see LedgerKV), or "" — pebble when <dir>/ledger exists,
	// else the tables. A store whose ledger is in pebble stays there:
	// LedgerSQLite over it is refused. A PostgreSQL store keeps its ledger
	// in its tables (shared by every worker); LedgerPebble is refused.
	LedgerEngine string
}

// Ledger engines (Options.LedgerEngine).
const (
	LedgerSQLite = "sqlite"
	LedgerPebble = "pebble"
)

// LedgerDirName is the pebble ledger's directory inside the store
// directory.
const LedgerDirName = "ledger"

// Store is an open alert database.
type Store struct {
	db      *sql.DB
	path    string
	logger  *slog.Logger
	dialect *dialect
	// auditKey is Options.AuditKey (nil: none); see appendAudit.
	auditKey []byte
	// incidents is Options.Incidents (nil: none).
	incidents      IncidentKeeper
	incidentNotice func(kind string, in Incident, detail any) (*Action, error)

	// writeMu serialises write transactions from this process so they queue
	// here instead of spinning in SQLite's busy handler. Unused on
	// PostgreSQL (see writeLock).
	writeMu sync.Mutex
	// stmts are the alert writer's prepared statements (writestmts.go).
	stmts stmtCache

	// ledgerDir is the pebble ledger's directory ("" : the ledger is in
	// the tables); kv is opened on first use (kvMu), so that commands
	// that never read the ledger do not take pebble's lock.
	ledgerDir string
	kvMu      sync.Mutex
	kv        *LedgerKV

	closeOnce sync.Once
	closeErr  error
}

// Open opens the store target names — a PostgreSQL database when target is
// a postgres:// or postgresql:// URL (see IsPostgresDSN), else the SQLite
// database in the directory target, created if needed — and migrates it to
// the latest schema version.
func Open(ctx context.Context, target string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.AuditKey != nil && len(opts.AuditKey) != AuditKeySize {
		return nil, fmt.Errorf("open store: audit key is %d bytes, want %d", len(opts.AuditKey), AuditKeySize)
	}
	var (
		s   *Store
		err error
	)
	var ledgerDir string
	if IsPostgresDSN(target) {
		if opts.LedgerEngine == LedgerPebble {
			return nil, errors.New("open store: the pebble ledger is local to one process; a PostgreSQL store keeps the ledger in its tables")
		}
		s, err = openPostgres(ctx, target, opts)
	} else {
		if ledgerDir, err = pickLedgerDir(target, opts.LedgerEngine); err != nil {
			return nil, err
		}
		s, err = openSQLite(ctx, target, opts)
	}
	if err != nil {
		return nil, err
	}
	s.ledgerDir = ledgerDir
	if opts.AuditKey != nil {
		s.auditKey = append([]byte(nil), opts.AuditKey...)
	}
	s.incidents, s.incidentNotice = opts.Incidents, opts.IncidentNotice
	return s, nil
}

func openSQLite(ctx context.Context, dir string, opts Options) (*Store, error) {
	logger := opts.Logger
	if dir == "" {
		return nil, errors.New("open store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	path := filepath.Join(abs, FileName)
	// Create the file ourselves so it (and the -wal/-shm files SQLite gives
	// the same mode) is not world-readable.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}

	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)

	s := &Store{db: db, path: path, logger: logger, dialect: sqliteDialect}
	if err := s.init(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	return s, nil
}

// dsn builds a "file:" URI for path (escaping characters such as '?' and
// '%' that would otherwise be taken as URI syntax) with the connection
// pragmas every pooled connection applies when it is opened. _txlock makes
// every transaction BEGIN IMMEDIATE: the store only uses transactions to
// write, and taking the write lock up front avoids the deadlock-prone
// read-to-write upgrade.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(on)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	if !strings.HasPrefix(u.Path, "/") { // Windows drive paths
		u.Path = "/" + u.Path
	}
	return u.String()
}

func (s *Store) init(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return err
	}
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		s.logger.Warn("store: WAL journal mode not in effect", "path", s.path, "journal_mode", mode)
	}
	return s.migrate(ctx)
}

// Path returns the database file's path, or for PostgreSQL the URL with
// any password redacted.
func (s *Store) Path() string { return s.path }

// Backend returns "sqlite" or "postgres".
func (s *Store) Backend() string { return s.dialect.String() }

// writeLock serialises this process's write transactions on SQLite (see
// writeMu). On PostgreSQL it does nothing: transactions from this and other
// processes run concurrently and the server orders them.
func (s *Store) writeLock() {
	if !s.dialect.postgres {
		s.writeMu.Lock()
	}
}

func (s *Store) writeUnlock() {
	if !s.dialect.postgres {
		s.writeMu.Unlock()
	}
}

// writeTx runs fn in a write transaction (under writeLock) and commits it,
// running it again — fn must be safe to repeat — when the transaction fails
// with a retryable error: a PostgreSQL serialization failure or deadlock,
// or a SQLite database still busy after the busy timeout.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.writeTxOn(ctx, nil, fn)
}

// writeTxOn is writeTx with each attempt's transaction begun on the
// connection conn returns (released after the transaction ends), or on
// the pool when conn is nil.
func (s *Store) writeTxOn(ctx context.Context, conn func(context.Context) (*sql.Conn, func(), error),
	fn func(tx *sql.Tx) error) error {
	s.writeLock()
	defer s.writeUnlock()
	backoff := 2 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.runTx(ctx, conn, fn)
		if err == nil || attempt == s.dialect.maxTxAttempts() || !s.dialect.retryable(err) {
			return err
		}
		s.logger.Debug("store: retrying transaction", "attempt", attempt, "err", err)
		// Jitter keeps two transactions that deadlocked from colliding again.
		d := backoff/2 + rand.N(backoff) // #nosec G404 -- retry jitter; unpredictability is not needed
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

func (s *Store) runTx(ctx context.Context, conn func(context.Context) (*sql.Conn, func(), error),
	fn func(tx *sql.Tx) error) (err error) {
	var tx *sql.Tx
	if conn == nil {
		tx, err = s.db.BeginTx(ctx, nil)
	} else {
		var c *sql.Conn
		var release func()
		if c, release, err = conn(ctx); err == nil {
			defer release() // after the commit or rollback below
			tx, err = c.BeginTx(ctx, nil)
		}
	}
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	committed := false
	defer func() {
		// An error or a panic of fn: rolled back before the connection is
		// released (a Conn does not close under an open transaction).
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	committed = true
	return nil
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.kvMu.Lock()
		if s.kv != nil {
			if err := s.kv.Close(); err != nil {
				s.closeErr = fmt.Errorf("close ledger %s: %w", s.ledgerDir, err)
			}
		}
		s.kvMu.Unlock()
		s.stmts.close()
		if err := s.db.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}
