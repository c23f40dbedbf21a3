package alert

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// detRisk is one detector's running contribution to an entity's risk.
type detRisk struct {
	detector string
	value    float64   // decayed sum of scores as of at (uncapped)
	cap      float64   // RepeatCap × the strongest score seen
	at       time.Time // time value is decayed to
}

func (d *detRisk) decayed(t time.Time, halfLife time.Duration) float64 {
	if dt := t.Sub(d.at); dt > 0 {
		return d.value * math.Exp2(-float64(dt)/float64(halfLife))
	}
	return d.value
}

// maxKept bounds the findings an entity keeps while below the threshold
// (the strongest contributions are kept).
const maxKept = 16

// entityRisk is an entity's risk: per detector, and the findings that
// contributed, waiting for an alert.
type entityRisk struct {
	dets []detRisk
	kept []event.Finding
}

// add folds f in and returns the risk it added.
func (r *entityRisk) add(f *event.Finding, halfLife time.Duration, repeatCap float64) float64 {
	i := slices.IndexFunc(r.dets, func(d detRisk) bool { return d.detector == f.Detector })
	if i < 0 {
		r.dets = append(r.dets, detRisk{detector: f.Detector, at: f.Time})
		i = len(r.dets) - 1
	}
	d := &r.dets[i]
	v := d.decayed(f.Time, halfLife)
	before := min(v, d.cap)
	d.cap = max(d.cap, repeatCap*max(f.Score, 0))
	v += max(f.Score, 0)
	if f.Time.After(d.at) {
		d.at = f.Time
	}
	d.value = v
	return max(0, min(v, d.cap)-before)
}

// total is the entity's risk at t.
func (r *entityRisk) total(t time.Time, halfLife time.Duration) float64 {
	var sum float64
	for i := range r.dets {
		d := &r.dets[i]
		sum += min(d.decayed(t, halfLife), d.cap)
	}
	return sum
}

// keep remembers a contributing finding for the alert it may lead to.
func (r *entityRisk) keep(f *event.Finding) {
	if len(r.kept) < maxKept {
		r.kept = append(r.kept, *f)
		return
	}
	// Replace the weakest contribution if f is stronger.
	w := 0
	for i := range r.kept {
		if r.kept[i].Contribution < r.kept[w].Contribution {
			w = i
		}
	}
	if f.Contribution > r.kept[w].Contribution {
		r.kept[w] = *f
	}
}

// take hands over the kept findings, except those whose risk has all but
// decayed away by t (older than four half-lives).
func (r *entityRisk) take(t time.Time, halfLife time.Duration) []event.Finding {
	k := slices.DeleteFunc(r.kept, func(f event.Finding) bool { return t.Sub(f.Time) > 4*halfLife })
	r.kept = nil
	return k
}

// sortByContribution orders findings by contribution (largest first), then
// by time, detector and kind, so the order is deterministic.
func sortByContribution(fs []event.Finding) {
	slices.SortStableFunc(fs, func(x, y event.Finding) int {
		if c := cmp.Compare(y.Contribution, x.Contribution); c != 0 {
			return c
		}
		if c := x.Time.Compare(y.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Detector, y.Detector); c != 0 {
			return c
		}
		return cmp.Compare(x.Kind, y.Kind)
	})
}
