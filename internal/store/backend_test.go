package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresEnv names the PostgreSQL server the integration tests use: a
// postgres:// URL of a database the tests may create and drop schemas in
// (.ci/run starts one; docs/store.md shows how to start one locally).
const postgresEnv = "HAECHI_TEST_POSTGRES"

// backend is one store implementation the suite runs against.
type backend struct {
	name string
	// target returns a fresh, empty location for Open (a directory, or a
	// DSN whose search_path is a new schema), removed when t ends.
	target func(t testing.TB) string
}

var (
	sqliteBackend   = backend{name: "sqlite", target: func(t testing.TB) string { return t.TempDir() }}
	postgresBackend = backend{name: "postgres", target: postgresTarget}
)

// eachBackend runs fn as a subtest per backend. The PostgreSQL subtest is
// skipped when HAECHI_TEST_POSTGRES is unset, fails when it is set and the
// server is unreachable, and runs in parallel with other tests (each in its
// own schema).
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range []backend{sqliteBackend, postgresBackend} {
		t.Run(b.name, func(t *testing.T) {
			if b.name == "postgres" {
				requirePostgres(t)
				t.Parallel()
			}
			fn(t, b)
		})
	}
}

// open opens a fresh, empty store of b, closed when t ends.
func (b backend) open(t testing.TB) *Store {
	t.Helper()
	return openAt(t, b.target(t))
}

func openAt(t testing.TB, target string) *Store {
	t.Helper()
	s, err := Open(t.Context(), target, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

var pgAdmin struct {
	once sync.Once
	db   *sql.DB
	dsn  string
	err  error
}

// requirePostgres skips t when HAECHI_TEST_POSTGRES is unset and fails it
// when it is set but the server cannot be reached.
func requirePostgres(t testing.TB) {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skip(postgresEnv + " not set: skipping the PostgreSQL backend (set it to a postgres:// URL; see docs/store.md)")
	}
	pgAdmin.once.Do(func() {
		pgAdmin.dsn = dsn
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			pgAdmin.err = err
			return
		}
		db := stdlib.OpenDB(*cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.PingContext(ctx); err != nil {
			_ = db.Close()
			pgAdmin.err = err
			return
		}
		db.SetMaxOpenConns(2)
		pgAdmin.db = db
	})
	if pgAdmin.err != nil {
		t.Fatalf("%s is set but PostgreSQL is unusable: %v", postgresEnv, pgAdmin.err)
	}
}

// postgresTarget creates a schema of its own for t and returns the DSN of
// HAECHI_TEST_POSTGRES with search_path set to it; the schema is dropped
// when t ends.
func postgresTarget(t testing.TB) string {
	t.Helper()
	requirePostgres(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "haechi_test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if _, err := pgAdmin.db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := pgAdmin.db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(pgAdmin.dsn)
	if err != nil {
		t.Fatalf("%s: %v", postgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
