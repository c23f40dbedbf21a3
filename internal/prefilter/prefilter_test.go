package prefilter

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
)

// naive returns the ids of pats occurring in text, compared folded.
func naive(pats []string, text string) map[int32]bool {
	out := map[int32]bool{}
	ft := string(Fold(nil, text))
	for i, p := range pats {
		if strings.Contains(ft, string(Fold(nil, p))) {
			out[int32(i)] = true
		}
	}
	return out
}

// ident compiles pats (folded), pattern i marking clause i.
func ident(pats []string) *automaton {
	folded := make([]string, len(pats))
	cl := make([][]int32, len(pats))
	for i, p := range pats {
		folded[i] = string(Fold(nil, p))
		cl[i] = []int32{int32(i)}
	}
	return newAutomaton(folded, cl)
}

// find returns the clauses (here: pattern ids) found in text.
func (a *automaton) find(text string) map[int32]bool {
	hit := make([]bool, len(a.clauses)+1)
	for _, c := range a.clauses {
		if int(c) >= len(hit) {
			hit = append(hit, make([]bool, int(c)+1-len(hit))...)
		}
	}
	a.scan(text, nil, hit)
	out := map[int32]bool{}
	for i, h := range hit {
		if h {
			out[int32(i)] = true
		}
	}
	return out
}

func sameSet(a, b map[int32]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func TestAutomaton(t *testing.T) {
	for _, tc := range []struct {
		pats []string
		text string
	}{
		{[]string{"he", "she", "his", "hers"}, "ushers"},
		{[]string{"select", "elect", "lect", "t"}, "union select 1"},
		{[]string{"a", "aa", "aaa"}, "aaaa"},
		{[]string{"../", "..%2f", "/etc/passwd"}, "/a/..%2F../etc/passwd"},
		{[]string{"abc"}, ""},
		{[]string{"x"}, "yyy"},
		{[]string{"\xff\x00", "\x00"}, "a\xff\x00b"},
		{[]string{"SQLMap", "ÉTÉ", "\u212a"}, "x-sqlMAP/été K"},
		{[]string{"k"}, "\u212a"},
	} {
		a := ident(tc.pats)
		if got, want := a.find(tc.text), naive(tc.pats, tc.text); !sameSet(got, want) {
			t.Errorf("%q in %q: got %v, want %v", tc.pats, tc.text, got, want)
		}
	}
}

// TestAutomatonRandom compares the automaton with strings.Contains on
// random patterns and texts over a small alphabet (many overlaps).
func TestAutomatonRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte("abcAB/.\xc3\xa9"[rng.IntN(9)])
		}
		return b.String()
	}
	for range 2000 {
		pats := make([]string, 1+rng.IntN(12))
		for i := range pats {
			pats[i] = word(1 + rng.IntN(4))
		}
		a := ident(pats)
		for range 5 {
			text := word(rng.IntN(30))
			if got, want := a.find(text), naive(pats, text); !sameSet(got, want) {
				t.Fatalf("%q in %q: got %v, want %v", pats, text, got, want)
			}
		}
	}
}

func FuzzAutomaton(f *testing.F) {
	f.Add("he\x00she\x00hers", "ushers")
	f.Add("union select\x00../\x00\xff", "/x?id=1%20UNION SELECT ../\xff")
	f.Fuzz(func(t *testing.T, patterns, text string) {
		var pats []string
		for _, p := range strings.Split(patterns, "\x00") {
			if p != "" {
				pats = append(pats, p)
			}
		}
		if len(pats) == 0 {
			return
		}
		a := ident(pats)
		if got, want := a.find(text), naive(pats, text); !sameSet(got, want) {
			t.Fatalf("%q in %q: got %v, want %v", pats, text, got, want)
		}
	})
}

// FuzzFold holds Fold to strings.EqualFold: two strings are equal under
// simple case folding exactly when their folds are equal.
func FuzzFold(f *testing.F) {
	f.Add("SQLMap", "sqlmap")
	f.Add("\u212a", "k")
	f.Add("\u017f", "S")
	f.Add("\xff", "\ufffd")
	f.Add("Σ", "ς")
	f.Fuzz(func(t *testing.T, a, b string) {
		fa, fb := string(Fold(nil, a)), string(Fold(nil, b))
		if eq := strings.EqualFold(a, b); eq != (fa == fb) {
			t.Fatalf("EqualFold(%q, %q) = %v, folds %q and %q", a, b, eq, fa, fb)
		}
	})
}

func TestIndex(t *testing.T) {
	ua := func(e *event.Event) string { return e.UserAgent }
	ds := func(e *event.Event) string { return e.Dataset }
	roles := func(e *event.Event) []string { return e.User.Roles }
	status := func(e *event.Event) int64 { return int64(e.HTTP.StatusCode) }
	atom := func(a Atom, ok bool) Atom {
		if !ok {
			t.Fatal("no atom")
		}
		return a
	}
	reqs := []Req{
		nil, // 0: always
		And(Of(atom(Contains("event.dataset", ds, "gateway.access"))), Of(atom(Contains("user_agent.original", ua, "SQLMap")), atom(Contains("user_agent.original", ua, "nikto")))),
		Of(IntEq("http.response.status_code", status, 404)),
		Of(atom(ListContains("user.roles", roles, "admin"))),
		Or(Of(IntEq("http.response.status_code", status, 500)), nil), // a part without requirement: always
	}
	ix := NewIndex(reqs)
	var s Scratch
	for _, tc := range []struct {
		ev   event.Event
		want []int
	}{
		{event.Event{Dataset: "gateway.access", UserAgent: "sqlmap/1.7"}, []int{0, 1, 4}},
		{event.Event{Dataset: "gateway.access", UserAgent: "Mozilla/5.0 (NIKTO)"}, []int{0, 1, 4}},
		{event.Event{Dataset: "web.nginx", UserAgent: "sqlmap/1.7"}, []int{0, 4}},
		{event.Event{Dataset: "gateway.access", HTTP: event.HTTP{StatusCode: 404}}, []int{0, 2, 4}},
		{event.Event{User: event.User{Roles: []string{"reader", "ADMINS"}}}, []int{0, 3, 4}},
		{event.Event{}, []int{0, 4}},
	} {
		got := ix.Candidates(&tc.ev, &s)
		if !slicesEqual(got, tc.want) {
			t.Errorf("%+v: candidates %v, want %v", tc.ev, got, tc.want)
		}
	}
	if st := ix.Stats(); st.Rules != 5 || st.Filtered != 3 {
		t.Errorf("stats %+v", st)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAndOr(t *testing.T) {
	x := func(lit string) Req {
		a, _ := Contains("url.path", func(e *event.Event) string { return e.URLPath }, lit)
		return Of(a)
	}
	if r := Or(x("a"), nil); r != nil {
		t.Errorf("Or with an unconstrained part: %v", r)
	}
	if r := Or(x("abc"), x("def")); len(r) != 1 || len(r[0]) != 2 {
		t.Errorf("Or: %v", r)
	}
	if r := And(x("a"), x("b"), x("c"), x("d"), x("longer")); len(r) != MaxClauses || r[0][0].Lit != "longer" {
		t.Errorf("And keeps the cheapest: %v", r)
	}
	if _, ok := Contains("f", func(*event.Event) string { return "" }, ""); ok {
		t.Error("an empty literal is an atom")
	}
	if _, ok := Contains("f", func(*event.Event) string { return "" }, "a\ufffd"); ok {
		t.Error("a literal with U+FFFD is an atom")
	}
}

// AdmitsDataset lets through every dataset some rule may read: each rule
// must state a clause on event.dataset alone, and a dataset admitted is
// one that contains (folded) a literal of such a clause.
func TestAdmitsDataset(t *testing.T) {
	ds := func(e *event.Event) string { return e.Dataset }
	ua := func(e *event.Event) string { return e.UserAgent }
	atom := func(a Atom, ok bool) Atom {
		if !ok {
			t.Fatal("no atom")
		}
		return a
	}
	dsIs := func(lits ...string) Clause {
		var c Clause
		for _, l := range lits {
			c = append(c, atom(Contains("event.dataset", ds, l)))
		}
		return c
	}
	uaHas := Of(atom(Contains("user_agent.original", ua, "curl")))
	for _, tc := range []struct {
		name  string
		reqs  []Req
		admit map[string]bool
	}{
		{"every rule names datasets", []Req{
			And(Of(dsIs("gateway.access")...), uaHas),
			Of(dsIs("auth.login", "auth.token")...),
		}, map[string]bool{"gateway.access": true, "GATEWAY.Access": true, "auth.token": true, "x.auth.login.y": true, "keys.inventory": false, "": false, "gateway": false}},
		{"a rule without a requirement", []Req{Of(dsIs("auth.login")...), nil},
			map[string]bool{"auth.login": true, "keys.inventory": true, "": true}},
		{"a rule whose only dataset clause is mixed with another field", []Req{
			Of(dsIs("auth.login")...), Of(append(dsIs("auth.token"), atom(Contains("user_agent.original", ua, "curl")))...),
		}, map[string]bool{"keys.inventory": true}},
		{"no rules", nil, map[string]bool{"anything": true}},
	} {
		ix := NewIndex(tc.reqs)
		for range 2 { // computed, then cached
			for d, want := range tc.admit {
				if got := ix.AdmitsDataset(d); got != want {
					t.Errorf("%s: AdmitsDataset(%q) = %v, want %v", tc.name, d, got, want)
				}
			}
		}
	}
	var nilIx *Index
	if !nilIx.AdmitsDataset("x") {
		t.Error("a nil Index admits nothing")
	}
	// Made-up datasets do not grow the cache past its bound, and are still
	// answered.
	ix := NewIndex([]Req{Of(dsIs("auth.login")...)})
	for i := range maxGateCache + 100 {
		if ix.AdmitsDataset("made.up." + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strconv.Itoa(i)) {
			t.Fatal("a made-up dataset admitted")
		}
	}
	if n := ix.ncached.Load(); n > maxGateCache {
		t.Errorf("%d datasets cached, bound %d", n, maxGateCache)
	}
	if !ix.AdmitsDataset("auth.login") {
		t.Error("auth.login not admitted once the cache is full")
	}
	// A sender's made-up datasets may be as long as a line (1 MiB): the
	// cache must not keep them, or 1,024 of them hold a GiB per Index
	// until the next reload.
	ix = NewIndex([]Req{Of(dsIs("auth.login")...)})
	long := strings.Repeat("y", 64<<10)
	for i := range 64 {
		d := strconv.Itoa(i) + long
		if ix.AdmitsDataset(d) {
			t.Fatal("a made-up dataset admitted")
		}
	}
	if !ix.AdmitsDataset(long + "auth.login") {
		t.Error("a long dataset holding auth.login not admitted")
	}
	held := 0
	ix.admitted.Range(func(k, _ any) bool {
		held += len(k.(string))
		return true
	})
	if held > maxGateCache*maxGateKey {
		t.Errorf("the cache holds %d bytes of datasets, over %d", held, maxGateCache*maxGateKey)
	}
	if held > 0 {
		t.Errorf("datasets longer than %d bytes cached (%d bytes)", maxGateKey, held)
	}
}
