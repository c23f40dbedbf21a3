package sigma

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/prefilter"
)

// dispatched reports whether a one-rule prefilter index lets ev through
// to r.
func dispatched(r *Rule, ev *event.Event) bool {
	var s prefilter.Scratch
	return len(prefilter.NewIndex([]prefilter.Req{r.Prefilter()}).Candidates(ev, &s)) == 1
}

// checkPrefilter fails when r matches ev but its prefilter requirement
// does not let ev through: dispatch would lose the match.
func checkPrefilter(t testing.TB, r *Rule, ev *event.Event) {
	t.Helper()
	if ok, _ := r.Match(ev); ok && !dispatched(r, ev) {
		t.Fatalf("rule %q (%s) matches the event, but its prefilter %s does not let it through", r.Title, r.Condition, describeReq(r.Prefilter()))
	}
}

func describeReq(req prefilter.Req) string {
	var cs []string
	for _, c := range req {
		var as []string
		for _, a := range c {
			if a.Int != nil {
				as = append(as, a.Field+"="+strconv.FormatInt(a.N, 10))
				continue
			}
			as = append(as, a.Field+"∋"+a.Lit)
		}
		cs = append(cs, "("+strings.Join(as, " | ")+")")
	}
	return strings.Join(cs, " & ")
}

// TestPrefilterOfTestdataRules: the testdata rules' requirements, and
// that they let through every testdata event a rule matches and keep out
// most events of other logsources.
func TestPrefilterOfTestdataRules(t *testing.T) {
	rules, errs := ParseDir("testdata/rules")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	events := readEvents(t, "testdata/events.ndjson")
	matches := 0
	for _, r := range rules {
		if len(r.Prefilter()) == 0 {
			t.Errorf("%s: no prefilter requirement", r.Title)
		}
		for _, ev := range events {
			if ok, _ := r.Match(ev); ok {
				matches++
			}
			checkPrefilter(t, r, ev)
		}
	}
	if matches == 0 {
		t.Fatal("no rule matched a testdata event: the check checked nothing")
	}
	// Spot checks of what is derived.
	for _, tc := range []struct {
		detection string
		want      string
	}{
		{"s:\n  cs-user-agent|contains: [sqlmap, 'ni*kto']\ncondition: s", "(event.dataset∋gateway.access | event.dataset∋web. | event.dataset∋nginx) & (user_agent.original∋sqlmap | user_agent.original∋kto)"},
		{"s:\n  cs-uri|contains: 'a?b=1'\ncondition: s", "(event.dataset∋gateway.access | event.dataset∋web. | event.dataset∋nginx) & (url.path∋b=1 | url.query∋b=1)"},
		{"s:\n  sc-status: 404\n  cs-method: GET\ncondition: s", "(event.dataset∋gateway.access | event.dataset∋web. | event.dataset∋nginx) & (http.response.status_code=404) & (http.request.method∋GET)"},
		{"s:\n  cs-user-agent|contains: x\nf:\n  c-ip|cidr: 10.0.0.0/8\ncondition: not f", "(event.dataset∋gateway.access | event.dataset∋web. | event.dataset∋nginx)"},
		{"s:\n  cs-user-agent|re: 'sql.*map'\ncondition: s", "(event.dataset∋gateway.access | event.dataset∋web. | event.dataset∋nginx)"},
		{"s:\n  cs-user-agent|contains: sqlmap\nt:\n  cs-uri-stem|startswith: /admin\ncondition: s or t", "(event.dataset∋gateway.access | event.dataset∋web. | event.dataset∋nginx) & (user_agent.original∋sqlmap | url.path∋/admin)"},
		{"s:\n  cs-user-agent|contains: sqlmap\nt:\n  cs-user-agent|neq: x\ncondition: s or t", "(event.dataset∋gateway.access | event.dataset∋web. | event.dataset∋nginx)"},
	} {
		r := mustRule(t, webLS, tc.detection)
		if got := describeReq(r.Prefilter()); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.detection, got, tc.want)
		}
	}
}

// subjects are strings to try patterns on: case variants, folds outside
// ASCII, malformed UTF-8.
var prefilterSubjects = []string{
	"", "sqlmap/1.7", "SQLMAP", "x\u212ay", "straße", "STRASSE", "\xff\xfeab", "a?b", "/api/v2/x?id=1%20UNION%20SELECT",
	"Mozilla/5.0 (iPhone)", "../../etc/passwd", "ſecret", "é", "É", "\ufffd", "a\xc3", "**", "?",
}

// FuzzPrefilter holds a field condition's requirement to its matches: for
// any value, modifier and subject, when the condition matches an event,
// its requirement lets the event through. It covers string fields, the
// request target (path?query), list fields and keyword searches.
func FuzzPrefilter(f *testing.F) {
	for _, s := range prefilterSubjects {
		for _, p := range []string{"sqlmap", "k", "SS", "ß", "a?b", `a\?b`, `\?id=1`, "*a*", `\*`, "?", "union select", "\ufffd", "é"} {
			f.Add(p, s, uint8(len(s)+len(p)), len(p)%2 == 0)
		}
	}
	f.Fuzz(func(t *testing.T, pat, subject string, mode uint8, cased bool) {
		if len(pat) > 64 || len(subject) > 256 {
			t.Skip()
		}
		segs := parseWildcards(pat)
		switch mode % 4 {
		case 1:
			segs = wrapSegs(segs, true, true)
		case 2:
			segs = wrapSegs(segs, false, true)
		case 3:
			segs = wrapSegs(segs, true, false)
		}
		p := newPattern(segs, cased)
		m := matcher{op: opPat, pat: p}
		var root node
		ev := &event.Event{Dataset: event.DatasetGateway}
		switch mode / 4 % 5 {
		case 0:
			acc, _ := accessorFor("user_agent.original")
			root = &fieldCond{acc: acc, ms: []matcher{m}}
			ev.UserAgent = subject
		case 1:
			acc, _ := accessorFor(targetField)
			root = &fieldCond{acc: acc, ms: []matcher{m}}
			ev.URLPath, ev.URLQuery, _ = strings.Cut(subject, "?")
		case 2:
			acc, _ := accessorFor("records.fields")
			root = &fieldCond{acc: acc, ms: []matcher{m}, all: cased}
			ev.Records.Fields = strings.Split(subject, ",")
		case 3:
			acc1, _ := accessorFor(targetField)
			acc2, _ := accessorFor("user_agent.original")
			root = &keywordCond{fields: []accessor{acc1, acc2}, pats: []*pattern{p}}
			ev.UserAgent, ev.URLPath, _ = strings.Cut(subject, "|")
		case 4:
			acc, _ := accessorFor(extensionField)
			root = &fieldCond{acc: acc, ms: []matcher{m}}
			ev.URLPath = "/d/f." + subject
		}
		r := &Rule{Title: "fuzz", Condition: "s", root: root,
			filter: datasetFilter{exact: []string{event.DatasetGateway}, prefixes: []string{"web."}}}
		checkPrefilter(t, r, ev)
	})
}

// TestPrefilterKeepsOut: the requirement is not vacuous — an event of
// another logsource, or without the literals, is kept out.
func TestPrefilterKeepsOut(t *testing.T) {
	r := mustRule(t, webLS, "s:\n  cs-user-agent|contains: [sqlmap, nikto]\ncondition: s")
	for _, tc := range []struct {
		ev   *event.Event
		want bool
	}{
		{webEvent(func(e *event.Event) { e.UserAgent = "SQLMap/1.7" }), true},
		{webEvent(nil), false},
		{ctEvent(func(e *event.Event) { e.UserAgent = "sqlmap" }), false},
	} {
		if got := dispatched(r, tc.ev); got != tc.want {
			t.Errorf("%q in %s: dispatched %v, want %v", tc.ev.UserAgent, tc.ev.Dataset, got, tc.want)
		}
	}
	if !slices.Equal(r.Fields, []string{"user_agent.original"}) {
		t.Errorf("fields %v", r.Fields)
	}
}
