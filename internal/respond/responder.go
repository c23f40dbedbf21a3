package respond

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// ResponderOptions configure NewResponder. Zero values pick the defaults.
type ResponderOptions struct {
	QueueSize int // alerts buffered between the pipeline and the writer (0 → 4096)
	// OnWritten is called (from the writer goroutine) after actions were
	// written; pass Dispatcher.Wake.
	OnWritten func()
	Logger    *slog.Logger // nil discards
	Now       func() time.Time
	// Suppressions, if set, stops planning for suppressed alerts (they
	// are audited as alert_suppressed instead).
	Suppressions *Suppressions
}

// Responder is an alert.Sink that plans actions for raised alerts (and for
// updated ones whose severity rose) and writes them to the outbox.
//
// Alert runs on the pipeline goroutine and only enqueues. It never drops an
// alert while the Responder runs: when the queue is full (the store has been
// failing or stalling for QueueSize alerts) it blocks until the writer makes
// room, which backs the pipeline up rather than losing a containment; a
// warning is logged each time that happens. Alerts arriving after Run has
// returned are logged and dropped.
type Responder struct {
	st      *store.Store
	planner *Planner
	opts    ResponderOptions
	log     *slog.Logger
	now     func() time.Time

	sev map[string]seen // pipeline goroutine only

	q       chan item
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex // guards started and closed
	started bool       // Run has begun; it closes done when it returns
	closed  bool       // Close has been called
	blocked atomic.Int64
	planned atomic.Pointer[PlannedFunc]
}

// PlannedFunc hears, from the writer goroutine, what the responder did
// with an alert once the batch holding it is in the outbox: acts are the
// actions planned for it (none: no playbook called for one, or all were
// planned before), suppressed the id of the suppression that stopped its
// planning ("" when none did). It must not block.
type PlannedFunc func(a event.Alert, acts []Action, suppressed string)

// OnPlanned sets the function told of every planned alert (serve's drill
// runner checks the actions its drills expect); nil removes it. Safe to
// call while the responder runs.
func (r *Responder) OnPlanned(f PlannedFunc) {
	if f == nil {
		r.planned.Store(nil)
		return
	}
	r.planned.Store(&f)
}

var _ alert.Sink = (*Responder)(nil)

// NewResponder returns a responder planning with p and writing to st.
func NewResponder(st *store.Store, p *Planner, opts ResponderOptions) *Responder {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	r := &Responder{st: st, planner: p, opts: opts, log: opts.Logger, now: opts.Now,
		sev: map[string]seen{}, q: make(chan item, opts.QueueSize),
		stop: make(chan struct{}), done: make(chan struct{})}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// seen is what the responder last planned for an alert.
type seen struct {
	sev     event.Severity
	sig     string
	related string // the block_source and revoke_token targets its findings named (relatedTargets)
}

// relatedTargets lists the sources a block_source and the tokens a
// revoke_token for a would act on: the alert's entity, or the related
// sources and tokens its findings name (up to MaxRelatedTargets and
// MaxRelatedTokens). An update that names a new one is planned again, so
// the new source is blocked, or the new token revoked, as the alert grows.
func relatedTargets(a *event.Alert) string {
	return strings.Join(append(targets(KindBlockSource, a), targets(KindRevokeToken, a)...), ",")
}

// signature is the sorted set of detector/kind pairs among a's findings.
func signature(a *event.Alert) string {
	pairs := make([]string, 0, 4)
	for i := range a.Findings {
		p := a.Findings[i].Detector + "/" + a.Findings[i].Kind
		if !slices.Contains(pairs, p) {
			pairs = append(pairs, p)
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

// Alert implements alert.Sink.
func (r *Responder) Alert(c alert.Change, a event.Alert) {
	switch c {
	case alert.Raised:
	case alert.Updated:
		// An update the responder has not seen (a reopened alert, a
		// restart) is planned like a raise: ids make it idempotent. A
		// seen one is planned again when its severity rose, a finding
		// of a new detector or kind joined it (playbooks match on those)
		// or a finding named a new related source (block_source acts on
		// those, each once, as the alert grows).
		if prev, ok := r.sev[a.ID]; ok && a.Severity <= prev.sev && signature(&a) == prev.sig &&
			relatedTargets(&a) == prev.related {
			return
		}
	case alert.Closed:
		// Closing is a state change the audit log records; nothing is
		// planned for it.
		delete(r.sev, a.ID)
		a.State = "closed"
	case alert.Withdrawn:
		// Nothing is planned; what was planned and not yet attempted is
		// cancelled (write, WithdrawAlert).
		delete(r.sev, a.ID)
		a.State = event.AlertWithdrawn
	default:
		return
	}
	if c == alert.Raised || c == alert.Updated {
		r.sev[a.ID] = seen{a.Severity, signature(&a), relatedTargets(&a)}
	}
	select {
	case r.q <- item{a: a}:
		return
	default:
	}
	r.blocked.Add(1)
	r.log.Warn("respond: action queue full; blocking the pipeline until the store catches up", "alert", a.ID)
	select {
	case r.q <- item{a: a}:
	case <-r.done:
		r.log.Error("respond: responder stopped; alert not planned", "alert", a.ID)
	}
}

// Blocked reports how many times Alert had to wait for queue space.
func (r *Responder) Blocked() int64 { return r.blocked.Load() }

// Run plans and writes queued alerts until ctx ends or Close is called,
// then drains the queue (each batch gets a few attempts) and returns.
func (r *Responder) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.closed || r.started {
		// Close already wrote what was queued, or Run is running elsewhere.
		r.mu.Unlock()
		return nil
	}
	r.started = true
	r.mu.Unlock()
	defer close(r.done)
	var (
		batch   []event.Alert
		flushes []chan struct{}
	)
	take := func(it item) {
		if it.flush != nil {
			flushes = append(flushes, it.flush)
		} else {
			batch = append(batch, it.a)
		}
	}
	for {
		batch, flushes = batch[:0], flushes[:0]
		select {
		case it := <-r.q:
			take(it)
		case <-ctx.Done():
			return r.drain()
		case <-r.stop:
			return r.drain()
		}
	fill:
		for len(batch) < 256 {
			select {
			case it := <-r.q:
				take(it)
			default:
				break fill
			}
		}
		_ = r.write(ctx, batch, 0)
		for _, f := range flushes {
			close(f)
		}
	}
}

type item struct {
	a     event.Alert
	flush chan struct{}
}

func (r *Responder) drain() error {
	var batch []event.Alert
	for {
		select {
		case it := <-r.q:
			if it.flush != nil {
				defer close(it.flush)
			} else {
				batch = append(batch, it.a)
			}
			continue
		default:
		}
		break
	}
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.write(ctx, batch, 5)
}

// write plans batch and inserts the actions, retrying with backoff while
// ctx lives (at most maxAttempts when > 0).
func (r *Responder) write(ctx context.Context, batch []event.Alert, maxAttempts int) error {
	var acts []Action
	type heard struct {
		a          event.Alert
		acts       []Action
		suppressed string
	}
	var told []heard
	tell := r.planned.Load()
	for _, a := range batch {
		if a.State == event.AlertWithdrawn {
			// Actions planned for it in this batch are not written at
			// all; those written before are cancelled in the store.
			acts = slices.DeleteFunc(acts, func(x Action) bool { return x.AlertID == a.ID })
			r.withdraw(ctx, a)
			// The sinks hear of the withdrawal (written after the
			// withdrawal cancelled the exports not yet delivered).
			acts = append(acts, r.planner.Exports(a)...)
			continue
		}
		kind := "alert_closed"
		var suppressed string
		if a.State != "closed" {
			kind = "alert"
			var planned []Action
			if sp, ok := r.opts.Suppressions.Match(ctx, a); ok {
				kind, suppressed = "alert_suppressed", sp.ID
			} else {
				planned = r.planner.Plan(a)
				acts = append(acts, planned...)
			}
			if tell != nil {
				told = append(told, heard{a: a, acts: planned, suppressed: suppressed})
			}
		}
		if suppressed == "" {
			acts = append(acts, r.planner.Exports(a)...)
		}
		// The alert itself goes into the audit log, so the chain shows what
		// each action answered (raised, or raised again at a higher
		// severity) and when the alert closed.
		detail := map[string]any{"alert": a.ID, "entity": a.Entity.String(), "detector": a.Detector,
			"severity": a.Severity.String(), "title": a.Title, "time": a.Time, "findings": a.FindingCount}
		if suppressed != "" {
			detail["suppression"] = suppressed
		}
		if err := r.st.AppendAudit(context.WithoutCancel(ctx), r.now(), kind, "", detail); err != nil {
			r.log.Error("respond: audit alert", "alert", a.ID, "err", err)
		}
	}
	if tell != nil {
		// Told once the actions are written (or, when the store keeps
		// failing, once writing is given up: they were planned all the
		// same).
		defer func() {
			for _, h := range told {
				(*tell)(h.a, h.acts, h.suppressed)
			}
		}()
	}
	if len(acts) == 0 {
		return nil
	}
	wait := 50 * time.Millisecond
	// Shutting down — ctx ends, or Close stops Run — leaves a few more
	// tries: Close waits for Run, and the context of a Run that is being
	// closed may end only after Close returns, so waiting for ctx alone
	// would never end while the store keeps failing.
	halt, stop := ctx.Done(), r.stop
	if maxAttempts > 0 { // a bounded write (the drain) backs off between its tries
		halt, stop = nil, nil
	}
	for attempt := 1; ; attempt++ {
		ids, err := r.st.InsertActions(context.WithoutCancel(ctx), acts, r.now())
		if err == nil {
			if len(ids) > 0 && r.opts.OnWritten != nil {
				r.opts.OnWritten()
			}
			return nil
		}
		r.log.Error("respond: write actions", "actions", len(acts), "attempt", attempt, "err", err)
		if maxAttempts > 0 && attempt >= maxAttempts {
			return err
		}
		select {
		case <-time.After(wait):
		case <-halt:
		case <-stop:
		}
		if maxAttempts == 0 && (ctx.Err() != nil || closed(r.stop)) {
			maxAttempts = attempt + 3 // shutting down: a few more tries
			ctx, halt, stop = context.Background(), nil, nil
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// withdraw cancels the actions of the withdrawn alert a that have not been
// attempted and audits the withdrawal ("alert_withdrawn": the alert, the
// findings withdrawn with the late events that withdrew them, the actions
// cancelled and those already executed, which are not undone), with a few
// tries while the store fails.
func (r *Responder) withdraw(ctx context.Context, a event.Alert) {
	var ws []map[string]any
	for _, f := range a.Findings {
		if f.Withdraws != 0 {
			ws = append(ws, map[string]any{"finding": f.Withdraws.String(), "kind": f.Kind, "time": f.Time,
				"evidence": f.Evidence, "explanation": f.Explanation})
		}
	}
	detail := map[string]any{"entity": a.Entity.String(), "detector": a.Detector, "severity": a.Severity.String(),
		"title": a.Title, "time": a.Time, "findings": a.FindingCount, "withdrawn": ws, "explanation": a.Explanation}
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cancelled, kept, err := r.st.WithdrawAlert(context.WithoutCancel(ctx), a.ID, detail, r.now())
		if err == nil {
			if len(kept) > 0 {
				ids := make([]string, len(kept))
				for i, k := range kept {
					ids[i] = k.Kind + " " + k.Target + " (" + k.State + ")"
				}
				r.log.Warn("respond: alert withdrawn after actions were executed; they are not undone", "alert", a.ID, "actions", ids)
			}
			r.log.Info("respond: alert withdrawn", "alert", a.ID, "cancelled", len(cancelled))
			return
		}
		r.log.Error("respond: withdraw alert", "alert", a.ID, "attempt", attempt, "err", err)
		if attempt == 5 {
			return
		}
		time.Sleep(wait)
		wait *= 2
	}
}

// Close stops Run, waiting until everything queued has been written. If
// Run has not started (a goroutine that has not been scheduled yet), Close
// writes the queue itself and a later Run returns at once, so an alert
// queued before Close is never lost to that race.
func (r *Responder) Close() error {
	r.mu.Lock()
	first, started := !r.closed, r.started
	r.closed = true
	r.mu.Unlock()
	if !first {
		<-r.done
		return nil
	}
	close(r.stop)
	if started {
		<-r.done
		return nil
	}
	defer close(r.done)
	return r.drain()
}

var errNotRunning = errors.New("respond: responder not running")

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Flush waits until every alert queued before the call has been written
// (for tests and for `haechi replay`, which must finish its actions). It
// waits for Run to start if it has not yet.
func (r *Responder) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case r.q <- item{flush: ch}:
	case <-r.done:
		return errNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
