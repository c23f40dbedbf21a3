package prefilter

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/haechi-sec/haechi/internal/event"
)

// Index decides which rules of a list may match an event (Candidates).
// It is immutable and safe for concurrent use.
//
// Fields are read in a fixed order, event.dataset and the other fields of
// few values first; a clause is decided once its last field is read, and
// a rule with an unmet clause is out. A field none of whose rules is
// still in is not read at all — a CloudTrail rule's fields are not
// searched on a web request.
type Index struct {
	rules    []rule
	fields   []*field
	nclauses int
	always   bool // every rule is a candidate (no rule states a requirement)
	// clauseRule[c] is the rule clause c belongs to.
	clauseRule []int32
	// gate, when not nil, holds for every rule the literals of a clause
	// on event.dataset alone (folded): an event whose dataset contains
	// none of them is no rule's candidate (AdmitsDataset). Nil when some
	// rule states no such clause.
	gate []string
	// admitted caches AdmitsDataset by dataset, up to maxGateCache values.
	admitted sync.Map // string → bool
	ncached  atomic.Int32
}

// maxGateCache bounds the datasets whose AdmitsDataset is cached: an
// event's dataset comes from its sender, and a stream of made-up values
// must not grow the cache.
const maxGateCache = 1024

// maxGateKey bounds the length of a dataset AdmitsDataset caches: a
// dataset is as long as its sender makes it (up to a line, 1 MiB), and
// maxGateCache of those would hold a GiB until the next reload. Real
// datasets ("gateway.access") are far shorter; a longer one is answered
// without the cache.
const maxGateKey = 256

// rule is one rule's clauses, by id.
type rule struct {
	clauses []int32
}

// field is everything the Index tests on one field.
type field struct {
	name string
	text func(*event.Event) string
	list func(*event.Event) []string
	num  func(*event.Event) int64
	// Literals: lits[i] is found by the automaton as pattern i and marks
	// the clauses litClauses[i].
	lits       []string
	litClauses [][]int32
	ac         *automaton
	// Integers: the clauses each value marks.
	ints map[int64][]int32
	// users are the rules with a clause on this field; decides are the
	// clauses whose last field (in the Index's order) this is.
	users   []int32
	decides []int32
}

// NewIndex indexes the requirements of rules 0…len(reqs)-1 (nil: no
// requirement).
func NewIndex(reqs []Req) *Index {
	ix := &Index{always: true}
	byName := map[string]*field{}
	litID := map[*field]map[string]int{}
	fieldOf := func(a Atom) *field {
		key := a.Field
		switch {
		case a.Int != nil:
			key += "\x00int"
		case a.List != nil:
			key += "\x00list"
		}
		f := byName[key]
		if f == nil {
			f = &field{name: a.Field, text: a.Text, list: a.List, num: a.Int}
			byName[key] = f
			ix.fields = append(ix.fields, f)
			litID[f] = map[string]int{}
		}
		return f
	}
	clauseFields := [][]*field{}
	for ri, req := range reqs {
		var r rule
		for _, c := range req {
			if len(c) == 0 {
				continue // states nothing
			}
			id := int32(ix.nclauses)
			ix.nclauses++
			r.clauses = append(r.clauses, id)
			ix.clauseRule = append(ix.clauseRule, int32(ri))
			clauseFields = append(clauseFields, nil)
			for _, a := range c {
				f := fieldOf(a)
				clauseFields[id] = append(clauseFields[id], f)
				f.users = appendUnique(f.users, int32(ri))
				if a.Int != nil {
					if f.ints == nil {
						f.ints = map[int64][]int32{}
					}
					f.ints[a.N] = appendUnique(f.ints[a.N], id)
					continue
				}
				lit := string(Fold(nil, a.Lit))
				i, ok := litID[f][lit]
				if !ok {
					i = len(f.lits)
					litID[f][lit] = i
					f.lits = append(f.lits, lit)
					f.litClauses = append(f.litClauses, nil)
				}
				f.litClauses[i] = appendUnique(f.litClauses[i], id)
			}
		}
		if len(r.clauses) > 0 {
			ix.always = false
		}
		ix.rules = append(ix.rules, r)
	}
	ix.gate = datasetGate(reqs)
	for _, f := range ix.fields {
		if len(f.lits) > 0 {
			f.ac = newAutomaton(f.lits, f.litClauses)
		}
	}
	// The order: the fields of few values first (their tests are cheap and
	// put most rules out), then the rest as first named.
	slices.SortStableFunc(ix.fields, func(a, b *field) int { return fieldRank(a) - fieldRank(b) })
	pos := map[*field]int{}
	for i, f := range ix.fields {
		pos[f] = i
	}
	for c, fs := range clauseFields {
		last := 0
		for _, f := range fs {
			last = max(last, pos[f])
		}
		ix.fields[last].decides = append(ix.fields[last].decides, int32(c))
	}
	return ix
}

func fieldRank(f *field) int {
	switch {
	case f.name == datasetField:
		return 0
	case f.num != nil, lowCardinality[f.name]:
		return 1
	}
	return 2
}

func appendUnique(s []int32, id int32) []int32 {
	if len(s) > 0 && s[len(s)-1] == id {
		return s
	}
	return append(s, id)
}

// Scratch is one goroutine's working memory for Candidates.
type Scratch struct {
	hit  []bool
	out  []bool // rules with an unmet clause
	buf  []byte
	cand []int
}

// Candidates returns the indices, ascending, of the rules that may match
// ev: those whose every clause has an atom that holds. The slice is s's
// and valid until the next call with s.
func (ix *Index) Candidates(ev *event.Event, s *Scratch) []int {
	s.cand = s.cand[:0]
	if ix.always {
		for i := range ix.rules {
			s.cand = append(s.cand, i)
		}
		return s.cand
	}
	if cap(s.hit) < ix.nclauses {
		s.hit = make([]bool, ix.nclauses)
	}
	if cap(s.out) < len(ix.rules) {
		s.out = make([]bool, len(ix.rules))
	}
	hit, out := s.hit[:ix.nclauses], s.out[:len(ix.rules)]
	clear(hit)
	clear(out)
	for _, f := range ix.fields {
		if !anyIn(f.users, out) {
			continue
		}
		switch {
		case f.num != nil:
			for _, c := range f.ints[f.num(ev)] {
				hit[c] = true
			}
		case f.text != nil:
			if v := f.text(ev); v != "" {
				s.buf = f.ac.scan(v, s.buf, hit)
			}
		case f.list != nil:
			for _, v := range f.list(ev) {
				if v != "" {
					s.buf = f.ac.scan(v, s.buf, hit)
				}
			}
		}
		for _, c := range f.decides {
			if !hit[c] {
				out[ix.clauseRule[c]] = true
			}
		}
	}
	for i := range ix.rules {
		if !out[i] {
			s.cand = append(s.cand, i)
		}
	}
	return s.cand
}

// anyIn reports whether some rule of users is not out.
func anyIn(users []int32, out []bool) bool {
	for _, r := range users {
		if !out[r] {
			return true
		}
	}
	return false
}

// Stats describe an Index: how many rules state a requirement, clauses,
// fields read and literals searched.
type Stats struct {
	Rules, Filtered, Clauses, Fields, Literals, States int
}

// Stats returns the Index's figures.
func (ix *Index) Stats() Stats {
	st := Stats{Rules: len(ix.rules), Clauses: ix.nclauses, Fields: len(ix.fields)}
	for _, r := range ix.rules {
		if len(r.clauses) > 0 {
			st.Filtered++
		}
	}
	for _, f := range ix.fields {
		st.Literals += len(f.lits)
		if f.ac != nil {
			st.States += f.ac.states
		}
	}
	return st
}

// datasetGate returns the folded literals of one clause per requirement
// that tests event.dataset alone, or nil when some requirement has no
// such clause (or there are none).
func datasetGate(reqs []Req) []string {
	var lits []string
	for _, req := range reqs {
		found := false
		for _, c := range req {
			// A clause on event.dataset alone: every atom reads its text.
			if len(c) == 0 || slices.ContainsFunc(c, func(a Atom) bool { return a.Field != datasetField || a.Text == nil }) {
				continue
			}
			for _, a := range c {
				lit := string(Fold(nil, a.Lit))
				if !slices.Contains(lits, lit) {
					lits = append(lits, lit)
				}
			}
			found = true
			break
		}
		if !found {
			return nil
		}
	}
	return lits
}

const datasetField = "event.dataset"

// AdmitsDataset reports whether an event whose event.dataset is ds can be
// a candidate of any rule: false only when every rule requires the
// dataset to contain (case-insensitively) a literal ds does not. A router
// asks it before handing an event to the rules at all, so an event of a
// dataset no rule reads costs a cached look-up instead of a Candidates
// pass. Like Candidates, it is necessary, never sufficient.
func (ix *Index) AdmitsDataset(ds string) bool {
	if ix == nil || ix.gate == nil {
		return true
	}
	cacheable := len(ds) <= maxGateKey
	if cacheable {
		if v, ok := ix.admitted.Load(ds); ok {
			return v.(bool)
		}
	}
	folded := string(Fold(nil, ds))
	ok := slices.ContainsFunc(ix.gate, func(lit string) bool { return strings.Contains(folded, lit) })
	if cacheable && ix.ncached.Load() < maxGateCache {
		if _, loaded := ix.admitted.LoadOrStore(strings.Clone(ds), ok); !loaded {
			ix.ncached.Add(1)
		}
	}
	return ok
}
