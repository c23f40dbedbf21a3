//go:build !unix

package cli

import "os"

// peakRSS is unknown where getrusage is not: 0.
func peakRSS(*os.ProcessState) int64 { return 0 }
