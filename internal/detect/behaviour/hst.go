package behaviour

import (
	"math"
	"math/rand/v2"

	"github.com/haechi-sec/haechi/internal/snap"
)

// Half-Space Trees (Tan, Ting & Liu, "Fast anomaly detection for streaming
// data", IJCAI 2011): an ensemble of random, fully grown binary trees over
// a workspace of the unit cube, each node halving its parent's range of a
// random feature. Each node counts the instances reaching it in the
// current window (l, the latest mass) and holds the count of the previous
// window (r, the reference mass). An instance's score is, summed over the
// trees, r·2^depth at the node where the path ends (the deepest node, or
// the first whose reference mass is below sizeLimit): high for instances
// in dense regions of the last window, low (anomalous) for rare ones.
// After every window of psi instances, r ← l and l ← 0.
//
// No Go library implements it with a kept-up API (searched 2026-11: only
// gists and a Python reference in river); this is ~100 lines. The tree
// structure is a pure function of a seed (the role's name), so only the
// masses are checkpointed.

const (
	hstTrees = 25
	hstDepth = 10
	hstDims  = ownFeatures // the unusual hour is off_hours' evidence, not the model's
	hstNodes = 1<<(hstDepth+1) - 1
	hstPsi   = 250 // window (instances) between reference swaps
	hstLimit = 0.1 * hstPsi
)

type hstTree struct {
	feat  [hstDepth]uint8 // feature split at each level
	split [hstNodes]float32
	r, l  [hstNodes]float32
}

type hst struct {
	trees   []hstTree
	n       int // instances in the current window
	windows int // completed windows (0: no reference mass yet)
}

func newHST(seed uint64) *hst {
	m := &hst{trees: make([]hstTree, hstTrees)}
	rng := rand.New(rand.NewPCG(seed, 0x68737421)) // #nosec G404 -- the trees must be reproducible from their seed (checkpoints, equivalence tests)
	for t := range m.trees {
		// Levels split the features in a random order, each before any
		// twice, so every path cuts every feature at least once (with
		// fewer levels than features, an anomaly in one feature would
		// go unseen by most trees).
		perm := rng.Perm(hstDims)
		for d := range hstDepth {
			if d%hstDims == 0 && d > 0 {
				perm = rng.Perm(hstDims)
			}
			m.trees[t].feat[d] = uint8(perm[d%hstDims])
		}
		var lo, hi [nFeatures]float64
		for q := range nFeatures {
			s := rng.Float64()
			rg := 2 * math.Max(s, 1-s)
			lo[q], hi[q] = s-rg, s+rg
		}
		m.trees[t].build(0, 0, lo, hi, rng)
	}
	return m
}

func (t *hstTree) build(node, depth int, lo, hi [nFeatures]float64, rng *rand.Rand) {
	if depth == hstDepth {
		return
	}
	q := t.feat[depth]
	mid := (lo[q] + hi[q]) / 2
	t.split[node] = float32(mid)
	l, h := hi, lo
	l[q] = mid
	h[q] = mid
	t.build(2*node+1, depth+1, lo, l, rng)
	t.build(2*node+2, depth+1, h, hi, rng)
}

// score of x against the reference masses (higher is more normal).
func (m *hst) score(x *[nFeatures]float64) float64 {
	var s float64
	for i := range m.trees {
		t := &m.trees[i]
		node, depth := 0, 0
		for depth < hstDepth && t.r[node] >= hstLimit {
			if x[t.feat[depth]] < float64(t.split[node]) {
				node = 2*node + 1
			} else {
				node = 2*node + 2
			}
			depth++
		}
		s += float64(t.r[node]) * math.Exp2(float64(depth))
	}
	return s
}

// update adds x to the latest masses and swaps windows every hstPsi.
func (m *hst) update(x *[nFeatures]float64) {
	for i := range m.trees {
		t := &m.trees[i]
		node := 0
		for depth := 0; ; depth++ {
			t.l[node]++
			if depth == hstDepth {
				break
			}
			if x[t.feat[depth]] < float64(t.split[node]) {
				node = 2*node + 1
			} else {
				node = 2*node + 2
			}
		}
	}
	m.n++
	if m.n == hstPsi {
		for i := range m.trees {
			t := &m.trees[i]
			t.r = t.l
			t.l = [hstNodes]float32{}
		}
		m.n = 0
		m.windows++
	}
}

func (m *hst) appendTo(w *snap.Writer) {
	w.Uint(uint64(m.n))
	w.Uint(uint64(m.windows))
	for i := range m.trees {
		t := &m.trees[i]
		for _, masses := range []*[hstNodes]float32{&t.r, &t.l} {
			n := 0
			for _, v := range masses {
				if v != 0 {
					n++
				}
			}
			w.Uint(uint64(n))
			for j, v := range masses {
				if v != 0 {
					w.Uint(uint64(j))
					w.Uint(uint64(v))
				}
			}
		}
	}
}

func (m *hst) readFrom(r *snap.Reader) {
	m.n = int(r.Uint())
	m.windows = int(r.Uint())
	if m.n >= hstPsi || m.windows > 1<<40 {
		r.Fail("half-space trees window")
		return
	}
	for i := range m.trees {
		t := &m.trees[i]
		for _, masses := range []*[hstNodes]float32{&t.r, &t.l} {
			*masses = [hstNodes]float32{}
			for range r.Count(2) {
				j := r.Uint()
				v := r.Uint()
				if j >= hstNodes || v > hstPsi {
					r.Fail("half-space trees node")
					return
				}
				masses[j] = float32(v)
			}
		}
	}
}

// normalise maps a feature vector into [0, 1] per feature, relative to
// the role: a count at the peers' 99th percentile p maps to ½ on a log
// scale (log₂(1+v) / 2·log₂(2+p)), so the role's ordinary range fills the
// lower half and the upper half is room for the unusual; ratios stay as
// they are.
func (r *role) normalise(v *[nFeatures]float64) [nFeatures]float64 {
	var x [nFeatures]float64
	for f, val := range v {
		if isRatio(f) {
			x[f] = val
		} else {
			p, _ := r.peersAll[f].quantile(f, 0.99, 0)
			x[f] = math.Log2(1+val) / (2 * math.Log2(2+p))
		}
		x[f] = math.Min(1, math.Max(0, x[f]))
	}
	return x
}
