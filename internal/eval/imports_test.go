package eval_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/haechi-sec/haechi"

// TestDetectionPathDoesNotImportSimulator keeps ground truth away from the
// detectors: no non-test file of any package under internal/ — except the
// simulator, the scorecard, the truth format, the CLI and the demo, which
// sit beside the detection path — imports internal/sim, internal/truth or
// internal/eval. Parsing imports directly keeps the test fast (no go list).
func TestDetectionPathDoesNotImportSimulator(t *testing.T) {
	root, err := filepath.Abs("..") // internal/
	if err != nil {
		t.Fatal(err)
	}
	exempt := []string{"sim", "eval", "cli", "truth", "demo"}
	forbidden := []string{"internal/sim", "internal/truth", "internal/eval"}

	under := func(rel, dir string) bool { return rel == dir || strings.HasPrefix(rel, dir+"/") }
	checked := map[string]bool{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if name := d.Name(); rel != "." && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			for _, e := range exempt {
				if under(rel, e) {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked[filepath.ToSlash(filepath.Dir(rel))] = true
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			for _, fb := range forbidden {
				if full := module + "/" + fb; p == full || strings.HasPrefix(p, full+"/") {
					t.Errorf("internal/%s imports %s: the detection path must not see ground truth or the simulator", rel, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Guard against a vacuous pass (wrong root, renamed tree).
	for _, must := range []string{"app", "engine", "event", "decode", "alert", "config", "detect/terminated"} {
		if !checked[must] {
			t.Errorf("internal/%s was not checked (checked: %v)", must, keys(checked))
		}
	}
	if _, err := os.Stat(filepath.Join(root, "..", "go.mod")); err != nil {
		t.Errorf("module root not found above %s: %v", root, err)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
