package console

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Point is one value of a series at one time.
type Point struct {
	T time.Time
	V float64
	// Label, when set, is the point's tooltip (otherwise time and value).
	Label string
}

// Series is one line (or set of bars or dots) of a chart. A later data
// source (a risk engine's per-entity baseline, peers) adds a Series; the
// renderer needs nothing else.
type Series struct {
	Name string
	// Style: "line", "bars" or "dots".
	Style  string
	Points []Point
	// Class picks the colour from the console's CSS (s0 … s5, or a
	// severity: low, medium, high, critical); "" → by position.
	Class string
}

// Chart is an SVG chart over time, drawn on the server.
type Chart struct {
	Title  string // accessible name and caption
	YLabel string
	Width  int // 0 → 760
	Height int // 0 → 220
	// From and To bound the time axis (zero → the data's extent).
	From, To time.Time
	// YMax fixes the top of the value axis (0 → from the data).
	YMax   float64
	Series []Series
	// Empty is what the chart says when it has no points.
	Empty string
}

const (
	padLeft   = 56
	padRight  = 16
	padTop    = 12
	padBottom = 34
)

// niceStep returns a round step (1, 2 or 5 × 10^n) giving about n ticks
// up to max.
func niceStep(max float64, n int) float64 {
	if max <= 0 || n <= 0 || math.IsNaN(max) || math.IsInf(max, 0) {
		return 1
	}
	raw := max / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / mag; {
	case f <= 1:
		return mag
	case f <= 2:
		return 2 * mag
	case f <= 5:
		return 5 * mag
	}
	return 10 * mag
}

// fmtNum renders an axis tick compactly ("20k"): ticks are round steps
// (niceStep), so the compact form is exact. Counts read by people (a
// tooltip, a page's figure) are groupNum's.
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	case a == math.Trunc(a):
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// groupNum renders a figure in full with thousands grouped: 23051 →
// "23,051", 2.5e6 → "2,500,000", 12.26 → "12.3" (one decimal when it has
// a fraction).
func groupNum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	intPart, frac, _ := strings.Cut(s, ".")
	sign := ""
	if strings.HasPrefix(intPart, "-") {
		sign, intPart = "-", intPart[1:]
	}
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if frac != "" {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}

// SVG renders the chart as an inline <svg> element.
func (c Chart) SVG() template.HTML {
	w, h := c.Width, c.Height
	if w <= 0 {
		w = 760
	}
	if h <= 0 {
		h = 220
	}
	from, to, ymax, n := c.From, c.To, c.YMax, 0
	for _, s := range c.Series {
		for _, p := range s.Points {
			if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
				continue
			}
			n++
			if c.From.IsZero() && (from.IsZero() || p.T.Before(from)) {
				from = p.T
			}
			if c.To.IsZero() && (to.IsZero() || p.T.After(to)) {
				to = p.T
			}
			if c.YMax == 0 && p.V > ymax {
				ymax = p.V
			}
		}
	}
	var b strings.Builder
	esc := template.HTMLEscapeString
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		w, h, w, h, esc(c.Title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.Title))
	if n == 0 {
		empty := c.Empty
		if empty == "" {
			empty = "No data in this window."
		}
		fmt.Fprintf(&b, `<rect class="frame" x="0.5" y="0.5" width="%d" height="%d"/><text class="empty" x="%d" y="%d" text-anchor="middle">%s</text></svg>`,
			w-1, h-1, w/2, h/2, esc(empty))
		return template.HTML(b.String()) // #nosec G203 -- built here; every interpolated string went through HTMLEscapeString
	}
	if ymax <= 0 {
		ymax = 1
	}
	step := niceStep(ymax, 4)
	top := math.Ceil(ymax/step) * step
	if !to.After(from) {
		from, to = from.Add(-12*time.Hour), to.Add(12*time.Hour)
	}
	pw, ph := float64(w-padLeft-padRight), float64(h-padTop-padBottom)
	span := float64(to.Sub(from))
	x := func(t time.Time) float64 { return padLeft + pw*float64(t.Sub(from))/span }
	y := func(v float64) float64 { return padTop + ph*(1-v/top) }

	// Value axis and grid.
	b.WriteString(`<g class="grid">`)
	for v := 0.0; v <= top+step/2; v += step {
		yy := y(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f"/><text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padLeft, yy, w-padRight, yy, padLeft-6, yy+4, fmtNum(v))
	}
	b.WriteString(`</g>`)
	if c.YLabel != "" {
		fmt.Fprintf(&b, `<text class="axis-label" x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`,
			padTop+int(ph/2), padTop+int(ph/2), esc(c.YLabel))
	}
	// Time axis: up to 6 labels, as dates (or times within two days).
	layout := "Jan 2"
	if to.Sub(from) <= 48*time.Hour {
		layout = "Jan 2 15:04"
	}
	b.WriteString(`<g class="xaxis">`)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d"/>`, padLeft, h-padBottom, w-padRight, h-padBottom)
	for i := 0; i <= 5; i++ {
		t := from.Add(time.Duration(float64(to.Sub(from)) * float64(i) / 5))
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 5:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="%s">%s</text>`, x(t), h-padBottom+18, anchor, t.UTC().Format(layout))
	}
	b.WriteString(`</g>`)

	// Bars share each day's width between the bar series.
	var bars []int
	for i, s := range c.Series {
		if s.Style == "bars" {
			bars = append(bars, i)
		}
	}
	for i, s := range c.Series {
		cls := s.Class
		if cls == "" {
			cls = "s" + strconv.Itoa(i%6)
		}
		fmt.Fprintf(&b, `<g class="series %s %s" data-series="%s">`, esc(s.Style), esc(cls), esc(s.Name))
		tip := func(p Point) string {
			if p.Label != "" {
				return p.Label
			}
			return s.Name + " " + p.T.UTC().Format("2006-01-02 15:04") + ": " + groupNum(p.V)
		}
		switch s.Style {
		case "bars":
			// A bar is one day wide (less a gap), split between bar series.
			day := pw * float64(24*time.Hour) / span
			bw := math.Max(1, day*0.8/float64(len(bars)))
			k := 0
			for j, bi := range bars {
				if bi == i {
					k = j
				}
			}
			for _, p := range s.Points {
				if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
					continue
				}
				x0 := x(p.T) - day*0.4 + float64(k)*bw
				x0 = math.Max(padLeft, math.Min(x0, float64(w-padRight)-bw))
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s</title></rect>`,
					x0, y(p.V), bw, math.Max(0, y(0)-y(p.V)), esc(tip(p)))
			}
		case "dots":
			for _, p := range s.Points {
				if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
					continue
				}
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4"><title>%s</title></circle>`, x(p.T), y(p.V), esc(tip(p)))
			}
		default:
			// A line, with a small marker on each point: a line of one
			// point (an entity's only alert) is seen, and each point has
			// its tooltip.
			var pts, marks []string
			for _, p := range s.Points {
				if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
					continue
				}
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.T), y(p.V)))
				marks = append(marks, fmt.Sprintf(`<circle class="marker" cx="%.1f" cy="%.1f" r="2.5"><title>%s</title></circle>`, x(p.T), y(p.V), esc(tip(p))))
			}
			fmt.Fprintf(&b, `<polyline fill="none" points="%s"><title>%s</title></polyline>%s`, strings.Join(pts, " "), esc(s.Name), strings.Join(marks, ""))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec G203 -- built here; every interpolated string went through HTMLEscapeString
}

// Legend lists the chart's series with their colours, as HTML.
func (c Chart) Legend() template.HTML {
	if len(c.Series) < 2 {
		return ""
	}
	var b strings.Builder
	b.WriteString(`<ul class="legend">`)
	for i, s := range c.Series {
		cls := s.Class
		if cls == "" {
			cls = "s" + strconv.Itoa(i%6)
		}
		fmt.Fprintf(&b, `<li><span class="swatch %s %s"></span>%s</li>`, template.HTMLEscapeString(s.Style), template.HTMLEscapeString(cls), template.HTMLEscapeString(s.Name))
	}
	b.WriteString(`</ul>`)
	return template.HTML(b.String()) // #nosec G203 -- built here; every interpolated string went through HTMLEscapeString
}
