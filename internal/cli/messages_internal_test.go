package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
)

// replay's rate counts events read: rejected lines are no events.
func TestReplaySummaryRate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		total app.FeedStats
		want  string
	}{
		{"all rejected", app.FeedStats{Events: 0, Rejected: 5000, Lines: 5000}, "0 events read, 5000 rejected, 0 findings, 0 alerts in 1s (0 events/s)"},
		{"half rejected", app.FeedStats{Events: 2000, Rejected: 2000, Lines: 4000}, "2000 events read, 2000 rejected, 0 findings, 0 alerts in 1s (2.0k events/s)"},
		{"none rejected", app.FeedStats{Events: 3000, Lines: 3000}, "(3.0k events/s)"},
	} {
		var b strings.Builder
		replaySummary(&b, tc.total, 0, 0, time.Second)
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("%s: %q, want %q in it", tc.name, b.String(), tc.want)
		}
	}
}

// simulate's summary starts at the margin: the progress line is erased
// first, once something was drawn on it.
func TestProgressLineClear(t *testing.T) {
	for _, tc := range []struct {
		name  string
		draws int
		want  string
	}{
		{"nothing drawn", 0, ""},
		{"drawn", 1, "\r\033[Ksimulate: 10 events, simulated time 2025-06-02 00:00\r\033[K"},
	} {
		var b strings.Builder
		p := &progressLine{w: &b, what: "simulate"} // last is zero: the first update draws
		for range tc.draws {
			p.callback()(10, time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC))
		}
		p.clear()
		p.clear() // a second clear writes nothing more
		if b.String() != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, b.String(), tc.want)
		}
	}
	var none *progressLine
	if none.callback() != nil {
		t.Error("a nil progress line has a callback")
	}
	none.clear() // no panic
}

func TestNearMatches(t *testing.T) {
	cands := []string{"auth-2022-11", "auth-2025-03", "e:1042", "e:10421", "EXPORT-SVC", "203.0.113.9"}
	for _, tc := range []struct {
		v    string
		want string
	}{
		{"auth-2022-12", "auth-2022-11,auth-2025-03"},
		{"e:1043", "e:1042,e:10421"},
		{"export-svc", "EXPORT-SVC"}, // case does not count
		{"1042", "e:1042,e:10421"},   // contained
		{"203.0.113.99", "203.0.113.9"},
		{"nothing-like-it", ""},
		{"e", ""}, // too short to be contained
	} {
		if got := strings.Join(nearMatches(tc.v, cands, 3), ","); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		limit int
		want  int
	}{
		{"kitten", "sitting", 5, 3},
		{"", "abc", 5, 3},
		{"abc", "abc", 0, 0},
		{"abcdef", "uvwxyz", 2, 3}, // beyond the limit: limit+1
		{"a", "abcdef", 2, 3},
		{"한국", "한극", 2, 1}, // runes, not bytes
	} {
		if got := editDistance(tc.a, tc.b, tc.limit); got != tc.want {
			t.Errorf("editDistance(%q, %q, %d) = %d, want %d", tc.a, tc.b, tc.limit, got, tc.want)
		}
	}
}

func TestOutputHint(t *testing.T) {
	for _, tc := range []struct {
		err  string
		want bool
	}{
		{`--output must be one of "md","html","json" but got "report.html"`, true},
		{`--output must be one of "md","html","json" but got "/tmp/r"`, true},
		{`--output must be one of "table","json" but got "yaml"`, false},
		{`unknown flag --json2`, false},
	} {
		if got := outputHint(errors.New(tc.err)) != ""; got != tc.want {
			t.Errorf("%s: hint %v, want %v", tc.err, got, tc.want)
		}
	}
}
