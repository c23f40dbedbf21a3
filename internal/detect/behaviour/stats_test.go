package behaviour

import (
	"math"
	"testing"
)

func TestOwnBins(t *testing.T) {
	for _, c := range []struct {
		f    int
		v    float64
		want int
	}{
		{fRecords, 0, 0}, {fRecords, 1, 1}, {fRecords, 2, 2}, {fRecords, 3, 2}, {fRecords, 38, 6},
		{fRecords, 1023, 10}, {fRecords, 1024, 11}, {fRecords, 1e9, 11},
		{fBytes, 1, 1}, {fBytes, 7, 1}, {fBytes, 8, 2}, {fBytes, 1 << 20, 7},
		{fErrors, 0, 0}, {fErrors, 0.01, 1}, {fErrors, 0.5, 6}, {fErrors, 1, 11},
	} {
		b := ownBin(c.f, c.v)
		if b != c.want {
			t.Errorf("ownBin(%s, %v) = %d, want %d", featureNames[c.f], c.v, b, c.want)
		}
		if up := ownUpper(c.f, b); c.v > up {
			t.Errorf("%s %v above its bin's upper edge %v", featureNames[c.f], c.v, up)
		}
	}
}

func TestOwnQuantileAndDecay(t *testing.T) {
	var h ownHist
	if quantileBin(0.99, 1, &h) != -1 {
		t.Fatal("empty histogram has a quantile")
	}
	for range 99 {
		h.add(ownBin(fRecords, 30)) // bin 5: 16–31
	}
	h.add(ownBin(fRecords, 5000))
	if b := quantileBin(0.99, 8, &h); ownUpper(fRecords, b) != 31 {
		t.Errorf("p99 bin %d (upper %v), want upper 31", b, ownUpper(fRecords, b))
	}
	if b := quantileBin(1, 8, &h); b != ownBins-1 {
		t.Errorf("max bin %d", b)
	}
	if w := h.weight(); math.Abs(w-100) > 0.01 {
		t.Errorf("weight %v", w)
	}
	h.decay(1 << 15) // ½
	if w := h.weight(); math.Abs(w-50) > 0.5 {
		t.Errorf("weight after halving %v", w)
	}
	if quantileBin(0.99, 60, &h) != -1 {
		t.Error("below the minimum weight a quantile was given")
	}
	// Saturation halves instead of overflowing.
	var s ownHist
	for range 5000 {
		s.add(3)
	}
	if s[3] == 0 || s.weight() > 1024 {
		t.Errorf("saturated bin %d weight %v", s[3], s.weight())
	}
}

func TestFineQuantile(t *testing.T) {
	var h fineHist
	if _, ok := h.quantile(fRecords, 0.99, 1); ok {
		t.Fatal("empty")
	}
	for i := range 1000 {
		h.add(fRecords, float64(i%50)) // 0..49
	}
	p99, ok := h.quantile(fRecords, 0.99, 100)
	if !ok || p99 < 49 || p99 > 49*1.2 {
		t.Errorf("p99 = %v, want within a quarter octave above 49", p99)
	}
	med, _ := h.quantile(fRecords, 0.5, 100)
	if med < 24 || med > 24*1.2+1 {
		t.Errorf("median = %v", med)
	}
	var r fineHist
	for range 100 {
		r.add(fErrors, 0.25)
	}
	if q, _ := r.quantile(fErrors, 0.99, 10); q != 0.25 {
		t.Errorf("ratio p99 = %v", q)
	}
	r.decay(0.5)
	if _, ok := r.quantile(fErrors, 0.99, 60); ok {
		t.Error("decayed below the minimum weight")
	}
}

func TestHLL(t *testing.T) {
	for _, n := range []int{0, 10, 100, 1000, 10000, 200000} {
		var a, b hll64
		for i := range n {
			x := mix(uint64(i) + 1)
			if i%2 == 0 {
				a.add(x)
			} else {
				b.add(x)
			}
		}
		got := est64(&a, &b)
		if n == 0 {
			if got != 0 {
				t.Errorf("empty: %v", got)
			}
			continue
		}
		if rel := math.Abs(got-float64(n)) / float64(n); rel > 0.4 {
			t.Errorf("n=%d: estimate %v (%.0f%% off)", n, got, 100*rel)
		}
	}
	var big bigHLL
	for i := range 50000 {
		big.add(mix(uint64(i) * 7))
	}
	if e := big.estimate(); math.Abs(e-50000)/50000 > 0.06 {
		t.Errorf("big estimate %v", e)
	}
}

func TestHSTSeparates(t *testing.T) {
	m := newHST(42)
	r := &role{}
	var normal [nFeatures]float64
	for i := range 3 * hstPsi {
		v := [nFeatures]float64{fRequests: float64(10 + i%7), fRecords: float64(8 + i%5), fTypes: 1, fFields: 2, fEndpoints: 2, fBytes: 4000}
		x := r.normalise(&v)
		m.update(&x)
		normal = x
	}
	odd := [nFeatures]float64{fRequests: 12, fRecords: 9, fTypes: 6, fFields: 12, fEndpoints: 30, fErrors: 0.4, fBytes: 4000}
	x := r.normalise(&odd)
	if a, b := m.score(&normal), m.score(&x); !(b*4 < a) {
		t.Errorf("normal scores %v, the odd vector %v", a, b)
	}
}
