package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/console"
	"github.com/haechi-sec/haechi/internal/drill"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ingest"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

// streamsSeen is the ingest consumer's pipeline with a note of the datasets
// the deployment's own feeds carried (drill events left out): what a drill
// needs to be able to pass (drill.NeedStreams). It looks at a dataset only
// where it changes within a batch.
type streamsSeen struct {
	ingest.Pipeline
	// drills is told of drill events (drill.Runner.NoteDrillEvents).
	drills *drill.Runner
	mu     sync.Mutex
	seen   map[string]bool
}

func (s *streamsSeen) SubmitFrom(ctx context.Context, origin string, arrived time.Time, evs []event.Event) error {
	last, drills := "", false
	for i := range evs {
		drills = drills || evs[i].Drill
		if ev := &evs[i]; !ev.Drill && ev.Dataset != last {
			last = ev.Dataset
			s.mu.Lock()
			if !s.seen[last] {
				if s.seen == nil {
					s.seen = map[string]bool{}
				}
				s.seen[last] = true
			}
			s.mu.Unlock()
		}
	}
	if drills && s.drills != nil {
		s.drills.NoteDrillEvents(evs)
	}
	return s.Pipeline.SubmitFrom(ctx, origin, arrived, evs)
}

// EndOrigin ends a drill run's origin (ingest feeds one per run).
func (s *streamsSeen) EndOrigin(ctx context.Context, origin string) error {
	if e, ok := s.Pipeline.(interface {
		EndOrigin(context.Context, string) error
	}); ok {
		return e.EndOrigin(ctx, origin)
	}
	return nil
}

// Seen reports whether a non-drill event of dataset has been fed.
func (s *streamsSeen) Seen(dataset string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[dataset]
}

// drills builds the drill runner (nil in cluster mode or without the spool:
// drills go through durable ingest) before the pipeline, whose alert sinks
// it joins. The canary drill's reserved record is added to the canary
// detector's records.
func (s *server) drills() {
	if why := s.noDrills(); why != "" {
		if len(s.cfg.Drills.List) > 0 {
			s.log.Warn("drills: none will run", "reason", why)
		}
		return
	}
	if n, err := s.svc.Store.InterruptDrillRuns(context.Background(), interruptedByStop); err != nil {
		s.log.Error("drills: mark runs of a stopped process interrupted", "err", err)
	} else if n > 0 {
		s.log.Warn("drills: runs left undecided by the previous process marked interrupted", "runs", n)
	}
	s.opts.CanaryIDs = append(append([]string(nil), s.opts.CanaryIDs...), drill.CanaryRecord)
	running := map[string]bool{}
	for _, d := range Detectors(s.cfg, s.opts.CanaryIDs) {
		running[d.Name()] = true
	}
	s.streams = &streamsSeen{}
	r, err := drill.New(drill.Options{
		Definitions: s.cfg.Drills.Definitions(),
		Inject: func(ctx context.Context, run string, body []byte) error {
			if s.ing == nil {
				return errors.New("durable ingest is not open")
			}
			return s.ing.AppendDrill(ctx, run, body)
		},
		Seen:       s.streams.Seen,
		Running:    func(det string) bool { return running[det] },
		Explain:    s.svc.Planner.Explain,
		Responds:   true,
		OnStart:    s.drillStore,
		OnResult:   s.drillStore,
		OnFailure:  s.drillFailed,
		Logger:     s.log,
		Registerer: s.reg,
	})
	if err != nil {
		// config.Validate checked the definitions: a bug.
		s.log.Error("drills", "err", err)
		return
	}
	s.drill = r
	s.streams.drills = r
	s.svc.KeepDrillsApart(r.IsDrill, r)
	// The runner hears what the planner planned for its alerts: a drill
	// expects its playbook's actions.
	s.svc.Responder.OnPlanned(func(a event.Alert, acts []respond.Action, suppressed string) {
		if !r.IsDrill(a) {
			return
		}
		pa := make([]drill.PlannedAction, len(acts))
		for i, x := range acts {
			pa[i] = drill.PlannedAction{Alert: x.AlertID, Kind: x.Kind, Target: x.Target, Playbook: x.Playbook, Receiver: x.Receiver,
				State: x.State, Reason: x.Reason}
		}
		note := ""
		if suppressed != "" {
			note = "alert " + a.ID + " matched suppression " + suppressed + ": nothing planned for it"
		}
		r.Planned(a, pa, note)
	})
}

// interruptedByStop is the reason of a run the previous process left
// undecided.
const interruptedByStop = "interrupted: serve stopped (a restart, a crash) before the run was decided; no verdict on detection"

// noDrills says why this serve runs no drills ("" when it does).
func (s *server) noDrills() string {
	switch {
	case len(s.cfg.Drills.List) == 0:
		return "drills.list is empty"
	case s.cfg.Kafka.Enabled():
		return "cannot run: drills go through serve's durable ingest (the spool), which cluster mode (kafka) does not use; " +
			"run drills on a single-process serve fed by the same sources"
	case !s.cfg.Spool.Enabled:
		return "cannot run: drills go through serve's durable ingest, and spool.enabled is false"
	}
	return ""
}

// drillStore stores a run's verdict (drill_runs).
func (s *server) drillStore(res drill.Result) {
	if err := s.svc.Store.PutDrillRun(context.Background(), storedRun(res)); err != nil {
		s.log.Error("store drill run", "drill", res.Drill, "run", res.Run, "err", err)
	}
}

func storedRun(r drill.Result) store.DrillRun {
	run := store.DrillRun{Run: r.Run, Drill: r.Drill, Kind: string(r.Kind), Started: r.Started, Status: string(r.Status),
		Reason: r.Reason, TimeToAlert: r.TimeToAlert, Alerts: r.Alerts}
	if !r.Entity.IsZero() {
		run.Entity = r.Entity.String()
	}
	if len(r.AlertDetail)+len(r.Findings)+len(r.Actions) > 0 {
		if b, err := json.Marshal(drillDetail{Alerts: r.AlertDetail, Findings: r.Findings, Actions: r.Actions}); err == nil {
			run.Detail = b
		}
	}
	return run
}

// drillDetail is what a run produced, stored with it (store.DrillRun.Detail)
// and shown by GET /v1/drills/runs/{run}.
type drillDetail struct {
	// Alerts are the run's alerts (about any entity it made up), each
	// with its findings; Findings every scored finding about one (those
	// below the alert threshold too); Actions what the planner planned
	// for the alerts about the drill's entity.
	Alerts   []event.Alert         `json:"alerts"`
	Findings []event.Finding       `json:"findings"`
	Actions  []drill.PlannedAction `json:"actions"`
}

// drillFailed raises the detection-regression alert of a failed run: a
// high alert about the drill (entity kind "drill"), stored with the
// others, whose id is the run's.
func (s *server) drillFailed(res drill.Result) {
	now := time.Now().UTC()
	f := event.Finding{Detector: "drill", Kind: "drill_failed", Title: "Detection regression: drill " + res.Drill + " failed",
		Entity: event.EntityKey{Kind: "drill", ID: res.Drill}, Time: now, Score: 80, Severity: event.SeverityHigh,
		Explanation: fmt.Sprintf("Drill %s (run %s) failed: %s. haechi may no longer catch this attack in this deployment.", res.Drill, res.Run, res.Reason)}
	a := event.Alert{ID: "al-drill-" + res.Run, Time: now, Entity: f.Entity, Severity: event.SeverityHigh, Score: f.Score, Risk: f.Score,
		Title: f.Title, Explanation: f.Explanation, State: event.AlertOpen, Detector: "drill",
		WindowStart: now, WindowEnd: now, FindingCount: 1, LastTime: now, Findings: []event.Finding{f}}
	if err := s.svc.Writer.Put(context.Background(), a); err != nil {
		s.log.Error("drill regression alert", "drill", res.Drill, "err", err)
	}
	s.drillNotify(a)
}

// drillNotify sends the regression alert to the notify receiver: one
// notify action in the outbox, delivered by the dispatcher like any other
// (unless respond.mode is off; skipped, saying so, without a notify
// receiver). The alert is not the alert stage's, so it does not go
// through the responder, whose planner belongs to the pipeline's
// goroutine.
func (s *server) drillNotify(a event.Alert) {
	rc := s.cfg.Respond
	if rc.Mode == respond.ModeOff {
		return
	}
	target := a.Entity.String()
	pl, err := json.Marshal(respond.Payload{Mode: rc.Mode, Alert: respond.AlertSummary{ID: a.ID, Time: a.Time, Entity: a.Entity,
		Severity: a.Severity, Score: a.Score, Title: a.Title, Detector: a.Detector, Explanation: a.Explanation}})
	if err != nil {
		s.log.Error("drill regression notice", "err", err)
		return
	}
	act := respond.Action{ID: respond.ActionID(a.ID, respond.KindNotify, target), Kind: respond.KindNotify, Target: target,
		AlertID: a.ID, Playbook: "drill", Receiver: respond.KindNotify, CreatedAt: a.Time, State: respond.StatePlanned, Payload: pl}
	if _, ok := rc.Receivers[respond.KindNotify]; !ok {
		act.State, act.Reason = respond.StateSkipped, respond.ReasonNoReceiver+" ("+respond.KindNotify+")"
	}
	if _, err := s.svc.Store.InsertActions(context.Background(), []respond.Action{act}, time.Now()); err != nil {
		s.log.Error("drill regression notice", "err", err)
		return
	}
	if s.svc.Dispatcher != nil {
		s.svc.Dispatcher.Wake()
	}
}

// registerDrills mounts the drill API: GET /v1/drills (the drills and the
// latest results, analyst) and POST /v1/drills/{name}/run (admin; waits for
// the result).
func (s *server) registerDrills(h interface {
	Handle(pattern string, need auth.Need, h http.Handler, deny auth.DenyFunc)
}) {
	if s.drill == nil {
		s.registerNoDrills(h)
		return
	}
	r := s.drill
	h.Handle("GET /v1/drills/runs/{run}", auth.NeedAnalyst, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		run, err := s.svc.Store.GetDrillRun(req.Context(), req.PathValue("run"))
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeDrillJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		case err != nil:
			writeDrillJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		out := struct {
			store.DrillRun
			Detail *drillDetail `json:"detail"`
		}{DrillRun: run, Detail: &drillDetail{Alerts: []event.Alert{}, Findings: []event.Finding{}, Actions: []drill.PlannedAction{}}}
		out.DrillRun.Detail = nil
		if len(run.Detail) > 0 {
			if err := json.Unmarshal(run.Detail, out.Detail); err != nil {
				writeDrillJSON(w, http.StatusInternalServerError, map[string]string{"error": "drill run " + run.Run + ": detail: " + err.Error()})
				return
			}
		}
		writeDrillJSON(w, http.StatusOK, out)
	}), nil)
	h.Handle("GET /v1/drills", auth.NeedAnalyst, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		type def struct {
			Name      string          `json:"name"`
			Kind      drill.Kind      `json:"kind"`
			Detectors []string        `json:"detectors"`
			Kinds     []string        `json:"kinds,omitempty"`
			Actions   []string        `json:"actions,omitempty"`
			Within    string          `json:"within"`
			Last      *store.DrillRun `json:"last,omitempty"`
		}
		ctx := req.Context()
		results, err := s.svc.Store.ListDrillRuns(ctx, "", 100)
		if err != nil {
			writeDrillJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		var out struct {
			Scheduled bool             `json:"scheduled"`
			Every     string           `json:"every,omitempty"`
			Drills    []def            `json:"drills"`
			Results   []store.DrillRun `json:"results"`
		}
		out.Scheduled = s.cfg.Drills.Enabled
		if out.Scheduled {
			out.Every = s.cfg.Drills.Every.D().String()
		}
		for _, d := range r.Definitions() {
			x := def{Name: d.Name, Kind: d.Kind, Detectors: d.Expect.Detectors, Kinds: d.Expect.Kinds, Actions: d.Expect.Actions, Within: d.Expect.Within.String()}
			last, err := s.svc.Store.ListDrillRuns(ctx, d.Name, 1)
			if err != nil {
				writeDrillJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
				return
			}
			if len(last) > 0 {
				x.Last = &last[0]
			}
			out.Drills = append(out.Drills, x)
		}
		out.Results = results
		writeDrillJSON(w, http.StatusOK, out)
	}), nil)
	h.Handle("POST /v1/drills/{name}/run", auth.NeedAdmin, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		res, err := r.Run(req.Context(), req.PathValue("name"))
		switch {
		case errors.Is(err, drill.ErrUnknown):
			writeDrillJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		case err != nil && res.Drill == "":
			writeDrillJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeDrillJSON(w, http.StatusOK, res)
	}), nil)
}

// registerNoDrills mounts the drill API of a serve that runs none although
// drills are configured (cluster mode, the spool off): every drill
// answers "cannot run" with the reason, nothing is stored.
func (s *server) registerNoDrills(h interface {
	Handle(pattern string, need auth.Need, h http.Handler, deny auth.DenyFunc)
}) {
	why := s.noDrills()
	if len(s.cfg.Drills.List) == 0 {
		return
	}
	defs := map[string]drill.Definition{}
	for _, d := range s.cfg.Drills.Definitions() {
		defs[d.Name] = d
	}
	h.Handle("GET /v1/drills", auth.NeedAnalyst, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		type def struct {
			Name   string     `json:"name"`
			Kind   drill.Kind `json:"kind"`
			Within string     `json:"within"`
		}
		out := struct {
			Scheduled bool             `json:"scheduled"`
			Unable    string           `json:"cannot_run"`
			Drills    []def            `json:"drills"`
			Results   []store.DrillRun `json:"results"`
		}{Unable: why, Results: []store.DrillRun{}}
		for _, d := range s.cfg.Drills.Definitions() {
			out.Drills = append(out.Drills, def{Name: d.Name, Kind: d.Kind, Within: d.Expect.Within.String()})
		}
		writeDrillJSON(w, http.StatusOK, out)
	}), nil)
	h.Handle("POST /v1/drills/{name}/run", auth.NeedAdmin, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		d, ok := defs[req.PathValue("name")]
		if !ok {
			writeDrillJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("%v: %q", drill.ErrUnknown, req.PathValue("name"))})
			return
		}
		writeDrillJSON(w, http.StatusOK, drill.Result{Drill: d.Name, Kind: d.Kind, Started: time.Now().UTC(), Status: drill.CannotRun, Reason: why})
	}), nil)
}

// drillPassedLookback is how many of a drill's latest stored runs the
// console's overview searches for the last one that passed.
const drillPassedLookback = 200

// drillStatuses reads each drill's latest run and last pass for the
// console's overview (nil without drills: the overview says none run).
func (s *server) drillStatuses() func(ctx context.Context) ([]console.DrillStatus, error) {
	if s.drill == nil {
		return nil
	}
	r := s.drill
	return func(ctx context.Context) ([]console.DrillStatus, error) {
		var out []console.DrillStatus
		for _, d := range r.Definitions() {
			runs, err := s.svc.Store.ListDrillRuns(ctx, d.Name, drillPassedLookback)
			if err != nil {
				return out, err
			}
			st := console.DrillStatus{Name: d.Name, Kind: string(d.Kind), Within: d.Expect.Within}
			if len(runs) > 0 {
				st.Last = &runs[0]
			}
			for _, run := range runs {
				if run.Status == string(drill.Passed) {
					st.LastPassed = run.Started
					break
				}
			}
			out = append(out, st)
		}
		return out, nil
	}
}

// drillFindings counts the drills' findings per detector for the
// console's detection health (nil without drills).
func (s *server) drillFindings() func() map[string]float64 {
	if s.drill == nil {
		return nil
	}
	return s.drill.FoundByDetector
}

func writeDrillJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

var _ ingest.Pipeline = (*streamsSeen)(nil)
