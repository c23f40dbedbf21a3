package cli_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// The command lines the packaging ships — the Containerfile's CMD and
// HEALTHCHECK, the systemd unit's ExecStart, the compose file's haechi
// command — parse with today's command line: a renamed command or flag
// fails here, not on a user's machine. Each is parsed with --help appended
// (kong stops at an unknown command or flag before it reaches --help, and
// prints the help, exit 0, when everything before it is known).
func TestDeployCommandLines(t *testing.T) {
	root := filepath.Join("..", "..")
	lines := map[string][]string{}

	// Containerfile: ENTRYPOINT is the binary; CMD and HEALTHCHECK CMD are
	// JSON arrays (the exec form).
	cf, err := os.ReadFile(filepath.Join(root, "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var logical []string
	var cont strings.Builder
	for sc := bufio.NewScanner(strings.NewReader(string(cf))); sc.Scan(); {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cont.WriteString(s + " ")
			continue
		}
		cont.WriteString(l)
		logical = append(logical, cont.String())
		cont.Reset()
	}
	for _, l := range logical {
		var form string
		switch {
		case strings.HasPrefix(l, "CMD "):
			form = strings.TrimPrefix(l, "CMD ")
			lines["Containerfile CMD"] = nil
		case strings.HasPrefix(l, "HEALTHCHECK "):
			_, form, _ = strings.Cut(l, " CMD ")
		case strings.HasPrefix(l, "ENTRYPOINT "):
			var ep []string
			if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "ENTRYPOINT ")), &ep); err != nil || len(ep) != 1 || ep[0] != "/usr/local/bin/haechi" {
				t.Errorf("ENTRYPOINT %q: want [\"/usr/local/bin/haechi\"] (%v)", l, err)
			}
			continue
		default:
			continue
		}
		var args []string
		if err := json.Unmarshal([]byte(form), &args); err != nil {
			t.Errorf("Containerfile: %q is not the exec form (a JSON array): %v", l, err)
			continue
		}
		if strings.HasPrefix(l, "HEALTHCHECK") {
			if len(args) == 0 || args[0] != "/usr/local/bin/haechi" {
				t.Errorf("HEALTHCHECK runs %q, want /usr/local/bin/haechi", args)
				continue
			}
			args = args[1:]
			lines["Containerfile HEALTHCHECK"] = args
			continue
		}
		lines["Containerfile CMD"] = args
	}

	// systemd: ExecStart, its ${…} variables standing for paths.
	unit, err := os.ReadFile(filepath.Join(root, "deploy", "haechi.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			f := strings.Fields(v)
			if f[0] != "/usr/local/bin/haechi" {
				t.Errorf("ExecStart runs %s", f[0])
			}
			lines["haechi.service ExecStart"] = f[1:]
		}
	}

	// compose: the haechi service's command.
	cy, err := os.ReadFile(filepath.Join(root, "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image   string   `yaml:"image"`
			Command []string `yaml:"command"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(cy, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, s := range []string{"haechi", "postgres", "redpanda"} {
		if compose.Services[s].Image == "" {
			t.Errorf("compose.yaml: no service %s with an image", s)
		}
	}
	lines["compose.yaml haechi"] = compose.Services["haechi"].Command

	for _, name := range []string{"Containerfile CMD", "Containerfile HEALTHCHECK", "haechi.service ExecStart", "compose.yaml haechi"} {
		args, ok := lines[name]
		if !ok || len(args) == 0 {
			t.Errorf("%s: not found", name)
			continue
		}
		code, stdout, stderr := run(t, append(append([]string{}, args...), "--help")...)
		if code != 0 || !strings.Contains(stdout, "Usage: haechi") {
			t.Errorf("%s: haechi %s does not parse: exit %d\n%s", name, strings.Join(args, " "), code, stderr)
		}
	}
}
