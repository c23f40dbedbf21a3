package demo_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/haechi-sec/haechi"

// TestOnlyTheCLIImportsDemo keeps the demo at the edge: no package under
// internal/ but the command line imports internal/demo, and the demo does
// not import the command line.
func TestOnlyTheCLIImportsDemo(t *testing.T) {
	root, err := filepath.Abs("..") // internal/
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
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
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		dir := filepath.ToSlash(filepath.Dir(rel))
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			switch {
			case p == module+"/internal/demo" && dir != "cli" && dir != "demo":
				t.Errorf("internal/%s imports %s: only the command line may", rel, p)
			case p == module+"/internal/cli" && dir == "demo":
				t.Errorf("internal/%s imports %s: the demo must not depend on the command line", rel, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 { // a vacuous pass: wrong root, renamed tree
		t.Errorf("only %d files checked under %s", checked, root)
	}
}
