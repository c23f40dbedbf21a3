package report

import (
	"testing"
	"time"
)

func TestDeadline(t *testing.T) {
	fri := time.Date(2025, 6, 27, 0, 0, 0, 0, time.UTC) // a Friday
	for _, tc := range []struct {
		rg   Regime
		want time.Time
	}{
		{Regime{Hours: 24}, fri.Add(24 * time.Hour)},
		{Regime{Hours: 72}, fri.Add(72 * time.Hour)},
		{Regime{BusinessDays: 4}, time.Date(2025, 7, 3, 0, 0, 0, 0, time.UTC)},  // Mon, Tue, Wed, Thu
		{Regime{BusinessDays: 1}, time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC)}, // over the weekend
	} {
		if got := deadline(fri, tc.rg); !got.Equal(tc.want) {
			t.Errorf("%+v: %v, want %v", tc.rg, got, tc.want)
		}
	}
}

func TestDefaultRegimesAreWellFormed(t *testing.T) {
	for _, rg := range DefaultRegimes() {
		if rg.Name == "" || (rg.Hours > 0) == (rg.BusinessDays > 0) {
			t.Errorf("bad regime %+v", rg)
		}
	}
}
