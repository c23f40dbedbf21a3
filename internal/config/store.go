package config

import (
	"net/url"
	"strings"
)

// Store selects where haechi keeps alerts, the ledger, the outbox and the
// audit log (see package store and docs/store.md).
type Store struct {
	// DSN is empty for the embedded SQLite store in data_dir, or a
	// postgres:// or postgresql:// URL of a PostgreSQL database that several
	// haechi workers may share.
	DSN string `yaml:"dsn"`
	// LedgerEngine is where the embedded store keeps the access ledger:
	// "sqlite" (its tables) or "pebble" (an LSM in data_dir/ledger whose
	// flushes are blind merges; one process owns it). A store whose ledger
	// is in pebble stays there. With a PostgreSQL store (several workers)
	// the ledger is in PostgreSQL: only "sqlite" is valid.
	LedgerEngine string `yaml:"ledger_engine"`
	// LedgerDictCache is how many record ids the ledger's dictionary
	// remembers per generation (two generations, ≈ 80 bytes an id; a
	// generation also ends at 128 bytes of ids per entry, so long ids do
	// not lift the bound): ids met lately are numbered without asking the store
	// (docs/store.md, "The record-id dictionary in memory").
	LedgerDictCache int `yaml:"ledger_dict_cache"`
	// LedgerDictFilter is the size of the dictionary's Bloom filter of
	// stored ids, such as 4MiB: a new id it rules out is numbered without
	// a read. 1 % false positives at ≈ 870,000 ids per MiB; a fuller
	// filter means more look-ups, never a wrong number.
	LedgerDictFilter string `yaml:"ledger_dict_filter"`
}

// LedgerDictFilterBytes parses LedgerDictFilter (as
// Engine.MemoryLimitBytes parses a size).
func (s Store) LedgerDictFilterBytes() (int64, error) {
	if strings.TrimSpace(s.LedgerDictFilter) == "" {
		return 0, nil
	}
	return parseSize(s.LedgerDictFilter)
}

// StoreTarget is what store.Open takes: the PostgreSQL URL when one is
// configured, else the data directory.
func (c *Config) StoreTarget() string {
	if c.Store.DSN != "" {
		return c.Store.DSN
	}
	return c.DataDir
}

// check reports a problem with the DSN, paths relative to the store
// section. Messages never repeat the DSN, which may carry a password.
func (s Store) check(add addFunc) {
	switch s.LedgerEngine {
	case "sqlite":
	case "pebble":
		if s.DSN != "" {
			add("ledger_engine", "pebble is local to one process; with a PostgreSQL dsn the ledger is in PostgreSQL (want sqlite)")
		}
	default:
		add("ledger_engine", "want sqlite or pebble")
	}
	if s.LedgerDictCache < 1024 || s.LedgerDictCache > 1<<24 {
		add("ledger_dict_cache", "want 1024 to 16777216 record ids, got %d", s.LedgerDictCache)
	}
	if n, err := s.LedgerDictFilterBytes(); err != nil {
		add("ledger_dict_filter", "%s", err)
	} else if n < 64<<10 || n > 4<<30 {
		add("ledger_dict_filter", "want 64KiB to 4GiB, got %q", s.LedgerDictFilter)
	}
	if s.DSN == "" {
		return
	}
	if !strings.HasPrefix(s.DSN, "postgres://") && !strings.HasPrefix(s.DSN, "postgresql://") {
		add("dsn", "want empty (SQLite in data_dir) or a postgres:// URL")
		return
	}
	if _, err := url.Parse(s.DSN); err != nil {
		add("dsn", "not a valid URL")
	}
}
