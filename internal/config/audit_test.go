package config

import (
	"path/filepath"
	"testing"
)

func TestAuditPaths(t *testing.T) {
	for _, tc := range []struct {
		name             string
		edit             func(c *Config)
		key, witnessFile string
	}{
		{"defaults", func(c *Config) {}, "haechi-data.audit.key", "haechi-data.audit-witness"},
		{"absolute data dir", func(c *Config) { c.DataDir = "/var/lib/haechi/" }, "/var/lib/haechi.audit.key", "/var/lib/haechi.audit-witness"},
		{"data dir is the working directory", func(c *Config) { c.DataDir = "." }, "haechi.audit.key", "haechi.audit-witness"},
		{"configured", func(c *Config) {
			c.Audit.KeyFile, c.Audit.Witness.File = "/etc/haechi/audit.key", "/mnt/witness/haechi"
		}, "/etc/haechi/audit.key", "/mnt/witness/haechi"},
		{"witness disabled", func(c *Config) { c.Audit.Witness.Enabled = false }, "haechi-data.audit.key", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			if got := c.AuditKeyFile(); got != filepath.FromSlash(tc.key) {
				t.Errorf("AuditKeyFile = %q, want %q", got, tc.key)
			}
			if got := c.AuditWitnessFile(); got != filepath.FromSlash(tc.witnessFile) {
				t.Errorf("AuditWitnessFile = %q, want %q", got, tc.witnessFile)
			}
		})
	}
}
