package config

import (
	"errors"
	"fmt"
	"github.com/haechi-sec/haechi/internal/input"
	"github.com/haechi-sec/haechi/internal/respond"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var equateEmpty = cmpopts.EquateEmpty()

func TestDefaultValidates(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if d.Engine.QueueSize != 16384 || d.Engine.AllowedLateness.D() != 5*time.Minute ||
		d.Ingest.MaxBodyBytes != 16777216 || d.Ingest.MaxLineBytes != 1<<20 || d.Ingest.IdempotencyTTL.D() != 24*time.Hour || d.Ingest.IdempotencyMaxKeys != 1_000_000 ||
		d.Alerts.Window.D() != time.Hour || !d.Detectors.TerminatedIdentity.Enabled ||
		!d.Detectors.Canary.Enabled || d.Listen != "127.0.0.1:8470" || d.DataDir != "./haechi-data" ||
		d.Log != (Log{Level: "info", Format: "text"}) {
		t.Fatalf("unexpected defaults: %+v", d)
	}
}

// goodWant gives, per fixture in testdata/good, the expected Config.
var goodWant = map[string]func() Config{
	"empty.yml":         Default,
	"comments_only.yml": Default,
	"full.yml":          Default, // the example documents the defaults
	"durations.yml": func() Config {
		c := Default()
		c.Engine.AllowedLateness = Duration(36 * time.Hour)
		c.Alerts.Window = Duration(7 * 24 * time.Hour)
		c.Detectors.TerminatedIdentity.Grace = Duration(36 * time.Hour)
		return c
	},
	"custom.yml": func() Config {
		c := Default()
		c.DataDir = "/var/lib/haechi"
		c.Listen = "[::1]:9000"
		c.Log = Log{Level: "debug", Format: "json"}
		c.Engine.Shards = 4
		c.Engine.QueueSize = 1024
		c.Engine.AllowedLateness = Duration(90 * time.Second)
		c.Ingest.MaxBodyBytes = 1 << 20
		c.Detectors.TerminatedIdentity.Enabled = false
		c.Detectors.TerminatedIdentity.RosterFile = "roster.txt"
		c.Detectors.Canary.Records = []string{"007", "customers/4711", "4711"}
		c.Detectors.Canary.RecordsFile = "canaries.txt"
		return c
	},
	"inputs.yml": func() Config {
		c := Default()
		c.Inputs.Nginx = InputsNginx{UserField: "http_x_user_id", UserPrefix: "m:"}
		c.Inputs.Routes = []input.Route{{Method: "GET", Path: "/api/v2/members/{customer}/addresses", RecordType: "address",
			IDParam: "customer", UserParam: "customer", Action: "member.addresses.read", Fields: []string{"name", "phone", "address", "entrance_code"}}}
		c.Inputs.Mappings = map[string]input.Mapping{"orders-audit": {Dataset: "app.audit", Fields: map[string]input.FieldMap{
			"@timestamp":   {From: "ts", TimeLayout: "unix"},
			"event.action": {From: "op"},
			"user.id":      {From: "member", Prefix: "m:"},
			"records.ids":  {From: "target", Regex: ":(.+)$"},
		}}}
		return c
	},
	"kafka.yml": func() Config {
		c := Default()
		c.Store.DSN = "postgres://haechi@db.internal:5432/haechi"
		c.Kafka = Kafka{Brokers: []string{"kafka-1:9092", "kafka-2:9092"}, Topic: "events", Group: "haechi-prod",
			Prefix: "events-v2", ID: "worker-3", CheckpointEvery: 10000}
		return c
	},
	"anchors.yml": func() Config {
		c := Default()
		c.Log = Log{Level: "warn", Format: "json"}
		c.Engine.AllowedLateness = Duration(2 * time.Minute)
		c.Alerts.Window = Duration(2 * time.Minute)
		c.Detectors.TerminatedIdentity.Grace = Duration(2 * time.Minute)
		return c
	},
}

func TestGoodFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "good", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range files {
		base := filepath.Base(path)
		t.Run(base, func(t *testing.T) {
			got, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want, ok := goodWant[base]
			if !ok {
				t.Fatalf("no expectation for %s in goodWant", base)
			}
			if diff := cmp.Diff(want(), got, equateEmpty); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBadFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(path, ".yml") + ".err")
			if err != nil {
				t.Fatalf("every bad fixture needs a .err file: %v", err)
			}
			got, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", got)
			}
			if !reflect.DeepEqual(got, Config{}) {
				t.Errorf("Load returned a partial config with its error: %+v", got)
			}
			// Each non-empty line of the .err file must appear in the error.
			for line := range strings.Lines(string(want)) {
				line = strings.TrimRight(line, "\r\n")
				if line != "" && !strings.Contains(err.Error(), line) {
					t.Errorf("error %q\n  does not contain %q", err, line)
				}
			}
		})
	}
}

func TestMultipleProblemsReportedTogether(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "bad", "multiple_problems.yml"))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %T %v", err, err)
	}
	if len(ve.Problems) != 11 {
		t.Errorf("got %d problems, want 11:\n%s", len(ve.Problems), strings.Join(ve.Problems, "\n"))
	}
	for _, p := range ve.Problems {
		if path, _, ok := strings.Cut(p, ": "); !ok || strings.ContainsAny(path, " ") {
			t.Errorf("problem %q is not \"path: problem\"", p)
		}
	}
}

func TestValidationErrorFormat(t *testing.T) {
	e := &ValidationError{Problems: []string{"a: x", "b: y"}}
	if got, want := e.Error(), "invalid config: a: x; b: y"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// leafKeys lists every scalar or list key of t as a dotted yaml path.
func leafKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		k := yamlKey(f)
		if k == "" || k == "-" {
			panic("field without yaml key: " + f.Name)
		}
		if f.Type.Kind() == reflect.Struct {
			out = append(out, leafKeys(f.Type, join(prefix, k))...)
		} else {
			out = append(out, join(prefix, k))
		}
	}
	return out
}

// flatten lists the leaf keys of m; a key that is a leaf of Config (a
// map-typed setting such as respond.rate_limits) is not descended into.
func flatten(m map[string]any, prefix string, out *[]string, leaves map[string]bool) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok && !leaves[join(prefix, k)] {
			flatten(sub, join(prefix, k), out, leaves)
		} else {
			*out = append(*out, join(prefix, k))
		}
	}
}

// The commented example must name every key (it is the reference).
func TestFullExampleHasEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "good", "full.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	want := leafKeys(reflect.TypeFor[Config](), "")
	leaves := map[string]bool{}
	for _, k := range want {
		leaves[k] = true
	}
	flatten(m, "", &got, leaves)
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("full.yml keys differ from Config (-Config +full.yml):\n%s", diff)
	}
}

func TestEmptyMeansDefaults(t *testing.T) {
	for _, src := range []string{"", "\n", "# only a comment\n", "---\n", "---\n...\n", "null\n", "~", "---\n---\n", "&a ~\n", "--- &a null\n", "{}\n"} {
		got, err := Parse([]byte(src), "t.yml")
		if err != nil {
			t.Errorf("Parse(%q): %v", src, err)
			continue
		}
		if diff := cmp.Diff(Default(), got); diff != "" {
			t.Errorf("Parse(%q) differs from Default():\n%s", src, diff)
		}
	}
}

func TestNullKeepsDefault(t *testing.T) {
	src := "log:\nengine:\n  queue_size:\n  allowed_lateness:\nalerts: ~\ndetectors:\n  canary:\n    enabled:\n"
	got, err := Parse([]byte(src), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Default(), got); diff != "" {
		t.Errorf("differs from Default():\n%s", diff)
	}
}

func TestPartialSectionKeepsOtherDefaults(t *testing.T) {
	got, err := Parse([]byte("log:\n  level: debug\n"), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Log.Level = "debug"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"merge brings unknown key", "log: &l {level: warn}\nengine:\n  <<: *l\n", "engine.level: unknown key"},
		{"merge list", "log: &l {level: warn}\nalerts:\n  <<: [*l]\n", "alerts.level: unknown key"},
		{"alias to list into int", "detectors: {canary: {records: &r [a]}}\nengine: {shards: *r}\n", "2:18: engine.shards: want a whole number, got a list"},
		{"alias to number as duration", "engine:\n  shards: &n 3\nalerts:\n  window: *n\n", "4:11: alerts.window: duration 3 needs a unit"},
		{"tag", "alerts:\n  window: !!str 30m\n", "2:11: alerts.window: YAML tags (!!str) are not supported"},
		{"tag on section", "log: !!map {level: warn}\n", "log: YAML tags (!!map) are not supported"},
		{"tagged key", "!!str listen: ':1'\n", "keys must be plain strings"},
		{"infinity for int", "engine:\n  queue_size: .inf\n", "engine.queue_size: want a whole number, got number .inf"},
		{"negative infinity for int", "engine:\n  queue_size: -.inf\n", "want a whole number"},
		{"string for int", "engine:\n  shards: \"4\"\n", "engine.shards: want a whole number, got string \"4\""},
		{"exponent string for int", "ingest:\n  max_body_bytes: 1e6\n", "ingest.max_body_bytes: want a whole number"},
		{"list for string", "listen: [a]\n", "listen: want a string, got a list"},
		{"mapping for duration", "alerts:\n  window: {h: 1}\n", "alerts.window: want a duration"},
		{"float for string", "data_dir: 1.50\n", `quote it: "1.50"`},
		{"non-string key", "1: x\n", "keys must be plain strings"},
		{"unknown anchor", "listen: *nope\n", "t.yml:1:"},
		{"tab indentation", "log:\n\tlevel: info\n", "t.yml:2:"},
		{"self merge", "engine: &e\n  <<: *e\n", "t.yml:"},
		{"alias fan-out", laughs(), "aliases expand to too many values"},
		{"duration out of range", "alerts:\n  window: 200000d\n", "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "t.yml")
			if err == nil {
				t.Fatalf("Parse succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\n  does not contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		check     func(Config) bool
	}{
		{"integral float for int", "engine:\n  queue_size: 2.0\n", func(c Config) bool { return c.Engine.QueueSize == 2 }},
		{"bool as string", "data_dir: true\n", func(c Config) bool { return c.DataDir == "true" }},
		{"merge into section", "log: &l {level: warn}\nengine: {queue_size: 5}\n", func(c Config) bool { return c.Log.Level == "warn" && c.Log.Format == "text" }},
		{"quoted keys", "\"listen\": ':1'\n", func(c Config) bool { return c.Listen == ":1" }},
		{"block string", "data_dir: |-\n  /srv/h\n", func(c Config) bool { return c.DataDir == "/srv/h" }},
		{"trailing empty document", "listen: ':2'\n---\n", func(c Config) bool { return c.Listen == ":2" }},
		{"port zero", "listen: 'localhost:0'\n", func(c Config) bool { return c.Listen == "localhost:0" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.src), "t.yml")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}

func TestDecodeErrorUnwrapsToYAMLError(t *testing.T) {
	_, err := Parse([]byte("log:\n  level: a\n  level: b\n"), "t.yml")
	var ye yaml.Error
	if !errors.As(err, &ye) {
		t.Fatalf("want a yaml.Error inside %T %v", err, err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want ErrNotExist, got %v", err)
	}
}

// A Config written out with go-yaml reads back identically.
func TestMarshalRoundTrip(t *testing.T) {
	want, err := Load(filepath.Join("testdata", "good", "custom.yml"))
	if err != nil {
		t.Fatal(err)
	}
	want.Alerts.Window = Duration(36*time.Hour + 90*time.Second)
	want.Detectors.TerminatedIdentity.Grace = Duration(1500 * time.Millisecond)
	out, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(out, "marshalled")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if diff := cmp.Diff(want, got, equateEmpty); diff != "" {
		t.Errorf("(-want +got):\n%s\n%s", diff, out)
	}
}

func TestCanaryRecordIDs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "canaries.txt")
	content := "\ufeff# canary records\n  rec-1  \n\nrec-2 # planted 2026-01\nrec#3\n\t# indented comment\nrec-1\r\ncustomers/4711\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.Detectors.Canary.Records = []string{" customers/4711", "a", "a"}
	c.Detectors.Canary.RecordsFile = file
	got, err := c.CanaryRecordIDs()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"customers/4711", "a", "rec-1", "rec-2", "rec#3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	c.Detectors.Canary.RecordsFile = filepath.Join(dir, "missing.txt")
	if _, err := c.CanaryRecordIDs(); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "detectors.canary.records_file") {
		t.Errorf("missing file: got %v", err)
	}

	if ids, err := Default().CanaryRecordIDs(); err != nil || len(ids) != 0 {
		t.Errorf("defaults: got %v, %v", ids, err)
	}
}

// laughs builds sections that each merge the previous one many times over.
func laughs() string {
	var b strings.Builder
	b.WriteString("log: &a0 {}\n")
	prev := "a0"
	for i, sec := range []string{"engine", "ingest", "alerts", "detectors"} {
		name := fmt.Sprintf("a%d", i+1)
		fmt.Fprintf(&b, "%s: &%s\n  <<: [%s]\n", sec, name, strings.TrimSuffix(strings.Repeat("*"+prev+", ", 100), ", "))
		prev = name
	}
	return b.String()
}

// drills.receiver is checked as respond.receivers.drills, a name
// respond.receivers may not take.
func TestDrillReceiver(t *testing.T) {
	c := Default()
	c.Drills.Receiver = respond.Receiver{URL: "ftp://drills.example"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "respond.receivers.drills.url: must be an http:// or https:// URL") {
		t.Errorf("a bad drills.receiver: %v", err)
	}
	c.Drills.Receiver = respond.Receiver{URL: "https://drills.example/hook"}
	c.Respond.Secret, c.Respond.SecretEnv = "drill-receiver-test-secret-0123456789", ""
	if err := c.Validate(); err != nil {
		t.Errorf("a good drills.receiver: %v", err)
	}
	if rc := c.RespondConfig(); rc.Receivers[respond.DrillReceiver].URL != "https://drills.example/hook" || len(c.Respond.Receivers) != 0 {
		t.Errorf("RespondConfig: %v; Respond.Receivers %v", rc.Receivers, c.Respond.Receivers)
	}
	c = Default()
	c.Respond.Receivers = map[string]respond.Receiver{respond.DrillReceiver: {URL: "https://x.example"}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "respond.receivers.drills: the name is reserved for drills.receiver") {
		t.Errorf("respond.receivers.drills: %v", err)
	}
}

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true},
		{"448MiB", 448 << 20, true},
		{" 1GiB ", 1 << 30, true},
		{"500MB", 500e6, true},
		{"1048576", 1 << 20, true},
		{"2 GiB", 2 << 30, true},
		{"0MiB", 0, false},
		{"-1GiB", 0, false},
		{"1.5GiB", 0, false},
		{"12TB", 0, false},
		{"MiB", 0, false},
		{"99999999999GiB", 0, false},
	} {
		e := Default().Engine
		e.MemoryLimit = tc.in
		got, err := e.MemoryLimitBytes()
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %d, %v; want %d (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
		c := Default()
		c.Engine.MemoryLimit = tc.in
		if err := c.Validate(); (err == nil) != tc.ok || !tc.ok && !strings.Contains(err.Error(), "engine.memory_limit: want a positive size") {
			t.Errorf("%q: Validate: %v", tc.in, err)
		}
	}
}

func TestLedgerDictBounds(t *testing.T) {
	for _, tc := range []struct {
		cache  int
		filter string
		want   string // part of the error; empty: valid
	}{
		{65536, "4MiB", ""},
		{1024, "64KiB", ""},
		{1 << 24, "4GiB", ""},
		{1023, "4MiB", "store.ledger_dict_cache: want 1024 to 16777216"},
		{0, "4MiB", "store.ledger_dict_cache"},
		{1<<24 + 1, "4MiB", "store.ledger_dict_cache"},
		{65536, "", "store.ledger_dict_filter: want 64KiB to 4GiB"},
		{65536, "1KiB", "store.ledger_dict_filter: want 64KiB to 4GiB"},
		{65536, "5GiB", "store.ledger_dict_filter"},
		{65536, "lots", "store.ledger_dict_filter: want a positive size"},
	} {
		c := Default()
		c.Store.LedgerDictCache, c.Store.LedgerDictFilter = tc.cache, tc.filter
		err := c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("cache %d filter %q: %v, want %q", tc.cache, tc.filter, err, tc.want)
		}
	}
}
