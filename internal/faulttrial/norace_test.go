//go:build !race

package faulttrial

const raceEnabled = false
