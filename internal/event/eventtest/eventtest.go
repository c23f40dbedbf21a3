// Package eventtest holds what the tests of the packages that produce
// events (decode and the input formats) share: comparing decoded events
// with a golden file under testdata/, rewritten by `go test -update`.
//
// It registers the -update flag, so a test binary that imports it must not
// define a flag of that name itself. Import it from tests only.
package eventtest

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// CmpOpts compare events with go-cmp (netip.Addr by value).
var CmpOpts = cmp.Options{cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}

// Golden compares evs with testdata/<name>.golden.json, reporting the
// difference as a test error. With -update it first rewrites the file
// from evs (indented JSON, zero struct fields omitted).
func Golden(t testing.TB, name string, evs []event.Event) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		data, err := json.Marshal(evs, json.OmitZeroStructFields(true), jsontext.WithIndent("  "))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil { // #nosec G306 -- a golden file in the source tree (go test -update), readable like the rest of it
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	var want []event.Event
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, evs, CmpOpts); diff != "" {
		t.Errorf("events differ from %s (-want +got):\n%s", path, diff)
	}
}
