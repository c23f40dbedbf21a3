package store

import "testing"

// SetPerTxStatements makes s prepare the alert writer's statements per
// transaction and run them at their own length, as before the statement
// cache (for differential tests).
func SetPerTxStatements(s *Store) { s.stmts.perTx = true }

// DumpTables is dumpTables for external tests.
func DumpTables(t *testing.T, s *Store) map[string][]string { return dumpTables(t, s) }

// PostgresTarget is a fresh PostgreSQL schema for Open, dropped when t
// ends (HAECHI_TEST_POSTGRES must be set).
func PostgresTarget(t testing.TB) string {
	requirePostgres(t)
	return postgresTarget(t)
}
