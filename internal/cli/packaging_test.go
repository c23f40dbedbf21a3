package cli_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/haechi-sec/haechi/internal/cli"
)

// TestMain lets a test run this test binary as haechi itself
// (HAECHI_TEST_RUN_CLI=1): a shell's completion request runs the binary
// the completion script names.
func TestMain(m *testing.M) {
	if os.Getenv("HAECHI_TEST_RUN_CLI") == "1" {
		os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestVersionFlag(t *testing.T) {
	code, byCmd, _ := run(t, "version")
	if code != 0 || !regexp.MustCompile(`^haechi \S+ \(revision \S+, date \S+(, modified)?; go\S+ \w+/\w+\)\n$`).MatchString(byCmd) {
		t.Fatalf("version: exit %d %q", code, byCmd)
	}
	code, byFlag, _ := run(t, "--version")
	if code != 0 || byFlag != byCmd {
		t.Errorf("--version: exit %d %q, want %q", code, byFlag, byCmd)
	}
}

// `haechi completion bash` loads in a real bash and registers haechi; the
// command it registers, run as bash runs it (COMP_LINE, COMP_POINT; the
// command, the word and the previous word as arguments), completes from
// haechi's own command line.
func TestCompletionLoadsInBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	code, script, stderr := run(t, "completion", "bash", "--bin", exe)
	if code != 0 {
		t.Fatalf("completion bash: exit %d %s", code, stderr)
	}
	file := filepath.Join(t.TempDir(), "haechi.bash")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	// set -e: a script bash cannot load fails here. The registered
	// command is then taken from bash's own record (complete -p).
	const driver = `set -euo pipefail
source "$1"
spec="$(complete -p haechi)"
echo "spec: $spec"
eval "set -- ${spec#complete -C }"
[ "$2" = haechi ] || { echo "registered for $2, not haechi" >&2; exit 1; }
bin="$1"
COMP_LINE="haechi rep" COMP_POINT=10 "$bin" haechi rep haechi
COMP_LINE="haechi completion " COMP_POINT=18 "$bin" haechi "" completion
COMP_LINE="haechi serve --lis" COMP_POINT=18 "$bin" haechi --lis serve
`
	cmd := exec.Command(bash, "--noprofile", "--norc", "-c", driver, "bash", file)
	cmd.Env = append(os.Environ(), "HAECHI_TEST_RUN_CLI=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("bash: %v\nstdout:\n%s\nstderr:\n%s\nscript:\n%s", err, out.String(), errb.String(), script)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if want := "spec: complete -C '" + exe + "' haechi"; lines[0] != want && lines[0] != "spec: complete -C "+exe+" haechi" {
		t.Errorf("bash recorded %q, want %q", lines[0], want)
	}
	got := lines[1:]
	slices.Sort(got)
	want := []string{"--listen", "bash", "fish", "replay", "report", "zsh"}
	if !slices.Equal(got, want) {
		t.Errorf("completions %q, want %q", got, want)
	}
}

// The zsh and fish scripts load in their shells where those exist.
func TestCompletionOtherShells(t *testing.T) {
	for _, sh := range []struct{ shell, check string }{
		{"zsh", `source "$1" && complete -p haechi >/dev/null 2>&1 || whence -w _bash_complete >/dev/null`},
		{"fish", `source $argv[1]; and functions -q __complete_haechi; and complete -c haechi | string match -q '*__complete_haechi*'`},
	} {
		code, script, stderr := run(t, "completion", sh.shell, "--bin", "/usr/local/bin/haechi")
		if code != 0 || !strings.Contains(script, "/usr/local/bin/haechi") {
			t.Fatalf("completion %s: exit %d %q %s", sh.shell, code, script, stderr)
		}
		path, err := exec.LookPath(sh.shell)
		if err != nil {
			t.Logf("%s: not installed; the script is only generated", sh.shell)
			continue
		}
		file := filepath.Join(t.TempDir(), "haechi."+sh.shell)
		if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(path, "-c", sh.check, sh.shell, file).CombinedOutput(); err != nil {
			t.Errorf("%s does not load the script: %v\n%s", sh.shell, err, out)
		}
	}
	if code, _, _ := run(t, "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
}

// The manual names every command and flag of the command line and is
// roff groff reads without a warning.
func TestManPage(t *testing.T) {
	code, page, stderr := run(t, "man")
	if code != 0 || !strings.HasPrefix(page, ".TH HAECHI 1 ") {
		t.Fatalf("man: exit %d %s\n%.300s", code, stderr, page)
	}
	// Every command of `haechi --help` has a section.
	code, help, _ := run(t, "--help")
	if code != 0 {
		t.Fatal("--help failed")
	}
	var cmds []string
	for _, m := range regexp.MustCompile(`(?m)^  (\w[\w-]*(?: [\w-]+)*)`).FindAllStringSubmatch(help, -1) {
		cmds = append(cmds, m[1])
	}
	if len(cmds) < 15 {
		t.Fatalf("found only %d commands in --help:\n%s", len(cmds), help)
	}
	for _, c := range cmds {
		if !strings.Contains(page, `.SS "haechi `+strings.ReplaceAll(c, "-", `\-`)) {
			t.Errorf("no section for %q", c)
		}
	}
	for _, flag := range []string{`\-\-config`, `\-\-version`, `\-\-listen`, `\-\-canary\-records`, `\-\-tls\-cert`} {
		if !strings.Contains(page, `\fB`+flag+`\fR`) {
			t.Errorf("flag %s missing", flag)
		}
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("no groff to read the page")
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}

func TestHealth(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"status":"unhealthy","error":"store: disk full"}`))
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	code, stdout, stderr := run(t, "health", "--url", srv.URL+"/healthz")
	if code != 0 || !strings.Contains(stdout, `{"status":"ok"}`) {
		t.Errorf("healthy: exit %d %q %q", code, stdout, stderr)
	}
	healthy.Store(false)
	code, _, stderr = run(t, "health", "--url", srv.URL+"/healthz")
	if code != 1 || !strings.Contains(stderr, "503") || !strings.Contains(stderr, "disk full") {
		t.Errorf("unhealthy: exit %d %q", code, stderr)
	}
	srv.Close()
	if code, _, _ = run(t, "health", "--url", srv.URL+"/healthz", "--timeout", "2s"); code != 1 {
		t.Errorf("no server: exit %d, want 1", code)
	}
	if code, _, _ = run(t, "health", "--url", "ftp://example.org/"); code != 2 {
		t.Errorf("ftp URL: exit %d, want 2", code)
	}
}
