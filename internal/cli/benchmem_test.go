package cli

import (
	"testing"
	"time"
)

// TestMemSamplerDueDay: the day profiles are due at every multiple of
// everyDays of event time, counted from the first event time's day, once
// each, even when the samples skip days.
func TestMemSamplerDueDay(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	at := func(days float64) time.Time { return t0.Add(time.Duration(days * 24 * float64(time.Hour))) }
	for _, tc := range []struct {
		name    string
		every   int
		profile string
		times   []time.Time
		want    []int
	}{
		{"every 10 days", 10, "p", []time.Time{at(0), at(3), at(9.5), at(10), at(10.5), at(19), at(20.2), at(45)}, []int{10, 21, 45}}, // calendar days of event time: 9.5 days past 23:59 is day 10
		{"every day, a skip", 1, "p", []time.Time{at(0), at(0.001), at(1), at(1.2), at(4)}, []int{1, 2, 4}},
		{"no event time yet", 2, "p", []time.Time{{}, at(0), at(2)}, []int{2}},
		{"off", 0, "p", []time.Time{at(0), at(5)}, nil},
		{"no profile", 1, "", []time.Time{at(0), at(5)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &memSampler{heapProfile: tc.profile, everyDays: tc.every, nextDay: tc.every}
			var got []int
			for _, tm := range tc.times {
				if d, ok := s.dueDay(tm); ok {
					got = append(got, d)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("due days %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("due days %v, want %v", got, tc.want)
				}
			}
		})
	}
}
