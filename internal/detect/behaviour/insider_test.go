package behaviour_test

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/behaviour"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/event"
)

// insiderOpts are the options of the golden tests: the corporate network
// is 10.0.0.0/8 (the generator's office addresses).
func insiderOpts() behaviour.Options {
	return behaviour.Options{Model: true, CorporatePrefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
}

func findings(t *testing.T, path string, opts behaviour.Options) []event.Finding {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return detecttest.Findings(t, f, 2, behaviour.New(opts))
}

// TestInsiderAlertsWithinThreeDays: a data engineer adding ~300 customers
// it never read every evening from home (testdata/insider_export, from
// 2025-04-28) raises a slow_exfiltration finding that alerts on its own
// (score ≥ 90) within three days — without the corporate network
// configured too: its own history and its peers decide.
func TestInsiderAlertsWithinThreeDays(t *testing.T) {
	begin := time.Date(2025, 4, 28, 19, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		opts behaviour.Options
		by   time.Duration
	}{
		{"corporate network known", insiderOpts(), 3 * 24 * time.Hour},
		{"corporate network unknown", behaviour.Options{Model: true}, 3 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var first *event.Finding
			for _, f := range findings(t, "testdata/insider_export/events.ndjson", tc.opts) {
				if f.Entity.ID != "e:300" && f.Kind == behaviour.KindSlow {
					t.Errorf("a peer flagged: %s", f.Explanation)
				}
				if f.Entity.ID == "e:300" && f.Kind == behaviour.KindSlow && f.Score >= 90 && first == nil {
					first = &f
				}
			}
			if first == nil {
				t.Fatal("no slow_exfiltration ≥ 90 about the insider e:300")
			}
			if d := first.Time.Sub(begin); d < 0 || d > tc.by {
				t.Errorf("first strong finding %s after the export began (want ≤ %s): %s", d, tc.by, first.Explanation)
			}
			t.Logf("after %s: %s", first.Time.Sub(begin), first.Explanation)
		})
	}
}

// TestInsiderBenignTwins: one approved large export (e:301, one day, then
// back to normal), a busy peer re-reading the same customers (e:302) and a
// new hire ramping up (e:303) are never called slow exfiltration.
func TestInsiderBenignTwins(t *testing.T) {
	for _, opts := range []behaviour.Options{insiderOpts(), {Model: true}} {
		for _, f := range findings(t, "testdata/insider_benign/events.ndjson", opts) {
			if f.Kind == behaviour.KindSlow {
				t.Errorf("%s %s (%.0f): %s", f.Time.Format(time.RFC3339), f.Entity.ID, f.Score, f.Explanation)
			}
		}
	}
}

func TestParseNetworks(t *testing.T) {
	ps, asns, err := behaviour.ParseNetworks([]string{"10.0.0.0/8", " AS64500", "192.0.2.7", "2001:db8::/32", "as7"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 || ps[1] != netip.MustParsePrefix("192.0.2.7/32") || len(asns) != 2 || asns[0] != 64500 || asns[1] != 7 {
		t.Errorf("got %v %v", ps, asns)
	}
	for _, bad := range []string{"10.0.0.0/33", "AS", "AS0", "ASx", "office"} {
		if _, _, err := behaviour.ParseNetworks([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
