package api

import (
	"testing"
	"time"
)

// The limiters are bounded: a new caller beyond the bound first forgets
// the callers whose bucket has refilled, else shares the overflow limiter.
func TestCallerLimitsBounded(t *testing.T) {
	now := time.Now()
	c := newCallerLimits(0.001, 1)
	c.max = 2
	a, b := c.of("a", now), c.of("b", now)
	if !a.AllowN(now, 1) || !b.AllowN(now, 1) {
		t.Fatal("a fresh limiter refused")
	}
	// a and b are spent: the third and fourth callers share the overflow.
	x, y := c.of("x", now), c.of("y", now)
	if x != c.overflow || y != c.overflow || len(c.m) != 2 {
		t.Fatalf("beyond the bound: %p %p (overflow %p), %d kept", x, y, c.overflow, len(c.m))
	}
	if !x.AllowN(now, 1) || y.AllowN(now, 1) {
		t.Error("the overflow limiter is not shared")
	}
	if c.of("a", now) != a {
		t.Error("a known caller lost its limiter")
	}
	// Idle (refilled) callers are forgotten to make room.
	d := newCallerLimits(0.001, 1)
	d.max = 2
	d.of("idle-1", now)
	d.of("idle-2", now)
	if z := d.of("z", now); z == d.overflow || len(d.m) != 1 {
		t.Errorf("idle callers not forgotten: overflow %v, %d kept", z == d.overflow, len(d.m))
	}
}
