package incident

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestAppendNew: appendNew keeps first-seen order and each value once, as
// a scan of the list does, across the length where it switches to a set.
func TestAppendNew(t *testing.T) {
	for _, n := range []int{0, 1, scanMax - 1, scanMax, scanMax + 1, 10 * scanMax} {
		for _, distinct := range []int{1, scanMax / 2, scanMax, 3 * scanMax} {
			r := rand.New(rand.NewPCG(uint64(n), uint64(distinct)))
			var got, want []int
			var set map[int]bool
			for range n {
				x := r.IntN(distinct)
				got = appendNew(got, &set, x)
				if !slices.Contains(want, x) {
					want = append(want, x)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("n=%d distinct=%d: got %v, want %v", n, distinct, got, want)
			}
		}
	}
}
