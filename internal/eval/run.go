package eval

import (
	"context"
	"io"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/truth"
)

// batchSize is how many decoded events Run submits at once.
const batchSize = 1024

// eventsInput is the input index of the event stream; InputName names it
// for evidence references of events without event.id.
const eventsInput = 1

// Run builds the pipeline from cfg (no store), feeds it the NDJSON events,
// letting an Observer see every decoded event before it is submitted, waits
// for every alert to close and scores the closed alerts against t.
//
// Rejected lines go to onReject (may be nil) and the stream goes on;
// progress (may be nil) hears the number of events submitted so far after
// each batch. A read or submit error stops the feed; the pipeline is still
// drained and the error returned with a zero Scorecard.
func Run(ctx context.Context, cfg config.Config, canaryIDs []string, t *truth.Truth, events io.Reader,
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
	Events    io.Reader
	OnReject  func(*decode.LineError)
	Progress  func(n int64)
	Sinks     []alert.Sink
	Ledger    *ledger.Ledger
}

// RunWith is Run with options.
func RunWith(ctx context.Context, o RunOptions) (Scorecard, error) {
	cfg, canaryIDs, t, events, onReject, progress := o.Config, o.CanaryIDs, o.Truth, o.Events, o.OnReject, o.Progress
	// Closed alerts, last per ID: a late finding can reopen a closed alert,
	// which is then closed again with the same ID.
	var alerts []event.Alert
	index := map[string]int{}
	sink := alert.SinkFunc(func(c alert.Change, a event.Alert) {
		if c != alert.Closed {
			return
		}
		if i, ok := index[a.ID]; ok {
			alerts[i] = a
			return
		}
		index[a.ID] = len(alerts)
		alerts = append(alerts, a)
	})
	p, err := app.NewPipeline(app.PipelineOptions{
		Config:    cfg,
		CanaryIDs: canaryIDs,
		Sinks:     append([]alert.Sink{sink}, o.Sinks...),
		InputName: func(uint32) string { return "events" },
		Ledger:    o.Ledger,
	})
	if err != nil {
		return Scorecard{}, err
	}
	done := make(chan error, 1)
	// The pipeline is closed explicitly after the feed, so a cancelled ctx
	// still drains what was admitted.
	go func() { done <- p.Run(context.WithoutCancel(ctx)) }()

	obs := NewObserver(t)
	feedErr := feed(ctx, p, obs, events, cfg.Ingest.MaxLineBytes, onReject, progress)
	p.Close()
	runErr := <-done // the sink's writes happen before this receive
	if feedErr != nil {
		return Scorecard{}, feedErr
	}
	if runErr != nil {
		return Scorecard{}, runErr
	}
	if cfg.Respond.Mode != respond.ModeEnforce {
		return Score(t, obs, alerts), nil
	}
	cs, err := Containments(cfg.Respond, alerts)
	if err != nil {
		return Scorecard{}, err
	}
	return ScoreWithResponse(t, obs, alerts, cs, true), nil
}

func feed(ctx context.Context, p *app.Pipeline, obs *Observer, r io.Reader, maxLine int,
	onReject func(*decode.LineError), progress func(int64)) error {
	var n int64
	_, err := app.FeedObserved(ctx, p, r, eventsInput, maxLine, onReject, func(ev *event.Event) {
		obs.Observe(ev)
		if n++; progress != nil && n%batchSize == 0 {
			progress(n)
		}
	})
	if err == nil && progress != nil && n%batchSize != 0 {
		progress(n) // the last, partial batch
	}
	return err
}
