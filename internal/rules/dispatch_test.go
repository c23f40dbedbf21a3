package rules

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/prefilter"
	"github.com/haechi-sec/haechi/internal/sigma"
	"github.com/haechi-sec/haechi/internal/sim"
)

// testSigma adapts a Sigma rule to a Condition as app.SigmaRule does.
type testSigma struct{ r *sigma.Rule }

func (c testSigma) Match(ev *event.Event) (bool, error) { return c.r.Match(ev) }
func (c testSigma) Prefilter() prefilter.Req            { return c.r.Prefilter() }
func (c testSigma) String() string                      { return "sigma:" + c.r.File + ":" + c.r.Condition }

// dispatchSet is every rule at hand: the shipped pack (disabled rules
// too), the benchmark pack's CEL and Sigma rules and sigma's testdata
// rules, Sigma families included.
func dispatchSet(t testing.TB) *Set {
	t.Helper()
	opts := Options{Lists: map[string][]string{"corporate_networks": {"10.0.0.0/8", "172.16.0.0/12"}}}
	pack, err := Pack(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pack.Rules {
		r.Disabled = false
	}
	bench, err := LoadDir("../app/testdata/rulebench/cel", opts)
	if err != nil {
		t.Fatal(err)
	}
	var srules []*sigma.Rule
	for _, dir := range []string{"../app/testdata/rulebench/sigma", "../sigma/testdata/rules"} {
		rs, errs := sigma.ParseDir(dir)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		srules = append(srules, rs...)
	}
	fams := sigma.Families(srules)
	ss := &Set{}
	for i, r := range srules {
		entity := EntityPrincipal
		if r.Logsource.Category == "webserver" || r.Logsource.Category == "proxy" {
			entity = EntitySource
		}
		sev := strings.ToLower(r.Level)
		if _, ok := ScoreOf(sev); !ok {
			sev = "medium"
		}
		if err := ss.Add(&Rule{ID: "sigma." + strings.ToLower(r.ID), Title: r.Title, Severity: sev, Entity: entity,
			Cond: testSigma{r}, Family: fams[i]}); err != nil {
			t.Fatal(err)
		}
	}
	set, err := Merge(pack, bench, ss)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// dispatchCorpus is a simulated company's day (its breach scenarios
// included) and sigma's testdata events, then copies of them carrying the
// literals the rules test for — in random case, inside other text — so
// that rules match often.
func dispatchCorpus(t testing.TB, set *Set, n int) []event.Event {
	t.Helper()
	var buf bytes.Buffer
	customers := 3000
	if raceEnabled {
		customers, n = 300, n/10
	}
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 3, Days: 1, Customers: customers}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	sigmaEvents, err := os.ReadFile("../sigma/testdata/events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	dec := decode.NewDecoder()
	for i, src := range [][]byte{buf.Bytes(), sigmaEvents} {
		sc := bufio.NewScanner(bytes.NewReader(src))
		sc.Buffer(nil, 1<<20)
		for n := 0; sc.Scan(); n++ {
			if raceEnabled && i == 0 && n >= 3000 {
				break
			}
			var ev event.Event
			if err := dec.Decode(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: %v", sc.Bytes(), err)
			}
			evs = append(evs, ev)
		}
	}
	base := len(evs)
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	var reqs []prefilter.Req
	for _, r := range set.Rules {
		if p, ok := r.Cond.(Prefilterer); ok {
			if req := p.Prefilter(); len(req) > 0 {
				reqs = append(reqs, req)
			}
		}
	}
	for range n {
		ev := evs[rng.IntN(base)]
		ev.User.Roles = slices.Clone(ev.User.Roles)
		ev.Records.Fields = slices.Clone(ev.Records.Fields)
		// Meet one rule's requirement, and sometimes a second one's.
		for range 1 + rng.IntN(2) {
			for _, c := range reqs[rng.IntN(len(reqs))] {
				plant(&ev, c[rng.IntN(len(c))], rng)
			}
		}
		evs = append(evs, ev)
	}
	return evs
}

// plant makes ev meet the atom a: its field set to (or, for a list,
// added) the literal in a random case, often with text around it.
func plant(ev *event.Event, a prefilter.Atom, rng *rand.Rand) {
	if a.Int != nil {
		switch a.Field {
		case "http.response.status_code":
			ev.HTTP.StatusCode = int(a.N)
		case "http.response.body.bytes":
			ev.HTTP.BodyBytes = a.N
		case "source.as.number":
			ev.Source.ASN = uint32(a.N)
		}
		return
	}
	lit := []rune(a.Lit)
	for i, r := range lit {
		if rng.IntN(3) == 0 {
			lit[i] = unicode.SimpleFold(r)
		}
	}
	v := string(lit)
	if rng.IntN(2) == 0 && a.Field != "event.dataset" {
		v = "/x" + v + "?y"
	}
	set := map[string]*string{
		"event.dataset": &ev.Dataset, "event.action": &ev.Action, "event.provider": &ev.Provider,
		"url.path": &ev.URLPath, "url.query": &ev.URLQuery, "user_agent.original": &ev.UserAgent,
		"user.id": &ev.User.ID, "records.type": &ev.Records.Type, "token.issuer": &ev.Token.Issuer,
		"token.id": &ev.Token.ID, "token.key_id": &ev.Token.KeyID, "source.as.organization.name": &ev.Source.ASOrg,
		"http.request.method": &ev.HTTP.Method, "identity.status": &ev.Identity.Status, "key.status": &ev.Key.Status,
		"aws.cloudtrail.user_identity.type": &ev.CloudTrail.IdentityType, "aws.cloudtrail.event_type": &ev.CloudTrail.EventType,
	}
	switch a.Field {
	case "user.roles":
		ev.User.Roles = append(ev.User.Roles, string(lit))
	case "records.fields":
		ev.Records.Fields = append(ev.Records.Fields, string(lit))
	case "event.dataset":
		ev.Dataset = a.Lit // datasets are matched exactly
	default:
		if p := set[a.Field]; p != nil {
			*p = v
		}
	}
}

// runRules runs the rule detectors over evs in an engine of two shards and
// returns their findings, sorted.
func runRules(t testing.TB, h *Holder, evs []event.Event) []event.Finding {
	t.Helper()
	eng, err := engine.New(engine.Options{Detectors: Detectors(h), Shards: 2, InputName: func(uint32) string { return "corpus" }})
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Finding
	done := make(chan struct{})
	go func() {
		defer close(done)
		for out := range eng.Output() {
			for _, f := range out.Findings {
				f.Cited = nil
				got = append(got, f)
			}
		}
	}()
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(context.Background()) }()
	for i := 0; i < len(evs); i += 256 {
		batch := slices.Clone(evs[i:min(i+256, len(evs))])
		if err := eng.Submit(context.Background(), engine.Batch{Events: batch}); err != nil {
			t.Fatal(err)
		}
	}
	eng.Close()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	<-done
	slices.SortStableFunc(got, func(a, b event.Finding) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Detector, b.Detector),
			strings.Compare(a.Entity.String(), b.Entity.String()), strings.Compare(a.Explanation, b.Explanation),
			strings.Compare(strings.Join(a.Evidence, ","), strings.Join(b.Evidence, ",")))
	})
	return got
}

// TestDispatchDifferential: the detectors find exactly the same findings
// with dispatch as when every rule runs on every event, over a simulated
// day and events planted with the rules' literals.
func TestDispatchDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates a day")
	}
	set := dispatchSet(t)
	evs := dispatchCorpus(t, set, 20000)
	all := &Holder{noDispatch: true}
	all.Swap(set)
	want := runRules(t, all, evs)
	got := runRules(t, NewHolder(set), evs)
	rulesFired := map[string]bool{}
	for _, f := range want {
		rulesFired[f.Detector] = true
	}
	// Not vacuous: many findings, of many rules.
	if len(want) < 500 || len(rulesFired) < 30 {
		t.Fatalf("%d findings of %d rules: the corpus exercises too little", len(want), len(rulesFired))
	}
	if len(got) != len(want) {
		t.Errorf("%d findings with dispatch, %d without", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[i])
		if !bytes.Equal(g, w) {
			t.Fatalf("finding %d differs:\nwith dispatch    %s\nwithout dispatch %s", i, g, w)
		}
	}
	t.Logf("%d events, %d findings of %d rules, identical", len(evs), len(want), len(rulesFired))
	// The index does reduce the work: most events run few rules.
	var s prefilter.Scratch
	v := NewHolder(set).v.Load()
	run, total := 0, 0
	for i := range evs {
		for k, ix := range v.index {
			if ix != nil {
				run += len(ix.Candidates(&evs[i], &s))
				total += len(v.byKind[k])
			}
		}
	}
	if run*3 > total {
		t.Errorf("dispatch ran %d of %d rule evaluations: the index filters little", run, total)
	}
	t.Logf("dispatch ran %d of %d rule evaluations (%.1f%%)", run, total, 100*float64(run)/float64(total))
}

// TestDispatchProperty checks rule by rule, on every event of the corpus,
// that a rule whose condition matches is among the candidates the index
// gives for the event: the property the differential test rests on, with
// the rule named when it fails.
func TestDispatchProperty(t *testing.T) {
	set := dispatchSet(t)
	n := 20000
	if testing.Short() {
		n = 2000
	}
	evs := dispatchCorpus(t, set, n)
	h := NewHolder(set)
	v := h.v.Load()
	var s prefilter.Scratch
	matched := map[string]int{}
	for k, rules := range v.byKind {
		ix := v.index[k]
		if ix == nil {
			continue
		}
		for i := range evs {
			ev := &evs[i]
			cands := ix.Candidates(ev, &s)
			for ri, r := range rules {
				ok, err := r.Cond.Match(ev)
				if err != nil || !ok {
					continue
				}
				matched[r.ID]++
				if !slices.Contains(cands, ri) {
					t.Fatalf("rule %s matches event %d (%s %s %q), but dispatch leaves it out", r.ID, i, ev.Dataset, ev.Action, ev.UserAgent)
				}
				if !ix.AdmitsDataset(ev.Dataset) {
					t.Fatalf("rule %s matches event %d, but its dataset %q is not admitted", r.ID, i, ev.Dataset)
				}
			}
		}
	}
	if len(matched) < 30 {
		t.Fatalf("only %d rules matched anything: %v", len(matched), matched)
	}
}

// BenchmarkCandidates measures the index alone: ns/op is one event through
// every entity kind's index (every rule at hand, dispatchSet).
func BenchmarkCandidates(b *testing.B) {
	set := dispatchSet(b)
	evs := dispatchCorpus(b, set, 0)
	v := NewHolder(set).v.Load()
	for k, ix := range v.index {
		if ix != nil {
			b.Logf("%s: %d rules, %+v", entityKinds[k].name, len(v.byKind[k]), ix.Stats())
		}
	}
	var s prefilter.Scratch
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := &evs[i%len(evs)]
		i++
		for _, ix := range v.index {
			if ix != nil {
				ix.Candidates(ev, &s)
			}
		}
	}
}
