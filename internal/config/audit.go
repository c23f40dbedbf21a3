package config

import (
	"path/filepath"
	"strings"
	"time"
)

// Audit configures what protects the audit log from the database's own
// writer (docs/response.md, "The audit log").
type Audit struct {
	// KeyFile holds the audit key: 64 hex digits, mode 0600 (serve creates
	// it on first start and refuses one group or others may read). Every
	// entry is MACed with it. "" → <data_dir>.audit.key, a file beside the
	// data directory. The environment variable HAECHI_AUDIT_KEY, when set,
	// is the key itself and takes precedence. Keep the key where whoever can
	// write the database cannot read it.
	KeyFile string `yaml:"key_file"`
	// Witness periodically exports the signed head of the log.
	Witness AuditWitness `yaml:"witness"`
}

// AuditWitness configures the witness: serve signs the audit log's newest
// (seq, hash) with an ed25519 key derived from the audit key and appends
// it to File, so verify can find entries removed from the end.
type AuditWitness struct {
	Enabled bool `yaml:"enabled"`
	// File is the append-only witness file ("" → <data_dir>.audit-witness,
	// beside the data directory). Point it at another filesystem or host.
	File string `yaml:"file"`
	// Every is how often the head is checked and, when it moved, signed;
	// serve also signs it on start and on a graceful stop.
	Every Duration `yaml:"every"`
}

// defaultAudit is Default's audit section.
func defaultAudit() Audit {
	return Audit{Witness: AuditWitness{Enabled: true, Every: Duration(time.Minute)}}
}

// AuditKeyFile returns the audit key file: audit.key_file, or by default
// <data_dir>.audit.key.
func (c *Config) AuditKeyFile() string {
	if c.Audit.KeyFile != "" {
		return c.Audit.KeyFile
	}
	return beside(c.DataDir, ".audit.key")
}

// AuditWitnessFile returns the witness file, or "" when the witness is
// disabled: audit.witness.file, or by default <data_dir>.audit-witness.
func (c *Config) AuditWitnessFile() string {
	if !c.Audit.Witness.Enabled {
		return ""
	}
	if c.Audit.Witness.File != "" {
		return c.Audit.Witness.File
	}
	return beside(c.DataDir, ".audit-witness")
}

// beside names a file next to dir: dir's cleaned path plus suffix.
func beside(dir, suffix string) string {
	d := filepath.Clean(dir)
	if d == "." || d == string(filepath.Separator) || strings.HasSuffix(d, string(filepath.Separator)) {
		d = filepath.Join(d, "haechi")
	}
	return d + suffix
}

// check reports problems with the audit section, paths relative to it.
func (a Audit) check(add addFunc) {
	if a.Witness.Enabled && a.Witness.Every.D() < time.Second {
		add("witness.every", "must be at least 1s, got %s", a.Witness.Every)
	}
}
