// Package baseline holds the small statistics detectors share to judge an
// entity against its peers: a decaying histogram of counts in
// power-of-two buckets, cheap enough to keep per network or per role, and
// robust (a quantile's bucket, not a mean) against the heavy tails of
// access counts.
package baseline

import (
	"math"
	"math/bits"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
)

// Log2Hist counts observations in power-of-two buckets: bucket b holds the
// counts n with bits.Len64(n) == b, i.e. [2^(b−1), 2^b − 1] (bucket 0 holds
// 0). Weights decay with Decay, so old windows count for less. The zero
// value is empty and ready to use; it is not safe for concurrent use.
type Log2Hist struct {
	bins  [65]float64
	total float64
}

// Add records one observation of n.
func (h *Log2Hist) Add(n uint64) {
	h.bins[bits.Len64(n)]++
	h.total++
}

// Decay multiplies every weight by f (0 < f ≤ 1).
func (h *Log2Hist) Decay(f float64) {
	for i := range h.bins {
		h.bins[i] *= f
	}
	h.total *= f
}

// Weight is the total (decayed) number of observations.
func (h *Log2Hist) Weight() float64 { return h.total }

// Quantile returns the upper bound of the bucket holding the q-quantile
// (0 < q ≤ 1), or 0 when the histogram weighs less than minWeight (too
// little history to say) or the quantile is in bucket 0.
func (h *Log2Hist) Quantile(q, minWeight float64) float64 {
	if h.total < minWeight || h.total == 0 {
		return 0
	}
	var cum float64
	for b, w := range h.bins {
		cum += w
		if cum >= q*h.total {
			if b == 0 {
				return 0
			}
			return float64(uint64(1)<<b - 1)
		}
	}
	return 0
}

// Peak is an entity's busiest window so far, decaying by a factor for
// every window since it was last seen, so an old burst fades. The zero
// value has seen nothing.
type Peak struct {
	Max  float64
	Last time.Time // start of the last window observed
}

// Observe folds in the count n of the window starting at start (windows
// are window long): the peak decays by decay per window elapsed since the
// last observation, then takes n if larger.
func (p *Peak) Observe(start time.Time, window time.Duration, n, decay float64) {
	if idle := start.Sub(p.Last) / window; !p.Last.IsZero() && idle > 0 {
		p.Max *= math.Pow(decay, float64(idle))
	}
	p.Max = math.Max(p.Max, n)
	p.Last = start
}

// AppendTo writes the histogram for a checkpoint.
func (h *Log2Hist) AppendTo(w *snap.Writer) {
	// Only the non-empty bins: most of the 65 are.
	n := 0
	for _, b := range h.bins {
		if b != 0 {
			n++
		}
	}
	w.Uint(uint64(n))
	for i, b := range h.bins {
		if b != 0 {
			w.Byte(byte(i))
			w.Float(b)
		}
	}
	w.Float(h.total)
}

// ReadFrom reads what AppendTo wrote (errors are r's).
func (h *Log2Hist) ReadFrom(r *snap.Reader) {
	*h = Log2Hist{}
	for range r.Count(9) {
		i := r.Byte()
		v := r.Float()
		if int(i) >= len(h.bins) {
			r.Fail("log2 histogram bin out of range")
			return
		}
		h.bins[i] = v
	}
	h.total = r.Float()
}

// AppendTo writes the peak for a checkpoint.
func (p *Peak) AppendTo(w *snap.Writer) {
	w.Float(p.Max)
	w.Time(p.Last)
}

// ReadFrom reads what AppendTo wrote.
func (p *Peak) ReadFrom(r *snap.Reader) {
	p.Max = r.Float()
	p.Last = r.Time()
}

// EntityRole is the entity kind of the role-keyed detectors' shard key:
// every identity of a role meets its peers on one shard.
const EntityRole event.EntityKind = "role"

// RecordReadByRole is the shard key of detectors that judge staff,
// service and partner identities against their peers by what they read:
// activity that touched records, by an identity with a role (user.roles),
// keys on its first role. Customers (no roles) are not keyed.
func RecordReadByRole(ev *event.Event) (event.EntityKey, bool) {
	if len(ev.User.Roles) == 0 || len(ev.Records.IDs) == 0 || !ev.IsActivity() {
		return event.EntityKey{}, false
	}
	return event.EntityKey{Kind: EntityRole, ID: ev.User.Roles[0]}, true
}
