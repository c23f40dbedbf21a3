package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/netname"
	"github.com/haechi-sec/haechi/internal/prefilter"
)

// maxEntities bounds the entities one aggregate rule tracks on one shard;
// past it, matching events of new entities are counted in Rule.Dropped
// until idle ones are evicted.
const maxEntities = 200_000

// maxEvidence is how many event references an aggregate finding cites.
const maxEvidence = 5

// sweepEvery is how often (in event time) idle aggregation state is
// evicted.
const sweepEvery = time.Minute

// Detectors returns one engine detector per entity kind — "rules.principal",
// "rules.source", "rules.token", "rules.key" — running the Holder's current
// rules of that kind.
func Detectors(h *Holder) []engine.Detector {
	names := &netname.Cache{}
	out := make([]engine.Detector, len(entityKinds))
	for i := range entityKinds {
		out[i] = &detector{h: h, kind: i, names: names}
	}
	return out
}

type detector struct {
	h     *Holder
	kind  int
	names *netname.Cache
}

var _ engine.Detector = (*detector)(nil)

// Name implements engine.Detector.
func (d *detector) Name() string { return detectorNames[d.kind] }

// detectorNames are the detectors' names, built once: the engine asks for
// a detector's name for every event it hands it.
var detectorNames = func() (out [len(entityKinds)]string) {
	for i, k := range entityKinds {
		out[i] = "rules." + k.name
	}
	return out
}()

// Key implements engine.Detector: the event's entity of this detector's
// kind, when the running set has rules of that kind that may read the
// event's dataset.
func (d *detector) Key(ev *event.Event) (event.EntityKey, bool) {
	v := d.h.v.Load()
	if v == nil || len(v.byKind[d.kind]) == 0 {
		return event.EntityKey{}, false
	}
	// An event of a dataset none of these rules reads is not handed to
	// them at all (the Index's dataset gate; a rule stating no dataset
	// keeps every event).
	if !v.index[d.kind].AdmitsDataset(ev.Dataset) {
		return event.EntityKey{}, false
	}
	id := entityID(d.kind, ev, d.names)
	if id == "" {
		return event.EntityKey{}, false
	}
	return event.EntityKey{Kind: entityKinds[d.kind].kind, ID: id}, true
}

func entityID(kind int, ev *event.Event, names *netname.Cache) string {
	switch entityKinds[kind].name {
	case EntityPrincipal:
		if ev.User.ID == "" && ev.Dataset == event.DatasetRoster {
			return ev.Identity.ID
		}
		return ev.User.ID
	case EntitySource:
		if !ev.Source.IP.IsValid() {
			return ""
		}
		return names.Address(ev.Source.IP)
	case EntityToken:
		return ev.Token.ID
	case EntityKey:
		if ev.Token.KeyID == "" && ev.Dataset == event.DatasetKeys {
			return ev.Key.ID
		}
		return ev.Token.KeyID
	}
	return ""
}

// NewShard implements engine.Detector.
func (d *detector) NewShard() engine.Shard {
	return &shard{d: d, act: newActivation(d.names), aggs: map[string]*aggState{}}
}

type shard struct {
	d     *detector
	pre   prefilter.Scratch
	run   []*Rule // the rules dispatched for the current event
	act   *activation
	gen   uint64
	aggs  map[string]*aggState // by rule version
	swept time.Time
	// family holds the matching rules of a family (Rule.Family) while
	// one event is processed.
	family []*Rule
}

var _ engine.Advancer = (*shard)(nil)

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	v := s.d.h.v.Load()
	if v.gen != s.gen {
		for ver := range s.aggs {
			if !v.versions[ver] {
				delete(s.aggs, ver)
			}
		}
		s.gen = v.gen
	}
	rules := v.byKind[s.d.kind]
	if len(rules) == 0 {
		return
	}
	s.act.reset(ev)
	s.family = s.family[:0]
	// Dispatch: only the rules whose prefilter requirement ev meets can
	// match it; they run in the set's order, as without dispatch.
	if ix := v.index[s.d.kind]; ix != nil {
		s.run = s.run[:0]
		for _, i := range ix.Candidates(ev, &s.pre) {
			s.run = append(s.run, rules[i])
		}
		rules = s.run
	}
	for _, r := range rules {
		ok, err := s.match(r, ev)
		if err != nil {
			r.countError(err)
			continue
		}
		if !ok {
			continue
		}
		if r.Agg == nil {
			if r.Family != "" {
				s.family = append(s.family, r)
				continue
			}
			s.emit(c, r, key, ev, nil)
			continue
		}
		s.aggregate(c, r, key, ev)
	}
	s.emitFamilies(c, key, ev)
}

// emitFamilies emits one finding per family among the rules in s.family:
// that of the strongest rule (the first of equals, in the set's order),
// naming the others.
func (s *shard) emitFamilies(c *engine.Context, key event.EntityKey, ev *event.Event) {
	for i, r := range s.family {
		if r == nil {
			continue
		}
		best := r
		var others []*Rule
		for j := i + 1; j < len(s.family); j++ {
			o := s.family[j]
			if o == nil || o.Family != r.Family {
				continue
			}
			if o.Score > best.Score {
				others = append(others, best)
				best = o
			} else {
				others = append(others, o)
			}
			s.family[j] = nil
		}
		s.emit(c, best, key, ev, nil, others...)
	}
	clear(s.family)
	s.family = s.family[:0]
}

// match evaluates r on ev; a panicking condition is an error.
func (s *shard) match(r *Rule, ev *event.Event) (ok bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			ok, err = false, fmt.Errorf("condition panicked: %v", p)
		}
	}()
	if cc, isCEL := r.Cond.(*celCondition); isCEL {
		if !cc.guard.pass(ev) {
			return false, nil
		}
		if cc.exact {
			return true, nil
		}
		return cc.eval(s.act)
	}
	return r.Cond.Match(ev)
}

// aggState is one aggregate rule's state on one shard.
type aggState struct {
	ents map[string]*window
}

// window is one entity's sliding window for one rule.
type window struct {
	newest time.Time            // newest event time seen (matching)
	quiet  time.Time            // fired: nothing counts before this event time
	times  []time.Time          // count: times in the window, ascending, ≤ threshold
	seen   map[string]time.Time // count_distinct: value → latest time, ≤ threshold
	refs   [maxEvidence]string  // ring of recent evidence
	nref   int
}

func (s *shard) aggregate(c *engine.Context, r *Rule, key event.EntityKey, ev *event.Event) {
	st := s.aggs[r.version]
	if st == nil {
		st = &aggState{ents: map[string]*window{}}
		s.aggs[r.version] = st
	}
	w := st.ents[key.ID]
	if w == nil {
		if len(st.ents) >= maxEntities {
			r.stats.dropped.Add(1)
			return
		}
		w = &window{}
		st.ents[key.ID] = w
	}
	a := r.Agg
	t := ev.Time
	if !w.quiet.IsZero() {
		if t.Before(w.quiet) {
			return // fired: re-arms once the window has fully passed
		}
		w.quiet = time.Time{}
		w.reset()
	}
	if t.After(w.newest) {
		w.newest = t
	}
	start := w.newest.Add(-a.Window)
	if t.Before(start) {
		return // older than the window relative to the newest event
	}
	var n int
	switch a.Func {
	case AggCount:
		i, _ := slices.BinarySearchFunc(w.times, t, time.Time.Compare)
		w.times = slices.Insert(w.times, i, t)
		drop := 0
		for drop < len(w.times) && w.times[drop].Before(start) {
			drop++
		}
		if over := len(w.times) - drop - a.Threshold; over > 0 {
			drop += over
		}
		if drop > 0 {
			w.times = append(w.times[:0], w.times[drop:]...)
		}
		n = len(w.times)
	case AggCountDistinct:
		if w.seen == nil {
			w.seen = map[string]time.Time{}
		}
		added := false
		forEachValue(ev, a.Field, s.d.names, func(v string) bool {
			if old, ok := w.seen[v]; !ok || t.After(old) {
				w.seen[v] = t
			}
			added = true
			if len(w.seen) >= a.Threshold {
				for k, tt := range w.seen {
					if tt.Before(start) {
						delete(w.seen, k)
					}
				}
				return len(w.seen) < a.Threshold
			}
			return true
		})
		if !added {
			return
		}
		n = len(w.seen)
	}
	w.refs[w.nref%maxEvidence] = c.Ref(ev)
	w.nref++
	if n < a.Threshold {
		return
	}
	s.emit(c, r, key, ev, &aggFacts{count: n, refs: w.evidence()})
	w.quiet = t.Add(a.Window)
	w.reset()
}

func (w *window) reset() {
	w.times = w.times[:0]
	clear(w.seen)
	w.refs = [maxEvidence]string{}
	w.nref = 0
}

// evidence returns the recent references, oldest first.
func (w *window) evidence() []string {
	n := min(w.nref, maxEvidence)
	out := make([]string, 0, n)
	for i := w.nref - n; i < w.nref; i++ {
		out = append(out, w.refs[i%maxEvidence])
	}
	return out
}

// forEachValue calls fn with each value of the contract field in ev (each
// element of a list field) as a string until fn returns false.
func forEachValue(ev *event.Event, field string, names *netname.Cache, fn func(string) bool) {
	name, _ := contractName(field)
	v, ok := ev.Field(name)
	if !ok {
		return
	}
	switch x := v.(type) {
	case string:
		fn(x)
	case []string:
		for _, s := range x {
			if !fn(s) {
				return
			}
		}
	case int64:
		fn(strconv.FormatInt(x, 10))
	case float64:
		fn(strconv.FormatFloat(x, 'g', -1, 64))
	case time.Time:
		fn(x.UTC().Format(time.RFC3339Nano))
	case netip.Addr:
		fn(names.Address(x))
	}
}

type aggFacts struct {
	count int
	refs  []string
}

// emit emits r's finding; also are the other rules of r's family that
// matched the same event, named in the explanation.
func (s *shard) emit(c *engine.Context, r *Rule, key event.EntityKey, ev *event.Event, agg *aggFacts, also ...*Rule) {
	sev, _ := event.ParseSeverity(r.Severity)
	expl := explain(r, key, ev, agg)
	if len(also) > 0 {
		var b strings.Builder
		b.WriteString(expl)
		b.WriteString(" Also matched, of the same rule family (one line of evidence): ")
		for i, o := range also {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%s)", o.ID, o.Title)
		}
		b.WriteString(".")
		expl = b.String()
	}
	f := event.Finding{
		Detector:    "rule:" + r.ID,
		Kind:        r.ID,
		Title:       r.Title,
		Entity:      key,
		Time:        ev.Time,
		Score:       r.Score,
		Severity:    sev,
		Explanation: expl,
		Immediate:   r.Severity == "critical",
		Line:        r.Family,
	}
	if agg != nil {
		f.Evidence = agg.refs
	} else {
		f.Evidence = []string{c.Ref(ev)}
	}
	c.Emit(f)
}

// explain writes the finding's sentence: the rule, the entity, the facts.
func explain(r *Rule, key event.EntityKey, ev *event.Event, agg *aggFacts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rule %s (%s) ", r.ID, r.Title)
	if agg != nil {
		a := r.Agg
		if a.Func == AggCountDistinct {
			fmt.Fprintf(&b, "fired for %s %s: %d distinct %s within %s (threshold %d); latest %s",
				key.Kind, key.ID, agg.count, a.Field, fmtDuration(a.Window), a.Threshold, ev.Action)
		} else {
			fmt.Fprintf(&b, "fired for %s %s: %d matching events within %s (threshold %d); latest %s",
				key.Kind, key.ID, agg.count, fmtDuration(a.Window), a.Threshold, ev.Action)
		}
	} else {
		fmt.Fprintf(&b, "matched %s %s: %s", key.Kind, key.ID, ev.Action)
	}
	if key.Kind != event.EntityPrincipal && ev.User.ID != "" {
		fmt.Fprintf(&b, " by %s", ev.User.ID)
	}
	if key.Kind != event.EntitySource && ev.Source.IP.IsValid() {
		fmt.Fprintf(&b, " from %s", ev.Source.IP)
		if ev.Source.Country != "" {
			fmt.Fprintf(&b, " (%s)", ev.Source.Country)
		}
	}
	if n := len(ev.Records.IDs); n > 0 && agg == nil {
		typ := ev.Records.Type
		if typ == "" {
			typ = "personal-data"
		}
		fmt.Fprintf(&b, " touching %d %s record", n, typ)
		if n > 1 {
			b.WriteString("s")
		}
	}
	if ev.HTTP.StatusCode != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", ev.HTTP.StatusCode)
	}
	fmt.Fprintf(&b, " at %s.", ev.Time.UTC().Format(time.RFC3339))
	return b.String()
}

func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Advance implements engine.Advancer: once a minute of event time it
// evicts entities whose window has passed and that are not suppressed.
func (s *shard) Advance(_ *engine.Context, wm time.Time) {
	if wm.Equal(engine.EndOfTime) || wm.Sub(s.swept) < sweepEvery {
		return
	}
	s.swept = wm
	v := s.d.h.v.Load()
	for _, r := range v.byKind[s.d.kind] {
		st := s.aggs[r.version]
		if st == nil || r.Agg == nil {
			continue
		}
		for id, w := range st.ents {
			if wm.Sub(w.newest) > r.Agg.Window && !wm.Before(w.quiet) {
				delete(st.ents, id)
			}
		}
	}
}
