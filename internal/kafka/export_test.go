package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/haechi-sec/haechi/internal/ledger"
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

// CountDictAssigns makes w's shared ledger dictionary count its requests
// to the store and the record ids they carry.
func CountDictAssigns(w *Worker) *DictCounts {
	c := &DictCounts{st: w.opts.Store}
	w.dict = ledger.NewSharedDict(c)
	return c
}

// DictCounts counts a dictionary's requests to the store.
type DictCounts struct {
	st       *store.Store
	mu       sync.Mutex
	Requests int
	IDs      map[string]bool
}

func (c *DictCounts) AssignLedgerDict(ctx context.Context, rids []string, first uint32) ([]store.LedgerDictEntry, error) {
	c.mu.Lock()
	c.Requests++
	if c.IDs == nil {
		c.IDs = map[string]bool{}
	}
	for _, r := range rids {
		c.IDs[r] = true
	}
	c.mu.Unlock()
	return c.st.AssignLedgerDict(ctx, rids, first)
}

// Counts returns the requests made and the distinct ids asked for.
func (c *DictCounts) Counts() (requests, ids int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Requests, len(c.IDs)
}

// DetectPollMax bounds the records of one poll of the detection stage.
const DetectPollMax = detectPollMax

// CountDetectPolls makes w count the polls of its detection stage and
// their records. Call before Run.
func CountDetectPolls(w *Worker) *PollCounts {
	c := &PollCounts{}
	w.polled = func(n int) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.polls++
		c.records += n
		c.largest = max(c.largest, n)
	}
	w.handedOff = func(n int) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.handoffs++
		c.messages += n
	}
	return c
}

// PollCounts counts a detection stage's polls.
type PollCounts struct {
	mu                      sync.Mutex
	polls, records, largest int
	handoffs, messages      int
}

// HandOffs returns the hand-offs of engine messages to the detection
// partitions' engines and the messages handed over.
func (c *PollCounts) HandOffs() (handoffs, messages int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handoffs, c.messages
}

// Counts returns the polls, their records and the largest poll's.
func (c *PollCounts) Counts() (polls, records, largest int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.polls, c.records, c.largest
}
