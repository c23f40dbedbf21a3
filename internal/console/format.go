package console

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
)

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"day": func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"iso": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"ago":         ago,
	"left":        left,
	"alertURL":    alertURL,
	"incidentURL": incidentURL,
	"entityURL":   entityURL,
	"sev":         func(s event.Severity) string { return s.String() },
	"num":         numAny,
	"score":       func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"figure":      func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) },
	"rate": func(f float64) string {
		if f < 0 {
			return "…"
		}
		return fmt.Sprintf("%.0f/s", f)
	},
	"drillStatus": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"drillTime": func(d time.Duration) string {
		if d <= 0 {
			return "—"
		}
		return d.Round(time.Millisecond).String()
	},
	"secs": func(f float64) string {
		if f < 1 {
			return fmt.Sprintf("%.0f ms", f*1000)
		}
		return fmt.Sprintf("%.1f s", f)
	},
	"ttd": func(p *float64) string {
		if p == nil {
			return "—"
		}
		return humanSeconds(*p)
	},
	"pct": func(a, b int) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
	},
	"detected": func(sc Scorecard) int {
		n := 0
		for _, s := range sc.Scenarios {
			if s.Detected {
				n++
			}
		}
		return n
	},
	"query": func(v url.Values) string { return v.Encode() },
	// verdictName is a verdict in words: false_positive → false positive.
	"verdictName": func(v string) string { return strings.ReplaceAll(v, "_", " ") },
	"sel": func(a, b string) template.HTMLAttr {
		if a == b {
			return "selected"
		}
		return ""
	},
	"ledgerHint": func(k event.EntityKind) string { d, _ := ledger.OfEntity(k); return string(d) },
	"deref": func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	},
}

// numAny is groupNum for the numbers templates pass (float64, int,
// int64).
func numAny(v any) (string, error) {
	switch n := v.(type) {
	case float64:
		return groupNum(n), nil
	case int:
		return groupNum(float64(n)), nil
	case int64:
		return groupNum(float64(n)), nil
	}
	return "", fmt.Errorf("num: %T is not a number", v)
}

// ago renders how long before now t was ("3 min ago"), or "never".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + roundDur(-d)
	case d < time.Minute:
		return "just now"
	}
	return roundDur(d) + " ago"
}

// left renders a remaining duration ("5 h 12 min left", "overdue by 2 h").
func left(d time.Duration) string {
	if d < 0 {
		return "overdue by " + roundDur(-d)
	}
	return roundDur(d) + " left"
}

// humanSeconds renders a time to detect: "instant", "42 s", "3 min 5 s",
// "2 h 10 min", "3 d 4 h".
func humanSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Second:
		return "instant"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d d %d h", int(d.Hours()/24), int(d.Hours())%24)
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
