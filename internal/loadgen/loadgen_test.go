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

// A stall of the service shows as latency of every request released
// during it, not only of the one that stalled: the pacer keeps releasing
// on schedule while the only worker is stuck, and latency runs from the
// release (no coordinated omission). It fails if the release were taken
// when a worker picks the request up, or if the pacer waited for a
// worker.
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
	for name, d := range map[string][]time.Duration{"latency": r.Latency, "from schedule": r.FromSchedule, "service": r.Service, "lateness": r.Lateness} {
		if len(d) != 200 {
			t.Fatalf("%s: %d samples, want 200", name, len(d))
		}
	}
	// Requests 11…~80 were released during the stall: each waited for it,
	// from its release and so from its schedule.
	for name, d := range map[string][]time.Duration{"latency (from release)": r.Latency, "from schedule": r.FromSchedule} {
		var queued int
		for _, l := range d {
			if l >= 20*time.Millisecond {
				queued++
			}
		}
		if queued < 40 {
			t.Errorf("%s: %d requests ≥ 20 ms, want ≥ 40 (those released during the 80 ms stall)", name, queued)
		}
	}
	// The pacer did not wait for the worker: it released them on time.
	if l := Quantile(r.Lateness, 0.98); l >= 20*time.Millisecond {
		t.Errorf("p98 pacer lateness %v: the pacer waited for the stalled worker", l)
	}
	// Their service time was short: only the stalled one took long.
	if s := Quantile(r.Service, 0.98); s >= 20*time.Millisecond {
		t.Errorf("p98 service time %v: the queued requests' wait counted as service", s)
	}
}

// Latency from schedule is latency from release plus the pacer's
// lateness, request by request, so each quantile of it is at least the
// same quantile of latency.
func TestFromScheduleIncludesLateness(t *testing.T) {
	r, err := Run(context.Background(), Options{Rate: 20000, Duration: 100 * time.Millisecond, Workers: 4}, func(int, int) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
		if l, s := Quantile(r.Latency, q), Quantile(r.FromSchedule, q); s < l {
			t.Errorf("q%.2f: from schedule %v < from release %v", q, s, l)
		}
	}
	if Quantile(r.Lateness, 0) < 0 {
		t.Errorf("a request was released before its schedule (%v)", Quantile(r.Lateness, 0))
	}
}

func TestRunRejects(t *testing.T) {
	for _, o := range []Options{{}, {Rate: 10}, {Duration: time.Second}, {Rate: 1, Duration: time.Millisecond}} {
		if _, err := Run(context.Background(), o, func(int, int) error { return nil }); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
