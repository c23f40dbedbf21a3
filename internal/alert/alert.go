// Package alert turns findings into alerts.
//
// For now (the risk engine of a later issue replaces the grouping rule) an
// alert is one (entity, detector) pair over a session window of event
// time: the first finding opens the window [t, t+Window); every finding
// for the same pair whose time falls before the window's end joins the
// alert and extends the end to its own time + Window, but never beyond
// MaxSpan after the first finding (score and severity are the maximum,
// findings are kept up to MaxFindings, all are counted). A finding after
// the window's end opens a new alert.
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
// Alert IDs are deterministic: a hash of entity, detector and the event time
// of the finding that opened the window, so replaying the same input yields
// the same IDs and the store's upsert makes replays idempotent.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
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

// Options configure New.
type Options struct {
	// Window is the dedup window per entity and detector (0 → 1 hour): an
	// alert stays open until Window has passed without a new finding, and
	// at most MaxSpan (0 → 24 hours, never less than Window) after its
	// first.
	Window  time.Duration
	MaxSpan time.Duration
	// Lateness is how long after a window's end findings may still join it
	// (0 → 5 minutes; the engine's allowed lateness).
	Lateness time.Duration
	// MaxFindings caps the findings kept per alert (0 → 100). Every finding
	// is still counted in FindingCount.
	MaxFindings int
	// MinScore is the lowest finding score that opens an alert on its own.
	// A weaker finding joins an alert already open for its entity and
	// detector, and is otherwise only counted (the risk engine of a later
	// issue adds such findings up). 0 means every finding alerts.
	MinScore float64
	// Sinks receive every change, in order.
	Sinks []Sink
	// Logger (nil → discard) and Registerer (nil → metrics not registered).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

type groupKey struct {
	entity   event.EntityKey
	detector string
}

type open struct {
	a     event.Alert
	expl  string // explanation of the top finding, before the count is added
	dirty bool
}

// recentClosed is how many closed alerts the stage remembers so that a
// finding arriving after its window closed (a backfill posted to a live
// server, whose watermark follows the wall clock) joins the alert it
// belongs to instead of opening a duplicate.
const recentClosed = 4096

type closedEntry struct {
	k groupKey
	o *open
}

// Stage groups findings into alerts. Create with New.
type Stage struct {
	opts  Options
	open  map[groupKey]*open
	dirty []*open
	// closed remembers recently closed alerts, oldest first in closedQ.
	closed   map[groupKey]*open
	closedQ  []closedEntry
	raised   int
	nClosed  int
	nFinding int
	wm       time.Time
	// nextClose is the earliest moment an open alert may close; Advance
	// scans only once the watermark has passed it.
	nextClose time.Time

	alerts   *prometheus.CounterVec
	openG    prometheus.Gauge
	findings prometheus.Counter
	weak     *prometheus.CounterVec
}

// New builds a stage.
func New(opts Options) (*Stage, error) {
	if opts.Window < 0 || opts.Lateness < 0 || opts.MaxFindings < 0 {
		return nil, fmt.Errorf("alert: window, lateness and max findings must not be negative")
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
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Stage{
		opts:   opts,
		open:   map[groupKey]*open{},
		closed: map[groupKey]*open{},
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haechi_alerts_total",
			Help: "Alerts raised, per detector and severity.",
		}, []string{"detector", "severity"}),
		openG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "haechi_alerts_open",
			Help: "Alerts whose dedup window is still open.",
		}),
		findings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haechi_alert_findings_total",
			Help: "Findings processed by the alert stage.",
		}),
		weak: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haechi_findings_below_alert_score_total",
			Help: "Findings below alerts.min_score that did not open an alert, per detector.",
		}, []string{"detector"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.alerts, s.openG, s.findings, s.weak)
	}
	return s, nil
}

// Raised returns how many alerts have been raised so far.
func (s *Stage) Raised() int { return s.raised }

// Findings returns how many findings have been processed so far.
func (s *Stage) Findings() int { return s.nFinding }

// Open returns how many alerts are open.
func (s *Stage) Open() int { return len(s.open) }

// Process folds findings into alerts. Sinks hear Raised for each new alert
// as it opens and Updated once, at the end, for each alert that gained
// findings here.
func (s *Stage) Process(findings []event.Finding) {
	for i := range findings {
		s.add(&findings[i])
	}
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
	k := groupKey{f.Entity, f.Detector}
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
	if o == nil && f.Score < s.opts.MinScore {
		s.weak.WithLabelValues(f.Detector).Inc()
		return
	}
	if o == nil {
		o = &open{a: event.Alert{
			ID:          ID(f.Entity, f.Detector, f.Time),
			Time:        f.Time,
			Entity:      f.Entity,
			Severity:    f.Severity,
			Score:       f.Score,
			Title:       f.Title,
			Explanation: f.Explanation,
			State:       event.AlertOpen,
			Detector:    f.Detector,
			WindowStart: f.Time,
			WindowEnd:   f.Time.Add(s.opts.Window),
			LastTime:    f.Time,
		}, expl: f.Explanation}
		s.append(o, f)
		s.open[k] = o
		if c := o.a.WindowEnd.Add(s.opts.Lateness); len(s.open) == 1 || c.Before(s.nextClose) {
			s.nextClose = c
		}
		s.raised++
		s.alerts.WithLabelValues(f.Detector, f.Severity.String()).Inc()
		s.emit(Raised, &o.a)
		return
	}
	s.append(o, f)
	a := &o.a
	if f.Score > a.Score {
		a.Score = f.Score
		a.Explanation = f.Explanation
		o.expl = f.Explanation
		a.Title = f.Title
	}
	if f.Severity > a.Severity {
		a.Severity = f.Severity
	}
	if f.Time.After(a.LastTime) {
		a.LastTime = f.Time
	}
	// A session window: activity that goes on keeps its alert open, up to
	// MaxSpan from the first finding, so a sustained attack is one alert
	// a day per entity and detector rather than one an hour.
	if end := minTime(f.Time.Add(s.opts.Window), a.WindowStart.Add(s.opts.MaxSpan)); end.After(a.WindowEnd) {
		a.WindowEnd = end
	}
	if !o.dirty {
		o.dirty = true
		s.dirty = append(s.dirty, o)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *Stage) append(o *open, f *event.Finding) {
	o.a.FindingCount++
	if len(o.a.Findings) < s.opts.MaxFindings {
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
	if len(s.open) == 0 || !s.nextClose.Before(wm) {
		return
	}
	var done []groupKey
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

// Flush closes every open alert (end of input).
func (s *Stage) Flush() {
	done := make([]groupKey, 0, len(s.open))
	for k := range s.open {
		done = append(done, k)
	}
	s.closeAll(done)
}

func (s *Stage) closeAll(keys []groupKey) {
	slices.SortFunc(keys, func(x, y groupKey) int {
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

func (s *Stage) close(k groupKey, o *open) {
	delete(s.open, k)
	o.dirty = false
	a := &o.a
	slices.SortStableFunc(a.Findings, func(x, y event.Finding) int { return x.Time.Compare(y.Time) })
	a.Explanation = o.expl
	if a.FindingCount > 1 {
		a.Explanation = strings.TrimSpace(o.expl) + " (" + strconv.Itoa(a.FindingCount) + " findings in this alert.)"
	}
	s.nClosed++
	s.emit(Closed, a)
	// Remember it for late findings, forgetting the oldest beyond the cap.
	s.closed[k] = o
	s.closedQ = append(s.closedQ, closedEntry{k, o})
	for len(s.closedQ) > recentClosed {
		old := s.closedQ[0]
		s.closedQ = s.closedQ[1:]
		if s.closed[old.k] == old.o {
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
