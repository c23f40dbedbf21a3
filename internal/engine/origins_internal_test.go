package engine

import (
	"testing"
	"time"
)

// Origins that can no longer matter are forgotten: ended ones at once,
// silent ones after forgetAfter by the arrival clock — but never the one
// the all-idle advance follows.
func TestOriginsForget(t *testing.T) {
	w0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	o := newOrigins(time.Minute, time.Minute, time.Hour, 0)
	// Each origin's events are an hour or so behind their arrival.
	at := func(name string, arrived time.Duration, behind time.Duration) {
		s := o.get(name)
		o.deliver(s, w0.Add(arrived))
		s.maxSeen = t0.Add(arrived - behind)
	}
	at("file", 0, 3*time.Hour)
	at("rotated", 0, 2*time.Hour)
	at("live", 0, time.Hour)
	o.get("file").ended = true
	o.forget()
	if o.byName["file"] != nil || len(o.all) != 2 {
		t.Fatalf("an ended origin is kept: %d origins", len(o.all))
	}
	at("live", forgetAfter-time.Second, time.Hour)
	o.forget()
	if len(o.all) != 2 {
		t.Fatal("an origin silent for less than forgetAfter was forgotten")
	}
	at("live", forgetAfter, time.Hour)
	o.forget()
	if o.byName["rotated"] != nil || o.byName["live"] == nil || len(o.all) != 1 {
		t.Fatalf("after forgetAfter: %v", o.byName)
	}
	// Alone and silent for days, the last origin stays: it is what the
	// wall clock advances.
	o.tick(w0.Add(10 * forgetAfter))
	o.forget()
	if o.byName["live"] == nil {
		t.Fatal("the last origin was forgotten")
	}
	if got, ok, _ := o.timeOf(nil, true); !ok || !got.Equal(t0.Add(10*forgetAfter-time.Hour)) {
		t.Fatalf("all-idle time %v %v", got, ok)
	}
}
