package eval

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// SeedRun is one seed's scorecard in a multi-seed evaluation, with the
// variant each scenario was drawn as (truth.Scenario.Variant, by name).
type SeedRun struct {
	Seed      uint64            `json:"seed"`
	Variants  map[string]string `json:"variants,omitempty"`
	Scorecard Scorecard         `json:"scorecard"`
}

// SeedsScorecard scores the same simulated company over several seeds:
// each seed's scorecard, and per scenario how often and how fast it was
// detected over all of them. Its JSON form is what `haechi eval --seeds
// -o json` prints.
type SeedsScorecard struct {
	Seeds     []uint64            `json:"seeds"`
	Runs      []SeedRun           `json:"runs"`
	Scenarios []ScenarioOverSeeds `json:"scenarios"`
	// FalsePositives sums the runs' false positives; the rates are the
	// mean of the runs' rates.
	FalsePositives SeedsFalsePositives `json:"false_positives"`
	// Incidents sums the runs' incident scores (IncidentsScore).
	Incidents SeedsIncidents `json:"incidents"`
}

// ScenarioOverSeeds aggregates one scenario over the seeds it ran in.
type ScenarioOverSeeds struct {
	Name string `json:"name"`
	// Runs is the number of seeds whose truth holds the scenario;
	// Detected how many of them detected it; Missed the seeds that did not.
	Runs     int      `json:"runs"`
	Detected int      `json:"detected"`
	Missed   []uint64 `json:"missed"`
	// Time to detect over the detecting seeds (seconds of event time);
	// null when no seed detected it.
	TimeToDetectMin    *float64 `json:"time_to_detect_min_seconds"`
	TimeToDetectMedian *float64 `json:"time_to_detect_median_seconds"`
	TimeToDetectMax    *float64 `json:"time_to_detect_max_seconds"`
	// Records summed over the runs: what the attackers still read with the
	// response in force (or before the first alert without it), and what
	// they touched in all.
	RecordsExposed int `json:"records_exposed"`
	RecordsTouched int `json:"records_touched"`
	// Incidents holding the scenario's alerts, per run in the order of
	// the runs, and their median and maximum (null without incidents
	// scored).
	Incidents       []int    `json:"incidents"`
	IncidentsMedian *float64 `json:"incidents_median"`
	IncidentsMax    *int     `json:"incidents_max"`
}

// SeedsFalsePositives sums false positives over the runs.
type SeedsFalsePositives struct {
	Ordinary                    int            `json:"ordinary"`
	MeanPerTenKIdentitiesPerDay float64        `json:"mean_per_10k_identities_per_day"`
	ByDetector                  map[string]int `json:"by_detector"`
	HardBenign                  int            `json:"hard_benign"`
	HardBenignByName            map[string]int `json:"hard_benign_by_name"`
}

// SeedsIncidents sums the runs' incident scores.
type SeedsIncidents struct {
	Incidents      int `json:"incidents"`
	MixedScenarios int `json:"mixed_scenarios"`
	WithBenign     int `json:"with_benign"`
	Precursors     int `json:"precursors"`
	// False containments summed over the runs (FalseContainments).
	FalseContainments           int `json:"false_containments"`
	FalseContainmentsHardBenign int `json:"false_containments_hard_benign"`
	FalseContainmentsOrdinary   int `json:"false_containments_ordinary"`
	// ContainmentCollateral sums the benign requests refused by
	// containments that also stopped an attack.
	ContainmentCollateral int `json:"containment_collateral"`
}

// AggregateSeeds builds the multi-seed scorecard from the runs, in the
// order given. Scenarios are listed in order of first appearance.
func AggregateSeeds(runs []SeedRun) SeedsScorecard {
	out := SeedsScorecard{Seeds: []uint64{}, Runs: runs, Scenarios: []ScenarioOverSeeds{},
		FalsePositives: SeedsFalsePositives{ByDetector: map[string]int{}, HardBenignByName: map[string]int{}}}
	idx := map[string]int{}
	ttd := map[string][]float64{}
	rates := 0.0
	for _, r := range runs {
		out.Seeds = append(out.Seeds, r.Seed)
		for _, s := range r.Scorecard.Scenarios {
			i, ok := idx[s.Name]
			if !ok {
				i = len(out.Scenarios)
				idx[s.Name] = i
				out.Scenarios = append(out.Scenarios, ScenarioOverSeeds{Name: s.Name, Missed: []uint64{}, Incidents: []int{}})
			}
			a := &out.Scenarios[i]
			a.Runs++
			a.RecordsExposed += s.RecordsExposedBeforeContainment
			a.RecordsTouched += s.RecordsTouched
			if r.Scorecard.Incidents != nil {
				a.Incidents = append(a.Incidents, s.Incidents)
			}
			if s.Detected {
				a.Detected++
				if s.TimeToDetectSeconds != nil {
					ttd[s.Name] = append(ttd[s.Name], *s.TimeToDetectSeconds)
				}
			} else {
				a.Missed = append(a.Missed, r.Seed)
			}
		}
		if in := r.Scorecard.Incidents; in != nil {
			out.Incidents.Incidents += in.Incidents
			out.Incidents.MixedScenarios += in.MixedScenarios
			out.Incidents.WithBenign += in.WithBenign
			out.Incidents.Precursors += in.Precursors
		}
		if fc := r.Scorecard.FalseContainments; fc != nil {
			out.Incidents.FalseContainments += fc.Containments
			out.Incidents.FalseContainmentsHardBenign += fc.HardBenign
			out.Incidents.FalseContainmentsOrdinary += fc.Ordinary
			out.Incidents.ContainmentCollateral += fc.Collateral
		}
		fp := r.Scorecard.FalsePositives
		out.FalsePositives.Ordinary += fp.Ordinary
		out.FalsePositives.HardBenign += fp.HardBenign.Alerts
		rates += fp.PerTenKIdentitiesPerDay
		for k, v := range fp.ByDetector {
			out.FalsePositives.ByDetector[k] += v
		}
		for k, v := range fp.HardBenign.ByName {
			out.FalsePositives.HardBenignByName[k] += v
		}
	}
	if len(runs) > 0 {
		out.FalsePositives.MeanPerTenKIdentitiesPerDay = rates / float64(len(runs))
	}
	for i := range out.Scenarios {
		a := &out.Scenarios[i]
		if n := len(a.Incidents); n > 0 {
			v := slices.Clone(a.Incidents)
			slices.Sort(v)
			med := float64(v[n/2])
			if n%2 == 0 {
				med = float64(v[n/2-1]+v[n/2]) / 2
			}
			a.IncidentsMedian, a.IncidentsMax = &med, &v[n-1]
		}
		v := ttd[a.Name]
		if len(v) == 0 {
			continue
		}
		sort.Float64s(v)
		lo, hi := v[0], v[len(v)-1]
		med := v[len(v)/2]
		if len(v)%2 == 0 {
			med = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		a.TimeToDetectMin, a.TimeToDetectMedian, a.TimeToDetectMax = &lo, &med, &hi
	}
	return out
}

// WriteText prints the multi-seed scorecard: per scenario one row per
// seed (with its drawn variant), then the aggregate over the seeds and the
// false positives per seed and in all.
func (s SeedsScorecard) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	seeds := make([]string, len(s.Seeds))
	for i, v := range s.Seeds {
		seeds[i] = strconv.FormatUint(v, 10)
	}
	fmt.Fprintf(ew, "Seeds: %s\n\nPer seed:\n", strings.Join(seeds, ", "))
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  SCENARIO\tSEED\tDETECTED\tTIME TO DETECT\tEXPOSED/TOUCHED\tALERTS\tINCIDENTS\tFIRST ALERT\tVARIANT\n")
	for _, a := range s.Scenarios {
		for _, r := range s.Runs {
			i := slices.IndexFunc(r.Scorecard.Scenarios, func(x ScenarioScore) bool { return x.Name == a.Name })
			if i < 0 {
				continue
			}
			sc := r.Scorecard.Scenarios[i]
			det, ttd, first := "no", "—", "—"
			if sc.Detected {
				det = "yes"
			}
			if sc.TimeToDetectSeconds != nil {
				ttd = HumanDuration(*sc.TimeToDetectSeconds)
			}
			if len(sc.Alerts) > 0 {
				a := sc.FirstDetecting()
				first = a.Detector + " " + a.Entity.String()
			}
			v := r.Variants[a.Name]
			if v == "" {
				v = "canonical"
			}
			inc := "—"
			if r.Scorecard.Incidents != nil {
				inc = strconv.Itoa(sc.Incidents)
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%d/%d\t%d\t%s\t%s\t%s\n", a.Name, r.Seed, det, ttd,
				sc.RecordsExposedBeforeContainment, sc.RecordsTouched, len(sc.Alerts), inc, first, v)
		}
	}
	tw.Flush()
	fmt.Fprintf(ew, "\nOver all seeds:\n")
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  SCENARIO\tDETECTED\tTIME TO DETECT min/median/max\tEXPOSED/TOUCHED\tINCIDENTS median/max\tMISSED ON SEEDS\n")
	for _, a := range s.Scenarios {
		ttd := "—"
		if a.TimeToDetectMin != nil {
			ttd = HumanDuration(*a.TimeToDetectMin) + " / " + HumanDuration(*a.TimeToDetectMedian) + " / " + HumanDuration(*a.TimeToDetectMax)
		}
		missed := "—"
		if len(a.Missed) > 0 {
			ms := make([]string, len(a.Missed))
			for i, v := range a.Missed {
				ms[i] = strconv.FormatUint(v, 10)
			}
			missed = strings.Join(ms, ",")
		}
		inc := "—"
		if a.IncidentsMedian != nil {
			inc = strconv.FormatFloat(*a.IncidentsMedian, 'f', -1, 64) + " / " + strconv.Itoa(*a.IncidentsMax)
		}
		fmt.Fprintf(tw, "  %s\t%d/%d\t%s\t%d/%d\t%s\t%s\n", a.Name, a.Detected, a.Runs, ttd, a.RecordsExposed, a.RecordsTouched, inc, missed)
	}
	tw.Flush()
	fmt.Fprintf(ew, "\nFalse positives per seed:\n")
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  SEED\tEVENTS\tIDENTITIES\tORDINARY\tPER 10K ID/DAY\tHARD-BENIGN\tBY NAME\n")
	for _, r := range s.Runs {
		fp := r.Scorecard.FalsePositives
		by := "—"
		if len(fp.HardBenign.ByName) > 0 {
			by = counts(fp.HardBenign.ByName)
		}
		fmt.Fprintf(tw, "  %d\t%d\t%d\t%d\t%s\t%d\t%s\n", r.Seed, r.Scorecard.Events, r.Scorecard.Identities,
			fp.Ordinary, fmtRate(fp.PerTenKIdentitiesPerDay), fp.HardBenign.Alerts, by)
	}
	tw.Flush()
	fp := s.FalsePositives
	fmt.Fprintf(ew, "False positives over all seeds: ordinary %s (mean %s per 10k identities per day), hard-benign %s\n",
		plural(fp.Ordinary, "alert"), fmtRate(fp.MeanPerTenKIdentitiesPerDay), plural(fp.HardBenign, "alert"))
	if len(fp.ByDetector) > 0 {
		fmt.Fprintf(ew, "  ordinary by detector: %s\n", counts(fp.ByDetector))
	}
	if len(fp.HardBenignByName) > 0 {
		fmt.Fprintf(ew, "  hard-benign by name: %s\n", counts(fp.HardBenignByName))
	}
	in := s.Incidents
	fmt.Fprintf(ew, "Incidents over all seeds: %d; mixing two scenarios %d, attack with benign alerts %d; precursor alerts %d\n",
		in.Incidents, in.MixedScenarios, in.WithBenign, in.Precursors)
	fmt.Fprintf(ew, "False containments over all seeds: %d (hard-benign %d, ordinary %d); benign requests refused by containments that also stopped an attack: %d\n",
		in.FalseContainments, in.FalseContainmentsHardBenign, in.FalseContainmentsOrdinary, in.ContainmentCollateral)
	for _, r := range s.Runs {
		if fc := r.Scorecard.FalseContainments; fc != nil {
			fmt.Fprintf(ew, "  seed %d: collateral %d benign requests\n", r.Seed, fc.Collateral)
			for _, c := range fc.ByTarget {
				hb := ""
				if len(c.HardBenign) > 0 {
					hb = " (hard-benign: " + strings.Join(c.HardBenign, ", ") + ")"
				}
				fmt.Fprintf(ew, "  seed %d: %s %s: %d benign requests%s\n", r.Seed, c.Kind, c.Target.ID, c.Refused, hb)
			}
		}
	}
	for _, r := range s.Runs {
		if iv := r.Scorecard.InlineVerify; iv != nil {
			iv.writeLine(ew, fmt.Sprintf("  seed %d: ", r.Seed))
		}
	}
	return ew.err
}

// ParseSeeds parses a seed list: "1-5", "1,3,7", "1-3,10". Seeds are
// returned in the order given, without repeats.
func ParseSeeds(s string) ([]uint64, error) {
	var out []uint64
	seen := map[uint64]bool{}
	add := func(v uint64) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("seeds: %q is not a seed or a range a-b", part)
		}
		if !isRange {
			add(a)
			continue
		}
		b, err := strconv.ParseUint(strings.TrimSpace(hi), 10, 64)
		if err != nil || b < a {
			return nil, fmt.Errorf("seeds: %q is not a range a-b with a ≤ b", part)
		}
		if b-a >= 1000 {
			return nil, fmt.Errorf("seeds: %q has more than 1000 seeds", part)
		}
		for v := a; ; v++ {
			add(v)
			if v == b {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("seeds: %q names no seed", s)
	}
	return out, nil
}
