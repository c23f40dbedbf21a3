package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText prints the scorecard as a readable table: one row per
// scenario, then the false-positive lines.
func (s Scorecard) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	detected := 0
	for _, sc := range s.Scenarios {
		if sc.Detected {
			detected++
		}
	}
	fmt.Fprintf(ew, "Scenarios: %d of %d detected\n", detected, len(s.Scenarios))
	if len(s.Scenarios) > 0 {
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		exposedHead := "EXPOSED BEFORE DETECTION/TOUCHED"
		if s.Response {
			exposedHead = "CONTAINED BY\tEXPOSED WITH RESPONSE/BEFORE DETECTION/TOUCHED"
		}
		fmt.Fprintf(tw, "  SCENARIO\tDETECTED\tTIME TO DETECT\t%s\tALERTS\t%sFIRST ALERT\n", exposedHead, incHead(s.Incidents))
		for _, sc := range s.Scenarios {
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
			exposed := fmt.Sprintf("%d/%d", sc.RecordsExposedBeforeContainment, sc.RecordsTouched)
			if s.Response {
				by := "—"
				if sc.ContainedAt != nil {
					by = sc.ContainedBy + " @ " + sc.ContainedAt.UTC().Format("01-02 15:04:05")
				}
				exposed = fmt.Sprintf("%s\t%d/%d/%d", by, sc.RecordsExposedBeforeContainment, sc.RecordsExposedBeforeDetection, sc.RecordsTouched)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s%s\n", sc.Name, det, ttd, exposed, len(sc.Alerts), incCell(s.Incidents, sc.Incidents), first)
		}
		tw.Flush()
	}
	if in := s.Incidents; in != nil {
		fmt.Fprintf(ew, "Incidents: %d (%d attack, %d benign); mixing two scenarios %d, attack with benign alerts %d; precursor alerts on attacker entities %d\n",
			in.Incidents, in.Attack, in.Benign, in.MixedScenarios, in.WithBenign, in.Precursors)
		for _, m := range in.Mixed {
			fmt.Fprintf(ew, "  mixed: %s %s — scenarios %s, %d benign alerts\n", m.ID, m.Title, strings.Join(m.Scenarios, ","), m.BenignAlerts)
		}
	}
	if fc := s.FalseContainments; fc != nil {
		fmt.Fprintf(ew, "False containments: %d (%d hard-benign, %d ordinary), %d benign requests refused; %d more refused by containments that stopped an attack\n",
			fc.Containments, fc.HardBenign, fc.Ordinary, fc.RefusedEvents, fc.Collateral)
		for i, c := range fc.ByTarget {
			if i == 10 {
				fmt.Fprintf(ew, "  … %d more\n", len(fc.ByTarget)-i)
				break
			}
			hb := ""
			if len(c.HardBenign) > 0 {
				hb = " (hard-benign: " + strings.Join(c.HardBenign, ", ") + ")"
			}
			fmt.Fprintf(ew, "  %s %s: %d benign requests%s\n", c.Kind, c.Target.ID, c.Refused, hb)
		}
	}
	if iv := s.InlineVerify; iv != nil {
		iv.writeLine(ew, "")
	}
	fp := s.FalsePositives
	fmt.Fprintf(ew, "Traffic: %d events, %d identities, %s days, %s\n",
		s.Events, s.Identities, strconv.FormatFloat(s.Days, 'f', 2, 64), plural(s.Alerts, "alert"))
	fmt.Fprintf(ew, "False positives (ordinary): %s, %s per 10k identities per day\n",
		plural(fp.Ordinary, "alert"), fmtRate(fp.PerTenKIdentitiesPerDay))
	if len(fp.ByDetector) > 0 {
		fmt.Fprintf(ew, "  by detector: %s\n", counts(fp.ByDetector))
	}
	if w := s.Withdrawn; w.Alerts > 0 {
		fmt.Fprintf(ew, "Withdrawn (late events proved them wrong; not scored): %s — hard-benign %d, ordinary %d, scenario %d\n",
			plural(w.Alerts, "alert"), w.HardBenign, w.Ordinary, w.Scenario)
	}
	hb := fp.HardBenign
	fmt.Fprintf(ew, "False positives (hard-benign): %s, %s per 10k identities per day\n",
		plural(hb.Alerts, "alert"), fmtRate(hb.PerTenKIdentitiesPerDay))
	if len(hb.ByName) > 0 {
		fmt.Fprintf(ew, "  by name: %s\n", counts(hb.ByName))
	}
	if len(hb.ByDetector) > 0 {
		fmt.Fprintf(ew, "  by detector: %s\n", counts(hb.ByDetector))
	}
	return ew.err
}

// incHead is the INCIDENTS column's head, "" when incidents were not
// scored; incCell its cell.
func incHead(in *IncidentsScore) string {
	if in == nil {
		return ""
	}
	return "INCIDENTS\t"
}

func incCell(in *IncidentsScore, n int) string {
	if in == nil {
		return ""
	}
	return strconv.Itoa(n) + "\t"
}

// WriteJSON prints the scorecard as one indented JSON object.
func (s Scorecard) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// HumanDuration renders seconds compactly: "350ms", "42s", "3m10s",
// "2h5m", "1d3h".
func HumanDuration(seconds float64) string {
	if seconds < 0 || math.IsNaN(seconds) {
		seconds = 0
	}
	if seconds > 0 && seconds < 1 {
		return strconv.Itoa(int(math.Round(seconds*1000))) + "ms"
	}
	d := time.Duration(math.Round(seconds)) * time.Second
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	sec := (d - m*time.Minute) / time.Second
	switch {
	case days > 0:
		return unit2(int64(days), "d", int64(h), "h")
	case h > 0:
		return unit2(int64(h), "h", int64(m), "m")
	case m > 0:
		return unit2(int64(m), "m", int64(sec), "s")
	}
	return strconv.FormatInt(int64(sec), 10) + "s"
}

func unit2(a int64, au string, b int64, bu string) string {
	s := strconv.FormatInt(a, 10) + au
	if b > 0 {
		s += strconv.FormatInt(b, 10) + bu
	}
	return s
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func fmtRate(r float64) string {
	switch {
	case r == 0:
		return "0"
	case r >= 100:
		return strconv.FormatFloat(r, 'f', 0, 64)
	case r >= 1:
		return strconv.FormatFloat(r, 'f', 2, 64)
	}
	return strconv.FormatFloat(r, 'g', 3, 64)
}

// counts renders a map as "a 3, b 1", largest first, then by name.
func counts(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(x, y string) int { return m[y] - m[x] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + strconv.Itoa(m[k])
	}
	return strings.Join(parts, ", ")
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
