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

// check returns a problem with the DSN, or "". Messages never repeat the
// DSN, which may carry a password.
func (s Store) check() string {
	if s.DSN == "" {
		return ""
	}
	if !strings.HasPrefix(s.DSN, "postgres://") && !strings.HasPrefix(s.DSN, "postgresql://") {
		return "want empty (SQLite in data_dir) or a postgres:// URL"
	}
	if _, err := url.Parse(s.DSN); err != nil {
		return "not a valid URL"
	}
	return ""
}
