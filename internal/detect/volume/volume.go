// Package volume judges how much personal data staff, service and partner
// identities read, against their own history and their peers'.
//
// Customers read their own data; the identities whose reading needs
// watching are the ones that can read other people's: employees, services
// and partners. They are recognised by the roles their events carry
// (user.roles), and their peers are the identities with the same role. The
// detector keys on that role — every identity of a role meets its peers on
// one shard — so a new identity is judged against its peers from its first
// hour, with no silent learning period.
//
// Per identity, in tumbling windows of event time (default one hour), it
// counts the distinct records read (a 64-bit hash of record type and id)
// and, among records whose ids are integers, how many are adjacent to
// another id read in the window (n−1 or n+1: sequential walking). Across
// windows it keeps:
//
//   - the identity's own history: its busiest window (decaying slowly);
//   - the role's peer history: a log₂ histogram of per-identity distinct
//     records per window (decaying), whose 99th percentile is "what this
//     kind of identity reads in a window".
//
// Findings, each once per identity and window, at the moment the count
// crosses (so time to detect is the time to cross):
//
//   - record_volume: distinct records ≥ max(floor, factor × max(own busiest
//     window, role's 99th percentile)); with no baseline at all (the first
//     window after start-up, a role never seen) only ten floors. Score 75.
//   - record_enumeration: at least EnumFloor integer record ids of which at
//     least 80% are adjacent to another: walking an id space. Score 80.
//
// What it cannot see: customers (no roles), staff whose events carry no
// roles, and reading that stays within the identity's and its peers'
// volumes (few records at odd hours is a time-of-day question).
package volume

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/baseline"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
)

// Name is the detector's stable name.
const Name = "record_volume"

// Finding kinds and scores.
const (
	KindVolume      = "record_volume"
	KindEnumeration = "record_enumeration"

	ScoreVolume      = 75
	ScoreEnumeration = 80
)

// EntityRole is the entity kind of the shard key: a role.
const EntityRole = baseline.EntityRole

// Options configure the detector. Zero values take the defaults.
type Options struct {
	Window    time.Duration // counting window (1h)
	Floor     int           // fewest distinct records per window that can be flagged (100)
	Factor    float64       // multiple of the baseline that is flagged (4)
	EnumFloor int           // fewest integer ids for an enumeration finding (50)
}

func (o *Options) defaults() {
	if o.Window <= 0 {
		o.Window = time.Hour
	}
	if o.Floor <= 0 {
		o.Floor = 100
	}
	if o.Factor <= 0 {
		o.Factor = 4
	}
	if o.EnumFloor <= 0 {
		o.EnumFloor = 50
	}
}

const (
	peerDecay  = 0.98 // per closed window, of the role histogram
	ownDecay   = 0.99 // per window, of an identity's busiest window
	minPeers   = 10.0 // histogram weight below which a role has no baseline
	maxRecords = 1 << 20
	seqRatio   = 0.8
	coldFloors = 10 // threshold, in floors, when neither identity nor role has history
)

// Detector is the record-volume detector.
type Detector struct{ opts Options }

var (
	_ engine.Detector    = (*Detector)(nil)
	_ engine.Snapshotter = (*shard)(nil)
)

// New returns the detector.
func New(opts Options) *Detector {
	opts.defaults()
	return &Detector{opts: opts}
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: activity that touched records, by an
// identity with a role, keys on its first role.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) { return baseline.RecordReadByRole(ev) }

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{opts: d.opts, roles: map[string]*role{}}
}

type shard struct {
	opts  Options
	roles map[string]*role
}

type role struct {
	start time.Time
	ids   map[string]*window
	own   map[string]*baseline.Peak
	hist  baseline.Log2Hist // per-identity distinct records per window
}

type window struct {
	records  map[uint64]struct{}
	ints     map[int64]struct{}
	adjacent int
	refs     []string
	fired    bool
	enumFire bool
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	r := s.roles[key.ID]
	if r == nil {
		r = &role{ids: map[string]*window{}, own: map[string]*baseline.Peak{}}
		s.roles[key.ID] = r
	}
	if start := ev.Time.Truncate(s.opts.Window); start.After(r.start) {
		r.roll(start, s.opts.Window)
	}
	w := r.ids[ev.User.ID]
	if w == nil {
		w = &window{records: map[uint64]struct{}{}, ints: map[int64]struct{}{}}
		r.ids[ev.User.ID] = w
	}
	before := len(w.records)
	for _, id := range ev.Records.IDs {
		if len(w.records) >= maxRecords {
			break
		}
		w.records[hash(ev.Records.Type, id)] = struct{}{}
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			if _, dup := w.ints[n]; !dup {
				_, lo := w.ints[n-1]
				_, hi := w.ints[n+1]
				if lo || hi {
					w.adjacent++
				}
				w.ints[n] = struct{}{}
			}
		}
	}
	if len(w.records) > before && len(w.refs) < 3 {
		w.refs = append(w.refs, c.Ref(ev))
	}
	s.checkVolume(c, key, r, w, ev)
	s.checkEnumeration(c, key, r, w, ev)
}

func (s *shard) checkVolume(c *engine.Context, key event.EntityKey, r *role, w *window, ev *event.Event) {
	if w.fired {
		return
	}
	own := 0.0
	if h := r.own[ev.User.ID]; h != nil {
		own = h.Max
	}
	peer := r.p99()
	threshold := math.Max(float64(s.opts.Floor), s.opts.Factor*math.Max(own, peer))
	if own == 0 && peer == 0 {
		// No baseline at all — the first window after start-up, or a role
		// never seen — so only a gross volume is judged: ten floors.
		threshold = float64(coldFloors * s.opts.Floor)
	}
	n := len(w.records)
	if float64(n) < threshold {
		return
	}
	w.fired = true
	base := fmt.Sprintf("its busiest window before had %s and %s identities read up to %s (99th percentile)",
		round(own), key.ID, round(peer))
	if peer == 0 {
		base = fmt.Sprintf("its busiest window before had %s and there is no %s history yet", round(own), key.ID)
	}
	if own == 0 && peer == 0 {
		base = fmt.Sprintf("neither it nor any %s identity has history yet, so only a volume of ten floors is judged", key.ID)
	}
	c.Emit(event.Finding{
		Kind:   KindVolume,
		Title:  "Identity reading far more records than it and its peers do",
		Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID},
		Time:   ev.Time,
		Score:  ScoreVolume,
		Explanation: fmt.Sprintf("%s (%s) read %d distinct records between %s and %s; %s, so the threshold was %.0f.",
			ev.User.ID, key.ID, n, r.start.UTC().Format(time.RFC3339), ev.Time.UTC().Format(time.RFC3339), base, threshold),
		Evidence: s.evidence(c, w, ev),
		Figures: []event.Figure{{Name: "distinct_records", Value: float64(n)}, {Name: "own_busiest_window", Value: math.Round(own)},
			{Name: "peers_p99", Value: peer}, {Name: "threshold", Value: math.Round(threshold)}},
	})
}

func (s *shard) checkEnumeration(c *engine.Context, key event.EntityKey, r *role, w *window, ev *event.Event) {
	if w.enumFire || len(w.ints) < s.opts.EnumFloor || float64(w.adjacent) < seqRatio*float64(len(w.ints)) {
		return
	}
	w.enumFire = true
	c.Emit(event.Finding{
		Kind:   KindEnumeration,
		Title:  "Identity walking sequential record ids",
		Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID},
		Time:   ev.Time,
		Score:  ScoreEnumeration,
		Explanation: fmt.Sprintf("%s (%s) read %d numbered records between %s and %s, %d of them next to another it read (id ± 1): it is walking the id space, not looking up what a task needs.",
			ev.User.ID, key.ID, len(w.ints), r.start.UTC().Format(time.RFC3339), ev.Time.UTC().Format(time.RFC3339), w.adjacent),
		Evidence: s.evidence(c, w, ev),
		Figures:  []event.Figure{{Name: "numbered_records", Value: float64(len(w.ints))}, {Name: "adjacent", Value: float64(w.adjacent)}},
	})
}

func (s *shard) evidence(c *engine.Context, w *window, ev *event.Event) []string {
	refs := append([]string(nil), w.refs...)
	if ref := c.Ref(ev); len(refs) == 0 || refs[len(refs)-1] != ref {
		refs = append(refs, ref)
	}
	return refs
}

// roll closes the window: each identity's count goes into its own history
// and the role's histogram.
func (r *role) roll(start time.Time, window time.Duration) {
	if !r.start.IsZero() {
		r.hist.Decay(peerDecay)
		for id, w := range r.ids {
			n := float64(len(w.records))
			r.hist.Add(uint64(n))
			h := r.own[id]
			if h == nil {
				h = &baseline.Peak{}
				r.own[id] = h
			}
			h.Observe(start, window, n, ownDecay)
		}
	}
	clear(r.ids)
	r.start = start
}

// p99 is the upper bound of the histogram bucket holding the role's 99th
// percentile, or 0 without enough history.
func (r *role) p99() float64 { return r.hist.Quantile(0.99, minPeers) }

// hash is FNV-1a 64 over the record type and id.
func hash(typ, id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(typ); i++ {
		h = (h ^ uint64(typ[i])) * 1099511628211
	}
	h = (h ^ 0xff) * 1099511628211
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	return h
}

func round(f float64) string { return strconv.FormatFloat(math.Round(f), 'f', 0, 64) }

const snapshotVersion = 1

// AppendSnapshot implements engine.Snapshotter: per role, the open
// window's sets, the peer histogram and every identity's busiest window.
func (s *shard) AppendSnapshot(w *snap.Writer) {
	w.Byte(snapshotVersion)
	w.Uint(uint64(len(s.roles)))
	for _, k := range slices.Sorted(maps.Keys(s.roles)) {
		r := s.roles[k]
		w.String(k)
		w.Time(r.start)
		w.Uint(uint64(len(r.ids)))
		for _, id := range slices.Sorted(maps.Keys(r.ids)) {
			win := r.ids[id]
			w.String(id)
			w.Uint(uint64(len(win.records)))
			for _, h := range slices.Sorted(maps.Keys(win.records)) {
				w.Uint(h)
			}
			w.Uint(uint64(len(win.ints)))
			for _, n := range slices.Sorted(maps.Keys(win.ints)) {
				w.Int(n)
			}
			w.Int(int64(win.adjacent))
			w.Uint(uint64(len(win.refs)))
			for _, ref := range win.refs {
				w.String(ref)
			}
			w.Bool(win.fired)
			w.Bool(win.enumFire)
		}
		r.hist.AppendTo(w)
		w.Uint(uint64(len(r.own)))
		for _, id := range slices.Sorted(maps.Keys(r.own)) {
			w.String(id)
			r.own[id].AppendTo(w)
		}
	}
}

// Restore implements engine.Snapshotter.
func (s *shard) Restore(r *snap.Reader) error {
	if v := r.Byte(); r.Err() == nil && v != snapshotVersion {
		return fmt.Errorf("record_volume: snapshot version %d, want %d", v, snapshotVersion)
	}
	roles := map[string]*role{}
	for range r.Count(10) {
		k := r.String()
		ro := &role{ids: map[string]*window{}, own: map[string]*baseline.Peak{}}
		ro.start = r.Time()
		for range r.Count(6) {
			id := r.String()
			win := &window{records: map[uint64]struct{}{}, ints: map[int64]struct{}{}}
			for range r.Count(1) {
				win.records[r.Uint()] = struct{}{}
			}
			for range r.Count(1) {
				win.ints[r.Int()] = struct{}{}
			}
			win.adjacent = int(r.Int())
			for range r.Count(1) {
				win.refs = append(win.refs, r.String())
			}
			win.fired = r.Bool()
			win.enumFire = r.Bool()
			ro.ids[id] = win
		}
		ro.hist.ReadFrom(r)
		for range r.Count(10) {
			id := r.String()
			p := &baseline.Peak{}
			p.ReadFrom(r)
			ro.own[id] = p
		}
		roles[k] = ro
	}
	if err := r.End(); err != nil {
		return fmt.Errorf("record_volume: %w", err)
	}
	s.roles = roles
	return nil
}
