package event

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestTimeRange(t *testing.T) {
	lo, hi := MinTime(), MaxTime()
	if lo.Format(time.RFC3339Nano) != "1677-09-21T00:12:43.145224192Z" || hi.Format(time.RFC3339Nano) != "2262-04-11T23:47:16.854775807Z" {
		t.Fatalf("range %s … %s", lo, hi)
	}
	for _, c := range []struct {
		t       time.Time
		inRange bool
		clamped time.Time
	}{
		{lo, true, lo},
		{hi, true, hi},
		{time.Date(2025, 6, 24, 9, 0, 3, 0, time.UTC), true, time.Date(2025, 6, 24, 9, 0, 3, 0, time.UTC)},
		{time.Unix(0, 0), true, time.Unix(0, 0)},
		{lo.Add(-1), false, lo},
		{hi.Add(1), false, hi},
		{time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), false, lo}, // UnixNano would say 2184
		{time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), false, hi},
		{time.Time{}, false, lo},
	} {
		if got := TimeInRange(c.t); got != c.inRange {
			t.Errorf("TimeInRange(%s) = %v", c.t, got)
		}
		err := CheckTime(c.t)
		if (err == nil) != c.inRange {
			t.Errorf("CheckTime(%s) = %v", c.t, err)
		}
		if err != nil && !strings.Contains(err.Error(), "outside the supported range 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z") {
			t.Errorf("CheckTime(%s) = %q", c.t, err)
		}
		got := ClampTime(c.t)
		if !got.Equal(c.clamped) {
			t.Errorf("ClampTime(%s) = %s, want %s", c.t, got, c.clamped)
		}
		// What the range means: whatever passes survives UnixNano.
		if back := time.Unix(0, got.UnixNano()); !back.Equal(got) {
			t.Errorf("ClampTime(%s) = %s does not survive UnixNano (%s)", c.t, got, back)
		}
	}
	if MinTime().UnixNano() != math.MinInt64 || MaxTime().UnixNano() != math.MaxInt64 {
		t.Error("bounds are not the int64 extremes")
	}
}
