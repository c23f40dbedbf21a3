package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgMaxOpenConns bounds a PostgreSQL store's pool per process. Several
// processes share one server, so each keeps its share small; the server's
// max_connections must cover workers × pgMaxOpenConns.
const pgMaxOpenConns = 8

// IsPostgresDSN reports whether target names a PostgreSQL database (a
// postgres:// or postgresql:// URL) rather than a directory.
func IsPostgresDSN(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// openPostgres opens the database dsn names through pgx's database/sql
// adapter, with connections that rebind "?" placeholders.
func openPostgres(ctx context.Context, dsn string, opts Options) (*Store, error) {
	logger := opts.Logger
	redacted := RedactDSN(dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may quote the DSN, password included.
		return nil, fmt.Errorf("open store %s: invalid PostgreSQL URL", redacted)
	}
	db := sql.OpenDB(pgConnector{stdlib.GetConnector(*cfg), postgresDialect})
	db.SetMaxOpenConns(pgMaxOpenConns)
	db.SetMaxIdleConns(pgMaxOpenConns)

	s := &Store{db: db, path: redacted, logger: logger, dialect: postgresDialect}
	if err := s.initPostgres(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", redacted, err)
	}
	return s, nil
}

func (s *Store) initPostgres(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return err
	}
	var schema sql.NullString
	if err := s.db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("read current schema: %w", err)
	}
	if !schema.Valid {
		return errors.New("no schema in the search_path exists (create it, or fix search_path in the URL)")
	}
	return s.migrate(ctx)
}

// RedactDSN returns dsn with any password replaced by "xxxxx", for logs
// and errors. A string that is not a URL is returned as "postgres://…".
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// pgConnector wraps pgx's connector so that every connection rebinds "?"
// placeholders (see dialect.rebind).
type pgConnector struct {
	inner driver.Connector
	d     *dialect
}

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("pgx connector returned %T, not *stdlib.Conn", conn)
	}
	return &pgConn{Conn: sc, d: c.d}, nil
}

func (c pgConnector) Driver() driver.Driver { return c.inner.Driver() }

// pgConn is pgx's database/sql connection with statements rebound. The
// embedded *stdlib.Conn supplies every other driver interface
// (transactions, ping, session reset, named value checking).
type pgConn struct {
	*stdlib.Conn
	d *dialect
}

var (
	_ driver.ConnPrepareContext = (*pgConn)(nil)
	_ driver.ExecerContext      = (*pgConn)(nil)
	_ driver.QueryerContext     = (*pgConn)(nil)
	_ driver.ConnBeginTx        = (*pgConn)(nil)
	_ driver.NamedValueChecker  = (*pgConn)(nil)
	_ driver.SessionResetter    = (*pgConn)(nil)
	_ driver.Pinger             = (*pgConn)(nil)
)

// CheckNamedValue maps every string argument — of every statement, prepared
// or not — to one PostgreSQL can store (see pgText), then lets pgx take the
// argument as it is, as stdlib.Conn does.
func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	if s, ok := nv.Value.(string); ok {
		nv.Value = pgText(s)
	}
	return nil
}

// pgText returns s if PostgreSQL's text can hold it, else s with each NUL
// byte and each invalid UTF-8 sequence replaced by U+FFFD. SQLite stores
// any bytes; PostgreSQL rejects both, and one such string from an event (a
// principal "a\x00b") would otherwise fail its whole batch on every retry.
// Lookups go through the same mapping, so they still find what was
// written.
func pgText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(context.Background(), c.d.rebind(query))
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, c.d.rebind(query))
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, c.d.rebind(query), args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, c.d.rebind(query), args)
}
