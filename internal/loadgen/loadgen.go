// Package loadgen is an open-loop load generator for benchmarks of
// request/answer services (the inline token check, docs/verify.md).
//
// Contract:
//
//   - Requests are scheduled at a fixed offered rate (Options.Rate),
//     request i at start + i/Rate, whatever happened to the earlier ones:
//     a server that falls behind does not slow the generator down.
//   - One pacer goroutine releases the requests: each time it wakes, it
//     releases every request whose scheduled time has come (catching up,
//     never skipping one), then sleeps until the next is due. It never
//     waits for a worker (released requests queue for one), and it does
//     not spin: it sleeps, so it leaves the cores to the service. Its
//     wake-ups are as late as the process's timers are — on an otherwise
//     idle Linux process, Go's timers wake with about a millisecond's
//     granularity — which is why latency is measured from the release.
//   - A request's latency (Result.Latency, the headline) runs from its
//     release to its answer: the wait for a free worker, the client's
//     and the server's queueing and the service itself all count, so a
//     stall shows in every request released during it (no coordinated
//     omission). What it leaves out is the pacer's own lateness, which a
//     real gateway does not have (its requests arrive from the network).
//     That lateness (release minus schedule) is reported apart
//     (Result.Lateness), and so is the latency from the scheduled time
//     (Result.FromSchedule: Latency plus the lateness) and the service
//     time from the actual send (Result.Service).
//   - At most Options.Workers requests are in flight; requests released
//     while every worker is busy wait, in release order, and that wait
//     is latency.
//   - ProcessCPU reads a process's CPU time (user + system) on Linux, so a
//     benchmark running its server in a child process can report the
//     server's CPU per request.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure Run.
type Options struct {
	// Rate is the offered load, requests per second (> 0).
	Rate float64
	// Duration is how long requests are scheduled for (> 0); Run returns
	// when the last scheduled request has been answered.
	Duration time.Duration
	// Workers bounds the requests in flight (0 → 64).
	Workers int
}

// Result is what Run measured. Every distribution is sorted.
type Result struct {
	// Scheduled is the number of requests offered (Rate × Duration);
	// Done how many were answered, Errors how many of those failed.
	Scheduled, Done, Errors int
	// Elapsed runs from the first slot to the last answer.
	Elapsed time.Duration
	// Latency runs from each request's release by the pacer to its
	// answer (the headline: what a gateway whose requests arrive from the
	// network would see). FromSchedule runs from its scheduled time
	// (Latency plus the pacer's lateness); Service from its actual send
	// by a worker.
	Latency, FromSchedule, Service []time.Duration
	// Lateness is how late the pacer released each request (release
	// minus schedule): the generator's own timer slack.
	Lateness []time.Duration
}

// Throughput is the answered requests per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Done) / r.Elapsed.Seconds()
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of a sorted sample, 0 for
// an empty one.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

// Run offers opts.Rate requests a second for opts.Duration, calling do
// (from up to opts.Workers goroutines; worker is 0…Workers-1, i the
// request's number) for each, and measures them. It stops releasing
// requests when ctx is done.
func Run(ctx context.Context, opts Options, do func(worker, i int) error) (Result, error) {
	if opts.Rate <= 0 || opts.Duration <= 0 {
		return Result{}, errors.New("loadgen: Rate and Duration must be positive")
	}
	if opts.Workers <= 0 {
		opts.Workers = 64
	}
	n := int(opts.Rate * opts.Duration.Seconds())
	if n <= 0 {
		return Result{}, fmt.Errorf("loadgen: %v at %.0f/s schedules no request", opts.Duration, opts.Rate)
	}
	interval := float64(time.Second) / opts.Rate
	rel := make([]time.Time, n) // written by the pacer before the slot is sent
	lat := make([]time.Duration, n)
	svc := make([]time.Duration, n)
	done := make([]bool, n)
	// Every slot fits: the pacer never blocks on a busy worker.
	slots := make(chan int, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	sched := func(i int) time.Time { return start.Add(time.Duration(float64(i) * interval)) }
	for w := range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range slots {
				s := time.Now()
				if do(w, i) != nil {
					errs.Add(1)
				}
				end := time.Now()
				lat[i], svc[i], done[i] = end.Sub(rel[i]), end.Sub(s), true
			}
		}()
	}
	// The pacer.
	for i := 0; i < n && ctx.Err() == nil; {
		now := time.Now()
		for ; i < n && !sched(i).After(now); i++ {
			rel[i] = now
			slots <- i
		}
		if i < n {
			if d := time.Until(sched(i)); d > 0 {
				time.Sleep(d)
			}
		}
	}
	close(slots)
	wg.Wait()
	r := Result{Scheduled: n, Errors: int(errs.Load()), Elapsed: time.Since(start)}
	for i := range n {
		if done[i] {
			late := rel[i].Sub(sched(i))
			r.Latency = append(r.Latency, lat[i])
			r.FromSchedule = append(r.FromSchedule, lat[i]+late)
			r.Service = append(r.Service, svc[i])
			r.Lateness = append(r.Lateness, late)
		}
	}
	r.Done = len(r.Latency)
	for _, s := range [][]time.Duration{r.Latency, r.FromSchedule, r.Service, r.Lateness} {
		slices.Sort(s)
	}
	return r, ctx.Err()
}

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat's times.
const clockTick = 10 * time.Millisecond

// ProcessCPU returns the CPU time (user + system) process pid has used so
// far, from /proc/<pid>/stat (Linux only; 10 ms resolution).
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("loadgen: process CPU: %w", err)
	}
	return parseStat(string(b))
}

// parseStat reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line; the command name (field 2) may hold spaces and
// parentheses, so fields are counted from its last ')'.
func parseStat(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("loadgen: process CPU: no command name in stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so utime (14) is f[11], stime (15) f[12].
	if len(f) < 13 {
		return 0, errors.New("loadgen: process CPU: short stat")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 63)
	k, err2 := strconv.ParseUint(f[12], 10, 63)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("loadgen: process CPU: %w", err)
	}
	return time.Duration(u+k) * clockTick, nil
}
