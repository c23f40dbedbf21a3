package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// ErrWriterClosed is returned by Writer methods once the writer has been
// closed, or once Run has returned.
var ErrWriterClosed = errors.New("store: writer closed")

// Writer defaults.
const (
	DefaultMaxBatch = 256
	// DefaultMaxFindings is 4096, not fewer: a commit's incident tracking
	// costs by the incidents its alerts touch, not by its findings, and
	// when findings arrive faster than FlushInterval collects them (a
	// replay, serve catching up) every commit the findings force re-saves
	// and regroups the same growing alerts. 4096 findings are about 70 ms
	// of a transaction and a few MB held; past it the commits follow
	// FlushInterval (measured on the simulated week: incident tracking
	// −40 % in replay, −37 % in serve, against 1024; 8192 gained nothing).
	DefaultMaxFindings   = 4096
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultQueueSize     = 4096
)

// Retry policy for failed batches.
const (
	retryInitialBackoff = 50 * time.Millisecond
	retryMaxBackoff     = 5 * time.Second
	// finalAttempts bounds the attempts per batch once the writer is shutting
	// down; after one batch has been given up, later ones get a single try.
	finalAttempts = 5
	// finalAttemptTimeout bounds each attempt made while shutting down, when
	// Run's context may already be cancelled.
	finalAttemptTimeout = 10 * time.Second
)

// WriterOptions configure a Writer. Zero values pick the defaults.
type WriterOptions struct {
	MaxBatch      int           // alerts (distinct IDs) per transaction; 0 → 256
	MaxFindings   int           // scored findings per transaction; 0 → 4096
	FlushInterval time.Duration // longest an alert waits in a partial batch; 0 → 200ms
	QueueSize     int           // Put's buffer; 0 → 4096
	Logger        *slog.Logger  // nil discards
	// OnFlush, if set, is called after every commit attempt with the batch
	// size and the attempt's error (for metrics). It is called from the Run
	// goroutine and must not block or call back into the Writer.
	OnFlush func(n int, err error)
}

// Writer batches alert writes off the hot path. Put enqueues, Run commits
// batches, coalescing by alert ID (latest wins) and flushing when a batch
// reaches MaxBatch or FlushInterval after its first alert. Scored findings
// (PutFinding, the risk index) travel the same queue and commit in the
// same transactions; a batch also flushes at MaxFindings of them.
//
// A batch whose commit fails is kept and retried with exponential backoff
// while Run's context lives; nothing Put is dropped while the writer runs
// (Put blocks instead when the queue is full). Once the writer shuts down —
// Close, or cancellation of Run's context — whatever is queued is drained and
// each remaining batch gets a bounded number of attempts; a batch that still
// fails is logged at error level with its alert IDs and its error is returned
// from Run and Close.
//
// Close the Writer before the Store it writes to.
type Writer struct {
	s       *Store
	opts    WriterOptions
	logger  *slog.Logger
	onFlush func(int, error)
	saveFn  func(context.Context, []event.Alert, []ScoredFinding) error // s.saveBatch; replaced in tests

	queue chan writerItem
	stop  chan struct{} // closed when shutdown starts
	done  chan struct{} // closed when the run loop has returned

	mu     sync.RWMutex // Put/Flush hold it shared while sending; shutdown exclusively
	closed bool

	started      atomic.Bool
	shutdownOnce sync.Once
	closeOnce    sync.Once

	gaveUp bool  // run loop only: some batch was given up
	err    error // run loop's result; read after done is closed
}

type writerItem struct {
	alert   event.Alert
	finding *ScoredFinding // non-nil: a scored finding, not an alert
	flush   chan error     // non-nil: a Flush request, answered once everything before it is committed
}

// NewWriter returns a Writer writing to s. Start it with Run (or just Close
// it, which then drains in the caller's goroutine).
func NewWriter(s *Store, opts WriterOptions) *Writer {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MaxFindings <= 0 {
		opts.MaxFindings = DefaultMaxFindings
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	onFlush := opts.OnFlush
	if onFlush == nil {
		onFlush = func(int, error) {}
	}
	return &Writer{
		s:       s,
		opts:    opts,
		logger:  logger,
		onFlush: onFlush,
		saveFn:  s.saveBatch,
		queue:   make(chan writerItem, opts.QueueSize),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// Put enqueues a for writing. It blocks while the queue is full and returns
// ctx's error if ctx ends first, or ErrWriterClosed once the writer is
// closed. The writer takes ownership of a: the caller must not modify
// a.Findings (or their Evidence) afterwards.
func (w *Writer) Put(ctx context.Context, a event.Alert) error {
	if a.ID == "" {
		return errors.New("store: put alert with empty id")
	}
	return w.send(ctx, writerItem{alert: a})
}

// PutFinding enqueues a scored finding for the risk index, like Put (its
// ID is set to FindingID when empty). The writer takes ownership of f.
func (w *Writer) PutFinding(ctx context.Context, f ScoredFinding) error {
	if f.ID == "" {
		f.ID = FindingID(&f.Finding)
	}
	return w.send(ctx, writerItem{finding: &f})
}

// Flush blocks until everything Put before it has been committed, or
// returns the error of a batch that was given up. It returns ctx's error if
// ctx ends first and ErrWriterClosed if the writer is closed.
func (w *Writer) Flush(ctx context.Context) error {
	ch := make(chan error, 1)
	if err := w.send(ctx, writerItem{flush: ch}); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) send(ctx context.Context, it writerItem) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrWriterClosed
	}
	select {
	case w.queue <- it:
		return nil
	default:
	}
	select {
	case w.queue <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.stop:
		return ErrWriterClosed
	}
}

// Close stops accepting alerts, drains and commits everything queued, waits
// for Run to return and returns the error of a batch that could not be
// committed, if any. If Run was never started, Close drains in its own
// goroutine. Close is safe to call more than once.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		w.shutdown()
		if w.started.CompareAndSwap(false, true) {
			_ = w.loop(context.Background())
		}
		<-w.done
	})
	return w.err
}

// Run commits queued alerts until Close is called or ctx ends, then drains
// what is queued (see Writer) and returns nil, or the error of a batch that
// could not be committed. It returns ErrWriterClosed if the writer was
// already closed and an error if Run is already running.
func (w *Writer) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		select {
		case <-w.stop:
			return ErrWriterClosed
		default:
			return errors.New("store: Writer.Run called twice")
		}
	}
	return w.loop(ctx)
}

// shutdown stops accepting: it wakes blocked senders, waits for in-flight
// sends to finish and closes the queue.
func (w *Writer) shutdown() {
	w.shutdownOnce.Do(func() {
		close(w.stop)
		w.mu.Lock()
		w.closed = true
		close(w.queue)
		w.mu.Unlock()
	})
}

type batch struct {
	alerts   []event.Alert
	index    map[string]int
	findings []ScoredFinding
	waiters  []chan error
}

func (b *batch) empty() bool { return len(b.alerts) == 0 && len(b.findings) == 0 }

func (b *batch) add(it writerItem) {
	if it.finding != nil {
		b.findings = append(b.findings, *it.finding)
		return
	}
	a := it.alert
	if i, ok := b.index[a.ID]; ok {
		b.alerts[i] = a
		return
	}
	b.index[a.ID] = len(b.alerts)
	b.alerts = append(b.alerts, a)
}

// finish answers the waiters and empties the batch.
func (b *batch) finish(err error) {
	for _, ch := range b.waiters {
		ch <- err
	}
	clear(b.alerts) // drop references to the alerts
	b.alerts = b.alerts[:0]
	clear(b.findings)
	b.findings = b.findings[:0]
	b.waiters = b.waiters[:0]
	clear(b.index)
}

func (w *Writer) loop(ctx context.Context) error {
	defer close(w.done)
	b := &batch{
		alerts: make([]event.Alert, 0, w.opts.MaxBatch),
		index:  make(map[string]int, w.opts.MaxBatch),
	}
	timer := time.NewTimer(w.opts.FlushInterval)
	timer.Stop()
	defer timer.Stop()
	var timerC <-chan time.Time // non-nil while a partial batch waits

	flush := func() {
		timer.Stop()
		timerC = nil
		w.flush(ctx, b)
	}

	for ctx.Err() == nil {
		select {
		case it, ok := <-w.queue:
			if !ok { // Close; the queue is already empty
				flush()
				return w.err
			}
			if it.flush != nil {
				b.waiters = append(b.waiters, it.flush)
				flush()
				continue
			}
			b.add(it)
			if w.full(b) {
				flush()
			} else if timerC == nil {
				timer.Reset(w.opts.FlushInterval)
				timerC = timer.C
			}
		case <-timerC:
			timerC = nil
			w.flush(ctx, b)
		case <-ctx.Done():
		}
	}

	// Run's context ended: stop accepting and drain what was queued.
	w.shutdown()
	for it := range w.queue {
		if it.flush != nil {
			b.waiters = append(b.waiters, it.flush)
			w.flush(ctx, b)
			continue
		}
		b.add(it)
		if w.full(b) {
			w.flush(ctx, b)
		}
	}
	w.flush(ctx, b)
	return w.err
}

// full says whether b is due for a commit by its size.
func (w *Writer) full(b *batch) bool {
	return len(b.alerts) >= w.opts.MaxBatch || len(b.findings) >= w.opts.MaxFindings
}

// flush commits b. While the writer runs it retries with backoff until the
// commit succeeds or ctx ends (keeping the batch for the drain); once the
// writer is shutting down it makes a bounded number of attempts and then
// gives the batch up.
func (w *Writer) flush(ctx context.Context, b *batch) {
	if b.empty() {
		b.finish(w.err) // w.err: an earlier batch was given up
		return
	}
	final := w.stopping()
	maxAttempts := finalAttempts
	if w.gaveUp {
		maxAttempts = 1
	}
	backoff := retryInitialBackoff
	for attempt := 1; ; attempt++ {
		err := w.save(ctx, b, final)
		w.onFlush(len(b.alerts), err)
		if err == nil {
			if attempt > 1 {
				w.logger.Info("store: alert batch committed after retry", "alerts", len(b.alerts), "findings", len(b.findings), "attempts", attempt)
			}
			b.finish(w.err)
			return
		}
		if final && attempt >= maxAttempts {
			ids := make([]string, len(b.alerts))
			for i := range b.alerts {
				ids[i] = b.alerts[i].ID
			}
			w.logger.Error("store: giving up on alert batch; alerts not stored",
				"alerts", len(ids), "findings", len(b.findings), "attempts", attempt, "err", err, "ids", ids)
			w.gaveUp = true
			w.err = fmt.Errorf("store writer: %d alerts and %d findings not stored: %w", len(ids), len(b.findings), err)
			b.finish(w.err)
			return
		}
		w.logger.Warn("store: alert batch failed; retrying",
			"alerts", len(b.alerts), "findings", len(b.findings), "attempt", attempt, "backoff", backoff, "err", err)
		t := time.NewTimer(backoff)
		if final {
			<-t.C
		} else {
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return // keep the batch: the drain retries it
			case <-w.stop:
				t.Stop()
				final, attempt = true, 0 // Close: switch to bounded attempts
			}
		}
		backoff = min(2*backoff, retryMaxBackoff)
	}
}

func (w *Writer) save(ctx context.Context, b *batch, final bool) error {
	if !final {
		return w.saveFn(ctx, b.alerts, b.findings)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalAttemptTimeout)
	defer cancel()
	return w.saveFn(ctx, b.alerts, b.findings)
}

func (w *Writer) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}
