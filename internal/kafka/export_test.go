package kafka

import (
	"context"
	"time"

	"github.com/haechi-sec/haechi/internal/store"
)

// AlertWatermark is the watermark an alert-stage checkpoint has reached
// (EndOfTime: the end of input), for tests of package kafka_test.
func AlertWatermark(b []byte) (time.Time, error) {
	s, err := decodeAlertState(b)
	return s.wm, err
}

// ImmediateInOrder makes w's alert stage raise immediate alerts in order,
// as it did before raising them ahead (for a benchmark's comparison).
func ImmediateInOrder(w *Worker) { w.inOrder = true }

// SlowLedger makes every ledger merge of w's partitions wait d first, so
// that a crash often falls between a merge's start and its commit.
func SlowLedger(w *Worker, d time.Duration) {
	w.ledgerSink = slowSink{w.opts.Store, d}
}

type slowSink struct {
	st *store.Store
	d  time.Duration
}

func (s slowSink) MergeLedger(ctx context.Context, dict []store.LedgerDictEntry, rows []store.LedgerRow) error {
	t := time.NewTimer(s.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.st.MergeLedger(ctx, dict, rows)
}
