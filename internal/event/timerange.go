package event

import (
	"fmt"
	"math"
	"time"
)

// Times are stored and compared as int64 nanoseconds since the Unix epoch
// (time.Time.UnixNano) — in the store, the ledger, the engine's watermark
// and checkpoints. UnixNano is undefined outside the range below: a time in
// 1600 comes back as one in 2184. Every decoder therefore refuses an
// event's @timestamp outside it (CheckTime), and every query parameter that
// takes a time does too.

// MinTime is the earliest time an event may carry,
// 1677-09-21T00:12:43.145224192Z (math.MinInt64 nanoseconds).
func MinTime() time.Time { return time.Unix(0, math.MinInt64).UTC() }

// MaxTime is the latest time an event may carry,
// 2262-04-11T23:47:16.854775807Z (math.MaxInt64 nanoseconds).
func MaxTime() time.Time { return time.Unix(0, math.MaxInt64).UTC() }

// TimeInRange reports whether t is within [MinTime, MaxTime], i.e. whether
// time.Unix(0, t.UnixNano()) is t.
func TimeInRange(t time.Time) bool {
	return !t.Before(MinTime()) && !t.After(MaxTime())
}

// CheckTime returns nil when t is within [MinTime, MaxTime], else an error
// naming t and the range (one line, for a decoder's or an API's reason).
func CheckTime(t time.Time) error {
	if TimeInRange(t) {
		return nil
	}
	return fmt.Errorf("time %s is outside the supported range %s to %s",
		t.UTC().Format(time.RFC3339Nano), MinTime().Format(time.RFC3339Nano), MaxTime().Format(time.RFC3339Nano))
}

// ClampTime returns t limited to [MinTime, MaxTime]. Decoders use it for
// the times an event reports about something else — a token's issue and
// expiry, a termination, a key's retirement — which a forger may set at
// will: a token claiming to expire in the year 3000 must still be seen
// (and found overlong), not make its use disappear; clamped, its
// lifetime still exceeds every policy.
func ClampTime(t time.Time) time.Time {
	switch {
	case t.Before(MinTime()):
		return MinTime()
	case t.After(MaxTime()):
		return MaxTime()
	}
	return t
}
