package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input"
)

// batchSize is how many decoded events Feed hands to the engine at once.
const batchSize = 1024

// FeedStats counts what Feed read.
type FeedStats struct {
	Events   int // accepted
	Rejected int // lines rejected by the decoder
	Lines    int // lines read, including empty ones
}

// Feed decodes NDJSON from r and submits it to the pipeline in batches,
// waiting when the engine is full (replay never drops). Every rejected line
// is passed to onReject (which may be nil) and counted; the stream goes on.
// It returns on EOF, a read error, or ctx's end (checked between batches).
// The input is its own origin of event time (InputOrigin), ended at EOF.
func Feed(ctx context.Context, p *Pipeline, r io.Reader, input uint32, maxLine int, onReject func(*decode.LineError)) (FeedStats, error) {
	return FeedObserved(ctx, p, r, input, maxLine, onReject, nil)
}

// FeedObserved is Feed with observe (may be nil) called on every decoded
// event before it is submitted — the scorecard's view of the stream. The
// event must not be retained.
func FeedObserved(ctx context.Context, p *Pipeline, r io.Reader, input uint32, maxLine int,
	onReject func(*decode.LineError), observe func(*event.Event)) (FeedStats, error) {
	return FeedReader(ctx, p, decode.NewReader(r, input, maxLine), InputOrigin(input), onReject, observe)
}

// InputOrigin names the engine origin (engine.Batch.Origin) of a fed input.
func InputOrigin(input uint32) string { return fmt.Sprintf("input %d", input) }

// FeedReader is FeedObserved over any input format's reader, whose events
// are the origin origin's (ended at EOF: it no longer holds event time
// back, see engine.Engine.EndOrigin).
func FeedReader(ctx context.Context, p *Pipeline, rd input.Reader, origin string,
	onReject func(*decode.LineError), observe func(*event.Event)) (FeedStats, error) {
	var st FeedStats
	batch := p.NewBatch()
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		if err := p.SubmitFrom(ctx, origin, time.Time{}, batch); err != nil {
			return err
		}
		// The engine owns the submitted slice from now on.
		batch = p.NewBatch()
		return nil
	}
	for {
		batch = batch[:len(batch)+1]
		err := rd.Next(&batch[len(batch)-1])
		if err != nil {
			batch = batch[:len(batch)-1]
		}
		var le *decode.LineError
		switch {
		case err == nil:
			st.Events++
			if observe != nil {
				observe(&batch[len(batch)-1])
			}
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					st.Lines = rd.Line()
					return st, err
				}
			}
		case errors.As(err, &le):
			st.Rejected++
			if onReject != nil {
				onReject(le)
			}
		case errors.Is(err, io.EOF):
			st.Lines = rd.Line()
			if err := flush(); err != nil {
				return st, err
			}
			return st, p.EndOrigin(ctx, origin)
		default:
			st.Lines = rd.Line()
			if ferr := flush(); ferr != nil {
				return st, ferr
			}
			return st, fmt.Errorf("read: %w", err)
		}
	}
}
