package behaviour

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// slow_exfiltration: distinct records over 1, 3, 7 and 30 days, each
// leaving out its largest part (its largest hour for one day, its largest
// day for the longer windows), against the identity's own history of the
// same quantity and its peers'. A normal worker's distinct set saturates
// (it re-reads its customers), so its multi-day counts stay close to one
// busy day; an exporter's grows by every day's new records. Leaving out
// the largest part keeps one big day — an approved export, record_volume's
// spike — from counting as sustained.

// longWindows are the slow-and-low windows in days.
var longWindows = [nWin]int{1, 3, 7, 30}

const (
	nWin      = 4
	ringDays  = 7 // daily sketches: the 1-, 3- and 7-day windows slide by day
	ringWeeks = 4 // weekly sketches of the days that left the ring: with them the 30-day window covers the last 29–35 days

	minOwnDays  = 5  // decayed days of the identity's own history for the strong path
	minPeerDays = 20 // decayed identity-days of the role for a peer baseline
	minBarIDs   = 5  // identities with a full window for the role's typical bar

	// barQuantile is the quantile across the role's identities, each
	// counted once by its latest full window, that is the role's typical
	// bar: its upper quartile, so no one identity (an exporter among them)
	// can move it, and a role of mixed workloads is judged against its
	// busier half.
	barQuantile = 0.75
	// coldFactor is how far above the typical bar a window (≥ 3 days) of
	// an identity with no history of its own must be for the strong
	// finding, with every one of its last coldDays active days adding at
	// least half a typical member's day of records new to it;
	// outsideColdFactor when the reads came from outside. With no history
	// of its own the peers are the only evidence, so the bar is high: a
	// new hire ramping up, or a cohort of them, reads new records every
	// day too, at a few times the typical member.
	coldFactor        = 4
	outsideColdFactor = 3
	coldDays          = 3

	// ownSlowFactor is how far above its own 90th percentile of a window
	// (≥ 3 days) an identity must be, also above its peers' 90th
	// percentile, for the strong finding; outsideSlowFactor when a
	// quarter of the day's record reads came from outside the corporate
	// network or at hours unusual for it.
	ownSlowFactor     = 1.75
	outsideSlowFactor = 1.4
	outsideMinReads   = 50

	// busyDayFactor is how far above its own busy reading day (the 90th
	// percentile of its reading days' distinct records) the largest day
	// of a 3- or 7-day window must be for the strong finding from its own
	// history: a day it has not had, by more than the sketches' ±13%
	// error. An exporter adding as many new records as it reads makes its
	// days 1.5–2×.
	busyDayFactor = 1.25

	strongScore = 90 // alerts alone (alerts.risk_threshold 90): own history and peers agree
)

// hll64 is a HyperLogLog of 64 4-bit registers (ranks capped at 15): 32
// bytes, about 13% standard error, saturating near 2^15·64 ≈ 2 million.
type hll64 [32]byte

func (h *hll64) reg(i int) uint8 {
	b := h[i>>1]
	if i&1 == 0 {
		return b & 0x0f
	}
	return b >> 4
}

func (h *hll64) add(x uint64) {
	i := int(x >> 58)
	rank := min(uint8(bits.LeadingZeros64(x<<6|1<<5)+1), 15)
	if rank > h.reg(i) {
		if i&1 == 0 {
			h[i>>1] = h[i>>1]&0xf0 | rank
		} else {
			h[i>>1] = h[i>>1]&0x0f | rank<<4
		}
	}
}

// est64 estimates the distinct hashes in the union of hs.
func est64(hs ...*hll64) float64 {
	var sum float64
	zeros := 0
	for i := range 64 {
		var r uint8
		for _, h := range hs {
			r = max(r, h.reg(i))
		}
		if r == 0 {
			zeros++
		}
		sum += math.Ldexp(1, -int(r))
	}
	const m = 64.0
	e := 0.709 * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	return e
}

// slowHist is a decaying histogram of an identity's daily value of one
// window: bin 0 below 8, then bins 2^0.75 (1.68×) wide up to about 92,000
// (the last bin is open), uint16 fixed point like ownHist; quantiles are
// interpolated inside a bin.
type slowHist [20]uint16

const (
	slowBins = len(slowHist{})
	slowStep = 0.75 // log2 width of a bin
)

func slowLo(b int) float64 {
	if b == 0 {
		return 0
	}
	return 8 * math.Exp2(slowStep*float64(b-1))
}

func slowBin(v float64) int {
	if v < 8 {
		return 0
	}
	return min(slowBins-1, 1+int(math.Log2(v/8)/slowStep))
}

func (h *slowHist) add(v float64) {
	b := slowBin(v)
	if h[b] > math.MaxUint16-ownUnit {
		for i := range h {
			h[i] /= 2
		}
	}
	h[b] += ownUnit
}

// quantile interpolates quantile q (log-linearly inside a bin); false
// when the weight is below minWeight. The open last bin is +Inf.
func (h *slowHist) quantile(q, minWeight float64) (float64, bool) {
	var total float64
	for _, v := range h {
		total += float64(v) / ownUnit
	}
	if total < minWeight || total == 0 {
		return 0, false
	}
	var cum float64
	for b, v := range h {
		w := float64(v) / ownUnit
		if w > 0 && cum+w >= q*total-1e-9 {
			f := clamp01((q*total - cum) / w)
			switch b {
			case 0:
				return 8 * f, true
			case slowBins - 1:
				return math.Inf(1), true
			}
			return slowLo(b) * math.Exp2(slowStep*f), true
		}
		cum += w
	}
	return math.Inf(1), true
}

// slowState is an identity's long-window state: 548 bytes.
type slowState struct {
	day    [ringDays]hll64  // day d in day[d%ringDays]
	week   [ringWeeks]hll64 // week k (unix day / 7) in week[k%ringWeeks]
	own    [nWin]slowHist   // its daily sustained counts per window
	dayAt  int32            // the newest day in the ring (0: none yet)
	since  int32            // the identity's first active day
	bigAt  int32            // the day of big
	last   [nWin]uint16     // its recent high of the sustained counts (halving over a ring), saturating
	big    uint16           // the largest day's distinct records (estimate) in the last 30 days, saturating
	hour   uint16           // today's largest hour's distinct records, saturating
	reads  uint16           // today's record reads, and those from outside (both halved when full)
	out    uint16
	strong uint16 // the last day with a strong finding (unix day mod 2^16)
	medium uint16 // the last day with a medium one
	// pend holds, for own[0] and own[1], the values of the identity's last
	// two active days, oldest first, plus one (0: none, or not to be
	// learnt), learnt only when a third active day ends: a 3-day window is
	// judged against windows (and reading days) that ended before it
	// began, so an exporter's first days are not yet its baseline when the
	// window that holds them is judged.
	pend [2][2]uint16
}

func sat16(v float64) uint16 { return uint16(math.Min(math.MaxUint16, math.Max(0, math.Round(v)))) }

// add counts record hash x read on day d (a late event of a day still in
// the ring counts; older ones are dropped).
func (st *slowState) add(x uint64, d int32) {
	if d > st.dayAt-ringDays && d <= st.dayAt {
		st.day[d%ringDays].add(x)
	}
}

// measure returns, per window, the distinct records and the sustained
// count: without its largest hour (1 day) or day (longer windows).
func (st *slowState) measure() (counts, sustained [nWin]float64) {
	var est [ringDays]float64
	for i := range ringDays {
		if d := st.dayAt - int32(i); d > 0 {
			est[i] = est64(&st.day[d%ringDays])
		}
	}
	counts[0] = math.Round(est[0])
	sustained[0] = math.Max(0, counts[0]-float64(st.hour))
	for w := 1; w < nWin; w++ {
		n := min(longWindows[w], ringDays)
		hs := make([]*hll64, 0, ringDays+ringWeeks)
		top := 0
		for i := range n {
			if est[i] > est[top] {
				top = i
			}
		}
		others := make([]*hll64, 0, ringDays+ringWeeks)
		for i := range n {
			h := &st.day[(st.dayAt-int32(i))%ringDays]
			hs = append(hs, h)
			if i != top {
				others = append(others, h)
			}
		}
		if longWindows[w] <= ringDays {
			counts[w] = math.Round(est64(hs...))
			sustained[w] = math.Round(est64(others...))
			continue
		}
		for i := range st.week {
			hs = append(hs, &st.week[i])
		}
		counts[w] = math.Round(est64(hs...))
		if st.bigAt > st.dayAt-int32(longWindows[w]) && float64(st.big) >= est[top] {
			// The largest day is older than the ring and not in the weeks.
			sustained[w] = counts[w]
			counts[w] += float64(st.big)
			continue
		}
		for i := range st.week {
			others = append(others, &st.week[i])
		}
		sustained[w] = math.Round(est64(others...))
	}
	return counts, sustained
}

// largestDay returns the distinct records (estimate) of window w's
// largest day.
func (st *slowState) largestDay(w int) float64 {
	top := 0.0
	for i := range min(longWindows[w], ringDays) {
		if d := st.dayAt - int32(i); d > 0 {
			top = math.Max(top, est64(&st.day[d%ringDays]))
		}
	}
	return top
}

// rollTo moves the sketches to day d. When a new day begins, the finished
// one's sustained counts go into the identity's own history (unless it was
// flagged: an attack is not learnt as normal) and its role's.
func (s *shard) rollTo(r *role, id *ident, d int32) {
	st := &id.sl
	if d <= st.dayAt {
		return
	}
	if st.dayAt > 0 {
		counts, sus := st.measure()
		floor := float64(s.opts.LongFloor)
		bar := r.typical(d)
		k := uint32(65536 * math.Exp2(-float64(d-st.dayAt)/s.opts.HalfLifeInDays))
		keep := math.Exp2(-float64(d-st.dayAt) / ringDays)
		for i := range st.own {
			for b := range st.own[i] {
				st.own[i][b] = uint16(uint32(st.own[i][b]) * k >> 16)
			}
			// A window is complete once the identity has been seen for as
			// long as it: one still filling grows every day, and learning it
			// would make the first full one look like a rise.
			complete := st.dayAt-st.since+1 >= int32(longWindows[i])
			st.last[i] = sat16(math.Max(sus[i], keep*float64(st.last[i])))
			r.long[i].add(fRecords, sus[i])
			if st.strong == uint16(st.dayAt) {
				continue // a flagged day is not its normal
			}
			// Winsorised: a day above the lowest bar that could fire is
			// learnt at that bar, so a slow exporter cannot teach its own
			// baseline within days; a lasting change of work still moves
			// it, by ≤ 1.4× per step. The bar is never below long_floor (a
			// count under it cannot fire; a quiet first week would
			// otherwise pin the baseline near zero). With no history of its
			// own yet, the bar is the cold path's (an export begun in its
			// first days is not learnt as its normal).
			v := sus[i]
			if i == 0 {
				// The 1-day history is of reading days' distinct records
				// (a day without records is not a reading day): the
				// identity's own busy day, which the 3-day window's days
				// must pass (slow).
				v, complete = counts[0], counts[0] > 0
			}
			if i < len(st.pend) {
				// Lagged by two active days (pend): the 3-day window judged
				// on a day overlaps the windows of the two days before it.
				p := &st.pend[i]
				old := p[0]
				p[0], p[1] = p[1], 0
				if complete {
					p[1] = 1 + min(sat16(v), math.MaxUint16-1)
				}
				if old == 0 {
					continue
				}
				v, complete = float64(old-1), true
			}
			if p90, ok := st.own[i].quantile(0.9, minOwnDays); ok {
				v = math.Min(v, math.Max(floor, outsideSlowFactor*p90))
			} else if bar.ok[i] {
				v = math.Min(v, math.Max(floor, coldFactor*bar.v[i]))
			}
			if complete {
				st.own[i].add(v)
			}
		}
	}
	if st.dayAt == 0 {
		st.since = d
	}
	// The weeks kept are the ringWeeks before the current one (the current
	// week's days are still in the ring).
	if k, at := d/7, st.dayAt/7; k > at {
		for y := max(at-ringWeeks, k-2*ringWeeks); y <= k-ringWeeks-1; y++ {
			st.week[y%ringWeeks] = hll64{}
		}
	}
	// Days leaving the ring fold into their week, except the largest day
	// of the last 30, which is kept out of the weeks (its estimate in big)
	// so the 30-day window can leave it out.
	for o := max(st.dayAt-ringDays+1, 1); o <= st.dayAt && o <= d-ringDays; o++ {
		h := &st.day[o%ringDays]
		if e := est64(h); st.bigAt <= o-30 || float64(st.big) < e {
			st.big, st.bigAt = sat16(e), o
		} else if k := o / 7; k >= d/7-ringWeeks && k < d/7 {
			for i := range h {
				st.week[k%ringWeeks][i] = max(st.week[k%ringWeeks][i]&0x0f, h[i]&0x0f) | max(st.week[k%ringWeeks][i]&0xf0, h[i]&0xf0)
			}
		}
		*h = hll64{}
	}
	for x := max(st.dayAt+1, d-ringDays+1); x <= d; x++ {
		st.day[x%ringDays] = hll64{}
	}
	st.dayAt = d
	st.hour, st.reads, st.out = 0, 0, 0
}

// typicalBar is a role's typical window counts on one day: per window, the
// upper quartile across its identities of each one's recent high of the
// window (one figure per identity, so one identity cannot move it; a
// recent high, so a window over a weekend does not read as zero), from
// the identities seen for the whole window.
type typicalBar struct {
	day int32
	v   [nWin]float64
	ok  [nWin]bool
	// newc holds, per window, the recent highs (slowState.last) of the
	// role's newcomers — identities active in the ring but not yet seen
	// for the whole window — sorted.
	newc [nWin][]float64
}

// minCohort is the newcomers (the judged one included) a role needs in a
// window before a newcomer is judged against the others too.
const minCohort = 3

// newcomers returns the median recent high of the role's other newcomers
// in window i (leaving out the value nearest to self, the judged
// identity's own), and whether there are enough of them. New hires start together
// and ramp up together, each reading records new to it every day: an
// identity with no history of its own is an exporter only if it is far
// above the role's typical member *and* above the others starting with it.
func (b *typicalBar) newcomers(i int, self float64) (float64, bool) {
	xs := b.newc[i]
	if len(xs) < minCohort {
		return 0, false
	}
	// The bar of the day was taken before the judged identity's own high
	// moved at its day's roll, so its entry may hold an older value: leave
	// out the one nearest to self.
	k, _ := slices.BinarySearch(xs, self)
	if k == len(xs) || k > 0 && self-xs[k-1] < xs[k]-self {
		k--
	}
	others := make([]float64, 0, len(xs)-1)
	others = append(append(others, xs[:k]...), xs[k+1:]...)
	n := len(others)
	if n%2 == 1 {
		return others[n/2], true
	}
	return (others[n/2-1] + others[n/2]) / 2, true
}

// typical returns r's typical bar for day d, computed at the first ask of
// the day from the identities active in the last ringDays days.
func (r *role) typical(d int32) *typicalBar {
	if r.bar.day == d {
		return &r.bar
	}
	r.bar = typicalBar{day: d}
	var xs [nWin][]float64
	for _, id := range r.ids {
		st := &id.sl
		if st.dayAt <= d-ringDays {
			continue
		}
		for i := range nWin {
			// Seen for the whole window: before that a window leaving out
			// its largest day is structurally small.
			if st.dayAt-st.since >= int32(longWindows[i]) {
				xs[i] = append(xs[i], float64(st.last[i]))
			} else {
				r.bar.newc[i] = append(r.bar.newc[i], float64(st.last[i]))
			}
		}
	}
	for i := range nWin {
		slices.Sort(r.bar.newc[i])
	}
	for i := range nWin {
		if n := len(xs[i]); n >= minBarIDs {
			slices.Sort(xs[i])
			p := barQuantile * float64(n-1)
			k := int(p)
			v := xs[i][k]
			if k+1 < n {
				v += (p - float64(k)) * (xs[i][k+1] - v)
			}
			r.bar.v[i], r.bar.ok[i] = v, true
		}
	}
	return &r.bar
}

// novelDays reports whether each of the identity's last n active days in
// the ring (today included) read at least minNew records not read on the
// ring's days before it. Two kinds of day do not count: a day that alone
// read more records than all the ring's other days together — a one-off
// burst (an approved export) is record_volume's evidence, and counting it
// would let one day stand for a day of persistence — and a day with no
// active day before it in the ring, which has nothing to be new against
// (on an identity's first observed day every record is new).
func (st *slowState) novelDays(n int, minNew float64) bool {
	var act []int32 // active days, newest first
	var est []float64
	for i := range int32(ringDays) {
		d := st.dayAt - i
		if d <= 0 {
			break
		}
		if h := &st.day[d%ringDays]; *h != (hll64{}) {
			act = append(act, d)
			est = append(est, est64(h))
		}
	}
	burst := -1
	if len(act) > 1 {
		top := 0
		for k := range est {
			if est[k] > est[top] {
				top = k
			}
		}
		var rest []*hll64
		for k, o := range act {
			if k != top {
				rest = append(rest, &st.day[o%ringDays])
			}
		}
		if est[top] > est64(rest...) {
			burst = top
		}
	}
	judged := 0
	for k := 0; k < len(act)-1 && judged < n; k++ {
		if k == burst {
			continue
		}
		var before []*hll64
		for _, o := range act[k+1:] {
			before = append(before, &st.day[o%ringDays])
		}
		gain := est64(append(before, &st.day[act[k]%ringDays])...) - est64(before...)
		if gain < minNew {
			return false
		}
		judged++
	}
	return judged == n
}

// ParseNetworks parses a corporate network list: CIDRs ("10.0.0.0/8") and
// AS numbers ("AS64500"). An address alone is a one-address prefix.
func ParseNetworks(list []string) ([]netip.Prefix, []uint32, error) {
	var ps []netip.Prefix
	var asns []uint32
	for _, e := range list {
		e = strings.TrimSpace(e)
		if n, ok := strings.CutPrefix(strings.ToUpper(e), "AS"); ok {
			v, err := strconv.ParseUint(n, 10, 32)
			if err != nil || v == 0 {
				return nil, nil, fmt.Errorf("corporate network %q: not an AS number", e)
			}
			asns = append(asns, uint32(v))
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			ps = append(ps, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, nil, fmt.Errorf("corporate network %q: %w", e, err)
		}
		ps = append(ps, p.Masked())
	}
	return ps, asns, nil
}

// corporate reports whether ev came from the configured corporate network
// (true when none is configured or the event has no source address).
func (s *shard) corporate(ev *event.Event) bool {
	if len(s.opts.CorporatePrefixes) == 0 && len(s.opts.CorporateASNs) == 0 {
		return true
	}
	if ev.Source.ASN != 0 && slices.Contains(s.opts.CorporateASNs, ev.Source.ASN) {
		return true
	}
	if !ev.Source.IP.IsValid() {
		return true
	}
	ip := ev.Source.IP.Unmap()
	return slices.ContainsFunc(s.opts.CorporatePrefixes, func(p netip.Prefix) bool { return p.Contains(ip) })
}

type slowJudged struct {
	w                int
	count, sustained float64
	own, peers, need float64
	ownOK, peersOK   bool
	typical          bool // peers is the role's typical bar, not its pooled 90th percentile
	strong, cold     bool // cold: strong with no history of its own
	ratio            float64
}

// slow folds the closing hour into the day and judges the long windows:
//
//   - strong (≥ 90, alerts alone), for a window of ≥ 3 days: the sustained
//     count ≥ max(long_floor, 1.75 × its own 90th percentile, its peers' 90th
//     percentile) — 1.4 × when a quarter of the day's reads came from
//     outside the corporate network or at hours unusual for it;
//   - medium (60–75), with no own history: ≥ max(long_floor, long_factor ×
//     its peers' 90th percentile); the 1-day window only when no hour of the
//     day was loud by records (that is record_volume's).
func (s *shard) slow(c *engine.Context, r *role, id *ident, w *window, start time.Time, v *[nFeatures]float64) {
	day := unixDay(start)
	s.rollTo(r, id, day)
	st := &id.sl
	st.hour = max(st.hour, sat16(v[fRecords]))
	out := w.outside
	if v[fUnusual] >= unusualHour {
		out = w.reads
	}
	if int(st.reads)+w.reads > math.MaxUint16 {
		st.reads, st.out = st.reads/2, st.out/2
	}
	st.reads = sat16(float64(st.reads) + float64(w.reads))
	st.out = sat16(math.Min(float64(st.reads), float64(st.out)+float64(out)))
	if len(r.ids) < minPeerIDs {
		return
	}
	counts, sus := st.measure()
	outside := st.out >= outsideMinReads && 4*int(st.out) >= int(st.reads)
	factor := ownSlowFactor
	if outside {
		factor = outsideSlowFactor
	}
	cold := float64(coldFactor)
	if outside {
		cold = outsideColdFactor
	}
	bar := r.typical(day)
	novel := -1 // 0/1 once asked: its last coldDays active days each added a typical day of new records
	all := make([]slowJudged, 0, nWin)
	for i := range nWin {
		j := slowJudged{w: i, count: counts[i], sustained: sus[i]}
		pooled, pooledOK := r.long[i].quantile(fRecords, 0.9, minPeerDays)
		j.peers, j.peersOK, j.typical = pooled, pooledOK, bar.ok[i]
		if bar.ok[i] {
			j.peers, j.peersOK = bar.v[i], true
		}
		j.own, j.ownOK = st.own[i].quantile(0.9, minOwnDays)
		floor := float64(s.opts.LongFloor)
		j.need = math.Inf(1)
		coldBar := bar.v[i]
		if m, ok := bar.newcomers(i, float64(st.last[i])); ok {
			coldBar = math.Max(coldBar, m)
		}
		if i > 0 && longWindows[i] <= ringDays && !j.ownOK && bar.ok[i] && bar.ok[0] && sus[i] >= math.Max(floor, cold*coldBar) {
			// No history of its own: far above the role's typical member
			// and persistent — every one of its last active days read many
			// records new to it (a busy peer re-reads its working set; an
			// approved export is one day, left out as the largest).
			if novel < 0 {
				novel = 0
				if st.novelDays(coldDays, math.Max(1, bar.v[0]/2)) {
					novel = 1
				}
			}
			if novel == 1 {
				j.need = math.Max(floor, cold*coldBar)
				j.strong, j.cold = true, true
			}
		}
		switch {
		case j.strong:
		case i > 0 && j.ownOK && j.peersOK:
			// With its own history the peers' bar is a busy day of the
			// role (the pooled 90th percentile), as before: the typical
			// member is the cold path's yardstick, too low a bar for an
			// identity whose own baseline is small.
			if pooledOK {
				j.peers, j.typical = pooled, false
			}
			j.need = math.Max(floor, math.Max(factor*j.own, j.peers))
			j.strong = sus[i] >= j.need
			if longWindows[i] <= ringDays && j.strong {
				// Days above its own history of the window must come with a
				// day above its own busy reading day (the window's largest,
				// the one left out of the sustained count): an identity that
				// reads on two days a week and then on three days running,
				// each its usual day, has not read more a day — its windows
				// were small because it read on few days, not because it
				// re-read. Reading on more days is the 30-day window's rise
				// (against its own month). With fewer than five reading
				// days of its own, its busy day is unknown and so is the
				// rise.
				if busy, ok := st.own[0].quantile(0.9, minOwnDays); !ok || st.largestDay(i) < busyDayFactor*busy {
					j.strong, j.need = false, math.Inf(1)
				}
			}
		case i > 0 && !j.ownOK && pooledOK && longWindows[i] <= ringDays && id.anomDay <= day-int32(longWindows[i]):
			// Neither the 1-day window (a one-day burst is record_volume's)
			// nor the 30-day one: with no month of its own, a new
			// identity's partial month against its peers' says little (a
			// weekly big day of its own would count three times). Nor a
			// window holding a day loud by records (see below): for as
			// long as the burst is the window's largest day, the day it
			// displaces counts as sustained.
			j.need = math.Max(floor, s.opts.LongFactor*pooled)
			j.peers, j.typical = pooled, false
		}
		j.ratio = sus[i] / j.need
		all = append(all, j)
	}
	var best *slowJudged
	for i := range all {
		j := &all[i]
		if j.ratio >= 1 && (best == nil || j.strong && !best.strong || j.strong == best.strong && j.ratio > best.ratio) {
			best = j
		}
	}
	// A medium finding is not made on a day with an hour loud by records,
	// nor from a window holding such a day (above): that hour is
	// record_volume's evidence, and the burst, by becoming the window's
	// largest day, moves the day it displaces into the sustained count — a
	// one-day export would otherwise corroborate itself, on its day and on
	// every day it stays in the window.
	if best == nil || st.strong == uint16(day) || !best.strong && (st.medium == uint16(day) || id.anomDay == day) {
		return
	}
	score := 60 + 15*clamp01(math.Log2(best.ratio)/3)
	if best.strong {
		st.strong = uint16(day)
		score = strongScore + 5*clamp01(math.Log2(best.ratio)/2)
	} else {
		st.medium = uint16(day)
	}
	var figs []event.Figure
	for _, j := range all {
		wd := longWindows[j.w]
		figs = append(figs,
			event.Figure{Name: fmt.Sprintf("distinct_records_%dd", wd), Value: j.count},
			event.Figure{Name: fmt.Sprintf("sustained_records_%dd", wd), Value: j.sustained})
		if j.ownOK && !math.IsInf(j.own, 0) {
			figs = append(figs, event.Figure{Name: fmt.Sprintf("own_p90_%dd", wd), Value: math.Round(j.own)})
		}
		if j.peersOK && j.typical {
			figs = append(figs, event.Figure{Name: fmt.Sprintf("peers_typical_%dd", wd), Value: math.Round(j.peers)})
		} else if j.peersOK {
			figs = append(figs, event.Figure{Name: fmt.Sprintf("peers_p90_%dd", wd), Value: j.peers})
		}
	}
	share := 0.0
	if st.reads > 0 {
		share = float64(st.out) / float64(st.reads)
	}
	figs = append(figs, event.Figure{Name: "outside_share", Value: math.Round(100*share) / 100})
	wd := longWindows[best.w]
	part := "its largest day"
	if wd == 1 {
		part = "its largest hour"
	}
	var base []string
	if best.ownOK {
		base = append(base, fmt.Sprintf("%.1f× its own 90th percentile (%s)", best.sustained/math.Max(best.own, 1), thousands(int64(math.Round(best.own)))))
	} else {
		base = append(base, "it has no history of its own yet")
	}
	if best.typical {
		base = append(base, fmt.Sprintf("%.1f× a typical %s identity's (the upper quartile of their recent highs, %s)", best.sustained/math.Max(best.peers, 1), r.name, thousands(int64(math.Round(best.peers)))))
	} else {
		base = append(base, fmt.Sprintf("%.1f× the 90th percentile of %s identities (%s)", best.sustained/math.Max(best.peers, 1), r.name, thousands(int64(best.peers))))
	}
	if best.cold {
		base = append(base, fmt.Sprintf("and each of its last %d active days read records new to it, at least half a typical %s identity's day", coldDays, r.name))
	}
	ctx := ""
	if outside {
		ctx = fmt.Sprintf("; %.0f%% of today's record reads came from outside the corporate network or at hours unusual for it", 100*share)
	}
	c.Emit(event.Finding{
		Kind:   KindSlow,
		Title:  "Identity reading far more records over days than it and its peers do",
		Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: id.id},
		Time:   w.last,
		Score:  math.Round(score),
		Explanation: fmt.Sprintf("%s (%s) read about %s distinct records in %d day(s) to %s, %s of them outside %s: %s%s.",
			id.id, r.name, thousands(int64(best.count)), wd, w.last.Format("2006-01-02 15:04"), thousands(int64(best.sustained)), part,
			strings.Join(base, ", "), ctx),
		Evidence: evidence(w),
		Related:  related(w),
		Figures:  figs,
	})
}

// related names the session tokens of the hour's record reads: the
// sessions a containment of the identity ends at once (respond revokes a
// principal's related tokens); the finding is emitted when the hour closes,
// so the engine's citation of the event being processed is not the
// identity's own.
func related(w *window) []event.EntityKey {
	var out []event.EntityKey
	for _, t := range w.tokens {
		out = append(out, event.EntityKey{Kind: event.EntityToken, ID: t})
	}
	return out
}

// unusualHour is the hour's unusualness (1 − 24 × its share of the
// identity's activity at that hour or either side) from which its reads
// count as outside its usual hours: a share below about 2%, off_hours'
// max_share.
const unusualHour = 0.5

const slowBytes = (ringDays+ringWeeks)*len(hll64{}) + nWin*slowBins*2

func (st *slowState) appendBytes(b []byte) []byte {
	for i := range st.day {
		b = append(b, st.day[i][:]...)
	}
	for i := range st.week {
		b = append(b, st.week[i][:]...)
	}
	for i := range st.own {
		for _, v := range st.own[i] {
			b = binary.LittleEndian.AppendUint16(b, v)
		}
	}
	return b
}

func (st *slowState) readBytes(b []byte) []byte {
	for i := range st.day {
		b = b[copy(st.day[i][:], b):]
	}
	for i := range st.week {
		b = b[copy(st.week[i][:], b):]
	}
	for i := range st.own {
		for k := range st.own[i] {
			st.own[i][k] = binary.LittleEndian.Uint16(b)
			b = b[2:]
		}
	}
	return b
}
