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
