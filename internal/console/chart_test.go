package console

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func days(vals ...float64) []Point {
	var ps []Point
	for i, v := range vals {
		ps = append(ps, Point{T: t0.AddDate(0, 0, i), V: v})
	}
	return ps
}

// TestChartGolden renders charts and compares them with
// testdata/charts/<name>.svg (go test -run TestChartGolden -update).
func TestChartGolden(t *testing.T) {
	for _, c := range []struct {
		name  string
		chart Chart
	}{
		{"empty", Chart{Title: "Records touched per day", Empty: "Nothing touched."}},
		{"bars", Chart{Title: "Records touched per day", YLabel: "records", Series: []Series{{Name: "records", Style: "bars", Points: days(3, 0, 120, 7, 4500)}}}},
		{"dots_two_series", Chart{Title: "Finding scores", YMax: 100, From: t0, To: t0.AddDate(0, 0, 7), Series: []Series{
			{Name: "token_provenance", Style: "dots", Points: []Point{{T: t0.Add(30 * time.Hour), V: 95, Label: "forged <token>"}}},
			{Name: "principal_geo", Style: "dots", Points: days(40, 60)},
		}}},
		{"line_and_bars", Chart{Title: "Activity against baseline", Series: []Series{
			{Name: "records", Style: "bars", Points: days(10, 12, 80)},
			{Name: "baseline", Style: "line", Class: "s3", Points: days(11, 11, 12)},
		}}},
		{"one_point", Chart{Title: "One day", Series: []Series{{Name: "records", Style: "bars", Points: days(1)}}}},
		{"not_finite", Chart{Title: "NaN and Inf are skipped", Series: []Series{{Name: "x", Style: "line", Points: []Point{
			{T: t0, V: math.NaN()}, {T: t0.Add(time.Hour), V: 2}, {T: t0.Add(2 * time.Hour), V: math.Inf(1)}, {T: t0.Add(3 * time.Hour), V: 4}}}}}},
		{"escaping", Chart{Title: `<script>alert("x")</script>`, YLabel: "a&b", Series: []Series{{Name: `"><svg onload=x>`, Style: "dots", Points: days(1, 2)}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := string(c.chart.SVG()) + "\n" + string(c.chart.Legend()) + "\n"
			path := filepath.Join("testdata", "charts", c.name+".svg")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("chart %s differs from %s (run with -update if the change is intended):\n got: %s\nwant: %s", c.name, path, got, want)
			}
			if strings.Contains(got, "<script") || strings.Contains(got, "<svg onload") {
				t.Errorf("chart %s lets markup through: %s", c.name, got)
			}
		})
	}
}

func TestNiceStepAndNumbers(t *testing.T) {
	for _, c := range []struct {
		max  float64
		want float64
	}{{1, 0.25 * 2 / 2}, {10, 5}, {95, 50}, {100, 50}, {4500, 2000}, {0, 1}, {math.NaN(), 1}} {
		if c.max == 1 {
			c.want = 0.5
		}
		if got := niceStep(c.max, 4); got != c.want {
			t.Errorf("niceStep(%v) = %v, want %v", c.max, got, c.want)
		}
	}
	for _, c := range []struct {
		v    float64
		want string
	}{{0, "0"}, {5000, "5000"}, {20000, "20k"}, {2.5e6, "2.5M"}, {0.5, "0.5"}} {
		if got := fmtNum(c.v); got != c.want {
			t.Errorf("fmtNum(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestOwnBaseline(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2025, 6, 1+d, 0, 0, 0, 0, time.UTC) }
	pts := []Point{{T: day(0), V: 10}, {T: day(1), V: 12}, {T: day(2), V: 11}, {T: day(5), V: 400}}
	got := ownBaseline(pts, 3)
	// day 0: no history (0, 0, 0); day 1: (0, 0, 10); day 2: (0, 10, 12);
	// day 5: days 2, 3, 4 → (11, 0, 0).
	want := []float64{0, 0, 10, 0}
	if len(got) != len(want) {
		t.Fatalf("got %d points", len(got))
	}
	for i := range want {
		if got[i].V != want[i] || !got[i].T.Equal(pts[i].T) {
			t.Errorf("point %d: %v at %v, want %v", i, got[i].V, got[i].T, want[i])
		}
	}
	if ownBaseline(nil, 7) != nil {
		t.Error("a baseline without activity")
	}
}

// Figures read by people are written in full, grouped by thousands.
func TestGroupNum(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{0, "0"}, {7, "7"}, {999, "999"}, {1000, "1,000"}, {23051, "23,051"}, {2.5e6, "2,500,000"}, {-12345, "-12,345"},
		{12.26, "12.3"}, {1234.5, "1,234.5"}, {0.5, "0.5"}, {math.NaN(), "NaN"}} {
		if got := groupNum(c.v); got != c.want {
			t.Errorf("groupNum(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

// Every colour class a series may have (Series.Class: s0 … s5 or a
// severity) is styled in the console's CSS: a line gets a stroke, bars and
// dots a fill, and its legend swatch a background. The risk line's class
// (a severity, high) had none, so the line was drawn without a stroke.
func TestSeriesClassesStyled(t *testing.T) {
	b, err := os.ReadFile("static/console.css")
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	for _, cls := range []string{"s0", "s1", "s2", "s3", "s4", "s5", "low", "medium", "high", "critical"} {
		for _, rule := range []string{
			`svg.chart .` + cls + ` polyline { stroke: var(--`,
			`svg.chart .` + cls + ` rect, svg.chart .` + cls + ` circle { fill: var(--`,
			`.swatch.` + cls + ` { background: var(--`,
		} {
			if !strings.Contains(css, rule) {
				t.Errorf("console.css has no %q", rule)
			}
		}
	}
}
