package behaviour_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/behaviour"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
)

// TestSlowBurstTwins: a new data engineer's first week that looked like a
// cold-start exporter to slow_exfiltration: it joins in the second week,
// glances at 150 customers on Monday, surveys 1,300 customers it never read
// on Tuesday, makes one approved 8,000-record export on Wednesday and reads
// 1,300 new ones again on Thursday, then works a 300-customer set. On
// Thursday the 3-day window leaves the export out as its largest day, so
// Tuesday and Thursday — two ordinary days — make the sustained count,
// over 4 × the typical member; and the export day, Tuesday and Thursday
// each read records new to it, so the cold path's persistence held: a
// strong finding, an alert on its own. Persistence now leaves out a day
// that read more than the ring's other days together (a one-off burst is
// record_volume's evidence, not a day of persistence) and a day with no
// active day before it in the ring (nothing to be new against), so
// Thursday, Tuesday and Monday — Monday with nothing before it — are not
// three persistent days. TestColdStartExporter keeps the exporter.
//
// Without the change (main at 4e872af) it raised a strong finding on
// Thursday.
func TestSlowBurstTwins(t *testing.T) {
	const days = 21
	var me *worker
	next := uint64(50_000_000)
	extra := func(d int, rng *rand.Rand) []coldRead {
		switch {
		case d < 7:
			return nil
		case d == 7:
			return exportReads("e:44", d, 150, &next, rng)
		case d == 8 || d == 10:
			return exportReads("e:44", d, 1300, &next, rng)
		case d == 9:
			return exportReads("e:44", d, 8000, &next, rng)
		}
		if me == nil {
			me = newWorker("e:44", 300, 450, 11, days, rng)
		}
		return me.day(d, rng)
	}
	events := coldRole(days, extra)
	for _, f := range detecttest.Findings(t, strings.NewReader(events), 2, behaviour.New(insiderOpts())) {
		if f.Kind == behaviour.KindSlow {
			t.Errorf("%s %s (%.0f): %s", f.Time.Format(time.RFC3339), f.Entity.ID, f.Score, f.Explanation)
		}
	}
}
