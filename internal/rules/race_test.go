//go:build race

package rules

// raceEnabled: the race detector slows the corpus tests tenfold; they run
// smaller under it.
const raceEnabled = true
