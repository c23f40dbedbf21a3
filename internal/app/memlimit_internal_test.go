package app

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/haechi-sec/haechi/internal/config"
)

// engine.memory_limit sets the runtime's soft memory limit, unless
// GOMEMLIMIT in the environment already did; unset, the limit is left
// alone; a bad size is a configuration error.
func TestApplyMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	log := slog.New(slog.DiscardHandler)
	cfg := config.Default()

	debug.SetMemoryLimit(math.MaxInt64)
	if err := applyMemoryLimit(cfg, log); err != nil || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("unset: %v, limit %d", err, debug.SetMemoryLimit(-1))
	}
	t.Setenv("GOMEMLIMIT", "")
	cfg.Engine.MemoryLimit = "448MiB"
	if err := applyMemoryLimit(cfg, log); err != nil || debug.SetMemoryLimit(-1) != 448<<20 {
		t.Errorf("448MiB: %v, limit %d", err, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "1GiB")
	if err := applyMemoryLimit(cfg, log); err != nil || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set: %v, limit %d (the environment's word wins)", err, debug.SetMemoryLimit(-1))
	}
	cfg.Engine.MemoryLimit = "lots"
	if err := applyMemoryLimit(cfg, log); err == nil {
		t.Error("a bad size was accepted")
	}
}
