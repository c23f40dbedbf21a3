package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// neverMinted is the token detector's finding kind for a token used but
// never minted (detect/token.KindNeverMinted; the demo does not import
// detectors).
const neverMinted = "token_never_minted"

// LatencyOptions configure ForgedTokenLatency.
type LatencyOptions struct {
	// Config is the configuration to serve with; as in Run, its data
	// directory, store, audit key, witness and listen address are
	// replaced (a temporary directory, a free loopback port). Response
	// runs as configured, without the demo's gateway: forged requests are
	// never refused, so every forged token reaches the detector.
	Config config.Config
	// Seed, Days, Customers and Scenarios (nil: all, as the demo) shape
	// the simulated company.
	Seed      uint64
	Days      int
	Customers int
	Scenarios []string
	// Duration is the real time the period is played in, paced by event
	// time as the demo does (0: unpaced — each batch is posted as soon as
	// the one before it is acknowledged).
	Duration time.Duration
	// Settle bounds how long to wait after the feed for the alerts of
	// forged tokens not yet alerted (0: 30 s); the wait ends early once
	// every forged token is accounted for.
	Settle time.Duration
	// Logger is the server's logger (nil: discarded).
	Logger *slog.Logger
}

// ForgedUse is the first use of one forged token: a gateway request that
// succeeded with a token the token service never minted (the simulator's
// ground truth says the request was malicious; the stream has no mint of
// it).
type ForgedUse struct {
	Token   string
	EventID string
	// Time is the use's event time.
	Time time.Time
	// Acked is the wall time serve acknowledged the request (batch) that
	// carried the use.
	Acked time.Time
	// Alerted is the wall time an alert sink first heard of an alert whose
	// findings name this use as a never-minted token's; zero when none
	// did. An alert keeps a bounded number of its findings (alert
	// package's MaxFindings: the first 100 and the first of each kind),
	// so a token judged while its key's alert was already full is not
	// named: such uses are counted in LatencyReport.Unnamed, not here.
	Alerted time.Time
	AlertID string
}

// Latency is Alerted − Acked (0 when not alerted).
func (u ForgedUse) Latency() time.Duration {
	if u.Alerted.IsZero() {
		return 0
	}
	return u.Alerted.Sub(u.Acked)
}

// AlertRaise is one alert raised on a never-minted finding, and the
// forged use whose finding opened it.
type AlertRaise struct {
	ID     string
	Entity event.EntityKey
	// Raised is the wall time the alert stage told its sinks.
	Raised time.Time
	// Use is the forged use named by the alert's first never-minted
	// finding, and Acked when its request was acknowledged (zero if that
	// use is not a forged first use of the feed).
	Use   string
	Acked time.Time
	// Audited is the time of the audit log's entry for the raise (the
	// response writes one per alert it plans for, after the pipeline
	// hands the alert over): when the alert reached the store's audit
	// trail. Zero when there is none.
	Audited time.Time
}

// LatencyReport is what ForgedTokenLatency measured.
type LatencyReport struct {
	// Events is how many lines were posted; FeedStart and FeedEnd are the
	// wall times of the first post and of the last acknowledgement.
	Events             int64
	FeedStart, FeedEnd time.Time
	// Forged is every forged token's first use, in the order of the feed.
	Forged []ForgedUse
	// Alerts are the alerts raised on never-minted findings, in the order
	// they were raised.
	Alerts []AlertRaise
	// AlertFindings counts every finding the alerts that carry a
	// never-minted finding folded in (their FindingCount at the end),
	// named or not: with Forged, it shows how many verdicts the alerts'
	// finding cap left unnamed.
	AlertFindings int
}

// Unnamed is how many forged uses no alert named (see ForgedUse.Alerted).
func (r *LatencyReport) Unnamed() int {
	n := 0
	for _, u := range r.Forged {
		if u.Alerted.IsZero() {
			n++
		}
	}
	return n
}

// FirstAlert is the figure: from the acknowledgement of the first
// forged use of the feed to the first alert raised on a never-minted
// finding. ok is false when either is missing.
func (r *LatencyReport) FirstAlert() (d time.Duration, ok bool) {
	if len(r.Forged) == 0 || len(r.Alerts) == 0 {
		return 0, false
	}
	first := r.Forged[0].Acked
	for _, u := range r.Forged[1:] {
		if u.Acked.Before(first) {
			first = u.Acked
		}
	}
	return r.Alerts[0].Raised.Sub(first), true
}

// Latencies are the latencies of the named forged uses, ascending, and how
// many of them were alerted before the feed ended (the last
// acknowledgement) and after.
func (r *LatencyReport) Latencies() (ds []time.Duration, before, after int) {
	for _, u := range r.Forged {
		if u.Alerted.IsZero() {
			continue
		}
		ds = append(ds, u.Latency())
		if u.Alerted.After(r.FeedEnd) {
			after++
		} else {
			before++
		}
	}
	slices.Sort(ds)
	return ds, before, after
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1, nearest rank) of ascending
// ds, or 0 when ds is empty.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// ForgedTokenLatency serves haechi on a free loopback port (app.Serve,
// the demo's way), posts a simulated company's traffic to it over HTTP as
// the demo does (one connection, batches of up to 1 MiB or 200 ms), and
// measures, for every forged token, the wall time from the acknowledgement
// of the request that carried its first use to the alert naming it — heard
// by an alert sink on the alert stage's goroutine, the moment the alert is
// raised or updated, before the store writes it. Which tokens are forged
// comes from the simulator's ground truth, read here only: serve never
// sees it. It returns once serve has stopped.
func ForgedTokenLatency(ctx context.Context, o LatencyOptions) (*LatencyReport, error) {
	if o.Days <= 0 || o.Duration < 0 {
		return nil, &UsageError{errors.New("latency: Days must be positive and Duration not negative")}
	}
	if o.Settle == 0 {
		o.Settle = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	dir, err := os.MkdirTemp("", "haechi-latency-")
	if err != nil {
		return nil, fmt.Errorf("temporary data dir: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg.DataDir = dir
	cfg.Store.DSN = ""
	cfg.Audit.KeyFile = filepath.Join(dir, "audit.key")
	cfg.Audit.Witness.File = filepath.Join(dir, "audit-witness")
	cfg.Listen = "127.0.0.1:0"
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	ids, err := cfg.CanaryRecordIDs()
	if err != nil {
		return nil, &UsageError{err}
	}
	if !slices.Contains(ids, demoCanary) {
		ids = append(ids, demoCanary)
	}
	opts := sim.Options{Seed: o.Seed, Days: o.Days, Customers: o.Customers, Scenarios: o.Scenarios,
		Start: time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(o.Days) * 24 * time.Hour)}
	if err := opts.Validate(); err != nil {
		return nil, &UsageError{err}
	}
	// The ground truth (a first pass of the deterministic generator): the
	// malicious events.
	tr, err := sim.Generate(ctx, opts, io.Discard, nil)
	if err != nil {
		return nil, err
	}
	malicious := map[string]bool{}
	for _, s := range tr.Scenarios {
		for _, id := range s.MaliciousEventIDs {
			malicious[id] = true
		}
	}
	token, err := demoToken(ctx, cfg.StoreTarget())
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}

	obs := newAlertWatch()
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- app.Serve(ctx, app.ServeOptions{
			Config: cfg, CanaryIDs: ids, Listener: ln, Logger: o.Logger, Announce: io.Discard,
			Ready: func(u string) { ready <- u }, Sinks: []alert.Sink{obs},
		})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-served:
		return nil, err
	}
	stop := func(err error) error {
		cancel()
		if serr := <-served; err == nil {
			err = serr
		}
		return err
	}

	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 1<<20)
		_, err := sim.Generate(ctx, opts, bw, nil)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	speed := math.Inf(1)
	if o.Duration > 0 {
		speed = float64(time.Duration(o.Days)*24*time.Hour) / float64(o.Duration)
	}
	var (
		uses    []ForgedUse // first malicious uses of tokens, by line
		lines   []int64     // their line indexes
		seen    = map[string]bool{}
		minted  = map[uint64]bool{}
		nextAck int // uses[nextAck:] are not acknowledged yet
	)
	rep := &LatencyReport{FeedStart: time.Now()}
	n, err := postLive(ctx, base, token, pr, opts.Start, speed, io.Discard, func(i int64, ev *event.Event, line []byte) []byte {
		switch {
		case ev.Token.ID == "":
		case ev.Dataset == event.DatasetToken:
			minted[hashID(ev.Token.ID)] = true
		case ev.Dataset == event.DatasetGateway && ev.Outcome != event.OutcomeFailure && malicious[ev.ID] && !seen[ev.Token.ID]:
			seen[ev.Token.ID] = true
			uses = append(uses, ForgedUse{Token: ev.Token.ID, EventID: ev.ID, Time: ev.Time})
			lines = append(lines, i)
		}
		return line
	}, func(through int64) {
		now := time.Now()
		for ; nextAck < len(uses) && lines[nextAck] < through; nextAck++ {
			uses[nextAck].Acked = now
		}
		rep.FeedEnd = now
	})
	pr.CloseWithError(context.Canceled)
	rep.Events = n
	if err != nil {
		return nil, stop(err)
	}
	// Forged: never minted anywhere in the stream.
	var forged []ForgedUse
	want := map[string]bool{}
	for _, u := range uses {
		if !minted[hashID(u.Token)] {
			forged = append(forged, u)
			want[u.EventID] = true
		}
	}
	// Wait for the verdicts still to come: until every forged use is named
	// or nothing has changed for a few seconds, within Settle.
	obs.settle(ctx, want, o.Settle)
	if err := stop(nil); err != nil {
		return nil, err
	}
	rep.Forged = obs.fill(forged)
	rep.Alerts, rep.AlertFindings = obs.raises(forged)
	if err := audited(parent, cfg.StoreTarget(), rep.Alerts); err != nil {
		return nil, err
	}
	return rep, nil
}

// audited sets Audited of each raise from the audit log's first "alert"
// entry for it.
func audited(ctx context.Context, target string, rs []AlertRaise) error {
	idx := map[string]int{}
	for i, r := range rs {
		idx[r.ID] = i
	}
	st, err := store.Open(ctx, target, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	for after := int64(0); ; {
		recs, err := st.AuditLog(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			after = rec.Seq
			if rec.Kind != "alert" {
				continue
			}
			var d struct {
				Alert string `json:"alert"`
			}
			if json.Unmarshal(rec.Detail, &d) != nil {
				continue
			}
			if i, ok := idx[d.Alert]; ok && rs[i].Audited.IsZero() {
				rs[i].Audited = rec.Time
			}
		}
		if len(recs) < 1000 {
			return nil
		}
	}
}

func hashID(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// alertWatch is the alert sink ForgedTokenLatency observes serve with: it
// notes, at the moment an alert change is heard, which forged uses its
// never-minted findings name.
type alertWatch struct {
	mu      sync.Mutex
	named   map[string]heard // evidence (event id) → first heard
	raised  []AlertRaise
	counts  map[string]int // alert id → FindingCount last heard
	nm      int
	changed time.Time
}

type heard struct {
	at    time.Time
	alert string
}

func newAlertWatch() *alertWatch {
	return &alertWatch{named: map[string]heard{}, counts: map[string]int{}}
}

// Alert implements alert.Sink.
func (w *alertWatch) Alert(c alert.Change, a event.Alert) {
	now := time.Now()
	var first string
	has := false
	for i := range a.Findings {
		f := &a.Findings[i]
		if f.Kind != neverMinted {
			continue
		}
		has = true
		if first == "" && len(f.Evidence) > 0 {
			first = f.Evidence[0]
		}
	}
	if !has {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.changed = now
	for i := range a.Findings {
		f := &a.Findings[i]
		if f.Kind != neverMinted {
			continue
		}
		for _, ref := range f.Evidence {
			if _, ok := w.named[ref]; !ok {
				w.named[ref] = heard{at: now, alert: a.ID}
			}
		}
	}
	w.nm += a.FindingCount - w.counts[a.ID]
	w.counts[a.ID] = a.FindingCount
	if c == alert.Raised {
		w.raised = append(w.raised, AlertRaise{ID: a.ID, Entity: a.Entity, Raised: now, Use: first})
	}
}

// settle waits until every use in want is named, or nothing has changed
// for 3 s, or max has passed.
func (w *alertWatch) settle(ctx context.Context, want map[string]bool, max time.Duration) {
	deadline := time.Now().Add(max)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		w.mu.Lock()
		missing := 0
		for id := range want {
			if _, ok := w.named[id]; !ok {
				missing++
			}
		}
		quiet := time.Since(w.changed) > 3*time.Second && time.Since(deadline.Add(-max)) > 3*time.Second
		w.mu.Unlock()
		if missing == 0 || quiet {
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// fill sets Alerted and AlertID of the uses the alerts named.
func (w *alertWatch) fill(uses []ForgedUse) []ForgedUse {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range uses {
		if h, ok := w.named[uses[i].EventID]; ok {
			uses[i].Alerted, uses[i].AlertID = h.at, h.alert
		}
	}
	return uses
}

// raises returns the alerts raised on never-minted findings, with the ack
// of the use that opened each, and the never-minted findings counted.
func (w *alertWatch) raises(uses []ForgedUse) ([]AlertRaise, int) {
	acked := make(map[string]time.Time, len(uses))
	for _, u := range uses {
		acked[u.EventID] = u.Acked
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	rs := slices.Clone(w.raised)
	for i := range rs {
		rs[i].Acked = acked[rs[i].Use]
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Raised.Before(rs[j].Raised) })
	return rs, w.nm
}
