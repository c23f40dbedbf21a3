// Package ledger keeps the access ledger: for every value of a dimension —
// principal (user.id), token signing key (token.key_id), token (token.id:
// a gateway token's id, a cloud access key id), source address, source
// network (AS or /24, /64), country — and every UTC day, a roaring
// bitmap of the record ids touched, per record type and per personal-data
// field category, so that "which customers did this key expose between T1
// and T2" is answered exactly (Scope) long after the events are gone.
//
// The ledger holds record ids, never record contents; it is still
// sensitive (it says whose data was read) and lives in the store.
//
// Record ids that are decimal integers below 2³¹ (no sign, no leading
// zero) are used as they are; any other id is numbered from 2³¹ upward by
// a Dict shared by all shards and persisted in the store with the bitmaps
// that use it, so ids come back verbatim on export.
//
// Each dimension is an ordinary engine.Detector keyed on the dimension's
// value: a shard owns its values' bitmaps and takes no locks (other than
// the Dict's on ids that need it). Detectors emit no findings. A shard
// hands its dirty bitmaps to the Ledger's single writer goroutine when the
// watermark has moved FlushEvery past the last hand-off and MinInterval
// of wall time has passed since it (or at all, once its oldest touch has
// waited MaxStale of wall time), when it holds MaxDirty ids or MaxCells
// cells, on an engine mark, and at EndOfTime; the writer ORs them into
// the store.
//
// Lifecycle: New (or Open, which loads the dictionary), go Run, build the
// engine with Detectors(), and after the engine's Run has returned (every
// shard has seen EndOfTime), Close, which drains the queue and waits.
package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// Dimension names what a ledger is indexed by.
type Dimension string

// Dimensions.
const (
	Principal Dimension = "principal" // user.id
	Key       Dimension = "key"       // token.key_id
	Token     Dimension = "token"     // token.id (a token's jti, an access key id)
	Source    Dimension = "source"    // source.ip
	Network   Dimension = "network"   // "AS4766", else the /24 or /64 prefix
	Country   Dimension = "country"   // source.geo.country_iso_code
)

// OfEntity returns the dimension that indexes entities of kind k (an
// alert's scope is its entity's): principals, signing keys, tokens
// (access keys), source addresses, networks and countries have one;
// records and roles do not.
func OfEntity(k event.EntityKind) (Dimension, bool) {
	switch k {
	case event.EntityPrincipal:
		return Principal, true
	case event.EntitySigningKey:
		return Key, true
	case event.EntityToken:
		return Token, true
	case event.EntitySource:
		return Source, true
	case EntityNetwork:
		return Network, true
	case EntityCountry:
		return Country, true
	}
	return "", false
}

// Dimensions lists every dimension, in a stable order.
var Dimensions = []Dimension{Principal, Key, Token, Source, Network, Country}

// Valid reports whether d is a known dimension.
func (d Dimension) Valid() bool {
	for _, x := range Dimensions {
		if d == x {
			return true
		}
	}
	return false
}

// UnknownType is the record type recorded for events without records.type.
const UnknownType = "unknown"

// Defaults.
const (
	DefaultFlushEvery  = 10 * time.Minute
	DefaultMinInterval = time.Second
	DefaultMaxStale    = 5 * time.Second
	DefaultMaxDirty    = 1 << 20
	DefaultMaxCells    = 1 << 14
	DefaultQueueSize   = 64
)

// Retry policy of the writer.
const (
	retryInitial  = 50 * time.Millisecond
	retryMax      = 5 * time.Second
	finalAttempts = 5
	finalTimeout  = 30 * time.Second
)

// Sink receives the ledger's batches: dictionary entries first needed by
// the rows, and rows to OR into what is stored, in one transaction.
// *store.Store implements it.
type Sink interface {
	MergeLedger(ctx context.Context, dict []store.LedgerDictEntry, rows []store.LedgerRow) error
}

// Options configure a Ledger. Zero values take the defaults.
type Options struct {
	// Dict bounds the dictionary Open opens (DictOptions' defaults).
	Dict DictOptions
	// FlushEvery is how far (event time) the watermark moves before a shard
	// hands its dirty bitmaps to the writer (default 10 minutes).
	FlushEvery time.Duration
	// MinInterval is the least wall time between a shard's hand-offs for
	// FlushEvery (default 1 s; negative: none). In real time FlushEvery of
	// event time is that much wall time, so it changes nothing there; when
	// event time runs thousands of times faster than the wall clock (a
	// replay of old logs, serve catching up on its spool, haechi bench), it
	// stops the shards from handing off, and the store from rewriting a
	// busy value's day, every few milliseconds: a day's stored cell is then
	// rewritten about (wall time the day takes) / MinInterval times instead
	// of 144. What waits is bounded by MaxStale, MaxDirty and MaxCells;
	// marks and EndOfTime still hand off at once.
	MinInterval time.Duration
	// MaxStale bounds, in wall time, how long a touch waits in a shard
	// before it is handed off once the watermark moves at all (default 5
	// s): when traffic stops, or the watermark has jumped to the wall clock
	// ahead of the events still arriving, FlushEvery of event time may be
	// long in coming, and scope must not miss the last minutes meanwhile.
	// Hand-offs only OR into stored rows, so when they happen changes no
	// result.
	MaxStale time.Duration
	// Now is the wall clock (nil → time.Now).
	Now func() time.Time
	// MaxDirty is how many record-id touches a shard accumulates before it
	// hands off regardless of time (default 2²⁰).
	MaxDirty int
	// MaxCells is how many cells — (value, day, record type), each with
	// its bitmaps, about 1 KB — a shard holds before it hands off
	// regardless of time (default 2¹⁴): the memory bound of a shard that
	// sees many values once (customers reading their own records) while
	// MinInterval or MaxStale holds its hand-off back.
	MaxCells int
	// QueueSize is the writer's queue of hand-offs (default 64); a shard
	// blocks when it is full.
	QueueSize int
	// MaxQueuedCells bounds the cells queued for the writer or being
	// written, summed over hand-offs (default MaxCells, about 14 MB with
	// their rows): a shard blocks while
	// its hand-off would take the queue past it (one hand-off is always
	// taken), so the queue's memory is bounded when the store is slower
	// than the shards, whatever the hand-offs' sizes. The writer takes at
	// most MaxCells cells (or one hand-off) a batch.
	MaxQueuedCells int
	// Logger; nil discards.
	Logger *slog.Logger
	// OnDurable, if set, is called (from the writer) with a mark once
	// every shard's hand-off for it is stored: every record touch
	// processed before the mark was submitted is then in the store.
	OnDurable func(mark uint64)
	// OnFlush, if set, is called (from the writer) after each batch of
	// rows is stored, with how long the store took and how many rows it
	// merged (serve's ledger flush latency metric).
	OnFlush func(took time.Duration, rows int)
}

func (o *Options) defaults() {
	if o.FlushEvery <= 0 {
		o.FlushEvery = DefaultFlushEvery
	}
	if o.MaxDirty <= 0 {
		o.MaxDirty = DefaultMaxDirty
	}
	if o.MaxCells <= 0 {
		o.MaxCells = DefaultMaxCells
	}
	if o.MinInterval == 0 {
		o.MinInterval = DefaultMinInterval
	}
	if o.MaxStale <= 0 {
		o.MaxStale = DefaultMaxStale
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.MaxQueuedCells <= 0 {
		o.MaxQueuedCells = o.MaxCells
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats are the ledger's counters since New.
type Stats struct {
	Touches    int64 // record ids recorded, summed over dimensions
	Rows       int64 // rows merged into the store
	Bytes      int64 // serialized bitmap bytes sent to the store
	Batches    int64 // committed transactions
	Failures   int64 // failed commit attempts
	Lost       int64 // rows given up after the final attempts
	DictFull   int64 // ids dropped because the dictionary is full
	Unnumbered int64 // ids dropped because the shared dictionary could not number them
	DictLength int   // entries in the dictionary
	// DictRemembered is how many ids the dictionary holds in memory;
	// DictLookups and DictAsked how often it asked the store whether it
	// had numbered ids it no longer remembered, and for how many ids.
	DictRemembered         int
	DictLookups, DictAsked int64
}

// Ledger owns the dictionary and the writer that persists shards' bitmaps.
type Ledger struct {
	dict *Dict
	sink Sink
	opts Options

	mu     sync.RWMutex // guards closed against sends
	closed bool
	// queued counts the cells of the hand-offs in ch (MaxQueuedCells);
	// qcond, on qmu, is signalled when it falls or the ledger closes.
	qmu     sync.Mutex
	qcond   *sync.Cond
	queued  int
	qdone   bool
	ch      chan handoff
	started atomic.Bool
	done    chan struct{}
	stop    chan struct{}

	errMu sync.Mutex
	err   error

	touches, rows, bytes, batches, failures, lost, unnumbered atomic.Int64

	// Marks: every shard state answers an engine mark with a hand-off;
	// once all of them are stored, everything processed before the mark
	// is in the store.
	dets    atomic.Int64 // detectors created (Detector)
	marks   map[uint64]int64
	durable atomic.Uint64
	durMu   sync.Mutex
	durCh   chan struct{} // closed (and replaced) when durable moves

	abandoned atomic.Bool
}

// handoff is one shard's dirty cells, owned by the writer from then on.
type handoff struct {
	dim   Dimension
	cells map[cellKey]*cell
	mark  uint64 // non-zero: the shard's answer to Engine.Mark
	// expect: how many hand-offs answer the mark (ledger detectors ×
	// engine shards).
	expect int64
}

// New returns a Ledger writing to sink with the dictionary dict (NewDict()
// for an empty store; see Open).
func New(sink Sink, dict *Dict, opts Options) *Ledger {
	opts.defaults()
	if dict == nil {
		dict = NewDict()
	}
	l := &Ledger{
		dict: dict,
		sink: sink,
		opts: opts,
		ch:   make(chan handoff, opts.QueueSize),
		done: make(chan struct{}),
		stop: make(chan struct{}),
	}
	l.qcond = sync.NewCond(&l.qmu)
	return l
}

// reserve waits until n more cells fit in the queue (MaxQueuedCells; an
// empty queue takes any hand-off), or the ledger is closing, and counts
// them.
func (l *Ledger) reserve(n int) {
	l.qmu.Lock()
	for l.queued > 0 && l.queued+n > l.opts.MaxQueuedCells && !l.qdone {
		l.qcond.Wait()
	}
	l.queued += n
	l.qmu.Unlock()
}

// release uncounts n cells the writer has taken off the queue.
func (l *Ledger) release(n int) {
	if n == 0 {
		return
	}
	l.qmu.Lock()
	l.queued -= n
	l.qmu.Unlock()
	l.qcond.Broadcast()
}

// unblock lets every reserve through (Close, Abandon).
func (l *Ledger) unblock() {
	l.qmu.Lock()
	l.qdone = true
	l.qmu.Unlock()
	l.qcond.Broadcast()
}

// Store is everything the ledger needs from the store.
type Store interface {
	Sink
	DictStore
	Reader
}

// Open returns a Ledger over st with the persisted dictionary opened
// (OpenDict with opts.Dict).
func Open(ctx context.Context, st interface {
	Sink
	DictStore
}, opts Options) (*Ledger, error) {
	d, err := OpenDict(ctx, st, opts.Dict)
	if err != nil {
		return nil, err
	}
	return New(st, d, opts), nil
}

// Durable returns the highest mark stored from every shard (0: none).
func (l *Ledger) Durable() uint64 { return l.durable.Load() }

// noteMarks counts the stored hand-offs' marks and reports marks stored
// from every shard. Only the writer calls it.
func (l *Ledger) noteMarks(batch []handoff) {
	for _, h := range batch {
		if h.mark == 0 {
			continue
		}
		if l.marks == nil {
			l.marks = map[uint64]int64{}
		}
		l.marks[h.mark]++
		if l.marks[h.mark] < h.expect {
			continue
		}
		delete(l.marks, h.mark)
		if h.mark > l.durable.Load() {
			l.durable.Store(h.mark)
			l.durMu.Lock()
			if l.durCh != nil {
				close(l.durCh)
				l.durCh = nil
			}
			l.durMu.Unlock()
			if l.opts.OnDurable != nil {
				l.opts.OnDurable(h.mark)
			}
		}
		for m := range l.marks {
			if m < h.mark {
				delete(l.marks, m)
			}
		}
	}
}

// WaitDurable waits until every shard's hand-off for mark (and so every
// record touch processed before the mark was submitted) is stored. It
// fails when ctx ends first or the writer has stopped without storing it.
func (l *Ledger) WaitDurable(ctx context.Context, mark uint64) error {
	for {
		l.durMu.Lock()
		if l.durable.Load() >= mark {
			l.durMu.Unlock()
			return nil
		}
		if l.durCh == nil {
			l.durCh = make(chan struct{})
		}
		ch := l.durCh
		l.durMu.Unlock()
		select {
		case <-ch:
		case <-l.done:
			if l.durable.Load() >= mark {
				return nil
			}
			return fmt.Errorf("ledger: writer stopped before mark %d was stored", mark)
		case <-ctx.Done():
			return fmt.Errorf("ledger: mark %d not stored: %w", mark, ctx.Err())
		}
	}
}

// Incomplete reports whether some record touch was dropped rather than
// stored: rows lost after the final attempts, or ids the shared
// dictionary could not number. A caller that promises completeness up to
// a mark (a cluster checkpoint) must not promise it any more.
func (l *Ledger) Incomplete() bool { return l.lost.Load() > 0 || l.unnumbered.Load() > 0 }

// Dict returns the ledger's dictionary.
func (l *Ledger) Dict() *Dict { return l.dict }

// Stats returns the counters.
func (l *Ledger) Stats() Stats {
	return Stats{
		Touches: l.touches.Load(), Rows: l.rows.Load(), Bytes: l.bytes.Load(),
		Batches: l.batches.Load(), Failures: l.failures.Load(), Lost: l.lost.Load(),
		DictFull: l.dict.full.Load(), DictLength: l.dict.Len(), Unnumbered: l.unnumbered.Load(),
		DictRemembered: l.dict.Remembered(), DictLookups: l.dict.lookups.Load(), DictAsked: l.dict.asked.Load(),
	}
}

// send hands dirty cells to the writer, blocking while the queue is full.
// After Close it writes them synchronously.
func (l *Ledger) send(h handoff) {
	if l.abandoned.Load() {
		return
	}
	l.reserve(len(h.cells))
	l.mu.RLock()
	if !l.closed {
		l.ch <- h
		l.mu.RUnlock()
		return
	}
	l.mu.RUnlock()
	l.release(len(h.cells))
	l.write(context.Background(), []handoff{h}, true)
}

// Run writes hand-offs to the sink until Close; it returns the first
// error that made it give up on a batch (the batch's rows are lost and
// counted in Stats.Lost). Cancelling ctx makes Run drain the queue with
// bounded attempts and return; later hand-offs wait for Close.
func (l *Ledger) Run(ctx context.Context) error {
	if !l.started.CompareAndSwap(false, true) {
		l.mu.RLock()
		closed := l.closed
		l.mu.RUnlock()
		if closed {
			// Close ran first and wrote the queue itself.
			<-l.done
			return l.Err()
		}
		return errors.New("ledger: Run called twice")
	}
	defer close(l.done)
	final := false
	for {
		var h handoff
		var ok bool
		if final {
			h, ok = <-l.ch
		} else {
			select {
			case h, ok = <-l.ch:
			case <-ctx.Done():
				final = true
				continue
			}
		}
		if !ok {
			return l.Err()
		}
		batch := []handoff{h}
		cells := len(h.cells)
	more:
		for len(batch) < 16 && cells < l.opts.MaxCells {
			select {
			case h, ok := <-l.ch:
				if !ok {
					break more
				}
				batch = append(batch, h)
				cells += len(h.cells)
			default:
				break more
			}
		}
		l.writeCtx(ctx, batch, final)
		l.release(cells)
		if !final && ctx.Err() != nil {
			final = true
		}
	}
}

func (l *Ledger) writeCtx(ctx context.Context, batch []handoff, final bool) {
	if ctx.Err() != nil {
		final = true
		ctx = context.WithoutCancel(ctx)
	}
	l.write(ctx, batch, final)
}

// Close stops accepting hand-offs on the queue (later ones are written
// synchronously), waits for Run to write everything queued, and returns
// the first error that lost rows. If Run was never started, Close writes
// the queue itself. Call it after the engine has finished.
func (l *Ledger) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.ch)
	}
	l.mu.Unlock()
	l.unblock()
	if l.started.CompareAndSwap(false, true) {
		for h := range l.ch {
			l.write(context.Background(), []handoff{h}, true)
			l.release(len(h.cells))
		}
		close(l.done)
	}
	<-l.done
	st := l.Stats()
	l.opts.Logger.Debug("ledger: closed", "rows", st.Rows, "batches", st.Batches, "dict_entries", st.DictLength,
		"dict_in_memory", st.DictRemembered, "dict_lookups", st.DictLookups, "dict_asked", st.DictAsked)
	return l.Err()
}

// Abandon is Close for a process that stops without storing: what is
// queued, and every later hand-off, is dropped (a crashed cluster worker;
// its successor replays from the last checkpoint). It waits for Run to
// return.
func (l *Ledger) Abandon() {
	l.abandoned.Store(true)
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.ch)
	}
	l.mu.Unlock()
	l.unblock()
	if l.started.CompareAndSwap(false, true) {
		for h := range l.ch {
			l.release(len(h.cells))
		}
		close(l.done)
	}
	<-l.done
}

// Err returns the first error that lost rows, if any.
func (l *Ledger) Err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// write serializes and merges a batch, retrying failures: indefinitely
// with backoff while running (ctx alive), finalAttempts times when final.
func (l *Ledger) write(ctx context.Context, batch []handoff, final bool) {
	if l.abandoned.Load() {
		return
	}
	n := 0
	for _, h := range batch {
		n += countRows(h)
	}
	rows := make([]store.LedgerRow, 0, n)
	for _, h := range batch {
		rows = appendRows(rows, h)
	}
	var size int64
	for i := range rows {
		size += int64(len(rows[i].Bitmap))
	}
	dict := l.dict.takePending()
	if len(rows) == 0 && len(dict) == 0 {
		l.noteMarks(batch)
		return
	}
	backoff := retryInitial
	for attempt := 1; ; attempt++ {
		if l.abandoned.Load() {
			return
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if final {
			actx, cancel = context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
		}
		began := l.opts.Now()
		err := l.sink.MergeLedger(actx, dict, rows)
		cancel()
		if err == nil && l.opts.OnFlush != nil {
			l.opts.OnFlush(l.opts.Now().Sub(began), len(rows))
		}
		if err == nil {
			l.dict.stored(dict)
			l.rows.Add(int64(len(rows)))
			l.bytes.Add(size)
			l.batches.Add(1)
			l.noteMarks(batch)
			return
		}
		l.failures.Add(1)
		l.opts.Logger.Warn("ledger: merge failed", "rows", len(rows), "dict", len(dict), "attempt", attempt, "err", err)
		if !final && ctx.Err() != nil {
			final, attempt = true, 0
			ctx = context.WithoutCancel(ctx)
		}
		if final && attempt >= finalAttempts {
			l.lost.Add(int64(len(rows)))
			l.dict.putBack(dict)
			l.errMu.Lock()
			if l.err == nil {
				l.err = fmt.Errorf("ledger: %d rows lost: %w", len(rows), err)
			}
			l.errMu.Unlock()
			l.opts.Logger.Error("ledger: rows lost", "rows", len(rows), "err", err)
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, retryMax)
	}
}

// countRows returns how many rows appendRows makes of h.
func countRows(h handoff) int {
	n := 0
	for _, c := range h.cells {
		n += 1 + len(c.common) + len(c.fields)
	}
	return n
}

func appendRows(rows []store.LedgerRow, h handoff) []store.LedgerRow {
	for k, c := range h.cells {
		add := func(field string, bm *roaring.Bitmap, first, last int64) {
			bm.RunOptimize()
			// Serialized into a buffer of the exact size (ToBytes grows one).
			w := bytes.NewBuffer(make([]byte, 0, bm.GetSerializedSizeInBytes()))
			if _, err := bm.WriteTo(w); err != nil { // only fails on a writer error; bytes.Buffer never fails
				panic(err)
			}
			b := w.Bytes()
			rows = append(rows, store.LedgerRow{
				Dim: string(h.dim), Value: k.value, Day: k.day, RType: k.rtype, Field: field,
				Bitmap: b, First: first, Last: last,
			})
		}
		add("", c.all, c.first, c.last)
		// A common field's row is all's: the same bitmap, serialized once.
		base := rows[len(rows)-1]
		for _, f := range c.common {
			r := base
			r.Field = f
			rows = append(rows, r)
		}
		for f, fs := range c.fields {
			add(f, fs.bm, fs.first, fs.last)
		}
	}
	return rows
}

// Day returns the ledger day (days since the Unix epoch, UTC) of t.
func Day(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}

// DayTime returns the start (UTC) of ledger day d.
func DayTime(d int64) time.Time { return time.Unix(d*86400, 0).UTC() }
