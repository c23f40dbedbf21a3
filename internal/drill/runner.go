package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
	// Explain says why the response planner planned no action of kind for
	// alert a (serve: respond.Planner.Explain — no playbook with that
	// action, one that does not match and why, respond.mode off); nil:
	// a failed run only names what was planned. It must be safe to call
	// from any goroutine.
	Explain func(a event.Alert, kind string) string
	// Responds says that Planned hears of every alert the responder plans
	// for (serve): a run whose expectation is met then waits, within its
	// time, until each of its alerts was planned, so that its result
	// carries their actions even when it expects none.
	Responds bool
	// OnStart is called once a run's events are injected (serve stores
	// it as running, so a run cut by a crash is found at the next start).
	OnStart func(Result)
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
	// ofRun maps every entity a pending run made up to it (the first run
	// to make it up, should two share a source address): its alerts and
	// findings are kept with the run.
	ofRun map[event.EntityKey]*pending
	// stop ends every run in flight (Stop); inflight counts them.
	stop     chan struct{}
	stopped  bool
	inflight sync.WaitGroup
	// entities counts the runs that made up each entity, over the last
	// Keep runs since start-up (order: their entities, oldest first), for
	// IsDrill; two runs may share a source address.
	entities map[event.EntityKey]int
	order    [][]event.EntityKey
	// found counts drill findings per detector (FoundByDetector).
	found   map[string]float64
	results []Result // oldest first, at most Keep

	lastSuccess *prometheus.GaugeVec
	failures    *prometheus.CounterVec
	runs        *prometheus.CounterVec
}

type pending struct {
	def       Definition
	entity    event.EntityKey
	injected  time.Time
	detectors map[string]bool
	kinds     map[string]bool
	alerts    []string // about the expected entity, or naming it
	// last is the latest version of each alert of alerts (Explain reads
	// it); detail every alert about any of the run's entities, in order.
	last    map[string]event.Alert
	detail  []event.Alert
	finds   []event.Finding
	actions []PlannedAction
	// planned holds the alerts of alerts the responder planned for, and
	// notes what it said instead of planning (a suppression).
	planned map[string]bool
	notes   []string
	met     chan struct{} // closed when passed and every alert was planned (Options.Responds)
	metAt   time.Time     // when the detection was met
	passed  bool          // the whole expectation is met
	closed  bool
}

// maxKept bounds the alerts and findings a run keeps.
const maxKept = 256

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
		ofRun: map[event.EntityKey]*pending{}, entities: map[event.EntityKey]int{}, found: map[string]float64{}, stop: make(chan struct{})}
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
		Help: "Drill runs by outcome (passed, failed, cannot_run, interrupted)."}, []string{"drill", "status"})
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
// kinds to the run; an alert about any entity the run made up is kept
// with it.
func (r *Runner) Alert(c alert.Change, a event.Alert) {
	if c == alert.Closed {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observe(a)
}

// observe adds alert a to the pending run it is about (nil: none); r.mu
// is held.
func (r *Runner) observe(a event.Alert) *pending {
	if len(r.pending) == 0 {
		return nil
	}
	if k := r.ofRun[a.Entity]; k != nil {
		k.keep(a)
	} else {
		for i := range a.Findings {
			if k = r.ofRun[a.Findings[i].Entity]; k != nil {
				k.keep(a)
				break
			}
		}
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
		return nil
	}
	if !slices.Contains(p.alerts, a.ID) {
		p.alerts = append(p.alerts, a.ID)
	}
	p.last[a.ID] = a
	for i := range a.Findings {
		p.detectors[a.Findings[i].Detector] = true
		p.kinds[a.Findings[i].Kind] = true
	}
	r.settle(p)
	return p
}

// keep remembers a's latest version among the run's alerts.
func (p *pending) keep(a event.Alert) {
	for i := range p.detail {
		if p.detail[i].ID == a.ID {
			p.detail[i] = a
			return
		}
	}
	if len(p.detail) < maxKept {
		p.detail = append(p.detail, a)
	}
}

// settle marks when the detection is met and closes met once the actions
// are too; r.mu is held.
func (r *Runner) settle(p *pending) {
	if p.closed {
		return
	}
	if p.metAt.IsZero() && p.def.Expect.check(p.detectors, p.kinds) == "" {
		p.metAt = r.opts.Now()
	}
	if !p.metAt.IsZero() && len(p.def.Expect.missingActions(p.actions)) == 0 {
		p.passed = true
	}
	if p.passed && (!r.opts.Responds || !slices.ContainsFunc(p.alerts, func(id string) bool { return !p.planned[id] })) {
		p.closed = true
		close(p.met)
	}
}

// Planned tells the runner what the response planner did with alert a
// (serve calls it from the responder once the actions are written to the
// outbox): acts are the actions planned for it (none: no playbook called
// for one), note what the responder said instead of planning (a
// suppression that matched it), if anything. Alerts of no pending run are
// ignored.
func (r *Runner) Planned(a event.Alert, acts []PlannedAction, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.observe(a)
	if p == nil {
		return
	}
	p.planned[a.ID] = true
	if note != "" && !slices.Contains(p.notes, note) {
		p.notes = append(p.notes, note)
	}
	for _, x := range acts {
		x.Alert = a.ID
		if !slices.ContainsFunc(p.actions, func(y PlannedAction) bool {
			return y.Alert == x.Alert && y.Kind == x.Kind && y.Target == x.Target
		}) {
			p.actions = append(p.actions, x)
		}
	}
	r.settle(p)
}

var _ alert.FindingSink = (*Runner)(nil)

// Finding implements alert.FindingSink: a scored finding about an entity
// a pending run made up is kept with the run, and one about any drill
// entity (IsDrill's) counted (FoundByDetector).
func (r *Runner) Finding(s alert.Scored) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entities[s.Finding.Entity] > 0 {
		r.found[s.Finding.Detector]++
	}
	if p := r.ofRun[s.Finding.Entity]; p != nil && len(p.finds) < maxKept {
		p.finds = append(p.finds, s.Finding)
	}
}

// FoundByDetector returns, per detector, how many findings about drill
// entities Finding has heard since start-up: what the detectors' own
// counts (haechi_findings_total) hold of drills, which the console's
// detection health leaves out.
func (r *Runner) FoundByDetector() map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.found)
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

// ErrStopped is returned by Run once Stop was called.
var ErrStopped = errors.New("drills stopped")

// Run runs the drill named name once and waits for its result: until the
// expectation is met or its Within has passed. Errors are for a drill that
// could not be started (ErrUnknown, ErrStopped; an injection refused:
// recorded as failed) or whose wait was cut short because ctx ended or
// Stop was called first: recorded as interrupted, with the error.
func (r *Runner) Run(ctx context.Context, name string) (Result, error) {
	d, ok := r.defs[name]
	if !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return Result{}, fmt.Errorf("drill %s: %w", name, ErrStopped)
	}
	r.inflight.Add(1)
	r.mu.Unlock()
	defer r.inflight.Done()
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
	p := &pending{def: d, entity: plan.Entity, detectors: map[string]bool{}, kinds: map[string]bool{}, last: map[string]event.Alert{},
		planned: map[string]bool{}, met: make(chan struct{})}
	r.mu.Lock()
	r.pending[plan.Entity] = p
	for _, e := range plan.Entities {
		if r.ofRun[e] == nil {
			r.ofRun[e] = p
		}
	}
	r.note(plan.Entities)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, plan.Entity)
		for _, e := range plan.Entities {
			if r.ofRun[e] == p {
				delete(r.ofRun, e)
			}
		}
		r.mu.Unlock()
	}()
	p.injected = r.opts.Now()
	if err := r.opts.Inject(ctx, plan.Run, plan.Body); err != nil {
		res.Status = Failed
		res.Reason = fmt.Sprintf("injection refused: %v", err)
		r.record(res)
		return res, fmt.Errorf("drill %s: inject: %w", d.Name, err)
	}
	if r.opts.OnStart != nil {
		r.opts.OnStart(res)
	}
	timer := time.NewTimer(d.Expect.Within)
	defer timer.Stop()
	var cut error
	select {
	case <-p.met:
	case <-timer.C:
	case <-ctx.Done():
		cut = ctx.Err()
	case <-r.stop:
		cut = ErrStopped
	}
	r.mu.Lock()
	res.Alerts = append([]string(nil), p.alerts...)
	res.Actions = append([]PlannedAction(nil), p.actions...)
	res.AlertDetail = append([]event.Alert(nil), p.detail...)
	res.Findings = append([]event.Finding(nil), p.finds...)
	switch {
	case p.passed:
		res.Status = Passed
		res.TimeToAlert = p.metAt.Sub(p.injected)
	case cut != nil:
		// Serve stopping, a client gone: no verdict on detection.
		res.Status = Interrupted
		res.Reason = fmt.Sprintf("interrupted after %s of %s (%v): no verdict on detection; so far: %s",
			r.opts.Now().Sub(p.injected).Round(time.Millisecond), d.Expect.Within, cut, r.reason(d, p))
	default:
		res.Status = Failed
		res.Reason = r.reason(d, p)
	}
	r.mu.Unlock()
	r.record(res)
	if res.Status == Interrupted {
		return res, fmt.Errorf("drill %s: run %s interrupted: %w", d.Name, plan.Run, cut)
	}
	return res, nil
}

// Stop cuts every run in flight short (each is recorded interrupted) and
// waits until their verdicts are recorded; later runs are refused
// (ErrStopped). serve calls it as it stops, while the store is open.
func (r *Runner) Stop() {
	r.mu.Lock()
	if !r.stopped {
		r.stopped = true
		close(r.stop)
	}
	r.mu.Unlock()
	r.inflight.Wait()
}

// reason says which expectation a run missed and why; r.mu is held.
func (r *Runner) reason(d Definition, p *pending) string {
	var parts []string
	if miss := d.Expect.check(p.detectors, p.kinds); miss != "" {
		var b strings.Builder
		if len(p.alerts) == 0 {
			fmt.Fprintf(&b, "no alert about the drill's entity within %s", d.Expect.Within)
		} else {
			fmt.Fprintf(&b, "alerts %s came from %s", strings.Join(p.alerts, ", "), strings.Join(keys(p.detectors), ", "))
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
		parts = append(parts, b.String())
	}
	if miss := d.Expect.missingActions(p.actions); len(miss) > 0 && len(p.alerts) > 0 {
		parts = append(parts, r.actionReason(p, miss))
	}
	if len(parts) == 0 {
		return "nothing missing when the time ran out"
	}
	return strings.Join(parts, "; ")
}

// actionReason says which expected actions were not planned for the
// run's alerts, what was planned instead and why; r.mu is held.
func (r *Runner) actionReason(p *pending, miss []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "expected action %s, planned: ", strings.Join(miss, ", "))
	if len(p.actions) == 0 {
		b.WriteString("none")
	}
	for i, a := range p.actions {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s (%s", a.Kind, a.Target, a.State)
		if a.State == StateSkipped && a.Reason != "" {
			b.WriteString(": " + a.Reason)
		}
		b.WriteString(")")
	}
	var unplanned []string
	for _, id := range p.alerts {
		if !p.planned[id] {
			unplanned = append(unplanned, id)
		}
	}
	if len(unplanned) == len(p.alerts) {
		fmt.Fprintf(&b, " — the responder had planned nothing for alert %s yet", strings.Join(unplanned, ", "))
	}
	for _, n := range p.notes {
		b.WriteString(" — " + n)
	}
	// Why: the latest version of the newest alert the responder planned
	// for (else of the newest alert), as the planner judges it.
	if r.opts.Explain != nil {
		var last event.Alert
		for _, id := range p.alerts {
			if a, ok := p.last[id]; ok && (p.planned[id] || !p.planned[last.ID]) {
				last = a
			}
		}
		for _, k := range miss {
			if slices.ContainsFunc(p.actions, func(a PlannedAction) bool { return a.Kind == k }) {
				continue // planned but skipped: its reason is above
			}
			if why := r.opts.Explain(last, k); why != "" {
				fmt.Fprintf(&b, "; %s not planned: %s", k, why)
			}
		}
	}
	return b.String()
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
	case Interrupted:
		r.log.Warn("drill interrupted", "drill", res.Drill, "run", res.Run, "reason", res.Reason)
	}
	r.mu.Lock()
	// The run's alerts and findings are stored with it (OnResult), not
	// kept in memory.
	kept := res
	kept.AlertDetail, kept.Findings = nil, nil
	r.results = append(r.results, kept)
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
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrStopped) {
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
