package respond

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/alertfmt"
	siem "github.com/haechi-sec/haechi/internal/sink"
	"github.com/haechi-sec/haechi/internal/store"
)

// DispatcherOptions configure NewDispatcher. Zero values pick the defaults.
type DispatcherOptions struct {
	Poll        time.Duration // how often the outbox is polled (0 → 1s); Wake polls at once
	Lease       time.Duration // how long a claim lasts before another run may retry it (0 → 2m)
	Batch       int           // actions claimed per poll (0 → 16)
	Concurrency int           // deliveries in flight (0 → 4)
	// Client, when set, delivers to every receiver in place of the
	// dispatcher's own clients, whose transport refuses non-public
	// destinations (Receiver.AllowPrivate); its CheckRedirect is replaced
	// by the same-origin rule (MaxRedirects). Nil → clients without a
	// global timeout (each receiver has its own).
	Client *http.Client
	Logger *slog.Logger // nil discards
	Now    func() time.Time
	// Version is haechi's version, written into ECS and OCSF documents.
	Version string
	// Hostname names this host in syslog messages and Splunk events
	// ("" → os.Hostname).
	Hostname string
	// Revoker, if set, is haechi's own enforcement point for revocations
	// (the mint registry behind the inline check, docs/verify.md): each
	// revoke_token and revoke_key action the dispatcher executes — claimed
	// from the outbox, so planned in enforce mode and approved when the
	// guardrails held it; never a dry-run, skipped or rejected one, nor
	// one past max_age (dead undelivered) — is applied to it before the
	// action is delivered to its receiver, on every attempt (revoking is
	// idempotent). Such an action without a configured receiver (planned
	// so by Planner.SetLocal) is applied to it alone and recorded
	// delivered, with detail "applied": "locally".
	Revoker Revoker
	// Registerer, if set, receives the delivery metrics:
	// haechi_respond_deliveries_total{type, receiver, result} (one per
	// action attempted: delivered, failed or dead) and
	// haechi_respond_delivery_seconds{type, receiver} (one per request
	// or sink batch); type is webhook, slack, elasticsearch, splunk or
	// syslog.
	Registerer prometheus.Registerer
}

// Revoker applies revocations locally (DispatcherOptions.Revoker);
// mint.Registry is one. now is when the action is executed.
type Revoker interface {
	Revoke(tokenID string, now time.Time)
	RevokeKey(keyID string, now time.Time)
}

// Dispatcher delivers due actions from the outbox as signed webhooks.
// Several dispatchers (processes) may share a store: claims are leases.
type Dispatcher struct {
	st     *store.Store
	cfg    Config
	secret []byte
	tmpl   map[string]*template.Template
	opts   DispatcherOptions
	log    *slog.Logger
	// public delivers to receivers without allow_private, private to the
	// others.
	public, private *http.Client
	now             func() time.Time
	// sinks by name (Config.Sinks).
	sinks map[string]sinkEntry
	// Delivery metrics (registered when opts.Registerer is set).
	deliveries *prometheus.CounterVec
	latency    *prometheus.HistogramVec

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	stopOnce  sync.Once
	startOnce sync.Once
	started   bool

	// Drain's bookkeeping: passes counts Run's claim passes; a waiter is
	// told when a pass that began after it registered ends with nothing
	// claimed and nothing in flight.
	idleMu  sync.Mutex
	passes  uint64
	waiters []idleWaiter
}

type idleWaiter struct {
	after uint64
	ch    chan struct{}
}

// NewDispatcher returns a dispatcher for cfg's receivers writing results
// to st. It resolves the signing secret (an error when secret_env is set
// but empty, or when receivers exist without a secret).
func NewDispatcher(st *store.Store, cfg Config, opts DispatcherOptions) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secret, err := cfg.ResolveSecret()
	if err != nil {
		return nil, err
	}
	if len(cfg.Receivers) > 0 && len(secret) == 0 {
		return nil, errors.New("respond: a secret is required to sign webhooks")
	}
	d := &Dispatcher{st: st, cfg: cfg, secret: secret, tmpl: map[string]*template.Template{}, opts: opts,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	for name, r := range cfg.Receivers {
		text := r.BodyTemplate
		if text == "" && r.Type == ReceiverSlack {
			text = `{"text": {{json .Text}}}`
		}
		if text != "" {
			t, err := parseTemplate(name, text)
			if err != nil {
				return nil, fmt.Errorf("respond: receivers.%s.body_template: %w", name, err)
			}
			d.tmpl[name] = t
		}
	}
	if d.opts.Poll <= 0 {
		d.opts.Poll = time.Second
	}
	if d.opts.Lease <= 0 {
		d.opts.Lease = 2 * time.Minute
	}
	if d.opts.Batch <= 0 {
		d.opts.Batch = 16
	}
	if d.opts.Concurrency <= 0 {
		d.opts.Concurrency = 4
	}
	if c := d.opts.Client; c != nil {
		cc := *c
		cc.CheckRedirect = checkRedirect
		d.public, d.private = &cc, &cc
	} else {
		d.public, d.private = webhookClient(false), webhookClient(true)
	}
	d.log = opts.Logger
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.now = opts.Now
	if d.now == nil {
		d.now = time.Now
	}
	if d.opts.Hostname == "" {
		d.opts.Hostname, _ = os.Hostname()
	}
	d.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "haechi_respond_deliveries_total",
		Help: "Outbox actions attempted, per receiver or sink type, name and result (delivered, failed, dead).",
	}, []string{"type", "receiver", "result"})
	d.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "haechi_respond_delivery_seconds",
		Help:    "Duration of a webhook request or a sink batch, per receiver or sink type and name.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"type", "receiver"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(d.deliveries); err != nil {
			return nil, fmt.Errorf("respond: register metrics: %w", err)
		}
		if err := opts.Registerer.Register(d.latency); err != nil {
			return nil, fmt.Errorf("respond: register metrics: %w", err)
		}
	}
	d.sinks = make(map[string]sinkEntry, len(cfg.Sinks))
	for name, sc := range cfg.Sinks {
		e, err := d.newSink(sc)
		if err != nil {
			return nil, fmt.Errorf("respond: sinks.%s: %w", name, err)
		}
		d.sinks[name] = e
	}
	return d, nil
}

// Wake makes the dispatcher poll now (the Responder calls it after
// writing actions). It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends or Close is called, then waits for the
// deliveries in flight. An action interrupted by shutdown is recorded as
// failed, due at once, and retried by the next run (or, if the process dies
// before recording anything, after its lease runs out).
func (d *Dispatcher) Run(ctx context.Context) error {
	d.startOnce.Do(func() { d.started = true })
	defer close(d.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	sem := make(chan struct{}, d.opts.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(d.opts.Poll)
	defer t.Stop()
	for {
		d.idleMu.Lock()
		d.passes++
		pass := d.passes
		d.idleMu.Unlock()
		claimedNone := false
		for ctx.Err() == nil {
			// Claim only as many as there are free slots, so claimed
			// actions do not sit waiting while their lease runs.
			free := d.opts.Concurrency - len(sem)
			if free <= 0 {
				break
			}
			acts, err := d.st.ClaimDueActions(ctx, d.now(), d.opts.Lease, min(free, d.opts.Batch))
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("respond: claim due actions", "err", err)
				}
				break
			}
			// A sink's exports go out as one batch (one slot).
			var exports map[string][]Action
			for _, a := range acts {
				if _, ok := d.sinks[a.Receiver]; ok && a.Kind == KindExport {
					if exports == nil {
						exports = map[string][]Action{}
					}
					exports[a.Receiver] = append(exports[a.Receiver], a)
					continue
				}
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done(); d.Wake() }()
					d.deliver(ctx, a)
				}()
			}
			for name, batch := range exports {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done(); d.Wake() }()
					d.export(ctx, name, batch)
				}()
			}
			if len(acts) < free {
				claimedNone = len(acts) == 0
				break
			}
		}
		if claimedNone && len(sem) == 0 {
			d.idle(pass)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wake:
		}
	}
}

// idle tells the waiters registered before pass began that nothing is
// due and nothing is in flight.
func (d *Dispatcher) idle(pass uint64) {
	d.idleMu.Lock()
	defer d.idleMu.Unlock()
	kept := d.waiters[:0]
	for _, w := range d.waiters {
		if pass > w.after {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	d.waiters = kept
}

// Drain waits, while Run runs, until every action due when it was called
// (and any that became due meanwhile) has been tried — delivered, failed
// with a later retry, or dead — or ctx ends. serve calls it on a graceful
// stop, so containment planned as the last alerts closed is sent by this
// process rather than waiting for the next start. Actions waiting for
// approval or a backoff are not waited for.
func (d *Dispatcher) Drain(ctx context.Context) error {
	d.idleMu.Lock()
	w := idleWaiter{after: d.passes, ch: make(chan struct{})}
	d.waiters = append(d.waiters, w)
	d.idleMu.Unlock()
	d.Wake()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-d.done:
		return errors.New("respond: the dispatcher stopped before draining")
	}
}

// Close stops Run and waits for it to return.
func (d *Dispatcher) Close() error {
	d.stopOnce.Do(func() { close(d.stop) })
	d.startOnce.Do(func() {})
	if d.started {
		<-d.done
	}
	return nil
}

// TemplateData is what a receiver's body_template renders.
type TemplateData struct {
	Action  Action  // ID (the idempotency key), Kind, Target, AlertID, Playbook, Attempts, CreatedAt …
	Payload Payload // Mode, Drill, Alert, Expiry, ExpirySeconds, Repeat, RevokeSessions
	Text    string  // one-line human summary (used by the slack type)
}

// webhookBody is the default JSON body.
type webhookBody struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"`
	Target         string    `json:"target"`
	AlertID        string    `json:"alert_id"`
	Playbook       string    `json:"playbook"`
	CreatedAt      time.Time `json:"created_at"`
	Attempt        int       `json:"attempt"`
	Mode           Mode      `json:"mode"`
	Expiry         string    `json:"expiry,omitempty"`
	ExpirySeconds  int64     `json:"expiry_seconds,omitempty"`
	Repeat         int       `json:"repeat,omitempty"`
	RevokeSessions bool      `json:"revoke_sessions,omitempty"`
	// Drill: the action is a drill's (docs/drills.md); do not act on it.
	Drill bool         `json:"drill,omitempty"`
	Alert AlertSummary `json:"alert"`
	Text  string       `json:"text"`
	// Incident: an incident event's notice (kind incident).
	Incident *IncidentNotice `json:"incident,omitempty"`
}

// Body renders the request body for a to receiver name.
func (d *Dispatcher) Body(name string, a Action) ([]byte, error) {
	var pl Payload
	if len(a.Payload) > 0 {
		if err := json.Unmarshal(a.Payload, &pl); err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
	}
	text := summary(a, pl)
	if r := d.cfg.Receivers[name]; (r.Format == alertfmt.FormatECS || r.Format == alertfmt.FormatOCSF) && pl.Incident == nil {
		return alertfmt.Encode(r.Format, alertOf(pl), alertfmt.Options{Version: d.opts.Version, Change: alertfmt.Created,
			Action: actionPart{ID: a.ID, Kind: a.Kind, Target: a.Target, Playbook: a.Playbook, CreatedAt: a.CreatedAt,
				Attempt: a.Attempts, Mode: pl.Mode, Expiry: pl.Expiry, ExpirySeconds: pl.ExpirySeconds, Repeat: pl.Repeat,
				RevokeSessions: pl.RevokeSessions, Text: text}})
	}
	if t := d.tmpl[name]; t != nil {
		var b bytes.Buffer
		if err := t.Execute(&b, TemplateData{Action: a, Payload: pl, Text: text}); err != nil {
			return nil, fmt.Errorf("body_template: %w", err)
		}
		return b.Bytes(), nil
	}
	return json.Marshal(webhookBody{
		ID: a.ID, Kind: a.Kind, Target: a.Target, AlertID: a.AlertID, Playbook: a.Playbook,
		CreatedAt: a.CreatedAt, Attempt: a.Attempts, Mode: pl.Mode, Expiry: pl.Expiry,
		ExpirySeconds: pl.ExpirySeconds, Repeat: pl.Repeat, RevokeSessions: pl.RevokeSessions,
		Drill: pl.Drill, Alert: pl.Alert, Text: text, Incident: pl.Incident,
	})
}

func summary(a Action, pl Payload) string {
	var b strings.Builder
	fmt.Fprintf(&b, "haechi %s %s", a.Kind, a.Target)
	if pl.Drill {
		b.WriteString(" (DRILL: no action needed)")
	}
	if pl.Incident != nil {
		var in struct {
			Title    string `json:"title"`
			Severity string `json:"severity"`
			State    string `json:"state"`
			Alerts   int    `json:"alert_count"`
		}
		_ = json.Unmarshal(pl.Incident.Incident, &in)
		fmt.Fprintf(&b, " %s: %s (%s, %s, %d alerts)", pl.Incident.Event, in.Title, in.Severity, in.State, in.Alerts)
		return b.String()
	}
	if pl.Expiry != "" {
		fmt.Fprintf(&b, " for %s", pl.Expiry)
	}
	if pl.Alert.Title != "" {
		fmt.Fprintf(&b, ": %s alert %q on %s", pl.Alert.Severity, pl.Alert.Title, pl.Alert.Entity)
	}
	if pl.Alert.Explanation != "" {
		b.WriteString(" — " + pl.Alert.Explanation)
	}
	return b.String()
}

func (d *Dispatcher) deliver(ctx context.Context, a Action) {
	res := store.ActionResult{ID: a.ID, Attempt: a.Attempts}
	now := d.now()
	maxAge := orDefault(d.cfg.MaxAge, DefaultMaxAge)
	stale := !a.EnqueuedAt.IsZero() && now.Sub(a.EnqueuedAt) > maxAge
	var local bool
	if rv := d.opts.Revoker; rv != nil && a.Target != "" && !stale {
		switch a.Kind {
		case KindRevokeToken:
			rv.Revoke(a.Target, now)
			local = true
		case KindRevokeKey:
			rv.RevokeKey(a.Target, now)
			local = true
		}
	}
	r, ok := d.cfg.Receivers[a.Receiver]
	switch {
	case !ok && local:
		res.State, res.Detail = store.ActionDelivered, map[string]any{"applied": "locally", "receiver": ReasonNoReceiver}
	case !ok:
		res.State, res.Error = store.ActionSkipped, ReasonNoReceiver+" ("+a.Receiver+")"
	case stale:
		res.State, res.Error = store.ActionDead, fmt.Sprintf("not delivered within max_age %s", Duration(maxAge))
	default:
		status, err := d.post(ctx, a, r)
		typ := r.Type
		if typ == "" {
			typ = ReceiverWebhook
		}
		d.latency.WithLabelValues(typ, a.Receiver).Observe(d.now().Sub(now).Seconds())
		res = d.result(ctx, a, now, status, err)
		d.deliveries.WithLabelValues(typ, a.Receiver, resultLabel(res.State)).Inc()
	}
	d.record(ctx, a, res)
}

// resultLabel is the metrics' result of an attempt ending in state.
func resultLabel(state string) string {
	switch state {
	case store.ActionDelivered:
		return "delivered"
	case store.ActionDead:
		return "dead"
	}
	return "failed"
}

// result is the outcome of an attempt at a that began at now and ended
// with status and err: delivered, failed with a retry after backoff, or
// dead (max_age reached, or err a permanent siem.Error).
func (d *Dispatcher) result(ctx context.Context, a Action, now time.Time, status int, err error) store.ActionResult {
	res := store.ActionResult{ID: a.ID, Attempt: a.Attempts}
	maxAge := orDefault(d.cfg.MaxAge, DefaultMaxAge)
	res.Detail = map[string]any{"status": status, "duration_ms": d.now().Sub(now).Milliseconds()}
	switch {
	case err == nil:
		res.State = store.ActionDelivered
	case ctx.Err() != nil:
		// Shutting down: due again at once on the next run.
		res.State, res.Error, res.NextAttempt = store.ActionFailed, "interrupted by shutdown: "+err.Error(), now
	case siem.IsPermanent(err):
		res.State, res.Error = store.ActionDead, err.Error()+"; giving up: the receiver refuses this document"
	default:
		next := now.Add(backoff(a.Attempts, orDefault(d.cfg.InitialBackoff, DefaultInitialBackoff),
			orDefault(d.cfg.MaxBackoff, DefaultMaxBackoff)))
		res.State, res.Error, res.NextAttempt = store.ActionFailed, err.Error(), next
		if !a.EnqueuedAt.IsZero() && next.Sub(a.EnqueuedAt) > maxAge {
			res.State, res.NextAttempt = store.ActionDead, time.Time{}
			res.Error += fmt.Sprintf("; giving up: max_age %s reached", Duration(maxAge))
		}
	}
	return res
}

// record writes res, the result of an attempt at a, to the outbox.
func (d *Dispatcher) record(ctx context.Context, a Action, res store.ActionResult) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := d.st.FinishAction(fctx, res, d.now()); err != nil {
		// The claim's lease makes the action due again.
		d.log.Error("respond: record delivery result", "action", a.ID, "state", res.State, "err", err)
		return
	}
	lvl := slog.LevelInfo
	if res.State != store.ActionDelivered {
		lvl = slog.LevelWarn
	}
	d.log.Log(ctx, lvl, "respond: action "+res.State, "action", a.ID, "kind", a.Kind, "target", a.Target,
		"attempt", a.Attempts, "err", res.Error)
}

func (d *Dispatcher) post(ctx context.Context, a Action, r Receiver) (int, error) {
	body, err := d.Body(a.Receiver, a)
	if err != nil {
		return 0, err
	}
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(r.Timeout, DefaultTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req = req.WithContext(withDialProxy(req))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "haechi-respond/1")
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	ts := strconv.FormatInt(d.now().Unix(), 10)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(d.secret, ts, body))
	req.Header.Set(HeaderIdempotency, a.ID)
	req.Header.Set(HeaderActionKind, a.Kind)
	client := d.public
	if r.AllowPrivate {
		client = d.private
	}
	resp, err := client.Do(req)
	if err != nil {
		err = hideURL(err)
		// A refused redirect or destination fails the attempt like any
		// other failure: retried with backoff until max_age, so a
		// corrected receiver URL (after a restart) still delivers it.
		var de *DestinationError
		if errors.As(err, &de) {
			err = fmt.Errorf("%w (receivers.%s.allow_private: true allows it)", err, a.Receiver)
		}
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return status, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("receiver answered %s: %s", resp.Status, strings.TrimSpace(string(snippet[:min(len(snippet), 200)])))
	}
	return resp.StatusCode, nil
}

// backoff returns the wait after the attempt-th failure: initial doubling
// per attempt up to max, with jitter in [d/2, d].
func backoff(attempt int, initial, max time.Duration) time.Duration {
	d := initial
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1) // #nosec G404 -- retry jitter; unpredictability is not needed
}
