package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/store"
)

// auditTail returns the audit entries after the first n, and the count.
func auditTail(t *testing.T, data string, n int) ([]store.AuditRecord, int) {
	t.Helper()
	st, err := store.Open(context.Background(), data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.AuditLog(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return recs[n:], len(recs)
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// scope, scope --export and report read the ledger from the command line:
// each is audited like the API's and console's reads, naming the OS user;
// a refused export is not. Exported files are the owner's only (0600),
// and a wrong extension or a bad CIDR leaves an existing file untouched.
func TestCLIReadsAuditedAndExportsPrivate(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := run(t, "replay", "--data-dir", data, contractPath)
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, stderr)
	}
	forged := byDetector(alerts(t, stdout))["token_provenance"].ID
	_, n := auditTail(t, data, 0)
	out := t.TempDir()

	// A wrong extension, or a bad CIDR, is refused before the file is
	// touched, and nothing is audited.
	kept := filepath.Join(out, "ids.txt")
	writeFile(t, kept, "keep me\n")
	if code, _, stderr := run(t, "scope", "--data-dir", data, "--key", "auth-2022-11", "--export", kept); code != 2 || !strings.Contains(stderr, ".csv or .ndjson") {
		t.Errorf("--export ids.txt: exit %d\n%s", code, stderr)
	}
	keptCSV := filepath.Join(out, "kept.csv")
	writeFile(t, keptCSV, "keep me\n")
	if code, _, stderr := run(t, "scope", "--data-dir", data, "--source", "45.77.0.0/99", "--export", keptCSV); code != 2 || !strings.Contains(stderr, "CIDR prefix") {
		t.Errorf("--source 45.77.0.0/99: exit %d\n%s", code, stderr)
	}
	for _, p := range []string{kept, keptCSV} {
		if got := readFile(t, p); got != "keep me\n" {
			t.Errorf("a refused export changed %s to %q", p, got)
		}
	}
	if recs, _ := auditTail(t, data, n); len(recs) != 0 {
		t.Errorf("refused exports were audited: %+v", recs)
	}

	// An export over an existing world-readable file leaves it 0600.
	csvPath := filepath.Join(out, "ids.csv")
	writeFile(t, csvPath, "old\n")
	if err := os.Chmod(csvPath, 0o644); err != nil {
		t.Fatal(err)
	}
	ndPath := filepath.Join(out, "ids.ndjson")
	mdPath := filepath.Join(out, "report.md")
	auditPath := filepath.Join(out, "audit.ndjson")
	for _, args := range [][]string{
		{"scope", "--data-dir", data, "--key", "auth-2022-11"},
		{"scope", "--data-dir", data, "--key", "auth-2022-11", "--export", csvPath},
		{"scope", "--data-dir", data, "--key", "auth-2022-11", "-o", "json", "--export", ndPath},
		{"report", "--data-dir", data, "--alert", forged, "--out", mdPath},
		{"report", "--data-dir", data, "--alert", forged, "-o", "json"},
	} {
		if code, _, stderr := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	if got := readFile(t, csvPath); !strings.HasPrefix(got, "record_type,record_id\n") || strings.Contains(got, "old") {
		t.Errorf("export:\n%s", got)
	}
	recs, _ := auditTail(t, data, n)
	want := []struct{ kind, export, format, file string }{
		{"scope_read", "", "", ""},
		{"scope_export", "csv", "", csvPath},
		{"scope_export", "ndjson", "", ndPath},
		{"report_read", "", "md", mdPath},
		{"report_read", "", "json", ""},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d audit entries, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		var d map[string]any
		if err := json.Unmarshal(recs[i].Detail, &d); err != nil {
			t.Fatal(err)
		}
		by, _ := d["by"].(string)
		file, _ := d["file"].(string)
		if recs[i].Kind != w.kind || !strings.HasPrefix(by, "cli:") || len(by) == len("cli:") || d["via"] != "cli" || file != w.file {
			t.Errorf("entry %d: %s %s, want %s by cli:<user> via cli, file %q", i, recs[i].Kind, recs[i].Detail, w.kind, w.file)
		}
		if strings.HasPrefix(w.kind, "scope") && (d["export"] != w.export || d["records"] != float64(2) || !strings.Contains(d["query"].(string), "key=auth-2022-11")) {
			t.Errorf("entry %d: %s, want export %q of 2 records for key=auth-2022-11", i, recs[i].Detail, w.export)
		}
		if w.kind == "scope_export" && d["complete"] != true {
			t.Errorf("entry %d: %s, want complete", i, recs[i].Detail)
		}
		if w.kind == "report_read" && (d["alert_id"] != forged || d["format"] != w.format || d["records"] != float64(2)) {
			t.Errorf("entry %d: %s, want alert %s format %s, 2 records", i, recs[i].Detail, forged, w.format)
		}
	}
	if code, _, stderr := run(t, "audit", "export", "--data-dir", data, "-o", auditPath); code != 0 {
		t.Fatalf("audit export: exit %d\n%s", code, stderr)
	}
	for _, p := range []string{csvPath, ndPath, mdPath, auditPath} {
		if m := mode(t, p); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", p, m)
		}
	}
	if code, out, _ := run(t, "audit", "verify", "--data-dir", data); code != 0 || !strings.Contains(out, "intact") {
		t.Errorf("audit verify: exit %d\n%s", code, out)
	}
}
