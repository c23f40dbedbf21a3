package baseline_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/baseline"
)

func TestQuantile(t *testing.T) {
	var h baseline.Log2Hist
	if got := h.Quantile(0.99, 0); got != 0 {
		t.Fatalf("empty: %v", got)
	}
	for range 99 {
		h.Add(60) // bucket 6: 32–63
	}
	h.Add(5000) // bucket 13: 4096–8191
	if got := h.Quantile(0.99, 10); got != 63 {
		t.Errorf("p99 = %v, want 63", got)
	}
	if got := h.Quantile(1, 10); got != 8191 {
		t.Errorf("max = %v, want 8191", got)
	}
	if got := h.Quantile(0.99, 1000); got != 0 {
		t.Errorf("below min weight: %v", got)
	}
	h.Decay(0.5)
	if h.Weight() != 50 {
		t.Errorf("weight after decay %v", h.Weight())
	}
	var z baseline.Log2Hist
	for range 20 {
		z.Add(0)
	}
	if got := z.Quantile(0.99, 10); got != 0 {
		t.Errorf("all zero: %v", got)
	}
}
