//go:build race

package sim

// raceEnabled: the generator runs on one goroutine (internal/sim starts
// none), so the race detector has nothing to find in its fortnight-long
// volume tests, which it slows tenfold; under it they run smaller or not
// at all. The plain run keeps them whole.
const raceEnabled = true
