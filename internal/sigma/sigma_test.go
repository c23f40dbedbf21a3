package sigma

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

var update = flag.Bool("update", false, "rewrite the golden .err files")

// readEvents decodes a contract NDJSON file.
func readEvents(t testing.TB, path string) []*event.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := decode.NewReader(f, 0, 0)
	var out []*event.Event
	for {
		ev := new(event.Event)
		err := r.Next(ev)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, ev)
	}
}

// The rules in testdata/rules match exactly the events matches.json lists.
func TestTestdataRules(t *testing.T) {
	rules, errs := ParseDir("testdata/rules")
	for _, err := range errs {
		t.Errorf("ParseDir: %v", err)
	}
	if len(rules) < 8 {
		t.Fatalf("loaded %d rules, want ≥ 8", len(rules))
	}
	events := readEvents(t, "testdata/events.ndjson")
	data, err := os.ReadFile("testdata/matches.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]string
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rules {
		seen[r.Title] = true
		w, ok := want[r.Title]
		if !ok {
			t.Errorf("%s: rule %q has no entry in matches.json", r.File, r.Title)
			continue
		}
		var got []string
		for _, ev := range events {
			ok, err := r.Match(ev)
			if err != nil {
				t.Fatalf("%s on %s: %v", r.Title, ev.ID, err)
			}
			if ok {
				got = append(got, ev.ID)
			}
		}
		sort.Strings(got)
		sort.Strings(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s (%s):\n got %q\nwant %q", r.Title, r.File, got, w)
		}
	}
	for title := range want {
		if !seen[title] {
			t.Errorf("matches.json names %q, which no rule has", title)
		}
	}
}

// Rules that cannot load report exactly why (golden .err files).
func TestGoldenErrors(t *testing.T) {
	for _, dir := range []string{"unsupported", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.yml"))
		if len(files) == 0 {
			t.Fatalf("no files in testdata/%s", dir)
		}
		for _, path := range files {
			t.Run(dir+"/"+filepath.Base(path), func(t *testing.T) {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				name := filepath.ToSlash(path)
				r, err := Parse(data, name)
				if err == nil {
					t.Fatalf("loaded %q, want an error", r.Title)
				}
				var ue *UnsupportedError
				var re *RuleError
				switch {
				case dir == "unsupported" && !errors.As(err, &ue):
					t.Fatalf("error %v is %T, want *UnsupportedError", err, err)
				case dir == "invalid" && !errors.As(err, &re):
					t.Fatalf("error %v is %T, want *RuleError", err, err)
				}
				if ue != nil && (ue.Line == 0 || ue.Col == 0 || ue.File != name) {
					t.Errorf("no position in %#v", ue)
				}
				if re != nil && (re.Line == 0 || re.File != name) {
					t.Errorf("no position in %#v", re)
				}
				golden := strings.TrimSuffix(path, ".yml") + ".err"
				got := err.Error() + "\n"
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update)", err)
				}
				if got != string(want) {
					t.Errorf("error:\n got %s want %s", got, want)
				}
			})
		}
	}
}

func TestParseDirReportsEveryFailure(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := "title: Good %d\nlogsource:\n  category: webserver\ndetection:\n  sel:\n    cs-method: DELETE\n  condition: sel\n"
	write("a.yml", strings.Replace(good, "%d", "1", 1))
	write("sub/b.yaml", strings.Replace(good, "%d", "2", 1))
	write("sub/notes.txt", "not a rule")
	write(".git/c.yml", "not: [valid")
	// Two documents: one loads, one is unsupported.
	write("sub/multi.yml", strings.Replace(good, "%d", "3", 1)+"---\ntitle: Bad\nlogsource:\n  category: webserver\ndetection:\n  sel:\n    cs-referrer: x\n  condition: sel\n")
	write("z.yml", "title: [unclosed\n")
	rules, errs := ParseDir(dir)
	var titles []string
	for _, r := range rules {
		titles = append(titles, r.Title)
	}
	if want := []string{"Good 1", "Good 2", "Good 3"}; !slices.Equal(titles, want) {
		t.Errorf("rules %q, want %q", titles, want)
	}
	if len(errs) != 2 {
		t.Fatalf("errors %v, want 2", errs)
	}
	var ue *UnsupportedError
	if !errors.As(errs[0], &ue) || !strings.HasSuffix(ue.File, "multi.yml") || ue.Line != 14 {
		t.Errorf("first error %v, want unsupported in multi.yml line 14", errs[0])
	}
	var re *RuleError
	if !errors.As(errs[1], &re) || !strings.HasSuffix(re.File, "z.yml") {
		t.Errorf("second error %v, want invalid YAML in z.yml", errs[1])
	}
	// ParseFile joins the errors of a file.
	rs, err := ParseFile(filepath.Join(dir, "sub", "multi.yml"))
	if len(rs) != 1 || !errors.As(err, &ue) {
		t.Errorf("ParseFile: %d rules, %v", len(rs), err)
	}
	// Parse insists on one document.
	data, _ := os.ReadFile(filepath.Join(dir, "sub", "multi.yml"))
	if _, err := Parse(data, "multi.yml"); err == nil || !strings.Contains(err.Error(), "use ParseFile") {
		t.Errorf("Parse of two documents: %v", err)
	}
}

func TestRuleMetadata(t *testing.T) {
	rs, err := ParseFile("testdata/rules/aws_cloudtrail_disable_logging.yml")
	if err != nil || len(rs) != 1 {
		t.Fatal(err)
	}
	r := rs[0]
	want := Rule{
		ID: "4b6c8d0e-2f3a-4b4c-9d5e-6f7a8b9cadb8", Title: "AWS CloudTrail Logging Stopped or Deleted",
		Description: "Detects StopLogging, DeleteTrail and UpdateTrail calls, which blind the defenders (defence evasion).",
		Status:      "stable", Level: "critical", Author: "haechi", Date: "2025-06-24",
		Tags:           []string{"attack.defense-evasion", "attack.t1562.008"},
		References:     []string{"https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_StopLogging.html"},
		FalsePositives: []string{"Planned trail maintenance"},
		Logsource:      Logsource{Product: "aws", Service: "cloudtrail"},
		Condition:      "selection",
		File:           "testdata/rules/aws_cloudtrail_disable_logging.yml", Line: 1,
		Fields: []string{"event.action", "event.provider"},
	}
	got := *r
	got.mapping, got.filter, got.root = nil, datasetFilter{}, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if r.Score() != 90 {
		t.Errorf("score %v", r.Score())
	}
}

func TestScore(t *testing.T) {
	for level, want := range map[string]float64{"informational": 10, "low": 30, "medium": 50, "high": 70, "critical": 90, "": 50} {
		if got := (&Rule{Level: level}).Score(); got != want {
			t.Errorf("%q: %v, want %v", level, got, want)
		}
	}
}

func TestMatchErrors(t *testing.T) {
	if _, err := (&Rule{}).Match(&event.Event{}); err == nil {
		t.Error("zero Rule matched without error")
	}
	var nilRule *Rule
	if _, err := nilRule.Match(&event.Event{}); err == nil {
		t.Error("nil Rule matched without error")
	}
	r := mustRule(t, webLS, "sel:\n  cs-method: GET\ncondition: sel")
	if _, err := r.Match(nil); err == nil {
		t.Error("nil event matched without error")
	}
}

// TestAccessorsAgreeWithField holds the fast accessors to event.Field.
func TestAccessorsAgreeWithField(t *testing.T) {
	ts := time.Date(2025, 6, 24, 9, 0, 3, 5, time.UTC)
	full := &event.Event{
		Time: ts, Dataset: "d", Action: "a", ID: "id", Outcome: event.OutcomeFailure, Provider: "p",
		User:      event.User{ID: "u", Name: "n", Roles: []string{"r1", "r2"}},
		Source:    event.Source{IP: netip.MustParseAddr("10.1.2.3"), Country: "KR", ASN: 4766, ASOrg: "KT", Located: true, Lat: 37.5, Lon: 127},
		UserAgent: "ua", HTTP: event.HTTP{Method: "GET", StatusCode: 200, BodyBytes: 734}, URLPath: "/p",
		URLQuery: "q=1", URLDomain: "shop.example",
		CloudTrail: event.CloudTrail{IdentityType: "AssumedRole", IssuerType: "Role", EventType: "AwsApiCall", ErrorCode: "AccessDenied",
			ErrorMessage: "no", RequestParameters: `{"a":1}`, ResponseElements: `{"b":2}`},
		Token:    event.Token{ID: "t", KeyID: "k", Issuer: "i", IssuedAt: ts.Add(-time.Hour), ExpiresAt: ts.Add(time.Hour)},
		Records:  event.Records{Type: "customer", IDs: []string{"1"}, Fields: []string{"name"}},
		Identity: event.Identity{ID: "e", Kind: "employee", Roles: []string{"x"}, Status: "terminated", TerminatedAt: ts.Add(-2 * time.Hour), Country: "KR", LastActive: ts.Add(-4 * time.Hour)},
		Key:      event.Key{ID: "key", Status: "retired", RetiredAt: ts.Add(-3 * time.Hour), Custodians: []string{"e"}},
	}
	for _, ev := range []*event.Event{full, {}} {
		for _, name := range event.FieldNames() {
			a, ok := accessorFor(name)
			if !ok {
				t.Fatalf("no accessor for %q", name)
			}
			want, wantOK := ev.Field(name)
			var got any
			var gotOK bool
			switch a.kind {
			case event.KindString:
				s := a.str(ev)
				got, gotOK = s, s != ""
			case event.KindStrings:
				s := a.strs(ev)
				got, gotOK = s, len(s) > 0
			case event.KindInt:
				n := a.num(ev)
				got, gotOK = n, n != 0
			case event.KindFloat:
				got, gotOK = a.flt(ev)
			case event.KindIP:
				ip := a.ip(ev)
				got, gotOK = ip, ip.IsValid()
			case event.KindTime:
				tm := a.tm(ev)
				got, gotOK = tm, !tm.IsZero()
			}
			if gotOK != wantOK || (wantOK && !reflect.DeepEqual(got, want)) {
				t.Errorf("%s: accessor (%v, %v), Field (%v, %v)", name, got, gotOK, want, wantOK)
			}
			if ev == full && !wantOK {
				t.Errorf("%s: the full event leaves it absent; extend the test", name)
			}
		}
	}
}

// docs/sigma.md lists every mapping row the code has.
func TestDocsListMappings(t *testing.T) {
	data, err := os.ReadFile("../../docs/sigma.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, m := range Mappings() {
		for _, f := range m.Fields {
			target := "*unsupported*"
			if f.Contract == targetField {
				target = "`url.path` `?` `url.query`"
			} else if f.Contract == extensionField {
				target = "extension of `url.path`"
			} else if f.Contract != "" {
				target = "`" + f.Contract + "`"
			}
			row := "| `" + f.Sigma + "` | " + target + " |"
			if !strings.Contains(doc, row) {
				t.Errorf("docs/sigma.md lacks the %s row %q", m.Name, row)
			}
		}
	}
}

// Rule.Weakened names every place a rule runs weaker than written, and
// only those; Rule.Fields lists what the detection reads.
func TestWeakenedAndFields(t *testing.T) {
	tests := []struct {
		name, logsource, detection string
		weak                       []string // substrings, in order
		fields                     []string
	}{
		{"faithful", webLS, "s:\n  cs-uri-query|contains: union\n  cs-method: GET\ncondition: s", nil,
			[]string{"http.request.method", "url.query"}},
		{"uri on a web server is the request target", webLS, "s:\n  c-uri|contains: '?id='\ncondition: s",
			nil, []string{"url.path", "url.query"}},
		{"uri on a proxy lacks scheme and host", "category: proxy", "s:\n  c-uri|contains: '?id='\ncondition: s",
			[]string{`2:3: field "c-uri": url.path, and ?url.query when there is a query: no scheme or host`}, []string{"url.path", "url.query"}},
		{"keyword search", webLS, "s:\n  cs-method: GET\nk:\n  - 'UNION SELECT'\ncondition: s and k",
			[]string{"3:1: keyword search: a keyword search looks in the request target"},
			[]string{"http.request.method", "url.path", "url.query", "user_agent.original"}},
		{"body bytes", webLS, "s:\n  sc-bytes|gt: 1000\ncondition: s", []string{`field "sc-bytes"`}, []string{"http.response.body.bytes"}},
		{"cloudtrail source", ctLS, "s:\n  sourceIPAddress: 1.2.3.4\n  errorCode|exists: true\ncondition: s",
			[]string{`field "sourceIPAddress"`}, []string{"aws.cloudtrail.error_code", "source.ip"}},
		{"cloudtrail request parameters", ctLS, "s:\n  requestParameters.attribute: userData\n  userIdentity.type: Root\ncondition: s",
			nil, []string{"aws.cloudtrail.request_parameters.attribute", "aws.cloudtrail.user_identity.type"}},
		{"cloudtrail faithful", ctLS, "s:\n  eventName: GetObject\ncondition: s", nil, []string{"event.action"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRule(t, tt.logsource, tt.detection)
			if len(r.Weakened) != len(tt.weak) {
				t.Fatalf("weakened %+v, want %d", r.Weakened, len(tt.weak))
			}
			for i, w := range r.Weakened {
				// detection starts on line 5 of ruleText with 4 spaces of
				// indent for webLS (one logsource line), 6 for ctLS.
				got := fmt.Sprintf("%d:%d: %s", w.Line-3-strings.Count(tt.logsource, "\n")-1, w.Col-4, w.What)
				if !strings.Contains(got, tt.weak[i]) {
					t.Errorf("weakening %q, want %q", got, tt.weak[i])
				}
			}
			if !slices.Equal(r.Fields, tt.fields) {
				t.Errorf("fields %q, want %q", r.Fields, tt.fields)
			}
		})
	}
}

// related links are kept; a malformed section is an error.
func TestRelated(t *testing.T) {
	src := "title: t\nrelated:\n  - id: a-1\n    type: derived\n  - id: b-2\n    type: similar\nlogsource:\n  category: webserver\ndetection:\n  s:\n    cs-method: GET\n  condition: s\n"
	r, err := Parse([]byte(src), "r.yml")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Related{{"a-1", "derived"}, {"b-2", "similar"}}; !slices.Equal(r.Related, want) {
		t.Errorf("related %+v, want %+v", r.Related, want)
	}
	for _, bad := range []string{"related: x\n", "related:\n  - type: derived\n", "related:\n  - id: [1]\n"} {
		if _, err := Parse([]byte(strings.Replace(src, "related:\n  - id: a-1\n    type: derived\n  - id: b-2\n    type: similar\n", bad, 1)), "r.yml"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
