package alert

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// detRisk is one line of evidence's running contribution to an entity's
// risk: a detector's findings, and those of other detectors that name it
// as their line (event.Finding.Line).
type detRisk struct {
	detector string    // the line: a detector's name, or a finding's Line
	value    float64   // decayed sum of scores as of at (uncapped)
	cap      float64   // RepeatCap × the strongest score seen
	at       time.Time // time value is decayed to
}

func (d *detRisk) decayed(t time.Time, halfLife time.Duration) float64 {
	return decay(d.value, t.Sub(d.at), halfLife)
}

// decay is v after dt of decay with halfLife (v itself when dt ≤ 0).
func decay(v float64, dt, halfLife time.Duration) float64 {
	if dt > 0 {
		return v * math.Exp2(-float64(dt)/float64(halfLife))
	}
	return v
}

// lineOf names the line of evidence f counts in: its Line, else its
// detector. Findings of several detectors about one observation (being
// abroad, an unusual hour) share a line, named after the detector that
// owns the observation.
func lineOf(f *event.Finding) string {
	if f.Line == "" {
		return f.Detector
	}
	return f.Line
}

// maxKept bounds the findings an entity keeps while below the threshold
// (the strongest contributions are kept).
const maxKept = 16

// entityRisk is an entity's risk: per line of evidence, and the findings
// that contributed, waiting for an alert.
type entityRisk struct {
	dets []detRisk
	kept []event.Finding
	// privAt is the event time of the latest finding about a privileged
	// principal (Finding.Privileged) among those that built this risk
	// (zero: none). While it is less than one risk half-life old the
	// entity's sum is weighed by the privileged multiplier: the identity's
	// criticality weighs the evidence that comes with its privileged
	// evidence, not a bulk read days after an export that was judged and
	// left alone. An alert spending the risk clears it.
	privAt time.Time
}

// weighed reports whether the entity's risk at t is weighed by the
// privileged multiplier (see privAt).
func (r *entityRisk) weighed(t time.Time, halfLife time.Duration) bool {
	return !r.privAt.IsZero() && t.Sub(r.privAt) < halfLife
}

// add folds f in and returns the risk it added. mult is the privileged
// multiplier (1: none).
func (r *entityRisk) add(f *event.Finding, halfLife time.Duration, repeatCap, mult float64) float64 {
	line := lineOf(f)
	i := slices.IndexFunc(r.dets, func(d detRisk) bool { return d.detector == line })
	if i < 0 {
		r.dets = append(r.dets, detRisk{detector: line, at: f.Time})
		i = len(r.dets) - 1
	}
	was := r.weighed(f.Time, halfLife)
	if f.Privileged && f.Time.After(r.privAt) {
		r.privAt = f.Time
	}
	weighed := r.weighed(f.Time, halfLife)
	flipping := weighed && !was && mult != 1
	var others float64 // the other lines' risk, when it is weighed for the first time
	if flipping {
		for j := range r.dets {
			if j != i {
				d := &r.dets[j]
				others += min(d.decayed(f.Time, halfLife), d.cap)
			}
		}
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
	added := max(0, min(v, d.cap)-before)
	switch {
	case flipping:
		// From now on the entity's whole risk is weighed: what it held
		// before (others + before, unweighed) is mult × itself after.
		return mult*added + (mult-1)*(others+before)
	case weighed:
		return mult * added
	}
	return added
}

// total is the entity's risk at t; mult is the privileged multiplier.
func (r *entityRisk) total(t time.Time, halfLife time.Duration, mult float64) float64 {
	var sum float64
	for i := range r.dets {
		d := &r.dets[i]
		sum += min(d.decayed(t, halfLife), d.cap)
	}
	if r.weighed(t, halfLife) {
		sum *= mult
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

// Breakdown is an entity's risk at a moment as the stage scores it: what
// each finding added and what is left of it, per detector what counts
// (decayed, capped at RepeatCap × its strongest finding) and the
// threshold the sum is held against. It answers "why did this not
// alert?" (Explain).
type Breakdown struct {
	At        time.Time
	Threshold float64
	HalfLife  time.Duration
	RepeatCap float64
	// PrivilegedMultiplier weighs the sum when Privileged: a finding
	// about a privileged principal (event.Finding.Privileged) is among
	// the entity's and less than one half-life old.
	PrivilegedMultiplier float64
	Privileged           bool
	// Risk is the entity's risk at At: the sum of Detectors' Risk (times
	// PrivilegedMultiplier when Privileged).
	Risk      float64
	Detectors []DetectorRisk
	// Findings are in the order they were scored (event time).
	Findings []Contribution
}

// DetectorRisk is one line of evidence in a Breakdown: a detector's
// findings and those naming it as their line (event.Finding.Line).
type DetectorRisk struct {
	Detector string
	// Risk is the detector's contribution at At: Decayed capped at Cap.
	Risk float64
	// Decayed is the sum of its findings' scores decayed to At (their
	// Contribution.Now).
	Decayed float64
	// Cap is RepeatCap × its strongest finding's score.
	Cap      float64
	Findings int
}

// Contribution is one finding's part in a Breakdown.
type Contribution struct {
	Finding event.Finding
	// Added is the risk the finding added when it was scored (the stage's
	// Finding.Contribution: 0 for a repeat its detector's cap absorbed).
	Added float64
	// Now is what the finding still holds at At: its score decayed from
	// its time to At. Its detector counts the sum of these, up to its cap.
	Now float64
}

// Explain scores findings about one entity the way a stage with opts
// does (Options' defaults apply; the entity's earlier risk is assumed
// spent, as after an alert closes) and breaks the entity's risk down at
// at (the zero time: the last finding's time). Findings are scored in
// event-time order; suppressed findings, which add no risk, must be left
// out by the caller. Only the risk options of opts are used.
func Explain(opts Options, findings []event.Finding, at time.Time) (Breakdown, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Breakdown{}, err
	}
	fs := slices.Clone(findings)
	slices.SortStableFunc(fs, compareFindings)
	if at.IsZero() && len(fs) > 0 {
		at = fs[len(fs)-1].Time
	}
	b := Breakdown{At: at, Threshold: opts.RiskThreshold, HalfLife: opts.RiskHalfLife, RepeatCap: opts.RepeatCap,
		PrivilegedMultiplier: opts.PrivilegedMultiplier}
	var r entityRisk
	counts := map[string]int{}
	for i := range fs {
		f := &fs[i]
		if f.Time.After(at) {
			break
		}
		added := round1(r.add(f, opts.RiskHalfLife, opts.RepeatCap, opts.PrivilegedMultiplier))
		f.Contribution = added
		counts[lineOf(f)]++
		b.Findings = append(b.Findings, Contribution{
			Finding: *f,
			Added:   added,
			Now:     round1(decay(max(f.Score, 0), at.Sub(f.Time), opts.RiskHalfLife)),
		})
	}
	for i := range r.dets {
		d := &r.dets[i]
		b.Detectors = append(b.Detectors, DetectorRisk{
			Detector: d.detector,
			Risk:     round1(min(d.decayed(at, opts.RiskHalfLife), d.cap)),
			Decayed:  round1(d.decayed(at, opts.RiskHalfLife)),
			Cap:      round1(d.cap),
			Findings: counts[d.detector],
		})
	}
	slices.SortStableFunc(b.Detectors, func(x, y DetectorRisk) int {
		if c := cmp.Compare(y.Risk, x.Risk); c != 0 {
			return c
		}
		return cmp.Compare(x.Detector, y.Detector)
	})
	b.Privileged = r.weighed(at, opts.RiskHalfLife)
	b.Risk = round1(r.total(at, opts.RiskHalfLife, opts.PrivilegedMultiplier))
	return b, nil
}
