//go:build !race

package ledger

// raceEnabled: the race detector slows the single-goroutine volume tests
// tenfold; they run smaller under it (the plain run keeps their full size).
const raceEnabled = false
