package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/truth"
)

// batchSize is how many decoded events Run submits at once.
const batchSize = 1024

// eventsInput is the input index of the event stream; inputName names it
// for evidence references of events without event.id.
const (
	eventsInput = 1
	inputName   = "events"
)

// Opener opens the event stream. RunWith reads it twice when the response
// is scored, so it must give the same events each time.
type Opener func() (io.ReadCloser, error)

// Run builds the pipeline from cfg (no store), feeds it the NDJSON events,
// letting an Observer see every decoded event before it is submitted, waits
// for every alert to close and scores the closed alerts against t.
//
// With the response in enforce mode (cfg.Respond.Mode), the containments
// the playbooks would deliver are planned from the alerts, and the events
// are read a second time through a Gate that enforces them from their
// event time on, the way the company's gateway would: the scorecard counts
// what the attackers still read with the response in force
// (ScoreWithResponse).
//
// Rejected lines go to onReject (may be nil) and the stream goes on;
// progress (may be nil) hears the number of events submitted so far after
// each batch. A read or submit error stops the feed; the pipeline is still
// drained and the error returned with a zero Scorecard.
func Run(ctx context.Context, cfg config.Config, canaryIDs []string, t *truth.Truth, events Opener,
	onReject func(*decode.LineError), progress func(n int64)) (Scorecard, error) {
	return RunWith(ctx, RunOptions{Config: cfg, CanaryIDs: canaryIDs, Truth: t, Events: events, OnReject: onReject, Progress: progress})
}

// RunOptions configure RunWith: Run's arguments, plus more alert sinks
// (the store writer, to keep the run's alerts) and a ledger (to keep whose
// records were touched), so a scored run can be inspected with `scope` and
// `report` afterwards.
type RunOptions struct {
	Config    config.Config
	CanaryIDs []string
	Truth     *truth.Truth
	Events    Opener
	OnReject  func(*decode.LineError)
	Progress  func(n int64)
	Sinks     []alert.Sink
	// InlineVerify, with the response scored, puts the inline token check
	// in front of the gateway: each API request carrying a token is
	// refused unless a mint registry filled from the stream's own mints,
	// in stream order, allows it (Scorecard.InlineVerify; docs/verify.md).
	// Config.Verify's grace settings apply.
	InlineVerify bool
	// Ledger, if set, records the records the stream exposed — with the
	// response scored, the stream through the gate, so scope agrees with
	// the scorecard: what the attackers read with the response in force.
	Ledger *ledger.Ledger
}

// RunWith is Run with options.
func RunWith(ctx context.Context, o RunOptions) (Scorecard, error) {
	cfg, t := o.Config, o.Truth
	contain := cfg.Respond.Mode == respond.ModeEnforce
	// Closed alerts, last per ID: a late finding can reopen a closed alert,
	// which is then closed again with the same ID. A withdrawn alert (a
	// late event proved its findings wrong) replaces it too, and is then
	// not scored (Score counts it apart): it is no standing alert.
	var alerts []event.Alert
	index := map[string]int{}
	sink := alert.SinkFunc(func(c alert.Change, a event.Alert) {
		if c != alert.Closed && c != alert.Withdrawn {
			return
		}
		if i, ok := index[a.ID]; ok {
			alerts[i] = a
			return
		}
		index[a.ID] = len(alerts)
		alerts = append(alerts, a)
	})
	popts := app.PipelineOptions{
		Config:    cfg,
		CanaryIDs: o.CanaryIDs,
		Sinks:     append([]alert.Sink{sink}, o.Sinks...),
		InputName: func(uint32) string { return inputName },
	}
	if !contain {
		popts.Ledger = o.Ledger
	}
	obs := NewObserver(t)
	err := pass(ctx, popts, o, func(ev *event.Event) { obs.Observe(ev) })
	if err != nil {
		return Scorecard{}, err
	}
	standing := slices.DeleteFunc(slices.Clone(alerts), func(a event.Alert) bool { return a.State == event.AlertWithdrawn })
	// The incidents need what the cited events were: one more read of the
	// stream, shared with the gated one when the response is scored.
	facts := newEventFacts(standing)
	if !contain {
		if err := read(ctx, o, facts.Observe); err != nil {
			return Scorecard{}, err
		}
		sc := Score(t, obs, alerts)
		scoreIncidents(&sc, t, standing, facts)
		return sc, nil
	}
	if o.InlineVerify && !contain {
		return Scorecard{}, errors.New("the inline check is scored with the response (respond mode enforce)")
	}
	cs, err := Containments(cfg.Respond, standing)
	if err != nil {
		return Scorecard{}, err
	}
	gate := NewGate(cs)
	gated := NewObserver(t)
	falsely := newFalseContainer(t, cs)
	var inline *inlineChecker
	if o.InlineVerify {
		inline = newInlineChecker(cfg, t)
	}
	observe := func(ev *event.Event) {
		facts.Observe(ev)
		falsely.Observe(ev)
		if c, ok := gate.Refuse(ev); ok {
			gated.Refused(ev, c)
			falsely.Refused(ev, c)
			Apply(ev)
		} else if inline != nil {
			// The inline check asks before serving; its refusals are
			// scored apart (InlineVerify), not as containments.
			if c, ok := inline.Check(ev); ok {
				gated.Refused(ev, c)
				Apply(ev)
			}
		}
		gated.Observe(ev)
	}
	if o.Ledger != nil {
		err = pass(ctx, app.PipelineOptions{Config: cfg, Ledger: o.Ledger, LedgerOnly: true,
			InputName: func(uint32) string { return inputName }}, o, observe)
	} else {
		err = read(ctx, o, observe)
	}
	if err != nil {
		return Scorecard{}, err
	}
	sc := ScoreWithResponse(t, obs, gated, alerts)
	sc.FalseContainments = falsely.score()
	if inline != nil {
		sc.InlineVerify = inline.result()
	}
	scoreIncidents(&sc, t, standing, facts)
	return sc, nil
}

// scoreIncidents groups the standing alerts into incidents and scores them
// into sc.
func scoreIncidents(sc *Scorecard, t *truth.Truth, standing []event.Alert, facts incident.Facts) {
	is := ScoreIncidents(sc, t, standing, incident.Group(standing, facts, incident.Options{}))
	sc.Incidents = &is
}

// pass feeds the stream once through a pipeline built from popts, letting
// observe see (and change) every decoded event before it is submitted.
func pass(ctx context.Context, popts app.PipelineOptions, o RunOptions, observe func(*event.Event)) error {
	p, err := app.NewPipeline(popts)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	// The pipeline is closed explicitly after the feed, so a cancelled ctx
	// still drains what was admitted.
	go func() { done <- p.Run(context.WithoutCancel(ctx)) }()
	r, err := o.Events()
	var feedErr error
	if err != nil {
		feedErr = err
	} else {
		feedErr = feed(ctx, p, observe, r, o.Config.Ingest.MaxLineBytes, o.OnReject, o.Progress)
		r.Close()
	}
	p.Close()
	runErr := <-done // the sinks' writes happen before this receive
	if feedErr != nil {
		return feedErr
	}
	return runErr
}

// read reads the stream once without a pipeline, for observe only.
// Rejected lines were reported by the first pass.
func read(ctx context.Context, o RunOptions, observe func(*event.Event)) error {
	r, err := o.Events()
	if err != nil {
		return err
	}
	defer r.Close()
	rd := decode.NewReader(r, eventsInput, o.Config.Ingest.MaxLineBytes)
	var ev event.Event
	for n := int64(1); ; n++ {
		err := rd.Next(&ev)
		var le *decode.LineError
		switch {
		case err == nil:
			observe(&ev)
			if n%batchSize == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				if o.Progress != nil {
					o.Progress(n)
				}
			}
		case errors.As(err, &le):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return fmt.Errorf("read: %w", err)
		}
		ev = event.Event{}
	}
}

func feed(ctx context.Context, p *app.Pipeline, observe func(*event.Event), r io.Reader, maxLine int,
	onReject func(*decode.LineError), progress func(int64)) error {
	var n int64
	_, err := app.FeedObserved(ctx, p, r, eventsInput, maxLine, onReject, func(ev *event.Event) {
		observe(ev)
		if n++; progress != nil && n%batchSize == 0 {
			progress(n)
		}
	})
	if err == nil && progress != nil && n%batchSize != 0 {
		progress(n) // the last, partial batch
	}
	return err
}
