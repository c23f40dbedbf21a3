package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/haechi-sec/haechi"

// A rule says which packages of the module a package may import (its
// non-test files). pkg and the entries of may are paths below the module;
// "x/..." stands for x and every package below it. A package is governed
// by the row naming it exactly, else by the longest "/..." row containing
// it; a package no row governs fails the test, so a new package states its
// place here.
type rule struct {
	pkg string
	may []string
	// planned marks a row for a package that does not exist yet (issue 18
	// moves code into it); every other row must govern a package, so a
	// rename cannot leave a rule checking nothing.
	planned bool
	why     string
}

var rules = []rule{
	// Entry.
	{pkg: "cmd/haechi", may: []string{"internal/cli"},
		why: "main only turns signals into a context and cli.Run's answer into an exit code"},
	{pkg: "internal/cli", may: []string{
		"internal/alert", "internal/alertfmt", "internal/api", "internal/app", "internal/auth", "internal/config",
		"internal/console", "internal/decode", "internal/demo", "internal/drill", "internal/eval", "internal/event",
		"internal/incident", "internal/input", "internal/ledger", "internal/report", "internal/respond", "internal/rules",
		"internal/sim", "internal/store", "internal/truth",
	}, why: "the command line runs the assembly and the read-side commands; it never reaches into the engine, detectors or spool, and the output side it wires by hand shrinks as app's builder grows"},

	// The assembly.
	{pkg: "internal/app", may: []string{
		"internal/alert", "internal/api", "internal/auth", "internal/clock", "internal/config",
		"internal/console", "internal/decode", "internal/detect/...", "internal/drill", "internal/engine",
		"internal/enrich", "internal/event", "internal/incident/track", "internal/ingest", "internal/input", "internal/kafka",
		"internal/extauthz", "internal/ledger", "internal/mint", "internal/prefilter", "internal/respond", "internal/rules", "internal/sigma", "internal/snap",
		"internal/spool", "internal/store",
	}, why: "app wires stages and surfaces; it never imports the command line, the simulator, the scorecard or the demo"},

	// Surfaces.
	{pkg: "gateway", may: nil,
		why: "the middleware Go gateways import: the standard library only, so it brings no dependency of haechi's"},
	{pkg: "internal/extauthz", may: []string{"gateway", "internal/mint"},
		why: "the Envoy ext_authz gRPC service is a surface over the mint registry, like the API's check routes"},
	{pkg: "internal/loadgen", may: nil,
		why: "the open-loop load generator of the check benchmarks: standard library only, imported by tests alone"},
	{pkg: "internal/longtext", may: nil,
		why: "long, incompressible text for the tests of fields longer than a store's index entry: standard library only, imported by tests alone"},
	{pkg: "internal/api", may: []string{
		"gateway", "internal/auth", "internal/decode", "internal/event", "internal/input", "internal/ledger", "internal/mint", "internal/store",
	}, why: "the HTTP API serves stages and the store; it never imports app, the console or cli"},
	{pkg: "internal/console", may: []string{
		"internal/alert", "internal/auth", "internal/event", "internal/incident", "internal/ledger", "internal/report", "internal/store",
	}, why: "the console reads the store and renders (the stored incident body is internal/incident's model); it never imports app, the engine or another surface"},
	{pkg: "internal/kafka", may: []string{
		"internal/alert", "internal/decode", "internal/engine", "internal/event", "internal/ledger",
		"internal/snap", "internal/store",
	}, why: "cluster mode runs the stages per partition; it never imports app, a surface or a detector (app hands it the detectors)"},
	{pkg: "internal/ingest", may: []string{
		"internal/api", "internal/decode", "internal/engine", "internal/event", "internal/input", "internal/spool",
	}, why: "durable ingest and tailing declare the pipeline they feed; they never import app"},

	// Beside the pipeline.
	{pkg: "internal/demo", may: []string{
		"internal/alert", "internal/app", "internal/auth", "internal/config", "internal/console", "internal/decode",
		"internal/eval", "internal/event", "internal/respond", "internal/sim", "internal/store",
	}, why: "the demo runs serve (app) and plays the simulator into it; its gateway is a client of the pipeline's outputs, its latency harness an alert sink of serve's; only cli imports it"},
	{pkg: "internal/eval", may: []string{
		"internal/alert", "internal/app", "internal/config", "internal/decode", "internal/event",
		"internal/incident", "internal/input/cloudtrail", "internal/ledger", "internal/mint", "internal/respond", "internal/truth",
	}, why: "the scorecard runs the assembly over events and reads ground truth (its gateway knows the cloud provider's dataset and can ask the mint registry inline); it never imports the simulator"},
	{pkg: "internal/sim", may: []string{"internal/event", "internal/truth"},
		why: "the simulator speaks only events and writes ground truth"},
	{pkg: "internal/truth", may: []string{"internal/event"},
		why: "ground truth is a format, readable without the simulator"},

	// Storage and output stages.
	{pkg: "internal/store", may: []string{"internal/event"},
		why: "the store keeps values of the vocabulary; no stage's logic lives in it"},
	{pkg: "internal/auth", may: []string{"internal/store"},
		why: "access control needs only its tables"},
	{pkg: "internal/drill", may: []string{"internal/alert", "internal/event"},
		why: "drills build contract events and watch alerts; serve (app) hands them the ingest path and the store"},
	{pkg: "internal/ledger", may: []string{"internal/engine", "internal/event", "internal/netname", "internal/store"},
		why: "the ledger's detectors are engine detectors writing to the store"},
	{pkg: "internal/report", may: []string{"internal/event", "internal/ledger", "internal/store"},
		why: "the incident report reads the store and the ledger's scope"},
	{pkg: "internal/respond", may: []string{"internal/alert", "internal/alertfmt", "internal/detect/...", "internal/event", "internal/sink", "internal/store"},
		why: "response consumes alerts and keeps its outbox and audit in the store; it may name detectors' finding kinds by their packages' constants"},
	{pkg: "internal/config", may: []string{"internal/drill", "internal/input", "internal/report", "internal/respond"},
		why: "configuration decodes the options of the formats, reports and playbooks it validates; it never imports app or a surface"},

	// The detection path.
	{pkg: "internal/alert", may: []string{"internal/event"},
		why: "the alert stage sees findings and watermarks only"},
	{pkg: "internal/sink", may: nil,
		why: "SIEM transports (Elasticsearch bulk, Splunk HEC, syslog) speak bytes; respond's dispatcher drives them from the outbox"},
	{pkg: "internal/alertfmt", may: []string{"internal/detect/...", "internal/event"},
		why: "renders alerts in SIEM formats (ECS, OCSF); it names detectors' finding kinds by their packages' constants for the ATT&CK table"},
	{pkg: "internal/incident", may: []string{"internal/event"},
		why: "incidents group alerts; what they need of events comes through the Facts interface they declare"},
	{pkg: "internal/incident/track", may: []string{"internal/event", "internal/incident", "internal/store"},
		why: "keeps incidents in the store as alerts are saved, with the grouping's rules from package incident"},
	{pkg: "internal/rules", may: []string{"internal/decode", "internal/engine", "internal/event", "internal/netname", "internal/prefilter"},
		why: "rules are engine detectors over the contract's fields"},
	{pkg: "internal/sigma", may: []string{"internal/event", "internal/prefilter"},
		why: "Sigma translation targets the contract's fields only"},
	{pkg: "internal/prefilter", may: []string{"internal/event"},
		why: "rule dispatch: the requirements rules state over the contract's fields, and their index"},
	{pkg: "internal/detect/...", may: []string{
		"internal/detect/baseline", "internal/detect/tokenuse", "internal/detect/urlpath", "internal/engine", "internal/event",
		"internal/memsize", "internal/netname", "internal/snap",
	}, why: "a detector is an engine.Detector over events, with shared leaf helpers; it imports no other detector and nothing outside the detection path"},
	{pkg: "internal/detect/detecttest", may: []string{"internal/decode", "internal/engine", "internal/event", "internal/input/cloudtrail", "internal/snap"},
		why: "the golden-test harness runs the real decoders (the contract's, CloudTrail's) and engine; only tests import it"},
	{pkg: "internal/detect/baseline", may: []string{"internal/event", "internal/snap"},
		why: "a shared leaf helper of detectors"},
	{pkg: "internal/mint", may: []string{"internal/detect/binding", "internal/detect/tokenuse", "internal/event", "internal/snap"},
		why: "the mint registry indexes mints as the token detector does (tokenuse) and judges binding with the binding detector's user agent families; the API and app use it, it uses no stage"},
	{pkg: "internal/detect/tokenuse", may: []string{"internal/event"},
		why: "a shared leaf helper of the detectors that keep state per token"},
	{pkg: "internal/detect/urlpath", may: nil,
		why: "a shared leaf helper of detectors"},
	{pkg: "internal/memsize", may: nil,
		why: "a leaf helper: estimates the heap a detector's state holds (engine.Footprinter), with the standard library only"},
	{pkg: "internal/engine", may: []string{"internal/clock", "internal/event", "internal/snap"},
		why: "the engine knows the detector interface it declares, never a detector or a stage after it"},
	{pkg: "internal/enrich", may: []string{"internal/event"},
		why: "enrichment fills events' fields before the engine"},
	{pkg: "internal/decode", may: []string{"internal/event"},
		why: "the event contract's decoder produces the vocabulary only"},
	{pkg: "internal/input", may: []string{"internal/decode", "internal/event", "internal/input/..."},
		why: "formats read through the contract's decoder"},
	{pkg: "internal/input/...", may: []string{"internal/decode", "internal/event", "internal/input/lines"},
		why: "one format per package, sharing only the line reader"},

	// The vocabulary and leaf helpers.
	{pkg: "internal/event", may: nil,
		why: "the domain vocabulary depends on nothing"},
	{pkg: "internal/event/eventtest", may: []string{"internal/event"},
		why: "the golden-file helper of event-producing packages' tests; only tests import it"},
	{pkg: "internal/clock", may: nil,
		why: "time is injected everywhere and depends on nothing"},
	{pkg: "internal/snap", may: nil,
		why: "checkpoint encoding depends on nothing"},
	{pkg: "internal/spool", may: nil,
		why: "the durable log stores bytes and knows nothing of events"},
	{pkg: "internal/netname", may: []string{"internal/event"},
		why: "address names for router keys, a leaf"},

	// Test harnesses.
	{pkg: "internal/faulttrial", may: nil, why: "the fault trial is a test of the binary"},
	{pkg: "internal/layout", may: nil, why: "this test"},
}

// testOnly are packages no non-test file imports, though a row's "/..."
// may cover them.
var testOnly = []string{"internal/detect/detecttest", "internal/event/eventtest", "internal/faulttrial", "internal/layout"}

// An exception is an edge the rules forbid and the code still has, with its
// way out. The test fails when an exception is no longer used: delete it.
type exception struct{ from, to, why string }

var exceptions = []exception{
	{"internal/console", "internal/api",
		"the console calls api.ScopeQuery; it moves to a home both import (the ledger's query)"},
}

// owners maps each third-party module non-test code may import to the
// packages that may import it (patterns as in rules), so a dependency has
// one owner and the stdlib-only packages stay so. A module missing here
// may be imported by tests only.
var owners = map[string][]string{
	"cel.dev/cel-go":                          {"internal/rules"},
	"github.com/RoaringBitmap/roaring/v2":     {"internal/console", "internal/ledger", "internal/store"},
	"github.com/alecthomas/kong":              {"internal/cli"},
	"github.com/bits-and-blooms/bloom/v3":     {"internal/ledger"},
	"github.com/cockroachdb/pebble/v2":        {"internal/store"},
	"github.com/go-json-experiment/json":      {"internal/decode", "internal/event/eventtest", "internal/input/..."},
	"github.com/google/go-cmp":                {"internal/event/eventtest"},
	"github.com/goccy/go-yaml":                {"internal/config", "internal/rules", "internal/sigma"},
	"github.com/jackc/pgx/v5":                 {"internal/store"},
	"github.com/mattn/go-isatty":              {"internal/cli"},
	"github.com/oschwald/maxminddb-golang/v2": {"internal/enrich"},
	"github.com/prometheus/client_golang": {
		"internal/alert", "internal/api", "internal/app", "internal/console", "internal/drill", "internal/engine", "internal/ingest", "internal/respond",
	},
	"github.com/prometheus/client_model":           {"internal/console"},
	"github.com/twmb/franz-go":                     {"internal/kafka"},
	"github.com/twmb/franz-go/pkg/kadm":            {"internal/kafka"},
	"github.com/willabides/kongplete":              {"internal/cli"},
	"github.com/posener/complete":                  {"internal/cli"},
	"modernc.org/sqlite":                           {"internal/store"},
	"golang.org/x/time":                            {"internal/api", "internal/extauthz"},
	"github.com/envoyproxy/go-control-plane/envoy": {"internal/extauthz"},
	"google.golang.org/grpc":                       {"internal/app", "internal/extauthz"},
	"google.golang.org/genproto/googleapis/rpc":    {"internal/extauthz"},
	"google.golang.org/protobuf":                   {"internal/extauthz"},
}

// match reports whether the module-relative path p is pattern or, for a
// pattern "x/...", x or below it.
func match(pattern, p string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == base || strings.HasPrefix(p, base+"/")
	}
	return p == pattern
}

func matchAny(patterns []string, p string) bool {
	return slices.ContainsFunc(patterns, func(pat string) bool { return match(pat, p) })
}

// governing returns the row that governs package p, or nil.
func governing(p string) *rule {
	var best *rule
	for i := range rules {
		r := &rules[i]
		if r.pkg == p {
			return r
		}
		if strings.HasSuffix(r.pkg, "/...") && match(r.pkg, p) && (best == nil || len(r.pkg) > len(best.pkg)) {
			best = r
		}
	}
	return best
}

type listed struct {
	ImportPath string
	Standard   bool
	DepOnly    bool
	Imports    []string
	Module     *struct{ Path string }
}

// list runs go list over the module: its packages and every dependency,
// with their non-test imports.
func list(t *testing.T) []listed {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	gobin, err := exec.LookPath("go") // go test puts its own GOROOT/bin first
	if err != nil {
		t.Fatalf("go list needs the go command: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-deps", "-json=ImportPath,Standard,DepOnly,Imports,Module", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImports checks every non-test import of every package of the module
// against rules, exceptions, testOnly and owners.
func TestImports(t *testing.T) {
	pkgs := list(t)
	moduleOf := map[string]string{} // import path → module path, third-party only
	for _, p := range pkgs {
		if !p.Standard && p.Module != nil && p.Module.Path != module {
			moduleOf[p.ImportPath] = p.Module.Path
		}
	}

	governed := map[string]bool{}   // rows that govern a package
	usedException := map[int]bool{} // exceptions the code still needs
	var mine []string               // module-relative paths checked
	for _, p := range pkgs {
		if p.DepOnly || p.Standard || !strings.HasPrefix(p.ImportPath+"/", module+"/") {
			continue
		}
		from := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		mine = append(mine, from)
		r := governing(from)
		if r == nil {
			t.Errorf("%s has no row in internal/layout's rules: add one saying what it may import and why", from)
			continue
		}
		governed[r.pkg] = true
		for _, imp := range p.Imports {
			if to, ok := strings.CutPrefix(imp, module+"/"); ok {
				if slices.Contains(testOnly, to) {
					t.Errorf("%s imports %s, which only tests may import", from, to)
					continue
				}
				if matchAny(r.may, to) {
					continue
				}
				if i := slices.IndexFunc(exceptions, func(e exception) bool { return e.from == from && e.to == to }); i >= 0 {
					usedException[i] = true
					continue
				}
				t.Errorf("%s imports %s; rule %q allows only %v (%s)", from, to, r.pkg, r.may, r.why)
				continue
			}
			mod, ok := moduleOf[imp]
			if !ok {
				continue // standard library
			}
			allowed, known := owners[mod]
			switch {
			case !known:
				t.Errorf("%s imports %s of module %s, which has no owner in internal/layout: name the package that owns it", from, imp, mod)
			case !matchAny(allowed, from):
				t.Errorf("%s imports %s; module %s belongs to %v", from, imp, mod, allowed)
			}
		}
	}

	for i, e := range exceptions {
		if !usedException[i] {
			t.Errorf("exception %s → %s is no longer used (%s): delete it, and the rule holds without it", e.from, e.to, e.why)
		}
	}
	for _, r := range rules {
		if !r.planned && !governed[r.pkg] {
			t.Errorf("rule %q governs no package: the package moved or was renamed; update the row", r.pkg)
		}
	}
	// Guard against a vacuous pass (wrong directory, go list answering
	// for another module).
	for _, must := range []string{"cmd/haechi", "internal/app", "internal/cli", "internal/event", "internal/engine", "internal/detect/token"} {
		if !slices.Contains(mine, must) {
			t.Errorf("%s was not checked (checked %d packages)", must, len(mine))
		}
	}
}

// TestMatch pins the pattern semantics the rules rely on.
func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, p string
		want       bool
	}{
		{"internal/detect/...", "internal/detect/token", true},
		{"internal/detect/...", "internal/detect", true},
		{"internal/detect/...", "internal/detective", false},
		{"internal/event", "internal/event", true},
		{"internal/event", "internal/eventx", false},
	} {
		if got := match(c.pattern, c.p); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.pattern, c.p, got, c.want)
		}
	}
	if r := governing("internal/detect/detecttest"); r == nil || r.pkg != "internal/detect/detecttest" {
		t.Errorf("detecttest governed by %+v", r)
	}
	if r := governing("internal/detect/token"); r == nil || r.pkg != "internal/detect/..." {
		t.Errorf("detect/token governed by %+v", r)
	}
}
