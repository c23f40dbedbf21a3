// Package rules runs user-written detection rules: YAML files, each rule a
// CEL condition over one event of the contract (docs/events.md), optionally
// aggregated per entity over a sliding window of event time, with inline
// tests that run through the real decoder and engine. docs/rules.md is the
// user's guide; this comment covers the code's contracts.
//
//   - A Set is built by LoadDir, LoadFS, Pack, Merge or Add and is immutable
//     once handed to a Holder. Rules are shared by every shard goroutine:
//     Condition implementations must be safe for concurrent use.
//   - A Holder is the one place the running set lives; Swap replaces it
//     atomically (hot reload). Detectors read the Holder per event, so a swap
//     takes effect at the next event on every shard. Aggregation state is
//     keyed by the rule's version (its id and everything that decides what
//     it counts), so a reload keeps the state of unchanged rules and drops
//     that of removed or changed ones.
//   - Detectors never panic the pipeline: a condition that fails or panics
//     on an event counts one error for the rule (Rule.Errors) and does not
//     match.
//   - Dispatch: Swap indexes each entity kind's rules by the requirements
//     their conditions state (Prefilterer, package prefilter), and a
//     detector evaluates only the rules whose requirement an event meets,
//     in the set's order. Requirements are necessary conditions, so the
//     findings are those of evaluating every rule (TestDispatchDifferential).
package rules

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync/atomic"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/prefilter"
)

// Condition decides whether one event matches a rule. Implementations
// must be safe for concurrent use: every shard goroutine calls Match.
//
// A Condition that also implements Prefilterer is dispatched: the
// detectors evaluate it only on events that meet its requirement.
type Condition interface {
	Match(ev *event.Event) (bool, error)
}

// Prefilterer is implemented by conditions that can state what an event
// must carry to match (package prefilter): the detectors index the running
// rules' requirements and evaluate a rule only on the events that meet
// its requirement, instead of every rule on every event. The requirement
// must be necessary — whenever Match reports true, the requirement holds
// — so dispatch never changes a verdict; a rule skipped this way does not
// count an error either. Conditions without it run on every event of
// their entity kind.
type Prefilterer interface {
	Prefilter() prefilter.Req
}

// Entity kinds a rule can be about (Rule.Entity).
const (
	EntityPrincipal = "principal" // user.id (identity.id on hr.roster events)
	EntitySource    = "source"    // source.ip
	EntityToken     = "token"     // token.id
	EntityKey       = "key"       // token.key_id (key.id on keys.inventory events)
)

// entityKinds lists the kinds in Detectors' order.
var entityKinds = [...]struct {
	name string
	kind event.EntityKind
}{
	{EntityPrincipal, event.EntityPrincipal},
	{EntitySource, event.EntitySource},
	{EntityToken, event.EntityToken},
	{EntityKey, event.EntitySigningKey},
}

func entityIndex(name string) int {
	for i, k := range entityKinds {
		if k.name == name {
			return i
		}
	}
	return -1
}

// Aggregate functions.
const (
	AggCount         = "count"
	AggCountDistinct = "count_distinct"
)

// Severity scores.
var severityScores = map[string]float64{"low": 30, "medium": 50, "high": 70, "critical": 90}

// ScoreOf returns the finding score of a severity name, ok=false for an
// unknown one.
func ScoreOf(severity string) (score float64, ok bool) {
	score, ok = severityScores[severity]
	return score, ok
}

// Rule is one detection rule.
type Rule struct {
	ID          string
	Title       string
	Description string
	Severity    string  // low, medium, high or critical
	Score       float64 // from Severity unless set
	Tags        []string
	Entity      string // principal (default), source, token or key
	Disabled    bool   // the rule is loaded and tested but not run
	File        string // where it was defined ("" for rules built in code)
	Line        int
	Cond        Condition
	Agg         *Aggregate // nil: every matching event is a finding
	Tests       []Test
	// Family names the rules this one counts as one line of evidence
	// with ("": none). Of the family's rules that match one event (rules
	// without an aggregate), only the strongest emits a finding, naming
	// the others; and every finding of the family names the family as its
	// line (event.Finding.Line), so the alert stage counts the family once.
	// Sigma rules get it from sigma.Families.
	Family string

	stats   *ruleStats
	version string
}

type ruleStats struct {
	errors  atomic.Uint64
	dropped atomic.Uint64
	lastErr atomic.Pointer[string]
}

// Errors returns how many events the rule's condition failed on (runtime
// errors, panics, cost limit): for /metrics.
func (r *Rule) Errors() uint64 {
	if r.stats == nil {
		return 0
	}
	return r.stats.errors.Load()
}

// LastError returns the latest condition error message, "" if none.
func (r *Rule) LastError() string {
	if r.stats == nil {
		return ""
	}
	if p := r.stats.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// Dropped returns how many matching events an aggregate rule could not
// track because a shard already held its limit of entities.
func (r *Rule) Dropped() uint64 {
	if r.stats == nil {
		return 0
	}
	return r.stats.dropped.Load()
}

func (r *Rule) countError(err error) {
	r.stats.errors.Add(1)
	msg := err.Error()
	r.stats.lastErr.Store(&msg)
}

// Where returns "file:line" of the rule's definition, or "rule <id>".
func (r *Rule) Where() string {
	if r.File == "" {
		return "rule " + r.ID
	}
	return fmt.Sprintf("%s:%d", r.File, r.Line)
}

// Aggregate makes a rule fire once per entity when enough matching events
// fall in a sliding window of event time.
type Aggregate struct {
	Func      string // count or count_distinct
	Field     string // contract field counted by count_distinct
	Window    time.Duration
	Threshold int
}

// Test is one inline test: events in, findings expected.
type Test struct {
	Name       string
	Line       int
	Events     []string            // one contract JSON object each (NDJSON lines)
	EventLines []int               // where each event is written, for messages (optional)
	Lists      map[string][]string // list values for this test (names must be declared)
	Expect     Expect
}

// Expect is what a test expects.
type Expect struct {
	Findings int      // number of findings
	Entities []string // entity ids of the findings, in any order; nil: not checked
}

// Options configure loading.
type Options struct {
	// Lists are named lists rules refer to as lists.<name> (list of
	// strings; cidr() reads entries as networks). WellKnownLists are always
	// declared, empty unless given here.
	Lists map[string][]string
}

// Set is a collection of rules with unique ids.
type Set struct {
	Rules []*Rule
	ids   map[string]*Rule
}

var idPattern = regexp.MustCompile(`^[a-z0-9_.-]+$`)

// Add validates r, fills its defaults (Entity principal, Score from
// Severity) and adds it. The id must be new to the set.
func (s *Set) Add(r *Rule) error {
	if err := r.normalize(); err != nil {
		return err
	}
	if s.ids == nil {
		s.ids = map[string]*Rule{}
		for _, x := range s.Rules {
			s.ids[x.ID] = x
		}
	}
	if prev, ok := s.ids[r.ID]; ok {
		return fmt.Errorf("duplicate rule id %q (first defined at %s)", r.ID, prev.Where())
	}
	s.ids[r.ID] = r
	s.Rules = append(s.Rules, r)
	return nil
}

// Rule returns the rule with id, or nil.
func (s *Set) Rule(id string) *Rule {
	for _, r := range s.Rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// ErrorCounts returns each rule's condition error count by id (for
// /metrics).
func (s *Set) ErrorCounts() map[string]uint64 {
	out := make(map[string]uint64, len(s.Rules))
	for _, r := range s.Rules {
		out[r.ID] = r.Errors()
	}
	return out
}

// Merge returns a set holding every rule of sets; a duplicate id is an
// error. The rules themselves are shared, not copied.
func Merge(sets ...*Set) (*Set, error) {
	out := &Set{}
	var errs []error
	for _, s := range sets {
		if s == nil {
			continue
		}
		for _, r := range s.Rules {
			if err := out.Add(r); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.Where(), err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (r *Rule) normalize() error {
	var errs []error
	if !idPattern.MatchString(r.ID) {
		errs = append(errs, fmt.Errorf("id %q: want lower-case letters, digits, '_', '.' or '-'", r.ID))
	}
	if r.Title == "" {
		errs = append(errs, errors.New("title is required"))
	}
	score, ok := ScoreOf(r.Severity)
	if !ok {
		errs = append(errs, fmt.Errorf("severity %q: want low, medium, high or critical", r.Severity))
	}
	if r.Score == 0 {
		r.Score = score
	}
	if r.Entity == "" {
		r.Entity = EntityPrincipal
	}
	if entityIndex(r.Entity) < 0 {
		errs = append(errs, fmt.Errorf("entity %q: want principal, source, token or key", r.Entity))
	}
	if r.Cond == nil {
		errs = append(errs, errors.New("condition is required"))
	}
	if r.Agg != nil {
		if err := r.Agg.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if r.stats == nil {
		r.stats = &ruleStats{}
	}
	r.Tags = slices.Clip(r.Tags)
	r.version = r.computeVersion()
	return nil
}

func (a *Aggregate) validate() error {
	switch a.Func {
	case AggCount:
	case AggCountDistinct:
		if a.Field == "" {
			return errors.New("aggregate: count_distinct needs a field")
		}
	default:
		return fmt.Errorf("aggregate: function %q: want count or count_distinct", a.Func)
	}
	if a.Field != "" {
		if _, ok := contractName(a.Field); !ok {
			return fmt.Errorf("aggregate: field %q is not a field of the event contract", a.Field)
		}
	}
	if a.Window <= 0 {
		return errors.New("aggregate: window must be a positive duration, e.g. 10m")
	}
	if a.Threshold < 1 {
		return errors.New("aggregate: threshold must be at least 1")
	}
	return nil
}

// computeVersion identifies what decides a rule's aggregation state: a
// reload that changes none of it keeps the state.
func (r *Rule) computeVersion() string {
	cond := fmt.Sprintf("%p", r.Cond)
	if s, ok := r.Cond.(fmt.Stringer); ok {
		cond = s.String()
	}
	agg := ""
	if r.Agg != nil {
		agg = fmt.Sprintf("%s|%s|%s|%d", r.Agg.Func, r.Agg.Field, r.Agg.Window, r.Agg.Threshold)
	}
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s", r.ID, r.Entity, agg, cond)
}

// Holder holds the running set; it is safe for concurrent use.
type Holder struct {
	v   atomic.Pointer[view]
	gen atomic.Uint64
	// noDispatch evaluates every rule on every event (tests compare).
	noDispatch bool
}

// view is a set prepared for the detectors.
type view struct {
	set    *Set
	gen    uint64
	byKind [len(entityKinds)][]*Rule // enabled rules by entity kind
	// index decides which of byKind[k] may match an event (nil: all).
	index    [len(entityKinds)]*prefilter.Index
	versions map[string]bool
}

// NewHolder returns a Holder running s (nil: no rules).
func NewHolder(s *Set) *Holder {
	h := &Holder{}
	h.Swap(s)
	return h
}

// Swap makes s the running set. The set must not be modified afterwards.
func (h *Holder) Swap(s *Set) {
	if s == nil {
		s = &Set{}
	}
	v := &view{set: s, gen: h.gen.Add(1), versions: map[string]bool{}}
	for _, r := range s.Rules {
		if r.Disabled {
			continue
		}
		if r.stats == nil { // built without Add
			if err := r.normalize(); err != nil {
				continue
			}
		}
		if i := entityIndex(r.Entity); i >= 0 {
			v.byKind[i] = append(v.byKind[i], r)
			v.versions[r.version] = true
		}
	}
	if !h.noDispatch {
		for k, rules := range v.byKind {
			if len(rules) > 0 {
				v.index[k] = prefilter.NewIndex(requirements(rules))
			}
		}
	}
	h.v.Store(v)
}

// requirements returns each rule's prefilter requirement (nil for a
// condition that states none).
func requirements(rules []*Rule) []prefilter.Req {
	reqs := make([]prefilter.Req, len(rules))
	for i, r := range rules {
		if p, ok := r.Cond.(Prefilterer); ok {
			reqs[i] = safeReq(p)
		}
	}
	return reqs
}

// safeReq asks a condition for its requirement; one that panics states
// none (its rule then runs on every event, as before dispatch).
func safeReq(p Prefilterer) (req prefilter.Req) {
	defer func() {
		if recover() != nil {
			req = nil
		}
	}()
	return p.Prefilter()
}

// Load returns the running set.
func (h *Holder) Load() *Set { return h.v.Load().set }

// Problem is something Lint finds questionable in a rule.
type Problem struct {
	File    string
	Line    int
	Rule    string
	Message string
}

// String renders "file:line: rule: message".
func (p Problem) String() string {
	where := p.File
	if where == "" {
		where = "rule"
	} else if p.Line > 0 {
		where = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s: %s: %s", where, p.Rule, p.Message)
}
