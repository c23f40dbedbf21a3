package alert_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
)

type suppressD3 struct{}

func (suppressD3) SuppressFinding(f *event.Finding) (string, bool) {
	return "sup-1", f.Detector == "d3"
}

// Every finding reaches the finding sinks, below the threshold or not,
// with the contribution and risk the stage scored it with.
func TestFindingSinksHearEveryFinding(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprint("ordered=", ordered), func(t *testing.T) {
			var got []string
			s, err := alert.New(alert.Options{
				Ordered:    ordered,
				Suppressor: suppressD3{},
				FindingSinks: []alert.FindingSink{alert.FindingSinkFunc(func(sc alert.Scored) {
					got = append(got, fmt.Sprintf("%s/%s %v +%v risk=%v/%v alert=%t sup=%t", sc.Finding.Entity.ID, sc.Finding.Detector,
						sc.Finding.Score, sc.Finding.Contribution, sc.Risk, sc.Threshold, sc.Alert != "", sc.Suppressed))
				})},
			})
			if err != nil {
				t.Fatal(err)
			}
			s.Process([]event.Finding{
				f("a", "d1", 0, 40),
				f("a", "d1", time.Minute, 30),   // repeat: capped at 40
				f("b", "d3", 2*time.Minute, 60), // suppressed: no risk
				f("a", "d2", 3*time.Minute, 55), // 40+55 ≥ 90: raises
				f("a", "d2", 4*time.Minute, 10), // joins the alert
				f("c", "d1", 24*time.Hour, 50),  // below: alone
				f("c", "d1", 48*time.Hour, 20),  // decayed 25 + 20 ≤ cap 50
			})
			s.Flush()
			want := []string{
				"a/d1 40 +40 risk=40/90 alert=false sup=false",
				"a/d1 30 +0 risk=40/90 alert=false sup=false",
				"b/d3 60 +0 risk=0/90 alert=false sup=true",
				"a/d2 55 +55 risk=95/90 alert=true sup=false",
				"a/d2 10 +0 risk=95/90 alert=true sup=false",
				"c/d1 50 +50 risk=50/90 alert=false sup=false",
				"c/d1 20 +20 risk=45/90 alert=false sup=false",
			}
			if g := strings.Join(got, "\n"); g != strings.Join(want, "\n") {
				t.Fatalf("scored:\n%s\nwant:\n%s", g, strings.Join(want, "\n"))
			}
		})
	}
}

// Explain breaks a below-threshold entity's risk down with the stage's own
// scoring: its contributions match what the stage scored, its risk is what
// the stage would hold at that moment, and the decay and the per-detector
// cap show.
func TestExplainBelowThreshold(t *testing.T) {
	fs := []event.Finding{
		f("a", "geo", 0, 60),
		f("a", "geo", time.Hour, 60),         // repeat: capped
		f("a", "offhours", 12*time.Hour, 25), // second line of evidence
	}
	var scored []float64
	s, err := alert.New(alert.Options{FindingSinks: []alert.FindingSink{alert.FindingSinkFunc(func(sc alert.Scored) {
		scored = append(scored, sc.Finding.Contribution)
	})}})
	if err != nil {
		t.Fatal(err)
	}
	s.Process(fs)
	if s.Raised() != 0 {
		t.Fatalf("raised %d alerts; the case is below the threshold", s.Raised())
	}
	at := t0.Add(24 * time.Hour)
	b, err := alert.Explain(alert.Options{}, fs, at)
	if err != nil {
		t.Fatal(err)
	}
	if b.Threshold != 90 || b.HalfLife != 24*time.Hour || b.RepeatCap != 1 || !b.At.Equal(at) {
		t.Errorf("model: %+v", b)
	}
	var got []string
	for i, c := range b.Findings {
		if c.Added != scored[i] {
			t.Errorf("finding %d: Explain added %v, the stage %v", i, c.Added, scored[i])
		}
		got = append(got, fmt.Sprintf("%s +%v now %v", c.Finding.Detector, c.Added, c.Now))
	}
	for _, d := range b.Detectors {
		got = append(got, fmt.Sprintf("%s risk %v decayed %v cap %v n=%d", d.Detector, d.Risk, d.Decayed, d.Cap, d.Findings))
	}
	got = append(got, fmt.Sprintf("risk %v", b.Risk))
	// geo: 60 at t0; at 1h that is 58.3, so the repeat adds 1.7 up to
	// the cap of 60. At 24h the scores decayed sum to 30 + 30.9 = 60.9,
	// still capped at 60. offhours' 25 at 12h is 17.7 at 24h.
	want := []string{
		"geo +60 now 30", "geo +1.7 now 30.9", "offhours +25 now 17.7",
		"geo risk 60 decayed 60.9 cap 60 n=2", "offhours risk 17.7 decayed 17.7 cap 25 n=1",
		"risk 77.7",
	}
	if g := strings.Join(got, "\n"); g != strings.Join(want, "\n") {
		t.Fatalf("breakdown:\n%s\nwant:\n%s", g, strings.Join(want, "\n"))
	}
	if b2, _ := alert.Explain(alert.Options{}, fs, time.Time{}); !b2.At.Equal(t0.Add(12 * time.Hour)) {
		t.Errorf("zero at: %v, want the last finding's time", b2.At)
	}
	if _, err := alert.Explain(alert.Options{RiskHalfLife: -1}, fs, at); err == nil {
		t.Error("negative half-life accepted")
	}
}
