//go:build unix

package app_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) this process has
// used, 0 when unknown: a benchmark's cost that other processes' load
// changes far less than its wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
