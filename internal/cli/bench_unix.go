//go:build unix

package cli

import (
	"os"
	"runtime"
	"syscall"
)

// peakRSS returns an exited child's peak resident set size in bytes
// (getrusage's ru_maxrss: KiB on Linux, bytes on macOS), 0 when unknown.
func peakRSS(st *os.ProcessState) int64 {
	ru, ok := st.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return 0
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) << 10
}
