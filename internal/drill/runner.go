package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
)

// Options configure a Runner.
type Options struct {
	Definitions []Definition
	// Inject stores a run's events durably in the ingest path (serve:
	// ingest.Ingester.AppendDrill, with the run id as its key).
	Inject func(ctx context.Context, run string, body []byte) error
	// Seen reports whether the deployment's own feeds (not drills) have
	// carried a dataset since start-up; nil: every stream is taken as fed.
	Seen func(dataset string) bool
	// Running reports whether a detector runs in this configuration; nil:
	// all do. A failed run whose missing detector does not run says so.
	Running func(detector string) bool
	// OnResult is called with every verdict (passed, failed, cannot run)
	// as it is recorded (serve stores it); OnFailure then once per failed
	// run (serve raises the detection-regression alert).
	OnResult  func(Result)
	OnFailure func(Result)
	// Now is the wall clock (nil → time.Now).
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Keep is how many results are kept (0 → 200).
	Keep int
}

// Runner runs drills and keeps their results. Its methods are safe for
// concurrent use.
type Runner struct {
	opts Options
	log  *slog.Logger
	defs map[string]Definition

	mu      sync.Mutex
	pending map[event.EntityKey]*pending
	// entities counts the runs that made up each entity, over the last
	// Keep runs since start-up (order: their entities, oldest first), for
	// IsDrill; two runs may share a source address.
	entities map[event.EntityKey]int
	order    [][]event.EntityKey
	results  []Result // oldest first, at most Keep

	lastSuccess *prometheus.GaugeVec
	failures    *prometheus.CounterVec
	runs        *prometheus.CounterVec
}

type pending struct {
	def       Definition
	injected  time.Time
	detectors map[string]bool
	kinds     map[string]bool
	alerts    []string
	met       chan struct{} // closed when the expectation is met
	metAt     time.Time
}

// New returns a runner of opts.Definitions. Definitions must be valid and
// their names unique.
func New(opts Options) (*Runner, error) {
	if opts.Inject == nil {
		return nil, errors.New("drill: no Inject")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Keep <= 0 {
		opts.Keep = 200
	}
	r := &Runner{opts: opts, log: opts.Logger, defs: map[string]Definition{}, pending: map[event.EntityKey]*pending{},
		entities: map[event.EntityKey]int{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, d := range opts.Definitions {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("drill %s: %w", d.Name, err)
		}
		if _, dup := r.defs[d.Name]; dup {
			return nil, fmt.Errorf("drill %s: defined twice", d.Name)
		}
		r.defs[d.Name] = d
	}
	r.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "haechi_drill_last_success_timestamp_seconds",
		Help: "Wall time of each drill's last passed run (Unix seconds)."}, []string{"drill"})
	r.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "haechi_drill_failures_total",
		Help: "Drill runs that failed: the expected detection did not happen in time."}, []string{"drill"})
	r.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "haechi_drill_runs_total",
		Help: "Drill runs by outcome (passed, failed, cannot_run)."}, []string{"drill", "status"})
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{r.lastSuccess, r.failures, r.runs} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("drill metrics: %w", err)
			}
		}
	}
	for _, d := range opts.Definitions {
		r.failures.WithLabelValues(d.Name)
	}
	return r, nil
}

// Definitions returns the drills, in configuration order.
func (r *Runner) Definitions() []Definition {
	return append([]Definition(nil), r.opts.Definitions...)
}

var _ alert.Sink = (*Runner)(nil)

// Alert implements alert.Sink: an alert about a pending run's entity (or
// naming it among a finding's entities) adds its findings' detectors and
// kinds to the run.
func (r *Runner) Alert(c alert.Change, a event.Alert) {
	if c == alert.Closed {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return
	}
	p := r.pending[a.Entity]
	if p == nil {
		for i := range a.Findings {
			if p = r.pending[a.Findings[i].Entity]; p != nil {
				break
			}
		}
	}
	if p == nil {
		return
	}
	seen := false
	for _, id := range p.alerts {
		seen = seen || id == a.ID
	}
	if !seen {
		p.alerts = append(p.alerts, a.ID)
	}
	for i := range a.Findings {
		p.detectors[a.Findings[i].Detector] = true
		p.kinds[a.Findings[i].Kind] = true
	}
	if p.metAt.IsZero() && p.def.Expect.check(p.detectors, p.kinds) == "" {
		p.metAt = r.opts.Now()
		close(p.met)
	}
}

// note remembers ents as one run's made-up entities, forgetting the
// oldest run's beyond Keep; r.mu is held.
func (r *Runner) note(ents []event.EntityKey) {
	for _, e := range ents {
		r.entities[e]++
	}
	r.order = append(r.order, ents)
	if n := len(r.order) - r.opts.Keep; n > 0 {
		for _, es := range r.order[:n] {
			for _, e := range es {
				if r.entities[e]--; r.entities[e] <= 0 {
					delete(r.entities, e)
				}
			}
		}
		r.order = append(r.order[:0], r.order[n:]...)
	}
}

// NoteDrillEvents remembers the entities of drill events (those ingest
// marked event.Event.Drill; others are ignored) for IsDrill: after a
// restart the spool replays runs this runner did not start, and their
// alerts are still drills'. serve calls it from the spool consumer before
// the events reach the pipeline.
func (r *Runner) NoteDrillEvents(evs []event.Event) {
	var ents []event.EntityKey
	add := func(k event.EntityKind, id string) {
		if id != "" && !slices.Contains(ents, event.EntityKey{Kind: k, ID: id}) {
			ents = append(ents, event.EntityKey{Kind: k, ID: id})
		}
	}
	for i := range evs {
		ev := &evs[i]
		if !ev.Drill {
			continue
		}
		add(event.EntityPrincipal, ev.User.ID)
		add(event.EntityPrincipal, ev.Identity.ID)
		add(event.EntityToken, ev.Token.ID)
		add(event.EntitySigningKey, ev.Token.KeyID)
		if ev.Source.IP.IsValid() {
			add(event.EntitySource, ev.Source.IP.String())
		}
	}
	if len(ents) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note(ents)
}

// IsDrill reports whether alert a is about an entity a drill run made up
// (its own or a finding's): of the runs since start-up, up to Options.Keep
// of them. Run ids are random, so no real principal, token or key is one;
// drill sources are in 198.18.0.0/15, which no real client uses. The
// response planner and the store's sinks ask it.
func (r *Runner) IsDrill(a event.Alert) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.entities) == 0 {
		return false
	}
	if r.entities[a.Entity] > 0 {
		return true
	}
	for i := range a.Findings {
		if r.entities[a.Findings[i].Entity] > 0 {
			return true
		}
	}
	return false
}

// ErrUnknown is returned for a drill name that is not defined.
var ErrUnknown = errors.New("no such drill")

// Run runs the drill named name once and waits for its result: until the
// expectation is met or its Within has passed. Errors are for a drill that
// could not be started (ErrUnknown, an injection refused: recorded as
// failed) or was abandoned because ctx ended first (not recorded: no
// verdict).
func (r *Runner) Run(ctx context.Context, name string) (Result, error) {
	d, ok := r.defs[name]
	if !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	now := r.opts.Now()
	res := Result{Drill: d.Name, Kind: d.Kind, Started: now, Status: Running}
	if r.opts.Seen != nil {
		var missing []string
		for _, s := range NeedStreams(d.Kind) {
			if !r.opts.Seen(s) {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			res.Status = CannotRun
			res.Reason = fmt.Sprintf("cannot run: missing stream %s (no event of it from the deployment's feeds since start-up)", strings.Join(missing, ", "))
			r.record(res)
			return res, nil
		}
	}
	plan, err := Build(d, NewRunID(d.Name, now), now)
	if err != nil {
		return Result{}, err
	}
	res.Run, res.Entity = plan.Run, plan.Entity
	p := &pending{def: d, detectors: map[string]bool{}, kinds: map[string]bool{}, met: make(chan struct{})}
	r.mu.Lock()
	r.pending[plan.Entity] = p
	r.note(plan.Entities)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, plan.Entity)
		r.mu.Unlock()
	}()
	p.injected = r.opts.Now()
	if err := r.opts.Inject(ctx, plan.Run, plan.Body); err != nil {
		res.Status = Failed
		res.Reason = fmt.Sprintf("injection refused: %v", err)
		r.record(res)
		return res, fmt.Errorf("drill %s: inject: %w", d.Name, err)
	}
	timer := time.NewTimer(d.Expect.Within)
	defer timer.Stop()
	select {
	case <-p.met:
	case <-timer.C:
	case <-ctx.Done():
	}
	r.mu.Lock()
	res.Alerts = append([]string(nil), p.alerts...)
	met := !p.metAt.IsZero()
	if met {
		res.Status = Passed
		res.TimeToAlert = p.metAt.Sub(p.injected)
	} else {
		res.Status = Failed
		res.Reason = r.reason(d, p)
	}
	r.mu.Unlock()
	if !met && ctx.Err() != nil {
		// Abandoned (shutdown, a client gone): not a verdict.
		return res, fmt.Errorf("drill %s: run %s abandoned: %w", d.Name, plan.Run, ctx.Err())
	}
	r.record(res)
	return res, nil
}

// reason says which expectation a run missed and why; r.mu is held.
func (r *Runner) reason(d Definition, p *pending) string {
	wait := fmt.Sprintf("within %s", d.Expect.Within)
	var b strings.Builder
	miss := d.Expect.check(p.detectors, p.kinds)
	if len(p.alerts) == 0 {
		fmt.Fprintf(&b, "no alert about the drill's entity %s", wait)
	} else {
		fmt.Fprintf(&b, "alerts %s came from %s, ", strings.Join(p.alerts, ", "), strings.Join(keys(p.detectors), ", "))
	}
	fmt.Fprintf(&b, "; expected %s", miss)
	if r.opts.Running != nil {
		var off []string
		for _, det := range d.Expect.Detectors {
			if !r.opts.Running(det) {
				off = append(off, det)
			}
		}
		if len(off) > 0 {
			fmt.Fprintf(&b, " (not running in this configuration: %s — disabled under detectors.*?)", strings.Join(off, ", "))
		}
	}
	return strings.Replace(b.String(), ", ; ", "; ", 1)
}

func (r *Runner) record(res Result) {
	r.runs.WithLabelValues(res.Drill, string(res.Status)).Inc()
	switch res.Status {
	case Passed:
		r.lastSuccess.WithLabelValues(res.Drill).Set(float64(r.opts.Now().UnixNano()) / 1e9)
		r.log.Info("drill passed", "drill", res.Drill, "run", res.Run, "time_to_alert", res.TimeToAlert)
	case Failed:
		r.failures.WithLabelValues(res.Drill).Inc()
		r.log.Error("drill failed: detection regression", "drill", res.Drill, "run", res.Run, "reason", res.Reason)
	case CannotRun:
		r.log.Warn("drill cannot run", "drill", res.Drill, "reason", res.Reason)
	}
	r.mu.Lock()
	r.results = append(r.results, res)
	if n := len(r.results) - r.opts.Keep; n > 0 {
		r.results = append(r.results[:0], r.results[n:]...)
	}
	r.mu.Unlock()
	if r.opts.OnResult != nil {
		r.opts.OnResult(res)
	}
	if res.Status == Failed && r.opts.OnFailure != nil {
		r.opts.OnFailure(res)
	}
}

// Results returns the kept results, newest first.
func (r *Runner) Results() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Result, len(r.results))
	for i, res := range r.results {
		out[len(out)-1-i] = res
	}
	return out
}

// RunAll runs every drill concurrently and returns their results in
// configuration order.
func (r *Runner) RunAll(ctx context.Context) []Result {
	out := make([]Result, len(r.opts.Definitions))
	var wg sync.WaitGroup
	for i, d := range r.opts.Definitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.Run(ctx, d.Name)
			if err != nil && ctx.Err() == nil {
				r.log.Error("drill", "drill", d.Name, "err", err)
			}
			out[i] = res
		}()
	}
	wg.Wait()
	return out
}

// Schedule runs every drill every `every`, each round delayed by a random
// part of jitter so that deployments do not drill in step, until ctx ends.
// The first round comes after one period.
func (r *Runner) Schedule(ctx context.Context, every, jitter time.Duration) {
	if every <= 0 {
		return
	}
	for {
		wait := every
		if jitter > 0 {
			wait += rand.N(jitter) // #nosec G404 -- schedule jitter, not a secret
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r.RunAll(ctx)
	}
}
