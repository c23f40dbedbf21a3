package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// The alert writer's transactions (saveBatch, SaveAlerts, SaveFindings)
// run the same few multi-row statements commit after commit. Parsing one
// of 64 rows of 21 parameters costs as much as running it, so they are
// prepared once per pooled connection and kept (stmtCache), and a chunk
// shorter than saveChunk rows — a batch's last — is written as statements
// of 32, 16, 8, 4, 2 and 1 rows, each prepared once, instead of one
// statement of its own length parsed every time. The rows, their order
// and so their rowids are the same either way.

// stmtCache holds the prepared statements of the alert writer's
// transactions, by query text. A *sql.Stmt of the pool is prepared on
// each connection the first time a transaction on it uses it
// (sql.Tx.StmtContext) and reused there after.
type stmtCache struct {
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	closed bool
	// perTx, set by tests only, restores the old path: the full-size
	// statement prepared once per transaction and shorter chunks run
	// unprepared, as one statement each.
	perTx bool
}

// txStmt returns query prepared for tx, from the cache.
func (s *Store) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	c := &s.stmts
	c.mu.Lock()
	st := c.m[query]
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, errors.New("store closed")
	}
	if st == nil {
		// Prepared on the pool (another connection, or this one's when it
		// is idle), then on tx's connection below.
		var err error
		if st, err = s.db.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		c.mu.Lock()
		switch prev := c.m[query]; {
		case c.closed:
			c.mu.Unlock()
			_ = st.Close()
			return nil, errors.New("store closed")
		case prev != nil: // another goroutine prepared it meanwhile
			c.mu.Unlock()
			_ = st.Close()
			st = prev
		default:
			if c.m == nil {
				c.m = map[string]*sql.Stmt{}
			}
			c.m[query] = st
			c.mu.Unlock()
		}
	}
	return tx.StmtContext(ctx, st), nil
}

// close closes the cached statements; txStmt fails after it.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, st := range c.m {
		_ = st.Close()
	}
	c.m = nil
}

// chunkStmt runs a multi-row statement of a transaction: n rows as one
// statement of saveChunk rows, or as statements of the powers of two n is
// the sum of, each from the store's statement cache.
type chunkStmt struct {
	s    *Store
	tx   *sql.Tx
	sql  func(n int) string
	cols int               // parameters a row
	by   map[int]*sql.Stmt // this transaction's statements, by rows
	full *sql.Stmt         // perTx: the full-size statement of this transaction
}

func newChunkStmt(s *Store, tx *sql.Tx, sql func(int) string, cols int) *chunkStmt {
	return &chunkStmt{s: s, tx: tx, sql: sql, cols: cols}
}

// exec runs the statement over n rows whose parameters are args (n ≤
// saveChunk, cols each).
func (c *chunkStmt) exec(ctx context.Context, n int, args []any) error {
	if len(args) != n*c.cols {
		return fmt.Errorf("store: %d parameters for %d rows of %d", len(args), n, c.cols)
	}
	if c.s.stmts.perTx {
		return c.execPerTx(ctx, n, args)
	}
	for n > 0 {
		k := saveChunk
		for k > n {
			k /= 2
		}
		st, err := c.stmt(ctx, k)
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, args[:k*c.cols]...); err != nil {
			return err
		}
		args, n = args[k*c.cols:], n-k
	}
	return nil
}

func (c *chunkStmt) stmt(ctx context.Context, rows int) (*sql.Stmt, error) {
	if st := c.by[rows]; st != nil {
		return st, nil
	}
	st, err := c.s.txStmt(ctx, c.tx, c.sql(rows))
	if err != nil {
		return nil, err
	}
	if c.by == nil {
		c.by = map[int]*sql.Stmt{}
	}
	c.by[rows] = st
	return st, nil
}

// execPerTx is exec as it was: the full-size statement prepared once per
// transaction, a shorter chunk run unprepared.
func (c *chunkStmt) execPerTx(ctx context.Context, n int, args []any) error {
	if n < saveChunk {
		_, err := c.tx.ExecContext(ctx, c.sql(n), args...)
		return err
	}
	if c.full == nil {
		st, err := c.tx.PrepareContext(ctx, c.sql(saveChunk))
		if err != nil {
			return err
		}
		c.full = st
	}
	_, err := c.full.ExecContext(ctx, args...)
	return err
}

// close releases what the transaction holds of its statements (the
// cached ones stay prepared on the connection).
func (c *chunkStmt) close() {
	for _, st := range c.by {
		_ = st.Close()
	}
	if c.full != nil {
		_ = c.full.Close()
	}
}

// oneStmt returns query prepared for tx: from the cache, or (perTx) for
// this transaction alone.
func (s *Store) oneStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if s.stmts.perTx {
		return tx.PrepareContext(ctx, query)
	}
	return s.txStmt(ctx, tx, query)
}

// writerTx is writeTx for transactions of large multi-row statements: the
// alert writer's, the ledger's flushes and the shared dictionary's
// assignments. On SQLite the
// transaction runs on a connection set to keep temporary files in memory
// for its duration (PRAGMA temp_store), which keeps each statement's
// statement journal — the pages a multi-row statement changes, kept to
// undo it alone on a constraint failure — in memory: past 64 KiB SQLite
// spills it to a temporary file otherwise, one write system call a page.
// The setting is put back before the connection returns to the pool, so
// other queries' sorts spill to disk as before.
func (s *Store) writerTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.dialect.postgres || s.stmts.perTx {
		return s.writeTx(ctx, fn)
	}
	return s.writeTxOn(ctx, s.memJournalConn, fn)
}

// memJournalConn returns a pooled connection set to temp_store MEMORY,
// and its release, which sets it back (or, failing that, drops the
// connection from the pool).
func (s *Store) memJournalConn(ctx context.Context) (*sql.Conn, func(), error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA temp_store = MEMORY"); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	release := func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA temp_store = DEFAULT"); err != nil {
			// Not back to the pool with the setting: close it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = conn.Close()
	}
	return conn, release, nil
}

// execTx runs query in tx, prepared from the cache (perTx: unprepared).
func (s *Store) execTx(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if s.stmts.perTx {
		return tx.ExecContext(ctx, query, args...)
	}
	st, err := s.txStmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// queryRowTx is execTx for a query of one row.
func (s *Store) queryRowTx(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if !s.stmts.perTx {
		if st, err := s.txStmt(ctx, tx, query); err == nil {
			return st.QueryRowContext(ctx, args...)
		}
	}
	return tx.QueryRowContext(ctx, query, args...) // perTx, or its error
}

// inList returns query with its "(?)" — an IN list — made of the
// placeholders of vals and its arguments: the arguments before the list
// (pre), then vals. From the cache the list is padded to the next power of
// two by repeating its last value, so that a few statements serve every
// length: an IN list is a set, and the rows are the same.
func (s *Store) inList(query string, pre []any, vals []string) (string, []any) {
	n := len(vals)
	if !s.stmts.perTx {
		n = 1
		for n < len(vals) {
			n *= 2
		}
	}
	args := make([]any, 0, len(pre)+n)
	args = append(args, pre...)
	for i := range n {
		args = append(args, vals[min(i, len(vals)-1)])
	}
	return strings.Replace(query, "(?)", "("+placeholders(n)+")", 1), args
}

// queryInTx runs query with its IN list of vals (inList) in tx.
func (s *Store) queryInTx(ctx context.Context, tx *sql.Tx, query string, pre []any, vals []string) (*sql.Rows, error) {
	q, args := s.inList(query, pre, vals)
	if s.stmts.perTx {
		return tx.QueryContext(ctx, q, args...)
	}
	st, err := s.txStmt(ctx, tx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// execInTx is queryInTx for a statement.
func (s *Store) execInTx(ctx context.Context, tx *sql.Tx, query string, vals []string) error {
	q, args := s.inList(query, nil, vals)
	_, err := s.execTx(ctx, tx, q, args...)
	return err
}

// execRowsTx runs the multi-row statement sql(n) over rows rows of args
// (cols each) in tx: from the cache as statements of the powers of two
// rows is the sum of, in order (perTx: one unprepared statement).
func (s *Store) execRowsTx(ctx context.Context, tx *sql.Tx, sql func(n int) string, cols, rows int, args []any) error {
	if s.stmts.perTx {
		_, err := tx.ExecContext(ctx, sql(rows), args...)
		return err
	}
	for rows > 0 {
		k := 1
		for k*2 <= rows {
			k *= 2
		}
		if _, err := s.execTx(ctx, tx, sql(k), args[:k*cols]...); err != nil {
			return err
		}
		args, rows = args[k*cols:], rows-k
	}
	return nil
}
