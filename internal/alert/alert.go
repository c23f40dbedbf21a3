// Package alert turns findings into alerts by risk.
//
// Every finding adds risk to its entity. Risk decays with a half-life
// (RiskHalfLife, default 24 h) and is counted per detector: each detector
// is one line of evidence, so its findings about an entity add up only to
// RepeatCap (default 1) times the strongest of them — a signal that
// repeats (an off-hours login every night) cannot stack into an alert on
// its own, and two findings of one detector measuring the same behaviour
// (volume and enumeration) do not corroborate each other. An entity's risk
// is the sum over detectors. An alert opens for the entity when a finding
// is Immediate (forged token, canary read, terminated identity — high
// confidence, no waiting) or when the entity's risk reaches RiskThreshold
// (default 90: two independent findings of medium strength, or one strong
// finding with context). The alert lists every finding that contributed,
// by contribution, each with the risk it added (Finding.Contribution).
//
// An open alert is a session window of event time, per entity: the
// opening finding opens [t, t+Window); every finding for the entity whose
// time falls before the window's end joins the alert (whatever its score)
// and extends the end to its own time + Window, but never beyond MaxSpan
// after the opening finding (score and severity are the maximum, findings
// are kept up to MaxFindings, all are counted). When an alert closes, the
// risk it spent is cleared: a new alert for the entity needs new evidence.
// A finding suppressed by the Suppressor (an analyst's false-positive
// verdict) adds no risk; it is counted and joins an open alert with
// contribution 0.
//
// The stage runs on one goroutine (the caller's): Process, Advance and Flush
// must not be called concurrently. Time is event time only: a window closes
// when the watermark — the minimum over every producer of findings — has
// passed its end plus the allowed lateness, so a detector that emits a
// finding a little after the fact (a timer that waited for a late event)
// still lands in the right alert. The stage also remembers the last few
// thousand closed alerts: a finding that falls in the window of one of them
// (a backfill posted to a live server, whose watermark follows the wall
// clock) reopens it, and sinks hear Updated and, at the next Advance,
// Closed again — never a duplicate alert for the same window.
//
// A withdrawal (a finding with Withdraws set: a late event proved an
// earlier finding wrong) adds no risk and opens nothing. The stage finds
// the alert holding the withdrawn finding — open, or among the recently
// closed it remembers — removes the finding from it and lists the
// withdrawal in its place (contribution 0, not counted in FindingCount).
// The alert stands if any remaining finding is immediate or their
// contributions still reach RiskThreshold: it is then updated (Updated
// while open; Closed again, corrected, once closed), its title, score and
// severity taken from what remains. Otherwise it is withdrawn: sinks hear
// Withdrawn, its state is event.AlertWithdrawn, and its explanation is the
// withdrawal's sentence (the late event, how late). Like a close, a
// withdrawal of an open alert clears the risk the alert spent. A
// withdrawal whose finding the stage no longer holds (an alert closed
// longer ago than the stage remembers, or before a restart; a finding
// beyond MaxFindings) changes nothing and is counted in
// haechi_findings_withdrawn_total{result="not_found"}. When Ordered, a
// withdrawal sorts after the findings of its time, so it meets the finding
// it withdraws (both carry the same time).
//
// Alert IDs are deterministic: a hash of entity, the detector of the
// finding that opened the alert and its event time, so replaying the same
// input yields the same IDs and the store's upsert makes replays
// idempotent.
package alert

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/event"
)

// Change says what happened to an alert.
type Change uint8

const (
	// Raised: the alert was just opened by its first finding.
	Raised Change = iota + 1
	// Updated: findings joined the alert (reported at most once per Process).
	Updated
	// Closed: the alert's window has closed; this is its final form.
	Closed
	// Withdrawn: findings of the alert were withdrawn
	// (event.Finding.Withdraws) until nothing standing was left; this is
	// its final form, State event.AlertWithdrawn, and its explanation says
	// why. Sinks treat it like Closed (it may come for an alert that has
	// already closed).
	Withdrawn
)

// String names the change.
func (c Change) String() string {
	switch c {
	case Raised:
		return "raised"
	case Updated:
		return "updated"
	case Closed:
		return "closed"
	case Withdrawn:
		return "withdrawn"
	}
	return "unknown"
}

// Sink receives alert changes on the stage's goroutine. The alert is a copy
// the sink may keep; a sink that does slow work must hand it off (the store
// writer queues it).
type Sink interface {
	Alert(c Change, a event.Alert)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(c Change, a event.Alert)

// Alert calls f.
func (f SinkFunc) Alert(c Change, a event.Alert) { f(c, a) }

// Scored is a finding as the stage scored it.
type Scored struct {
	// Finding has its Contribution set (0 when suppressed).
	Finding event.Finding
	// Risk is the entity's risk right after the finding (rounded to 0.1)
	// and Threshold the risk at which the stage alerts.
	Risk      float64
	Threshold float64
	// Alert is the id of the alert the finding raised or joined; "" when
	// it stayed below the threshold.
	Alert string
	// Suppressed: an analyst's suppression covered the finding; it added
	// no risk.
	Suppressed bool
}

// FindingSink hears every scored finding (Options.FindingSinks). The
// Scored is the sink's to keep; a sink that does slow work must hand it
// off (the store writer queues it).
type FindingSink interface {
	Finding(s Scored)
}

// FindingSinkFunc adapts a function to FindingSink.
type FindingSinkFunc func(s Scored)

// Finding calls f.
func (f FindingSinkFunc) Finding(s Scored) { f(s) }

// Suppressor says whether a finding is suppressed (an analyst judged the
// entity's findings of that kind benign), returning the suppression's id.
type Suppressor interface {
	SuppressFinding(f *event.Finding) (id string, ok bool)
}

// Options configure New.
type Options struct {
	// Window is the session window per entity (0 → 1 hour): an alert
	// stays open until Window has passed without a new finding, and at
	// most MaxSpan (0 → 24 hours, never less than Window) after its first.
	Window  time.Duration
	MaxSpan time.Duration
	// Lateness is how long after a window's end findings may still join it
	// (0 → 5 minutes; the engine's allowed lateness).
	Lateness time.Duration
	// MaxFindings caps the findings kept per alert (0 → 100); the first
	// finding of each detector and kind is kept beyond the cap. Every
	// finding is still counted in FindingCount.
	MaxFindings int
	// RiskThreshold is the risk at which an entity's findings raise an
	// alert (0 → 90). RiskHalfLife is how fast risk decays (0 → 24 h).
	// RepeatCap bounds one detector's contribution to an entity's risk to
	// that multiple of its strongest finding (0 → 1).
	RiskThreshold float64
	RiskHalfLife  time.Duration
	RepeatCap     float64
	// PrivilegedMultiplier weighs the risk of an entity a finding marked
	// Privileged is about (a principal holding a privileged role): its
	// whole sum, while that finding's risk lasts (0 → 1: no weighing).
	// Entity criticality, as Elastic's asset criticality and Splunk RBA's
	// risk modifiers.
	PrivilegedMultiplier float64
	// Ordered holds every finding until the watermark has passed its time
	// by Lateness and then processes the held findings in event-time order
	// (ties broken by content); risk that has decayed away is dropped at
	// each hour of event time in that order. The alerts are then a function
	// of the set of findings, whatever order they arrive in, provided none
	// arrives more than Lateness behind the watermark Advance was given —
	// what cluster mode needs, where the findings about one entity come from
	// several Kafka partitions in no defined order. The price: an alert is
	// raised once the watermark has passed its finding by Lateness —
	// except, with RaiseAhead, an Immediate finding's (see Process).
	Ordered bool
	// RaiseAhead (with Ordered) raises an Immediate finding's alert when
	// the finding arrives, by a preview of ordered processing (see
	// Process), instead of when the watermark has passed it by Lateness.
	// When ordered processing confirms the preview (the usual case) the
	// alert keeps its id and sinks hear Updated; when a finding of the
	// same entity earlier in event time arrived after the immediate one
	// and put it into another alert, the preview is superseded: sinks hear
	// it Withdrawn (Superseded tells it apart), so the alerts that stand
	// are those of ordered processing alone. Cluster mode sets it.
	RaiseAhead bool
	// Suppressor, if set, is asked about every finding.
	Suppressor Suppressor
	// Sinks receive every change, in order.
	Sinks []Sink
	// FindingSinks hear every finding the stage scores — below the
	// threshold or not, suppressed or not — with its contribution and the
	// entity's risk after it (Scored), on the stage's goroutine, as each is
	// scored (Ordered: when the watermark releases it).
	FindingSinks []FindingSink
	// Logger (nil → discard) and Registerer (nil → metrics not registered).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

type open struct {
	a     event.Alert
	expl  string // explanation of the alert, before the count is added
	dirty bool
	// qpos is the position in the stage's closedQ, counted from the
	// stage's first (Stage.closedBase), of its latest entry there.
	qpos int
}

// recentClosed is how many closed alerts the stage remembers so that a
// finding arriving after its window closed (a backfill posted to a live
// server, whose watermark follows the wall clock) joins the alert it
// belongs to instead of opening a duplicate.
const recentClosed = 4096

// closedEntry is one entry of Stage.closedQ: entity k closed alert o.
// An entry whose alert a later closed alert of its entity replaced in
// Stage.closed has o nil: it still counts towards recentClosed, as before,
// but no longer holds the replaced alert (and its findings) in memory, so
// what the stage keeps of closed alerts is one per entity, not one per
// alert closed.
type closedEntry struct {
	k event.EntityKey
	o *open
}

// Stage groups findings into alerts. Create with New.
type Stage struct {
	opts  Options
	open  map[event.EntityKey]*open
	risk  map[event.EntityKey]*entityRisk
	dirty []*open
	// closed remembers recently closed alerts, oldest first in closedQ.
	closed  map[event.EntityKey]*open
	closedQ []closedEntry
	// closedBase is how many entries were taken off closedQ's front: the
	// entry at position p (open.qpos) is closedQ[p-closedBase].
	closedBase int
	raised     int
	nClosed    int
	nFinding   int
	wm         time.Time
	// nextClose is the earliest moment an open alert may close; Advance
	// scans only once the watermark has passed it.
	nextClose time.Time
	// nextSweep is when risk that has decayed to nothing is next dropped.
	nextSweep time.Time
	// held are the findings waiting for the watermark (Ordered).
	held []event.Finding
	// heldBy indexes held by entity (RaiseAhead): the positions in held of
	// each entity's findings, ascending, so a preview touches only its
	// entity's findings. Valid while heldByOK; reordering held (release,
	// Restore) makes it stale, and heldOf rebuilds it on next use.
	heldBy   map[event.EntityKey][]int
	heldByOK bool
	// previewIdx and previewBuf are preview's buffers, reused.
	previewIdx []int
	previewBuf []event.Finding
	// early are the alerts raised ahead of ordered processing by an
	// Immediate finding and not yet raised by it, by id (Ordered).
	early map[string]*event.Alert
	// scratch is the stage the previews of Immediate findings run on
	// (Ordered; made on first use).
	scratch *Stage
	// scratchClosed are the alerts the scratch stage closed in the
	// preview running (its sink); previews counts previews made.
	scratchClosed []event.Alert
	previews      int

	alerts     *prometheus.CounterVec
	openG      prometheus.Gauge
	findings   prometheus.Counter
	weak       *prometheus.CounterVec
	suppressed prometheus.Counter
	tracked    prometheus.Gauge
	withdrawn  *prometheus.CounterVec
	ahead      prometheus.Counter
	superseded prometheus.Counter
}

// New builds a stage.
func New(opts Options) (*Stage, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Stage{
		opts:   opts,
		open:   map[event.EntityKey]*open{},
		risk:   map[event.EntityKey]*entityRisk{},
		closed: map[event.EntityKey]*open{},
		early:  map[string]*event.Alert{},
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haechi_alerts_total",
			Help: "Alerts raised, per detector (of the finding that raised it) and severity.",
		}, []string{"detector", "severity"}),
		openG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "haechi_alerts_open",
			Help: "Alerts whose session window is still open.",
		}),
		findings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haechi_alert_findings_total",
			Help: "Findings processed by the alert stage.",
		}),
		weak: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haechi_findings_below_alert_score_total",
			Help: "Findings that added risk without raising an alert (the entity stayed below alerts.risk_threshold), per detector.",
		}, []string{"detector"}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haechi_findings_suppressed_total",
			Help: "Findings that added no risk because a suppression covered them.",
		}),
		tracked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "haechi_risk_entities",
			Help: "Entities holding risk that has not decayed away.",
		}),
		withdrawn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haechi_findings_withdrawn_total",
			Help: "Withdrawals of findings (a late event proved them wrong), by result: alert_stands, alert_withdrawn, or not_found (the stage no longer holds the finding).",
		}, []string{"result"}),
		ahead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haechi_alerts_raised_ahead_total",
			Help: "Alerts raised by an immediate finding ahead of ordered processing (alerts.ordered, cluster mode).",
		}),
		superseded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haechi_alerts_superseded_total",
			Help: "Alerts raised ahead of ordered processing that it did not confirm: a finding earlier in event time arrived later and put the immediate finding into another alert of its entity (alerts.ordered).",
		}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.alerts, s.openG, s.findings, s.weak, s.suppressed, s.tracked, s.withdrawn, s.ahead, s.superseded)
	}
	return s, nil
}

// withDefaults checks opts and fills in the defaults.
func (opts Options) withDefaults() (Options, error) {
	if opts.Window < 0 || opts.Lateness < 0 || opts.MaxFindings < 0 || opts.RiskThreshold < 0 || opts.RiskHalfLife < 0 || opts.RepeatCap < 0 || opts.PrivilegedMultiplier < 0 {
		return opts, fmt.Errorf("alert: window, lateness, max findings, risk threshold, half-life, repeat cap and privileged multiplier must not be negative")
	}
	if opts.Window == 0 {
		opts.Window = time.Hour
	}
	if opts.MaxSpan == 0 {
		opts.MaxSpan = 24 * time.Hour
	}
	if opts.MaxSpan < opts.Window {
		opts.MaxSpan = opts.Window
	}
	if opts.Lateness == 0 {
		opts.Lateness = 5 * time.Minute
	}
	if opts.MaxFindings == 0 {
		opts.MaxFindings = 100
	}
	if opts.RiskThreshold == 0 {
		opts.RiskThreshold = DefaultRiskThreshold
	}
	if opts.RiskHalfLife == 0 {
		opts.RiskHalfLife = DefaultRiskHalfLife
	}
	if opts.RepeatCap == 0 {
		opts.RepeatCap = 1
	}
	if opts.PrivilegedMultiplier == 0 {
		opts.PrivilegedMultiplier = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return opts, nil
}

// Defaults of the risk model.
const (
	DefaultRiskThreshold = 90
	DefaultRiskHalfLife  = 24 * time.Hour
)

// Raised returns how many alerts have been raised so far.
func (s *Stage) Raised() int { return s.raised }

// Findings returns how many findings have been processed so far.
func (s *Stage) Findings() int { return s.nFinding }

// Previews returns how many previews of immediate findings the stage has
// made (Ordered with RaiseAhead; see Process).
func (s *Stage) Previews() int { return s.previews }

// Open returns how many alerts are open.
func (s *Stage) Open() int { return len(s.open) }

// Process folds findings into alerts. Sinks hear Raised for each new alert
// as it opens and Updated once, at the end, for each alert that gained
// findings here.
//
// Ordered, findings are held for ordered processing (Advance); with
// RaiseAhead an Immediate finding is not kept waiting: it is previewed at
// once — once per entity for all the findings of one call (see
// previewArrived), so a caller hands over what arrived together. The
// preview runs ordered processing ahead, on a copy of its entity's state
// (open alert, risk, recently closed alert), over the held findings of the
// entity up to and including it — what ordered processing will do when it
// gets there, as far as the findings that have arrived tell. Sinks hear
// the alert the finding lands in: Raised if it is new (the alert is then
// "raised ahead" and remembered, with its id, in early and in snapshots),
// Updated if sinks already know it. When ordered processing reaches the
// finding it makes the alert again — the same id, since the id is the
// entity, the opening finding's detector and its time — and sinks hear
// Updated, not Raised a second time, and every later change as usual: the
// final alert is the ordered one, whatever the preview showed. An alert is
// thus raised at its immediate finding's arrival and, from there on, is
// exactly the alert ordered processing makes (later non-immediate findings
// of its window join it in event-time order as they would have anyway).
//
// The preview can be wrong only if a finding of the same entity, earlier
// in event time, arrives after the immediate one and changes which alert
// covers it (it opens one earlier, or extends an earlier window over it),
// or if ordered processing does not alert on the finding (a withdrawal of
// it arrived; a preview is not made for a finding whose withdrawal is
// already held). Then, once ordered processing has passed the preview's
// opening time, the alert raised ahead is superseded: sinks hear it
// Withdrawn — state event.AlertWithdrawn, findings as previewed, an
// explanation starting with SupersededPrefix that names the alert holding
// the findings — and haechi_alerts_superseded_total counts it. Withdrawn,
// not closed: the alerts that stand are exactly ordered processing's, and
// a responder cancels what it planned for the preview and not yet did (the
// alert holding the findings plans for itself).
func (s *Stage) Process(findings []event.Finding) {
	if s.opts.Ordered {
		n := len(s.held)
		s.held = append(s.held, findings...)
		if s.heldByOK {
			for i := n; i < len(s.held); i++ {
				k := s.held[i].Entity
				s.heldBy[k] = append(s.heldBy[k], i)
			}
		}
		if s.opts.RaiseAhead {
			s.previewArrived(n)
		}
		return
	}
	for i := range findings {
		s.addOrWithdraw(&findings[i])
	}
	s.updated()
}

// previewArrived previews, once per entity, the entities of the immediate
// findings held from position n on (those of one Process call), in the
// order of each entity's last immediate finding among them. A preview
// reaches the entity's latest immediate finding held and processes every
// held finding of the entity up to it, so previewing after each immediate
// finding of the call (as it was done) showed states the entity's last
// preview replaces — at a cost quadratic in an entity's burst of held
// findings. What one preview passes over is not lost: an alert it closes
// on the way (its window ended before a later finding) that holds an
// immediate finding of the call is shown too, as the alert that finding
// lands in, so every immediate finding's alert is raised by the end of the
// call that brought it. Ordered processing makes the alerts that stand
// regardless; only intermediate versions sinks heard differ.
func (s *Stage) previewArrived(n int) {
	var ks []event.EntityKey
	var seen map[event.EntityKey]bool
	for i := len(s.held) - 1; i >= n; i-- {
		h := &s.held[i]
		if !h.Immediate || h.Withdraws != 0 {
			continue
		}
		if len(ks) < 8 && seen == nil {
			if slices.Contains(ks, h.Entity) {
				continue
			}
		} else {
			if seen == nil {
				seen = make(map[event.EntityKey]bool, 2*len(ks))
				for _, k := range ks {
					seen[k] = true
				}
			}
			if seen[h.Entity] {
				continue
			}
			seen[h.Entity] = true
		}
		ks = append(ks, h.Entity)
	}
	for i := len(ks) - 1; i >= 0; i-- {
		k := ks[i]
		j := s.lastStanding(k)
		if j < 0 {
			continue
		}
		var fresh []time.Time // of the call's immediate findings of k but the last
		for _, p := range s.heldOf(k) {
			if h := &s.held[p]; p >= n && p != j && h.Immediate && h.Withdraws == 0 {
				fresh = append(fresh, h.Time)
			}
		}
		s.previewWith(s.held[j], fresh)
	}
}

func (s *Stage) addOrWithdraw(f *event.Finding) {
	if f.Withdraws != 0 {
		s.withdraw(f)
		return
	}
	s.add(f)
}

// updated tells the sinks about alerts that gained findings.
func (s *Stage) updated() {
	for _, o := range s.dirty {
		if o.dirty {
			o.dirty = false
			s.emit(Updated, &o.a)
		}
	}
	s.dirty = s.dirty[:0]
	s.openG.Set(float64(len(s.open)))
}

func (s *Stage) add(f *event.Finding) {
	s.findings.Inc()
	s.nFinding++
	k := f.Entity
	o := s.open[k]
	if o != nil && !f.Time.Before(o.a.WindowEnd) {
		s.close(k, o)
		o = nil
	}
	if o == nil {
		// A late finding for a window that has already closed reopens it;
		// it closes again (and sinks hear Closed again) at the next Advance.
		if c := s.closed[k]; c != nil && !f.Time.Before(c.a.WindowStart) && f.Time.Before(c.a.WindowEnd) {
			delete(s.closed, k)
			o = c
			o.a.State = event.AlertOpen
			s.open[k] = o
			s.nextClose = time.Time{} // rescan at the next Advance
		}
	}
	r := s.risk[k]
	if r == nil {
		r = &entityRisk{}
		s.risk[k] = r
	}
	f.Contribution = 0
	id, suppressed := s.suppress(f)
	if suppressed {
		s.suppressed.Inc()
		f.Explanation = strings.TrimSpace(f.Explanation) + " (Suppressed by " + id + ": no risk added.)"
		f.Immediate = false
	} else {
		f.Contribution = round1(r.add(f, s.opts.RiskHalfLife, s.opts.RepeatCap, s.opts.PrivilegedMultiplier))
	}
	risk := r.total(f.Time, s.opts.RiskHalfLife, s.opts.PrivilegedMultiplier)
	if o != nil {
		s.join(o, f, risk)
		s.scored(f, risk, o.a.ID, suppressed)
		return
	}
	if !f.Immediate && risk < s.opts.RiskThreshold {
		if f.Contribution > 0 {
			r.keep(f)
		}
		s.weak.WithLabelValues(f.Detector).Inc()
		s.scored(f, risk, "", suppressed)
		return
	}
	// Raise: the alert carries the finding and every earlier one still
	// holding risk, by contribution.
	contrib := r.take(f.Time, s.opts.RiskHalfLife)
	contrib = append(contrib, *f)
	sortByContribution(contrib)
	top := &contrib[0]
	if f.Immediate {
		top = f
	}
	a := event.Alert{
		ID:          ID(f.Entity, top.Detector, f.Time),
		Time:        f.Time,
		Entity:      f.Entity,
		Risk:        round1(risk),
		Title:       top.Title,
		State:       event.AlertOpen,
		Detector:    top.Detector,
		WindowStart: f.Time,
		WindowEnd:   f.Time.Add(s.opts.Window),
		LastTime:    f.Time,
	}
	o = &open{a: a}
	for i := range contrib {
		c := &contrib[i]
		s.append(o, c)
		a := &o.a
		a.Score = max(a.Score, c.Score)
		a.Severity = max(a.Severity, c.Severity)
	}
	// Corroboration raises the severity a step: findings of two or more
	// detectors that add up to the threshold are more than either alone.
	if dets := countDetectors(contrib); dets >= 2 && !f.Immediate && o.a.Severity < event.SeverityCritical {
		o.a.Severity++
	}
	o.expl = explain(top, contrib, risk, s.opts.RiskThreshold, s.opts.PrivilegedMultiplier, f.Immediate)
	o.a.Explanation = o.expl
	s.open[k] = o
	if c := o.a.WindowEnd.Add(s.opts.Lateness); len(s.open) == 1 || c.Before(s.nextClose) {
		s.nextClose = c
	}
	if _, ahead := s.early[o.a.ID]; ahead {
		// Raised ahead by its immediate finding: sinks know it, and hear
		// Updated with what ordered processing made of it; the finding
		// sinks hear the finding now, as for any other (the preview told
		// them nothing).
		delete(s.early, o.a.ID)
		o.dirty = true
		s.dirty = append(s.dirty, o)
		s.scored(f, risk, o.a.ID, suppressed)
		return
	}
	s.raised++
	s.alerts.WithLabelValues(o.a.Detector, o.a.Severity.String()).Inc()
	// The finding sinks hear the finding before the alert sinks hear the
	// alert, as they do for a finding that joins an open alert: a sink
	// that answers the alert (a drill's verdict, which keeps the run's
	// findings) then has every finding the alert holds.
	s.scored(f, risk, o.a.ID, suppressed)
	s.emit(Raised, &o.a)
}

// scored tells the finding sinks about f.
func (s *Stage) scored(f *event.Finding, risk float64, alertID string, suppressed bool) {
	for _, sink := range s.opts.FindingSinks {
		sc := Scored{Finding: *f, Risk: round1(risk), Threshold: s.opts.RiskThreshold, Alert: alertID, Suppressed: suppressed}
		sc.Finding.Evidence = slices.Clip(sc.Finding.Evidence)
		sink.Finding(sc)
	}
}

// preview raises, ahead of ordered processing, the alert the immediate
// finding f (held already) lands in (Ordered; see Process).
func (s *Stage) preview(f event.Finding) { s.previewWith(f, nil) }

// previewWith is preview that also shows each alert the preview closes on
// its way to f that holds an immediate finding at one of the times fresh
// (see previewArrived): one whose span, from its opening to its last
// finding, covers the time (an entity's alerts do not overlap in event
// time, and an alert may keep fewer findings than it holds, MaxFindings).
func (s *Stage) previewWith(f event.Finding, fresh []time.Time) {
	k := f.Entity
	fs, ok := s.previewFindings(&f)
	if !ok {
		return // already withdrawn: ordered processing will not alert on it
	}
	s.previews++
	defer func() { clear(fs) }() // the buffer is reused; let go of what it refers to
	sc := s.scratch
	if sc == nil {
		opts := s.opts
		opts.Ordered, opts.Sinks, opts.FindingSinks, opts.Registerer = false, nil, nil, nil
		var err error
		if sc, err = New(opts); err != nil {
			return // s's options were valid
		}
		s.scratch = sc
	}
	clear(s.scratchClosed)
	s.scratchClosed = s.scratchClosed[:0]
	if len(fresh) > 0 {
		// Hear what the scratch stage closes on the way (only then: its
		// sinks copy every alert they hear).
		sc.opts.Sinks = []Sink{SinkFunc(func(c Change, a event.Alert) {
			if c == Closed {
				s.scratchClosed = append(s.scratchClosed, a)
			}
		})}
		defer func() { sc.opts.Sinks = nil }()
	}
	clear(sc.open)
	clear(sc.risk)
	clear(sc.closed)
	sc.closedQ, sc.closedBase, sc.dirty = sc.closedQ[:0], 0, sc.dirty[:0]
	sc.wm, sc.nextClose, sc.nextSweep = s.wm, s.nextClose, s.nextSweep
	if o := s.open[k]; o != nil {
		sc.open[k] = o.clone()
	}
	if o := s.closed[k]; o != nil {
		sc.closed[k] = o.clone()
	}
	if r := s.risk[k]; r != nil {
		sc.risk[k] = &entityRisk{dets: slices.Clone(r.dets), kept: slices.Clone(r.kept)}
	}
	for i := range fs {
		sc.sweepOrdered(fs[i].Time)
		sc.addOrWithdraw(&fs[i])
	}
	for i := range s.scratchClosed {
		a := &s.scratchClosed[i]
		if slices.ContainsFunc(fresh, func(t time.Time) bool { return !t.Before(a.WindowStart) && !t.After(a.LastTime) }) {
			a.State = event.AlertOpen // as it was when its immediate finding came
			s.showAhead(a)
		}
	}
	o := sc.open[k]
	if o == nil {
		return // suppressed: no alert
	}
	s.showAhead(&o.a)
}

// showAhead tells the sinks of the alert a preview made: Raised (and
// remembered as raised ahead) unless they know it already.
func (s *Stage) showAhead(a *event.Alert) {
	k := a.Entity
	known := s.early[a.ID] != nil
	if m := s.open[k]; m != nil && m.a.ID == a.ID {
		known = true
	}
	if m := s.closed[k]; m != nil && m.a.ID == a.ID {
		known = true
	}
	if known {
		if e := s.early[a.ID]; e != nil {
			*e = cloneAlert(a)
		}
		s.emit(Updated, a)
		return
	}
	e := cloneAlert(a)
	s.early[a.ID] = &e
	s.raised++
	s.ahead.Inc()
	s.alerts.WithLabelValues(a.Detector, a.Severity.String()).Inc()
	s.emit(Raised, a)
}

// previewFindings returns copies of the held findings of f's entity up to
// and including f, in event-time order (ties in held's order), for a
// preview of f to process; ok is false if a withdrawal of f is held. The
// slice is s.previewBuf: valid until the next call.
func (s *Stage) previewFindings(f *event.Finding) (fs []event.Finding, ok bool) {
	id := f.ID()
	idx := s.previewIdx[:0]
	for _, i := range s.heldOf(f.Entity) {
		h := &s.held[i]
		if h.Withdraws == id {
			return nil, false
		}
		if compareFindingRefs(h, f) <= 0 {
			idx = append(idx, i)
		}
	}
	// Sort positions, not findings; stable, and the positions ascend, so
	// ties keep held's order.
	slices.SortStableFunc(idx, func(i, j int) int { return compareFindingRefs(&s.held[i], &s.held[j]) })
	fs = s.previewBuf[:0]
	for _, i := range idx {
		fs = append(fs, s.held[i])
	}
	s.previewIdx, s.previewBuf = idx, fs
	return fs, true
}

// heldOf returns the positions in held of entity k's findings, ascending,
// rebuilding the index if held was reordered since it was built.
func (s *Stage) heldOf(k event.EntityKey) []int {
	if !s.heldByOK {
		if s.heldBy == nil {
			s.heldBy = map[event.EntityKey][]int{}
		}
		for e, is := range s.heldBy {
			s.heldBy[e] = is[:0]
		}
		for i := range s.held {
			e := s.held[i].Entity
			s.heldBy[e] = append(s.heldBy[e], i)
		}
		for e, is := range s.heldBy {
			if len(is) == 0 {
				delete(s.heldBy, e)
			}
		}
		s.heldByOK = true
	}
	return s.heldBy[k]
}

// supersede withdraws the alerts raised ahead whose opening time ordered
// processing has passed (all of them if all) without raising them: a
// finding earlier in event time put their immediate finding into another
// alert, or ordered processing did not alert on it (suppressed, withdrawn;
// see Process).
func (s *Stage) supersede(horizon time.Time, all bool) {
	if len(s.early) == 0 {
		return
	}
	var ids []string
	for id, a := range s.early {
		if all || !a.Time.After(horizon) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		a := s.early[id]
		delete(s.early, id)
		into := "no alert holds them in event-time order (suppressed or withdrawn)"
		for _, o := range []*open{s.open[a.Entity], s.closed[a.Entity]} {
			if o != nil && slices.ContainsFunc(a.Findings, func(f event.Finding) bool { return f.Immediate && holding(o, f.ID()) >= 0 }) {
				into = "in event-time order its findings belong to alert " + o.a.ID
				break
			}
		}
		a.State = event.AlertWithdrawn
		a.Explanation = SupersededPrefix + "raised ahead of ordered processing; " + into + ". " + strings.TrimSpace(a.Explanation)
		s.superseded.Inc()
		s.opts.Logger.Info("alert: an alert raised ahead of ordered processing is superseded", "id", id, "entity", a.Entity.String(), "into", into)
		s.emit(Withdrawn, a)
	}
}

// SupersededPrefix begins the explanation of an alert raised ahead of
// ordered processing and superseded (Options.RaiseAhead).
const SupersededPrefix = "Superseded: "

// Superseded reports whether a is an alert raised ahead of ordered
// processing that ordered processing did not confirm (Options.RaiseAhead):
// withdrawn, its findings stand in another alert or in none. Comparisons of
// a cluster's alerts with one process's leave these out.
func Superseded(a *event.Alert) bool {
	return a.State == event.AlertWithdrawn && strings.HasPrefix(a.Explanation, SupersededPrefix)
}

func (o *open) clone() *open {
	c := *o
	c.a = cloneAlert(&o.a)
	return &c
}

func cloneAlert(a *event.Alert) event.Alert {
	c := *a
	c.Findings = slices.Clone(a.Findings)
	return c
}

func (s *Stage) suppress(f *event.Finding) (string, bool) {
	if s.opts.Suppressor == nil {
		return "", false
	}
	return s.opts.Suppressor.SuppressFinding(f)
}

// join adds f to the open alert o.
func (s *Stage) join(o *open, f *event.Finding, risk float64) {
	s.append(o, f)
	a := &o.a
	a.Risk = max(a.Risk, round1(risk))
	if f.Score > a.Score {
		a.Score = f.Score
	}
	if f.Severity > a.Severity {
		a.Severity = f.Severity
	}
	if f.Time.After(a.LastTime) {
		a.LastTime = f.Time
	}
	// A session window: activity that goes on keeps its alert open, up to
	// MaxSpan from the first finding, so a sustained attack is one alert
	// a day per entity rather than one an hour.
	if end := minTime(f.Time.Add(s.opts.Window), a.WindowStart.Add(s.opts.MaxSpan)); end.After(a.WindowEnd) {
		a.WindowEnd = end
	}
	if !o.dirty {
		o.dirty = true
		s.dirty = append(s.dirty, o)
	}
}

// explain is the alert's explanation: the top finding's sentence and, when
// others contributed, how the risk added up.
func explain(top *event.Finding, contrib []event.Finding, risk, threshold, mult float64, immediate bool) string {
	e := strings.TrimSpace(top.Explanation)
	if len(contrib) < 2 {
		return e
	}
	var b strings.Builder
	b.WriteString(e)
	if immediate {
		fmt.Fprintf(&b, " Also on record for %s:", top.Entity)
	} else if mult != 1 && slices.ContainsFunc(contrib, func(f event.Finding) bool { return f.Privileged }) {
		fmt.Fprintf(&b, " Risk %.0f (alert at %.0f; a privileged identity's, weighed ×%g) from:", risk, threshold, mult)
	} else {
		fmt.Fprintf(&b, " Risk %.0f (alert at %.0f) from:", risk, threshold)
	}
	// The others, one line per detector and kind, with what they added.
	type line struct {
		title string
		add   float64
		n     int
	}
	var lines []line
	idx := map[[2]string]int{}
	for i := range contrib {
		c := &contrib[i]
		if c.Detector == top.Detector && c.Kind == top.Kind && c.Time.Equal(top.Time) {
			continue
		}
		k := [2]string{c.Detector, c.Kind}
		j, ok := idx[k]
		if !ok {
			j = len(lines)
			idx[k] = j
			lines = append(lines, line{title: c.Title})
		}
		lines[j].add += c.Contribution
		lines[j].n++
	}
	for i, l := range lines {
		if i == 4 {
			fmt.Fprintf(&b, " and %d more", len(lines)-i)
			break
		}
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s", l.title)
		if l.n > 1 {
			fmt.Fprintf(&b, " ×%d", l.n)
		}
		fmt.Fprintf(&b, " (+%.0f)", l.add)
	}
	b.WriteString(".")
	return b.String()
}

func countDetectors(fs []event.Finding) int {
	var seen []string
	for i := range fs {
		if l := lineOf(&fs[i]); fs[i].Contribution > 0 && !slices.Contains(seen, l) {
			seen = append(seen, l)
		}
	}
	return len(seen)
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *Stage) append(o *open, f *event.Finding) {
	o.a.FindingCount++
	if len(o.a.Findings) < s.opts.MaxFindings || !slices.ContainsFunc(o.a.Findings, func(x event.Finding) bool {
		return x.Detector == f.Detector && x.Kind == f.Kind
	}) {
		// Beyond the cap, the first finding of each detector and kind is
		// still kept: playbooks match on them.
		o.a.Findings = append(o.a.Findings, *f)
	}
}

// Advance closes every alert whose window ended more than the allowed
// lateness before wm, oldest first. wm must be the minimum watermark over
// all producers of findings; it never moves backwards.
func (s *Stage) Advance(wm time.Time) {
	if !wm.After(s.wm) {
		return
	}
	s.wm = wm
	if s.opts.Ordered {
		s.release(wm.Add(-s.opts.Lateness), false)
	} else if !s.nextSweep.After(wm) {
		s.sweep(wm)
	}
	if len(s.open) == 0 || !s.nextClose.Before(wm) {
		return
	}
	var done []event.EntityKey
	var next time.Time
	for k, o := range s.open {
		c := o.a.WindowEnd.Add(s.opts.Lateness)
		if c.Before(wm) {
			done = append(done, k)
		} else if next.IsZero() || c.Before(next) {
			next = c
		}
	}
	s.nextClose = next
	s.closeAll(done)
}

// sweep drops entities whose risk has decayed below one point (and that
// have no open alert), at most once an hour of event time.
func (s *Stage) sweep(wm time.Time) {
	s.nextSweep = wm.Add(time.Hour)
	for k, r := range s.risk {
		if _, open := s.open[k]; !open && r.total(wm, s.opts.RiskHalfLife, s.opts.PrivilegedMultiplier) < 1 {
			delete(s.risk, k)
		}
	}
	s.tracked.Set(float64(len(s.risk)))
}

// Tracked returns how many entities hold risk.
func (s *Stage) Tracked() int { return len(s.risk) }

// release processes the held findings with times up to horizon (all of
// them if all), in event-time order (Ordered).
func (s *Stage) release(horizon time.Time, all bool) {
	if len(s.held) == 0 {
		s.sweepOrdered(horizon)
		s.supersede(horizon, all)
		return
	}
	slices.SortStableFunc(s.held, compareFindings)
	s.heldByOK = false // positions changed
	n := len(s.held)
	if !all {
		n, _ = slices.BinarySearchFunc(s.held, horizon, func(f event.Finding, t time.Time) int {
			if f.Time.After(t) {
				return 1
			}
			return -1
		})
	}
	var touched []event.EntityKey
	for i := range n {
		f := &s.held[i]
		s.sweepOrdered(f.Time)
		s.addOrWithdraw(f)
		if s.opts.RaiseAhead && !slices.Contains(touched, f.Entity) {
			touched = append(touched, f.Entity)
		}
	}
	s.held = slices.Delete(s.held, 0, n)
	if !all {
		s.sweepOrdered(horizon)
	}
	s.updated()
	s.supersede(horizon, all)
	// Sinks just heard what ordered processing made of these entities'
	// alerts so far; where immediate findings of theirs are still held,
	// the preview goes on showing them (a store keeps the last version).
	for _, k := range touched {
		if i := s.lastImmediate(k); i >= 0 {
			s.preview(s.held[i])
		}
	}
}

// lastStanding is lastImmediate among the immediate findings whose
// withdrawal is not held (a preview of one whose is shows nothing: one
// finding after another in a call, the others were shown before its
// withdrawal came).
func (s *Stage) lastStanding(k event.EntityKey) int {
	var gone []event.FindingID
	for _, i := range s.heldOf(k) {
		if w := s.held[i].Withdraws; w != 0 {
			gone = append(gone, w)
		}
	}
	if len(gone) == 0 {
		return s.lastImmediate(k)
	}
	j := -1
	for _, i := range s.heldOf(k) {
		if h := &s.held[i]; h.Immediate && h.Withdraws == 0 && (j < 0 || compareFindingRefs(h, &s.held[j]) > 0) && !slices.Contains(gone, h.ID()) {
			j = i
		}
	}
	return j
}

// lastImmediate returns the index of the latest held immediate finding of
// entity k (in event-time order), or -1.
func (s *Stage) lastImmediate(k event.EntityKey) int {
	j := -1
	for _, i := range s.heldOf(k) {
		if h := &s.held[i]; h.Immediate && h.Withdraws == 0 && (j < 0 || compareFindingRefs(h, &s.held[j]) > 0) {
			j = i
		}
	}
	return j
}

// sweepOrdered drops decayed risk at each hour of event time up to t, as
// processing in event-time order reaches it (Ordered): every finding before
// the hour has been processed, none after it.
func (s *Stage) sweepOrdered(t time.Time) {
	if t.Before(s.nextSweep) || t.After(maxSweep) {
		return
	}
	h := t.Truncate(time.Hour)
	s.sweep(h)
	s.nextSweep = h.Add(time.Hour)
}

// maxSweep bounds sweeps: horizons at the end of input (EndOfTime) do not
// sweep.
var maxSweep = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)

// compareFindings orders findings by time, then by content.
func compareFindings(x, y event.Finding) int { return compareFindingRefs(&x, &y) }

// compareFindingRefs is compareFindings without copying the findings.
func compareFindingRefs(x, y *event.Finding) int {
	if c := x.Time.Compare(y.Time); c != 0 {
		return c
	}
	// A withdrawal carries the time of the finding it withdraws: after it.
	if xw, yw := x.Withdraws != 0, y.Withdraws != 0; xw != yw {
		if xw {
			return 1
		}
		return -1
	}
	if c := strings.Compare(string(x.Entity.Kind), string(y.Entity.Kind)); c != 0 {
		return c
	}
	if c := strings.Compare(x.Entity.ID, y.Entity.ID); c != 0 {
		return c
	}
	if c := strings.Compare(x.Detector, y.Detector); c != 0 {
		return c
	}
	if c := strings.Compare(x.Kind, y.Kind); c != 0 {
		return c
	}
	if x.Score != y.Score {
		if x.Score < y.Score {
			return -1
		}
		return 1
	}
	if c := strings.Compare(x.Title, y.Title); c != 0 {
		return c
	}
	if c := strings.Compare(x.Explanation, y.Explanation); c != 0 {
		return c
	}
	if c := slices.Compare(x.Evidence, y.Evidence); c != 0 {
		return c
	}
	return cmp.Compare(x.Withdraws, y.Withdraws)
}

// Flush closes every open alert (end of input), processing held findings
// first.
func (s *Stage) Flush() {
	if s.opts.Ordered {
		s.release(time.Time{}, true)
	}
	done := make([]event.EntityKey, 0, len(s.open))
	for k := range s.open {
		done = append(done, k)
	}
	s.closeAll(done)
}

func (s *Stage) closeAll(keys []event.EntityKey) {
	slices.SortFunc(keys, func(x, y event.EntityKey) int {
		a, b := &s.open[x].a, &s.open[y].a
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, k := range keys {
		s.close(k, s.open[k])
	}
	s.openG.Set(float64(len(s.open)))
}

func (s *Stage) close(k event.EntityKey, o *open) {
	delete(s.open, k)
	// The risk the alert spent is cleared: the next alert for the entity
	// needs new evidence.
	delete(s.risk, k)
	if o.dirty {
		// Findings joined it since sinks last heard of it (in this
		// Process, or this release when Ordered): they hear Updated
		// before Closed, as a responder plans on updates, not closes.
		o.dirty = false
		s.emit(Updated, &o.a)
	}
	a := &o.a
	sortByContribution(a.Findings)
	a.Explanation = finalExplanation(o)
	s.nClosed++
	s.emit(Closed, a)
	s.remember(k, o)
}

// finalExplanation is a closed alert's explanation: with the number of its
// findings when there are several.
func finalExplanation(o *open) string {
	if o.a.FindingCount > 1 {
		return strings.TrimSpace(o.expl) + " (" + strconv.Itoa(o.a.FindingCount) + " findings in this alert.)"
	}
	return o.expl
}

// remember keeps the closed alert o for late findings and withdrawals,
// forgetting the oldest beyond the cap.
// An alert that o replaces in closed can never be found again: its latest
// entry in the queue lets go of it.
func (s *Stage) remember(k event.EntityKey, o *open) {
	if prev := s.closed[k]; prev != nil && prev != o {
		if i := prev.qpos - s.closedBase; i >= 0 && i < len(s.closedQ) && s.closedQ[i].o == prev {
			s.closedQ[i].o = nil
		}
	}
	s.closed[k] = o
	o.qpos = s.closedBase + len(s.closedQ)
	s.closedQ = append(s.closedQ, closedEntry{k, o})
	for len(s.closedQ) > recentClosed {
		old := s.closedQ[0]
		s.closedQ[0] = closedEntry{}
		s.closedQ = s.closedQ[1:]
		s.closedBase++
		if old.o != nil && s.closed[old.k] == old.o {
			delete(s.closed, old.k)
		}
	}
}

// emit hands every sink its own copy of the alert: a sink may keep it
// while the stage goes on appending findings.
func (s *Stage) emit(c Change, a *event.Alert) {
	for _, sink := range s.opts.Sinks {
		cp := *a
		cp.Findings = slices.Clone(a.Findings)
		for i := range cp.Findings {
			cp.Findings[i].Evidence = slices.Clip(cp.Findings[i].Evidence)
		}
		sink.Alert(c, cp)
	}
}

// ID is the deterministic alert id for an entity, detector and window start.
func ID(entity event.EntityKey, detector string, start time.Time) string {
	h := sha256.New()
	h.Write([]byte(entity.Kind))
	h.Write([]byte{0})
	h.Write([]byte(entity.ID))
	h.Write([]byte{0})
	h.Write([]byte(detector))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(start.UnixNano(), 10)))
	return "al-" + hex.EncodeToString(h.Sum(nil)[:10])
}

// withdraw applies the withdrawal w to the alert holding the finding it
// withdraws (see the package comment).
func (s *Stage) withdraw(w *event.Finding) {
	k := w.Entity
	o, isOpen := s.open[k], true
	i := holding(o, w.Withdraws)
	if i < 0 {
		o, isOpen = s.closed[k], false
		i = holding(o, w.Withdraws)
	}
	if i < 0 {
		// Below the threshold it may wait among the entity's kept findings.
		if r := s.risk[k]; r != nil {
			r.kept = slices.DeleteFunc(r.kept, func(f event.Finding) bool { return f.ID() == w.Withdraws })
		}
		s.withdrawn.WithLabelValues("not_found").Inc()
		s.opts.Logger.Debug("alert: withdrawn finding not held", "finding", w.Withdraws.String(), "entity", k.String())
		return
	}
	a := &o.a
	a.Findings = slices.Delete(a.Findings, i, i+1)
	a.FindingCount--
	notice := *w
	notice.Contribution, notice.Immediate = 0, false
	a.Findings = append(a.Findings, notice)

	var standing []event.Finding
	var risk float64
	stands := false
	for _, f := range a.Findings {
		if f.Withdraws == 0 {
			standing = append(standing, f)
			risk += f.Contribution
			stands = stands || f.Immediate
		}
	}
	stands = len(standing) > 0 && (stands || risk >= s.opts.RiskThreshold)
	if stands {
		s.withdrawn.WithLabelValues("alert_stands").Inc()
		sortByContribution(standing)
		top := &standing[0]
		if j := slices.IndexFunc(standing, func(f event.Finding) bool { return f.Immediate }); j >= 0 {
			top = &standing[j]
		}
		a.Title, a.Detector, a.Score, a.Severity = top.Title, top.Detector, 0, 0
		for _, f := range standing {
			a.Score, a.Severity = max(a.Score, f.Score), max(a.Severity, f.Severity)
		}
		a.Risk = round1(risk)
		o.expl = explain(top, standing, risk, s.opts.RiskThreshold, s.opts.PrivilegedMultiplier, top.Immediate) + " Withdrawn from this alert: " + strings.TrimSpace(w.Explanation)
		if isOpen {
			a.Explanation = o.expl
			if !o.dirty {
				o.dirty = true
				s.dirty = append(s.dirty, o)
			}
			return
		}
		sortByContribution(a.Findings)
		a.Explanation = finalExplanation(o)
		s.emit(Closed, a)
		return
	}
	s.withdrawn.WithLabelValues("alert_withdrawn").Inc()
	a.State = event.AlertWithdrawn
	o.expl = "Withdrawn: " + strings.TrimSpace(w.Explanation)
	if len(standing) > 0 {
		o.expl += fmt.Sprintf(" What remains adds up to risk %.0f, below the alert threshold of %.0f, with nothing immediate.", risk, s.opts.RiskThreshold)
	}
	a.Explanation = o.expl
	sortByContribution(a.Findings)
	if isOpen {
		delete(s.open, k)
		delete(s.risk, k)
		o.dirty = false // nothing more to plan for: the withdrawal is final
		s.remember(k, o)
		s.openG.Set(float64(len(s.open)))
	}
	s.emit(Withdrawn, a)
}

// holding returns the index of the finding of ID id among o's findings, or
// -1 (also when o is nil).
func holding(o *open, id event.FindingID) int {
	if o == nil {
		return -1
	}
	return slices.IndexFunc(o.a.Findings, func(f event.Finding) bool { return f.Withdraws == 0 && f.ID() == id })
}
