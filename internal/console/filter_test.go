package console

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

func TestParseAlertFilter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		q       string
		err     string
		check   func(AlertFilter) bool
		matches []bool // critical key alert, low principal alert
	}{
		{q: "", matches: []bool{true, true}},
		{q: "severity=high", matches: []bool{true, false}},
		{q: "kind=principal", matches: []bool{false, true}},
		{q: "detector=token_provenance&state=open", matches: []bool{true, false}},
		{q: "window=24h", check: func(f AlertFilter) bool { return f.Query(now).Since.Equal(now.Add(-24 * time.Hour)) }},
		{q: "from=2026-11-01&to=2026-11-02", check: func(f AlertFilter) bool {
			q := f.Query(now)
			return q.Since.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) && q.Before.Equal(time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC))
		}},
		{q: "severity=urgent", err: "severity: unknown severity"},
		{q: "kind=planet", err: "kind: want principal"},
		{q: "window=2y", err: "window: want"},
		{q: "from=yesterday", err: "from: want YYYY-MM-DD"},
		{q: "from=2026-11-05&to=2026-11-01", err: "is not after from"},
		// Beyond Unix nanoseconds the store's comparison would wrap.
		{q: "from=9999-01-01", err: "from: time 9999-01-01T00:00:00Z is outside the supported range"},
		{q: "to=1600-01-01T00:00:00Z", err: "to: time 1600-01-01T00:00:00Z is outside the supported range"},
		{q: "to=2262-04-11", err: "to: time 2262-04-12T00:00:00Z is outside"}, // the day's end is past the range
		{q: "from=2262-04-11", check: func(f AlertFilter) bool { return f.From.Equal(time.Date(2262, 4, 11, 0, 0, 0, 0, time.UTC)) }},
		{q: "detector=" + strings.Repeat("x", 201), err: "at most 200"},
	} {
		v, _ := url.ParseQuery(c.q)
		f, err := ParseAlertFilter(v)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.q, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.q, err)
			continue
		}
		if c.check != nil && !c.check(f) {
			t.Errorf("%q: filter %+v", c.q, f)
		}
		as := []event.Alert{
			{Severity: event.SeverityCritical, State: event.AlertOpen, Detector: "token_provenance", Entity: event.EntityKey{Kind: event.EntitySigningKey, ID: "k"}},
			{Severity: event.SeverityLow, State: event.AlertOpen, Detector: "off_hours", Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"}},
		}
		for i, want := range c.matches {
			if got := f.Match(&as[i]); got != want {
				t.Errorf("%q: Match(alert %d) = %v, want %v", c.q, i, got, want)
			}
		}
		// Values round-trips.
		f2, err := ParseAlertFilter(f.Values())
		if err != nil || f2 != f {
			t.Errorf("%q: round trip %+v → %+v (%v)", c.q, f, f2, err)
		}
	}
}

// FuzzAlertFilter: any query string parses or fails with an error, never
// panics, and what parses round-trips through Values.
func FuzzAlertFilter(f *testing.F) {
	for _, s := range []string{"", "severity=high&kind=key", "window=7d&from=2026-01-01", "to=2026-11-23T10:00:00Z", "severity=%ff", "from=2026-13-40"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		flt, err := ParseAlertFilter(v)
		if err != nil {
			return
		}
		again, err := ParseAlertFilter(flt.Values())
		if err != nil {
			t.Fatalf("%q parsed to %+v, whose Values %q do not parse: %v", s, flt, flt.Values().Encode(), err)
		}
		if again != flt {
			t.Fatalf("%q: %+v round-trips to %+v", s, flt, again)
		}
		_ = flt.Query(time.Now())
	})
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"": "/", "/alerts?x=1": "/alerts?x=1", "//evil.example": "/", "https://evil.example": "/",
		"/\\evil.example": "/", "alerts": "/", "/a\r\nSet-Cookie: x": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
