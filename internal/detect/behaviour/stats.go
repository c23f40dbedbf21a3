package behaviour

import (
	"math"
	"math/bits"

	"github.com/haechi-sec/haechi/internal/snap"
)

// Feature indices of the hourly vector.
const (
	fRequests = iota
	fRecords
	fTypes
	fFields
	fErrors
	fBytes
	fEndpoints
	fSequential
	fUnusual
	nFeatures
)

// ownFeatures are the features with a per-identity history: every feature
// but fUnusual (the last), which is already relative to the identity's own
// hours.
const ownFeatures = fUnusual

var featureNames = [nFeatures]string{
	"requests", "distinct_records", "record_types", "pii_fields", "error_ratio",
	"bytes", "endpoints", "sequential_ratio", "unusual_hour",
}

// featurePhrase describes a feature's value in a sentence.
var featurePhrase = [nFeatures]string{
	"made %s requests", "read %s distinct records", "read %s record types", "touched %s personal-data fields",
	"had %s of its requests fail", "received %s bytes", "used %s distinct endpoints",
	"read sequential record ids (%s adjacent)", "acted at an hour unusual for it (%s)",
}

func isRatio(f int) bool { return f == fErrors || f == fUnusual || f == fSequential }

// ---------------------------------------------------------------------------
// Compact per-identity histogram: 12 bins of uint16 fixed-point weight.

const (
	ownBins = 12
	ownUnit = 64 // weight of one observation in fixed point
)

// ownBin maps a feature value to one of ownBins coarse bins: powers of two
// for counts (bin b holds [2^(b-1), 2^b), the last bin ≥ 1024), powers of
// eight for bytes, tenths for ratios.
func ownBin(f int, v float64) int {
	switch {
	case v <= 0:
		return 0
	case isRatio(f):
		return min(ownBins-1, 1+int(v*10))
	case f == fBytes:
		return min(ownBins-1, (bits.Len64(uint64(v))+2)/3)
	}
	return min(ownBins-1, bits.Len64(uint64(v)))
}

// ownUpper is the largest value of bin b (+Inf for the last, open bin of
// counts and bytes).
func ownUpper(f, b int) float64 {
	switch {
	case b == 0:
		return 0
	case isRatio(f):
		return math.Min(1, float64(b)/10)
	case b == ownBins-1:
		return math.Inf(1)
	case f == fBytes:
		return math.Exp2(3*float64(b)) - 1
	}
	return math.Exp2(float64(b)) - 1
}

// ownHist is a decaying histogram of one feature of one identity.
type ownHist [ownBins]uint16

func (h *ownHist) add(b int) {
	if h[b] > math.MaxUint16-ownUnit {
		for i := range h {
			h[i] /= 2
		}
	}
	h[b] += ownUnit
}

// decay multiplies every bin by f (0..1), in fixed point.
func (h *ownHist) decay(f uint32) {
	for i := range h {
		h[i] = uint16(uint32(h[i]) * f >> 16)
	}
}

func (h *ownHist) weight() float64 {
	var s uint32
	for _, v := range h {
		s += uint32(v)
	}
	return float64(s) / ownUnit
}

// quantileBin returns the bin holding quantile q of the summed histograms
// hs, or -1 when their weight is below minWeight.
func quantileBin(q, minWeight float64, hs ...*ownHist) int {
	var sum [ownBins]float64
	var total float64
	for _, h := range hs {
		for i, v := range h {
			sum[i] += float64(v) / ownUnit
			total += float64(v) / ownUnit
		}
	}
	if total < minWeight || total == 0 {
		return -1
	}
	var cum float64
	for b, w := range sum {
		cum += w
		if cum >= q*total-1e-9 {
			return b
		}
	}
	return ownBins - 1
}

// ---------------------------------------------------------------------------
// Finer decaying histogram for roles (peers): quarter octaves for counts,
// hundredths for ratios.

const fineBins = 161

func fineBin(f int, v float64) int {
	switch {
	case v <= 0:
		return 0
	case isRatio(f):
		return min(100, int(math.Round(v*100)))
	}
	return min(fineBins-1, 1+int(4*math.Log2(math.Max(1, v))))
}

func fineUpper(f, b int) float64 {
	switch {
	case b == 0:
		return 0
	case isRatio(f):
		return float64(b) / 100
	}
	return math.Floor(math.Exp2(float64(b) / 4))
}

// fineHist is a decaying histogram with fine log-scale bins.
type fineHist struct {
	bins  [fineBins]float64
	total float64
}

func (h *fineHist) add(f int, v float64) {
	h.bins[fineBin(f, v)]++
	h.total++
}

func (h *fineHist) decay(k float64) {
	if h.total == 0 {
		return
	}
	for i := range h.bins {
		h.bins[i] *= k
	}
	h.total *= k
}

// quantile returns the upper edge of the bin holding quantile q, and false
// when the histogram weighs less than minWeight.
func (h *fineHist) quantile(f int, q, minWeight float64) (float64, bool) {
	if h.total < minWeight || h.total == 0 {
		return 0, false
	}
	var cum float64
	for b, w := range h.bins {
		cum += w
		if cum >= q*h.total-1e-9 {
			return fineUpper(f, b), true
		}
	}
	return fineUpper(f, fineBins-1), true
}

func (h *fineHist) appendTo(w *snap.Writer) {
	n := 0
	for _, b := range h.bins {
		if b != 0 {
			n++
		}
	}
	w.Uint(uint64(n))
	for i, b := range h.bins {
		if b != 0 {
			w.Uint(uint64(i))
			w.Float(b)
		}
	}
	w.Float(h.total)
}

func (h *fineHist) readFrom(r *snap.Reader) {
	*h = fineHist{}
	for range r.Count(9) {
		i := r.Uint()
		v := r.Float()
		if i >= fineBins || !finite(v) {
			r.Fail("histogram bin out of range")
			return
		}
		h.bins[i] = v
	}
	h.total = r.Float()
	if !finite(h.total) {
		r.Fail("histogram total")
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }

// mix is a 64-bit finaliser (splitmix64) so FNV hashes spread over the
// register index bits.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func fnv(parts ...string) uint64 {
	h := uint64(14695981039346656037)
	for i, p := range parts {
		if i > 0 {
			h = (h ^ 0xff) * 1099511628211
		}
		for j := 0; j < len(p); j++ {
			h = (h ^ uint64(p[j])) * 1099511628211
		}
	}
	return h
}
