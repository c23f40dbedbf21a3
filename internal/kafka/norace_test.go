//go:build !race

package kafka_test

// raceEnabled: the race detector slows the workers several times over.
const raceEnabled = false
