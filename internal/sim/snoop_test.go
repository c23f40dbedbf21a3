package sim

import (
	"context"
	"io"
	"testing"
	"time"
)

// The snooping nights are Seoul nights whatever hour the simulation starts
// at (the demo starts at the current hour).
func TestSnoopingIsAtNightInSeoul(t *testing.T) {
	seoul := time.FixedZone("KST", 9*3600)
	starts := []string{"2025-06-02T00:00:00Z", "2025-06-04T16:00:00Z", "2025-06-03T07:00:00Z"}
	if raceEnabled {
		starts = starts[:1] // a fortnight each, on one goroutine
	}
	for _, start := range starts {
		st, _ := time.Parse(time.RFC3339, start)
		tr, err := Generate(context.Background(), Options{Seed: 3, Days: 14, Customers: 2000, Start: st}, io.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, sc := range tr.Scenarios {
			if sc.Name != "cs-agent-snooping" {
				continue
			}
			for _, at := range []time.Time{sc.FirstMalicious, sc.LastMalicious} {
				if h := at.In(seoul).Hour(); h < 1 || h > 4 {
					t.Errorf("start %s: snooping at %s, %02d:xx in Seoul", start, at.Format(time.RFC3339), h)
				}
			}
		}
	}
}
