// Package behaviour judges staff, service and partner identities by their
// hourly behaviour against their own history and their role's peers.
//
// Like record_volume it keys on the role carried in user.roles, so an
// identity meets its peers on one shard and a new identity is judged
// against them from its first hour. Per identity and tumbling event-time
// hour it builds a feature vector — requests, distinct records, record
// types, personal-data fields, error ratio, bytes, distinct endpoints
// (route templates), sequential-id ratio and how unusual the hour is for
// it. The hour closes when its role's next hour begins (or the input
// ends: no timers are needed).
//
//   - behaviour_anomaly: a shape feature (requests, types, fields,
//     errors, endpoints) far above both the identity's own 99th
//     percentile at that time of week (decaying histograms, 14-day
//     half-life) and its role's 99th percentile — counts the moment they
//     cross, the error ratio when the hour closes;
//   - behaviour_multivariate (model: true), when the hour closes:
//     Half-Space Trees per role over the vectors, with
//     leave-one-feature-out attribution;
//   - slow_exfiltration, when the hour closes: distinct records over 1, 3,
//     7 and 30 days, leaving out the largest day (hour), far above the
//     identity's own history of the same window and above its peers' —
//     strong (≥ 90, alerts alone); with no own history far above its
//     peers' — medium. The bar is lower when the day's reads come from
//     outside the corporate network or at hours unusual for it.
//
// behaviour_anomaly, behaviour_multivariate and a medium slow_exfiltration
// never alert alone; all are one detector, so they never corroborate each
// other. Distinct records, sequential ids and
// bytes are record_volume's line of evidence and the unusual hour
// off_hours': they inform explanations and the model but raise nothing
// here alone. docs/detectors.md has the details and the figures.
package behaviour

import (
	"fmt"
	"maps"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/urlpath"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// Name is the detector's stable name.
const Name = "behaviour"

// Kinds of finding.
const (
	KindAnomaly      = "behaviour_anomaly"
	KindMultivariate = "behaviour_multivariate"
	KindSlow         = "slow_exfiltration"
)

// EntityRole is the entity kind of the shard key.
const EntityRole event.EntityKind = "role"

// Options configure the detector. Zero values take the defaults.
type Options struct {
	// Model enables the Half-Space Trees model (behaviour_multivariate).
	Model bool
	// Factor is how many times the larger of the identity's own and its
	// peers' 99th percentile a count must reach to be anomalous (3).
	Factor float64
	// LongFactor is how many times its peers' 90th percentile the
	// sustained long-window records of an identity with no own history
	// must reach (4).
	LongFactor float64
	// LongFloor is the fewest distinct records in a long window that can
	// be flagged (500).
	LongFloor int
	// HalfLifeInDays is the decay of the own and peer baselines (14).
	HalfLifeInDays float64
	// CorporatePrefixes and CorporateASNs are the corporate network
	// (optional): records read from outside it lower slow_exfiltration's
	// bar. Empty: only reads at hours unusual for the identity do.
	CorporatePrefixes []netip.Prefix
	CorporateASNs     []uint32
}

func (o *Options) defaults() {
	if o.Factor <= 0 {
		o.Factor = 3
	}
	if o.LongFactor <= 0 {
		o.LongFactor = 4
	}
	if o.LongFloor <= 0 {
		o.LongFloor = 500
	}
	if o.HalfLifeInDays <= 0 {
		o.HalfLifeInDays = 14
	}
}

// Minimum history before a baseline is used; documented in
// docs/detectors.md.
const (
	minOwn           = 8   // identity-hours in the slot (else all slots) for an own baseline
	minPeers         = 30  // identity-hours of the role for a peer baseline
	minPeerIDs       = 3   // identities a role needs for long-window comparison
	minScores        = 500 // scored hours before the model's findings
	minModelRequests = 10  // requests in an hour the model may report
	exactRecords     = 1024
	smallSet         = 64
	maxRefs          = 3
	maxTokens        = 4 // session tokens an hour names (slow_exfiltration's Related)
	slots            = 6
)

// floors: the smallest value of each feature that can be flagged,
// whatever the baselines (a count of 3 is never "far" above 1).
var floors = [nFeatures]float64{
	fRequests: 50, fRecords: 50, fTypes: 5, fFields: 10, fErrors: 0.5,
	fBytes: 1 << 20, fEndpoints: 10, fSequential: 0.5, fUnusual: 2,
}

// Detector is the behaviour detector.
type Detector struct{ opts Options }

var (
	_ engine.Detector    = (*Detector)(nil)
	_ engine.Advancer    = (*shard)(nil)
	_ engine.Snapshotter = (*shard)(nil)
)

// New returns the detector.
func New(opts Options) *Detector {
	opts.defaults()
	return &Detector{opts: opts}
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: activity by an identity with a role keys
// on its first role.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if len(ev.User.Roles) == 0 || !ev.IsActivity() {
		return event.EntityKey{}, false
	}
	return event.EntityKey{Kind: EntityRole, ID: ev.User.Roles[0]}, true
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{opts: d.opts, roles: map[string]*role{}}
}

type shard struct {
	opts  Options
	roles map[string]*role
	pool  []*window
}

type role struct {
	name     string
	hour     int64 // open hour (unix hours); 0 before the first event
	open     []*ident
	ids      map[string]*ident
	peers    [slots][nFeatures]fineHist
	peersAll [nFeatures]fineHist
	hod      [24]float64
	long     [nWin]fineHist
	bar      typicalBar // the typical bar of today, recomputed daily (not state)
	scores   fineHist   // model scores
	model    *hst
	pending  [][nFeatures]float64 // vectors of the hour being closed
}

// ident is one identity's learnt state: 1,768 bytes, fixed size — keep it
// within the allocator's 1,792-byte class (1,940 B per identity measured
// with the map; the budget is 2 KiB).
type ident struct {
	id      string
	own     [slots][ownFeatures]ownHist
	hod     [24]uint16
	sl      slowState
	decayAt int32   // unix hour the own histograms are decayed to
	anomDay int32   // last day an hour was loud by records
	w       *window // open hour, nil when it has not acted in it
}

// window is an identity's open hour. Windows are pooled per shard.
type window struct {
	n, errs  int
	reads    int // record ids read, and those from outside the corporate network
	outside  int
	bytes    int64
	recs     map[uint64]struct{}
	big      *bigHLL // once recs passes exactRecords
	ints     map[int64]struct{}
	adjacent int
	types    []uint64
	fields   []uint64
	routes   []uint64
	refs     []string
	lastRef  string
	// tokens are the session tokens (token.id) of the hour's successful
	// record reads, first maxTokens: a long-window finding names them so
	// containment can end the sessions that read.
	tokens []string
	last   time.Time
	// The hour's thresholds of the shape counts, computed at its first
	// event (baselines change only when hours close), so a crossing is
	// reported at once rather than when the hour closes.
	primed bool
	fired  bool // behaviour_anomaly reported for this hour
	need   [nFeatures]float64
}

func (s *shard) getWindow() *window {
	if n := len(s.pool); n > 0 {
		w := s.pool[n-1]
		s.pool = s.pool[:n-1]
		return w
	}
	return &window{recs: map[uint64]struct{}{}, ints: map[int64]struct{}{}}
}

func (s *shard) putWindow(w *window) {
	clear(w.recs)
	clear(w.ints)
	*w = window{recs: w.recs, ints: w.ints, types: w.types[:0], fields: w.fields[:0], routes: w.routes[:0], refs: w.refs[:0], tokens: w.tokens[:0]}
	w.big = nil
	if len(s.pool) < 256 {
		s.pool = append(s.pool, w)
	}
}

func (s *shard) role(name string) *role {
	r := s.roles[name]
	if r == nil {
		r = &role{name: name, ids: map[string]*ident{}}
		if s.opts.Model {
			r.model = newHST(fnv(name))
		}
		s.roles[name] = r
	}
	return r
}

func unixHour(t time.Time) int64 { return t.Unix() / 3600 }
func unixDay(t time.Time) int32  { return int32(t.Unix() / 86400) }

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	r := s.role(key.ID)
	if h := unixHour(ev.Time); h > r.hour {
		if r.hour != 0 {
			s.closeHour(c, r)
			r.decay(float64(h-r.hour), s.opts.HalfLifeInDays)
		}
		r.hour = h
	}
	id := r.ids[ev.User.ID]
	if id == nil {
		id = &ident{id: ev.User.ID, decayAt: int32(r.hour), anomDay: -1}
		r.ids[ev.User.ID] = id
	}
	w := id.w
	if w == nil {
		w = s.getWindow()
		id.w = w
		r.open = append(r.open, id)
	}
	day := unixDay(ev.Time)
	s.rollTo(r, id, day)
	w.n++
	if ev.Outcome == event.OutcomeFailure || ev.HTTP.StatusCode >= 400 {
		w.errs++
	}
	if ev.HTTP.BodyBytes > 0 {
		w.bytes += ev.HTTP.BodyBytes
	}
	if ev.URLPath != "" || ev.Action != "" {
		w.routes = addSmall(w.routes, fnv(ev.Action, ev.HTTP.Method, urlpath.Template(ev.URLPath)))
	}
	grew := false
	if len(ev.Records.IDs) > 0 {
		w.types = addSmall(w.types, fnv(ev.Records.Type))
		for _, f := range ev.Records.Fields {
			w.fields = addSmall(w.fields, fnv(ev.Records.Type, f))
		}
		w.reads += len(ev.Records.IDs)
		if t := ev.Token.ID; t != "" && ev.Outcome != event.OutcomeFailure && len(w.tokens) < maxTokens && !slices.Contains(w.tokens, t) {
			w.tokens = append(w.tokens, t)
		}
		if !s.corporate(ev) {
			w.outside += len(ev.Records.IDs)
		}
		for _, rid := range ev.Records.IDs {
			x := mix(fnv(ev.Records.Type, rid))
			id.sl.add(x, day)
			if w.big != nil {
				w.big.add(x)
				grew = true
				continue
			}
			if _, dup := w.recs[x]; dup {
				continue
			}
			grew = true
			w.recs[x] = struct{}{}
			if n, err := strconv.ParseInt(rid, 10, 64); err == nil && len(w.ints) < exactRecords {
				_, lo := w.ints[n-1]
				_, hi := w.ints[n+1]
				if lo || hi {
					w.adjacent++
				}
				w.ints[n] = struct{}{}
			}
			if len(w.recs) > exactRecords {
				w.big = &bigHLL{}
				for h := range w.recs {
					w.big.add(h)
				}
			}
		}
	}
	ref := c.Ref(ev)
	if grew && len(w.refs) < maxRefs {
		w.refs = append(w.refs, ref)
	}
	w.lastRef = ref
	if ev.Time.After(w.last) {
		w.last = ev.Time
	}
	s.early(c, r, id, w, ev.Time)
}

// earlyFeatures are the shape counts judged as they grow.
var earlyFeatures = [...]int{fRequests, fTypes, fFields, fEndpoints}

// early reports behaviour_anomaly the moment a shape count of the open
// hour crosses its threshold.
func (s *shard) early(c *engine.Context, r *role, id *ident, w *window, at time.Time) {
	if w.fired {
		return
	}
	start := time.Unix(r.hour*3600, 0).UTC()
	slot := slotOf(start)
	if !w.primed {
		w.primed = true
		for _, f := range earlyFeatures {
			j := r.baselines(id, f, slot)
			w.need[f] = math.Inf(1)
			if j.ownOK || j.peersOK {
				w.need[f] = math.Max(floors[f], s.opts.Factor*math.Max(1, math.Max(j.own, j.peers)))
			}
		}
	}
	if float64(w.n) >= w.need[fRequests] || float64(len(w.types)) >= w.need[fTypes] ||
		float64(len(w.fields)) >= w.need[fFields] || float64(len(w.routes)) >= w.need[fEndpoints] {
		v := w.counts()
		s.judge(c, r, id, w, &v, slot, start, at, true)
	}
}

// counts is the open hour's count features so far.
func (w *window) counts() [nFeatures]float64 {
	var v [nFeatures]float64
	v[fRequests] = float64(w.n)
	if w.big != nil {
		v[fRecords] = math.Round(w.big.estimate())
	} else {
		v[fRecords] = float64(len(w.recs))
	}
	v[fTypes] = float64(len(w.types))
	v[fFields] = float64(len(w.fields))
	v[fBytes] = float64(w.bytes)
	v[fEndpoints] = float64(len(w.routes))
	return v
}

// Advance implements engine.Advancer: at the end of the input every open
// hour closes. (Otherwise an hour closes when its role's next one begins,
// so no timers are needed.)
func (s *shard) Advance(c *engine.Context, watermark time.Time) {
	if !watermark.Equal(engine.EndOfTime) {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(s.roles)) {
		r := s.roles[name]
		if len(r.open) > 0 {
			s.closeHour(c, r)
		}
	}
}

func addSmall(set []uint64, h uint64) []uint64 {
	if len(set) >= smallSet || slices.Contains(set, h) {
		return set
	}
	return append(set, h)
}

func (r *role) decay(hours, halfLifeDays float64) {
	k := math.Exp2(-hours / (24 * halfLifeDays))
	for s := range r.peers {
		for f := range r.peers[s] {
			r.peers[s][f].decay(k)
		}
	}
	for f := range r.peersAll {
		r.peersAll[f].decay(k)
	}
	for h := range r.hod {
		r.hod[h] *= k
	}
	for w := range r.long {
		r.long[w].decay(k)
	}
	r.scores.decay(k)
}

// slotOf is the time-of-week class of an hour: weekday or weekend × three
// 8-hour bands of the UTC day.
func slotOf(t time.Time) int {
	t = t.UTC()
	s := t.Hour() / 8
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		s += 3
	}
	return s
}

type judged struct {
	f              int
	value          float64
	own, peers     float64
	ownOK, peersOK bool
	excess         float64 // how far past the threshold (≥ 1 when anomalous)
}

// maxScratch is the capacity past which a role's per-hour scratch slices
// (open, pending) are released when the hour closes.
const maxScratch = 64

// closeHour closes the open hour of every identity of r that acted in it.
func (s *shard) closeHour(c *engine.Context, r *role) {
	start := time.Unix(r.hour*3600, 0).UTC()
	slot := slotOf(start)
	hod := start.Hour()
	r.pending = r.pending[:0]
	for _, id := range r.open {
		w := id.w
		v := s.vector(r, id, w, hod)
		s.judge(c, r, id, w, &v, slot, start, w.last, false)
		if r.model != nil {
			s.model(c, r, id, w, &v, slot, start)
		}
		s.slow(c, r, id, w, start, &v)
		id.learn(&v, slot, hod, r.hour, s.opts.HalfLifeInDays)
		r.pending = append(r.pending, v)
		id.w = nil
		s.putWindow(w)
	}
	for _, v := range r.pending {
		for f := range nFeatures {
			r.peers[slot][f].add(f, v[f])
			r.peersAll[f].add(f, v[f])
		}
		r.hod[hod]++
	}
	if r.model != nil {
		// After the peers: the normalisation uses their percentiles.
		for _, v := range r.pending {
			x := r.normalise(&v)
			r.model.update(&x)
		}
	}
	r.open = r.open[:0]
	// Scratch sized by the busiest hour is not live state: past a few
	// dozen identities, let it go (the next busy hour grows it again).
	if cap(r.pending) > maxScratch {
		r.pending, r.open = nil, nil
	}
	if r.hour%24 == 0 {
		// Once a day: forget identities idle for longer than the longest
		// window twice over; nothing they left would still count.
		idle := int32(r.hour) - forgetAfter
		for k, id := range r.ids {
			if id.decayAt < idle && id.w == nil {
				delete(r.ids, k)
			}
		}
	}
}

// forgetAfter is how long (hours) an identity may be idle before its
// state is dropped: two of the longest window.
const forgetAfter = 2 * 180 * 24

func (s *shard) vector(r *role, id *ident, w *window, hod int) [nFeatures]float64 {
	v := w.counts()
	if w.n > 0 {
		v[fErrors] = float64(w.errs) / float64(w.n)
	}
	if n := len(w.ints); n >= 10 {
		v[fSequential] = float64(w.adjacent) / float64(n)
	}
	// How unusual the hour is: 1 − 24 × the largest share of activity at
	// this hour or either side of it, from the identity's own profile (≥ 24
	// active hours), else its role's.
	share := -1.0
	var own float64
	for _, x := range id.hod {
		own += float64(x)
	}
	if own >= 24*ownUnit {
		share = float64(max(id.hod[(hod+23)%24], id.hod[hod], id.hod[(hod+1)%24])) / own
	} else {
		var tot float64
		for _, x := range r.hod {
			tot += x
		}
		if tot >= minPeers {
			share = max(r.hod[(hod+23)%24], r.hod[hod], r.hod[(hod+1)%24]) / tot
		}
	}
	if share >= 0 {
		v[fUnusual] = math.Max(0, 1-24*share)
	}
	return v
}

// baselines returns the identity's own and its peers' 99th percentile of
// feature f at slot.
func (r *role) baselines(id *ident, f, slot int) (j judged) {
	j.f = f
	if f < ownFeatures {
		b := quantileBin(0.99, minOwn, &id.own[slot][f])
		if b < 0 {
			hs := make([]*ownHist, 0, slots)
			for s := range slots {
				hs = append(hs, &id.own[s][f])
			}
			b = quantileBin(0.99, minOwn, hs...)
		}
		if b >= 0 {
			j.own, j.ownOK = ownUpper(f, b), true
		}
	}
	j.peers, j.peersOK = r.peers[slot][f].quantile(f, 0.99, minPeers)
	if !j.peersOK {
		j.peers, j.peersOK = r.peersAll[f].quantile(f, 0.99, minPeers)
	}
	return j
}

// judge emits behaviour_anomaly when a feature of the hour is far above
// both the identity's own and its peers' 99th percentile: early, on the
// counts so far when one crosses (ratios wait for the whole hour), or when
// the hour closes if it has not fired yet.
func (s *shard) judge(c *engine.Context, r *role, id *ident, w *window, v *[nFeatures]float64, slot int, start, at time.Time, early bool) {
	var hits []judged
	for f := range ownFeatures { // the unusual hour alone is off_hours' to report
		if early && isRatio(f) {
			continue
		}
		j := r.baselines(id, f, slot)
		j.value = v[f]
		if (!j.ownOK && !j.peersOK) || v[f] < floors[f] {
			continue
		}
		base := 0.0
		if j.ownOK {
			base = j.own
		}
		if j.peersOK {
			base = math.Max(base, j.peers)
		}
		if isRatio(f) {
			if (f == fErrors && w.n < 20) || (f == fSequential && len(w.ints) < 20) {
				continue
			}
			if need := base + 0.3; v[f] >= need {
				j.excess = 1 + (v[f]-need)/0.3
			}
		} else if need := s.opts.Factor * math.Max(base, 1); v[f] >= need {
			j.excess = v[f] / need
		}
		if j.excess >= 1 {
			hits = append(hits, j)
		}
	}
	// A loud hour by record_volume's measures (distinct records,
	// sequential ids, and bytes, which grow with records) is remembered so
	// slow_exfiltration leaves it to the hourly detectors; those measures
	// are named in the explanation but never raise a finding here alone —
	// record_volume is that line of evidence, and counting it twice would
	// turn its every finding into an alert.
	for _, h := range hits {
		if !trigger(h.f) && !early {
			id.anomDay = unixDay(start)
		}
	}
	if w.fired {
		return
	}
	slices.SortStableFunc(hits, func(a, b judged) int {
		if ta, tb := trigger(a.f), trigger(b.f); ta != tb {
			if ta {
				return -1
			}
			return 1
		}
		return cmpDesc(a.excess, b.excess)
	})
	if len(hits) == 0 || !trigger(hits[0].f) {
		return
	}
	hits = hits[:min(3, len(hits))]
	w.fired = true
	score := 40 + 25*clamp01(math.Log2(hits[0].excess)/3)
	when := ""
	if early {
		when = " (so far, at " + at.Format("15:04:05") + ")"
	}
	var parts []string
	var figs []event.Figure
	for _, h := range hits {
		parts = append(parts, describe(h, r.name))
		figs = append(figs, figures(h)...)
	}
	c.Emit(event.Finding{
		Kind:   KindAnomaly,
		Title:  "Identity behaving far outside its own and its peers' hours",
		Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: id.id},
		Time:   at,
		Score:  math.Round(score),
		Explanation: fmt.Sprintf("%s (%s) in the hour from %s%s: %s.",
			id.id, r.name, start.Format(time.RFC3339), when, strings.Join(parts, "; ")),
		Evidence: evidence(w),
		Figures:  figs,
	})
}

// trigger reports whether feature f can raise a finding by itself: the
// shape of the hour (requests, record types, personal-data fields, errors,
// endpoints), not record_volume's measures or off_hours' hour.
func trigger(f int) bool {
	switch f {
	case fRecords, fSequential, fBytes, fUnusual:
		return false
	}
	return true
}

func describe(h judged, roleName string) string {
	s := fmt.Sprintf(featurePhrase[h.f], num(h.f, h.value))
	var bases []string
	if h.ownOK {
		bases = append(bases, "its own 99th percentile at this time of week is "+num(h.f, h.own))
	} else {
		bases = append(bases, "it has no history of its own yet")
	}
	if h.peersOK {
		bases = append(bases, roleName+" peers' is "+num(h.f, h.peers))
	}
	return s + " (" + strings.Join(bases, "; ") + ")"
}

func figures(h judged) []event.Figure {
	n := featureNames[h.f]
	fs := []event.Figure{{Name: n, Value: h.value}}
	if h.ownOK && !math.IsInf(h.own, 0) {
		fs = append(fs, event.Figure{Name: n + "_own_p99", Value: h.own})
	}
	if h.peersOK {
		fs = append(fs, event.Figure{Name: n + "_peers_p99", Value: h.peers})
	}
	return fs
}

func num(f int, v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "over 1,024"
	case isRatio(f):
		return strconv.FormatFloat(100*v, 'f', 0, 64) + "%"
	}
	return thousands(int64(math.Round(v)))
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 || len(s) <= 3 {
		return s
	}
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

func clamp01(x float64) float64 { return math.Min(1, math.Max(0, x)) }

func evidence(w *window) []string {
	refs := append([]string(nil), w.refs...)
	if w.lastRef != "" && !slices.Contains(refs, w.lastRef) {
		refs = append(refs, w.lastRef)
	}
	return refs
}

// model scores the vector with the role's Half-Space Trees and emits
// behaviour_multivariate for a score among the role's lowest 0.5% and
// below half its median (at least half the trees isolate it), naming the
// features whose replacement by the peers' median raises the score most.
func (s *shard) model(c *engine.Context, r *role, id *ident, w *window, v *[nFeatures]float64, slot int, start time.Time) {
	m := r.model
	if m.windows == 0 {
		return
	}
	x := r.normalise(v)
	sc := m.score(&x)
	defer r.scores.add(fRequests, sc)
	low, ok := r.scores.quantile(fRequests, 0.005, minScores)
	if !ok || m.windows < 2 {
		return
	}
	med, _ := r.scores.quantile(fRequests, 0.5, minScores)
	if sc > low || 2*sc > med {
		return
	}
	type attr struct {
		f    int
		gain float64
	}
	var attrs []attr
	for f := range hstDims {
		y := x
		typ, ok := r.peers[slot][f].quantile(f, 0.5, minPeers)
		if !ok {
			typ, _ = r.peersAll[f].quantile(f, 0.5, 0)
		}
		tv := *v
		tv[f] = typ
		y[f] = r.normalise(&tv)[f]
		if g := m.score(&y) - sc; g > 0 {
			attrs = append(attrs, attr{f, g})
		}
	}
	slices.SortStableFunc(attrs, func(a, b attr) int { return cmpDesc(a.gain, b.gain) })
	attrs = attrs[:min(3, len(attrs))]
	// Explainable: among the leading features one that can raise a
	// finding (not only record_volume's measures) stands above both the
	// peers' and the identity's own 99th percentile.
	// Unlike behaviour_anomaly no feature need be far out, only the
	// combination: the features' floors do not apply, a busy enough hour
	// (minModelRequests) does.
	explained := false
	for _, a := range attrs {
		j := r.baselines(id, a.f, slot)
		if trigger(a.f) && v[fRequests] >= minModelRequests && j.peersOK && v[a.f] > j.peers && (!j.ownOK || v[a.f] > j.own) {
			explained = true
		}
	}
	if !explained {
		return
	}
	var parts []string
	figs := []event.Figure{{Name: "model_score", Value: math.Round(sc)}, {Name: "model_median", Value: med}}
	for _, a := range attrs {
		j := r.baselines(id, a.f, slot)
		j.value = v[a.f]
		parts = append(parts, describe(j, r.name))
		figs = append(figs, figures(j)...)
	}
	rarity := math.Log2(med / math.Max(sc, 1))
	c.Emit(event.Finding{
		Kind:   KindMultivariate,
		Title:  "Identity's hour unlike its role's (multivariate model)",
		Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: id.id},
		Time:   w.last,
		Score:  math.Round(40 + 20*clamp01((rarity-1)/4)),
		Explanation: fmt.Sprintf("%s (%s): the hour from %s is among the rarest of its role's hours (Half-Space Trees mass %.0f, median %.0f), mostly because it %s.",
			id.id, r.name, start.Format(time.RFC3339), sc, med, strings.Join(parts, "; ")),
		Evidence: evidence(w),
		Figures:  figs,
	})
}

// learn folds the closed hour into the identity's own baselines.
func (id *ident) learn(v *[nFeatures]float64, slot, hod int, hour int64, halfLifeDays float64) {
	if dh := hour - int64(id.decayAt); dh > 0 {
		k := uint32(65536 * math.Exp2(-float64(dh)/(24*halfLifeDays)))
		for s := range id.own {
			for f := range id.own[s] {
				id.own[s][f].decay(k)
			}
		}
		// The hour-of-day profile decays with the same half-life.
		for h := range id.hod {
			id.hod[h] = uint16(uint32(id.hod[h]) * k >> 16)
		}
		id.decayAt = int32(hour)
	}
	for f := range ownFeatures {
		id.own[slot][f].add(ownBin(f, v[f]))
	}
	if id.hod[hod] > math.MaxUint16-ownUnit {
		for h := range id.hod {
			id.hod[h] /= 2
		}
	}
	id.hod[hod] += ownUnit
}

// bigHLL counts an hour's distinct records past exactRecords: 4,096 byte
// registers, about 1.6% standard error. Only open windows hold one.
type bigHLL [4096]uint8

func (h *bigHLL) add(x uint64) {
	i := x >> 52
	rank := uint8(min(63, bits.LeadingZeros64(x<<12|1<<11)+1))
	if rank > h[i] {
		h[i] = rank
	}
}

func (h *bigHLL) estimate() float64 {
	var sum float64
	zeros := 0
	for _, r := range h {
		if r == 0 {
			zeros++
		}
		sum += math.Ldexp(1, -int(r))
	}
	m := float64(len(h))
	e := 0.7213 / (1 + 1.079/m) * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	return e
}
