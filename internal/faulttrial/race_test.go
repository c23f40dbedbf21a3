//go:build race

package faulttrial

// raceEnabled: the trials run real serve processes built from this test
// binary; under the race detector they run ten times slower and measure
// nothing useful, so the race run skips them (the plain run has them).
const raceEnabled = true
