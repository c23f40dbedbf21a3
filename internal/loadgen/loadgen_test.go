package loadgen

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
		{"4242 (haechi) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 8 0", 1750 * time.Millisecond, true},
		{"7 (a) b) (c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0", 70 * time.Millisecond, true},
		{"7 (short) R 1 7", 0, false},
		{"no name here", 0, false},
		{"7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 4 0 0", 0, false},
	} {
		got, err := parseStat(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: %v %v, want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestProcessCPUSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: ProcessCPU is Linux only")
	}
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin until a tick of CPU time shows (on a busy machine 60 ms of wall
	// time may hold less than one 10 ms tick), for at most 10 s.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		for spin := time.Now().Add(20 * time.Millisecond); time.Now().Before(spin); {
		}
		after, err := ProcessCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			return
		}
	}
	t.Errorf("10 s of spinning used no CPU by /proc (from %v)", before)
}

// A stall of the service shows as latency of every request scheduled
// during it, not only of the one that stalled: the generator keeps its
// schedule and measures from it (no coordinated omission).
func TestStallCountsForQueuedRequests(t *testing.T) {
	const rate = 1000 // a slot every ms
	r, err := Run(context.Background(), Options{Rate: rate, Duration: 200 * time.Millisecond, Workers: 1}, func(_, i int) error {
		if i == 10 {
			time.Sleep(80 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Scheduled != 200 || r.Done != 200 || r.Errors != 0 {
		t.Fatalf("scheduled %d done %d errors %d, want 200 200 0", r.Scheduled, r.Done, r.Errors)
	}
	// Requests 11…~80 were due during the stall: each waited for it.
	var queued int
	for _, l := range r.Latency {
		if l >= 20*time.Millisecond {
			queued++
		}
	}
	if queued < 40 {
		t.Errorf("%d requests with latency ≥ 20 ms, want ≥ 40 (those scheduled during the 80 ms stall)", queued)
	}
	// Their service time was short: only the stalled one took long.
	if s := Quantile(r.Service, 0.98); s >= 20*time.Millisecond {
		t.Errorf("p98 service time %v: the queued requests' wait counted as service", s)
	}
}

func TestRunRejects(t *testing.T) {
	for _, o := range []Options{{}, {Rate: 10}, {Duration: time.Second}, {Rate: 1, Duration: time.Millisecond}} {
		if _, err := Run(context.Background(), o, func(int, int) error { return nil }); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
