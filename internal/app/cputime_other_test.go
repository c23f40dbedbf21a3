//go:build !unix

package app_test

import "time"

func processCPU() time.Duration { return 0 }
