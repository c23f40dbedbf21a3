// Package ingest is serve's durable ingest and file tailing: requests are
// acknowledged once the spool has stored them, the consumer (Ingester.Run)
// feeds the pipeline from the spool, and a Tailer follows a log file into
// the same spool. It declares the Pipeline it feeds; app wires them.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input"
	"github.com/haechi-sec/haechi/internal/spool"
)

// Durable ingest: serve appends every validated request body to the spool
// and acknowledges it only once the spool has fsynced it; the pipeline
// consumes the spool.
//
// After a restart the pipeline replays the whole retained spool from its
// first record. Detectors that checkpoint their state (CheckpointEvery,
// engine.Snapshotter) resume from the last checkpoint and skip the
// replayed records it covers (RestoredThrough; their events are marked
// Restored); the others rebuild their in-memory state over the retained
// history, and the findings of those records are dropped (they were
// emitted before the checkpoint). Without a checkpoint every output is
// re-derived; outputs are idempotent — alerts and actions have deterministic
// ids and are upserted or ignored when already stored, and the ledger
// holds sets of record ids — so a replayed event changes nothing that was
// already stored and nothing is counted twice. Retention deletes whole
// segments, oldest first, once the spool holds more than RetainBytes and
// their events were handed to the pipeline long enough ago (retainAfter)
// that what they produced has been stored.
//
// Retention is bounded by what is stored: while the spool holds more than
// RetainBytes, every second the consumer passes a mark (the last offset it handed over) through the engine; the ledger
// hands off its state on the mark and reports it durable once stored
// (Options.Durable); only records up to the last durable mark are
// ever deleted.
//
// A request retried with the same Idempotency-Key is stored once. A key
// belongs to a scope — the API token that sent it ("" without
// authentication), or tailScope for the file tailer — and is kept with the
// SHA-256 of the request's format and body and its acceptance time, for
// IdempotencyTTL: the same key with the same body is a duplicate (answered,
// not stored again); with another body it is refused (api.ErrKeyReused →
// 422), never dropped; after the TTL the key is forgotten. Keys are kept in
// memory while serve runs, also after retention deleted their records; at
// start-up they are read back from the retained spool only, so across a
// restart a key lasts min(TTL, retained history). Forgetting a key early
// can only store a retry twice, never lose a request.

// Spool record versions, the first byte of every record. Version 1 (before
// keys were scoped) has no scope and no body hash; it is still read: its
// keys belong to the anonymous scope "" (no token — what --insecure-no-auth
// clients use, so no authenticated client's key can match one), except
// "tail:" keys, which only the tailer wrote and which keep belonging to it,
// so files resume where they were; the hash is computed from the body.
const (
	spoolRecordV1      = 1
	spoolRecordVersion = 2
)

// tailScope is the tailer's key scope. Token ids are "tok-<hex>" and the
// anonymous scope is "", so no HTTP client shares it; the API also refuses
// client keys starting with TailKeyPrefix.
const tailScope = "(tailer)"

// DrillScope is the key scope of serve's drill runner (internal/drill):
// events stored under it are drills (event.Event.Drill), set here and never
// by a sender. Like tailScope no token id or the anonymous scope can be
// it, and Append refuses it: only AppendDrill writes it.
const DrillScope = "(drill)"

// VerifyScope is the key scope of the inline check's refused requests
// (serve stores them as gateway.access events, docs/verify.md): their
// origin of event time is "verify", one of its own. No token id or the
// anonymous scope can be it.
const VerifyScope = "(verify)"

// DefaultIdempotencyTTL is how long a key is kept when Options say
// nothing.
const DefaultIdempotencyTTL = 24 * time.Hour

// markEvery is how often (wall clock) the consumer passes a mark.
const markEvery = time.Second

// encodeSpoolRecord frames a request (version 2): version, acceptance
// time (unix nanoseconds), not-after time (unix nanoseconds, 0 = none),
// key scope (u8 length), idempotency key (u16 length), when the key is
// not empty the SHA-256 of format and body (bodyHash, 32 bytes), input
// format (u8 length), body. Scope and format are at most 255 bytes, key at
// most api.MaxIdempotencyKey.
func encodeSpoolRecord(r spoolRecord) []byte {
	b := make([]byte, 0, 1+8+8+1+len(r.Scope)+2+len(r.Key)+sha256.Size+1+len(r.Format)+len(r.Body))
	b = append(b, spoolRecordVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Accepted.UnixNano()))
	var na int64
	if !r.NotAfter.IsZero() {
		na = r.NotAfter.UnixNano()
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(na))
	b = append(b, byte(len(r.Scope)))
	b = append(b, r.Scope...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Key)))
	b = append(b, r.Key...)
	if r.Key != "" {
		b = append(b, r.Hash[:]...)
	}
	b = append(b, byte(len(r.Format)))
	b = append(b, r.Format...)
	return append(b, r.Body...)
}

// spoolRecord is a decoded spool record; Body aliases the record.
type spoolRecord struct {
	Accepted time.Time
	NotAfter time.Time // zero: no limit
	Scope    string    // the key's scope: token id, "" (anonymous, legacy) or tailScope
	Key      string
	Hash     [sha256.Size]byte // bodyHash(Format, Body) when Key is set
	Format   string            // "" → the event contract (ecs)
	Body     []byte
}

// bodyHash is what an idempotency key is bound to: the request's input
// format and body.
func bodyHash(format string, body []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(format))
	h.Write([]byte{0})
	h.Write(body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// decodeSpoolRecord reads a record of either version (version 1: see
// spoolRecordV1).
func decodeSpoolRecord(rec []byte) (spoolRecord, error) {
	if len(rec) < 17 || (rec[0] != spoolRecordV1 && rec[0] != spoolRecordVersion) {
		return spoolRecord{}, fmt.Errorf("spool record: unknown format (%d bytes)", len(rec))
	}
	r := spoolRecord{Accepted: time.Unix(0, int64(binary.LittleEndian.Uint64(rec[1:9])))}
	if na := int64(binary.LittleEndian.Uint64(rec[9:17])); na != 0 {
		r.NotAfter = time.Unix(0, na)
	}
	rest := rec[17:]
	v := rec[0]
	if v == spoolRecordVersion {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return spoolRecord{}, fmt.Errorf("spool record: scope cut short in a record of %d bytes", len(rec))
		}
		r.Scope, rest = string(rest[1:1+int(rest[0])]), rest[1+int(rest[0]):]
	}
	if len(rest) < 2 {
		return spoolRecord{}, fmt.Errorf("spool record: key cut short in a record of %d bytes", len(rec))
	}
	n := int(binary.LittleEndian.Uint16(rest))
	if len(rest) < 2+n+1 {
		return spoolRecord{}, fmt.Errorf("spool record: key of %d bytes in a record of %d", n, len(rec))
	}
	r.Key, rest = string(rest[2:2+n]), rest[2+n:]
	if v == spoolRecordVersion && r.Key != "" {
		if len(rest) < sha256.Size+1 {
			return spoolRecord{}, fmt.Errorf("spool record: body hash cut short in a record of %d bytes", len(rec))
		}
		r.Hash, rest = [sha256.Size]byte(rest[:sha256.Size]), rest[sha256.Size:]
	}
	f := int(rest[0])
	if len(rest) < 1+f {
		return spoolRecord{}, fmt.Errorf("spool record: format name of %d bytes in a record of %d", f, len(rec))
	}
	r.Format, r.Body = string(rest[1:1+f]), rest[1+f:]
	if v == spoolRecordV1 && r.Key != "" {
		if strings.HasPrefix(r.Key, api.TailKeyPrefix) {
			r.Scope = tailScope
		}
		r.Hash = bodyHash(r.Format, r.Body)
	}
	return r, nil
}

// defaultInputs reads the event contract only.
var defaultInputs, _ = input.New(input.Options{})

type stamp struct {
	off uint64
	at  time.Time
}

// Options configure a durable ingester.
type Options struct {
	// Spool options; Dir is required.
	Spool spool.Options
	// RetainBytes is how much processed history the spool keeps for a
	// warm restart (0 → half of Spool.MaxBytes).
	RetainBytes int64
	// Inputs opens the stored bodies in their formats (nil → only the
	// event contract).
	Inputs *input.Inputs
	// Durable returns the last mark (spool offset) whose effects are all
	// stored (the ledger's Durable); nil → everything handed over counts
	// as stored.
	Durable func() uint64
	// MaxLag answers 429 while the oldest stored request has waited
	// longer than this for the pipeline (0 → no limit): a client is told
	// to slow down before detection falls minutes behind, rather than
	// only when the spool is full.
	MaxLag time.Duration
	// CheckpointEvery is how often (wall clock) the consumer asks the
	// engine for a checkpoint of the detectors' learnt state, at the
	// offset of the last record it handed over (0 → never).
	CheckpointEvery time.Duration
	// RestoredThrough is the mark of the checkpoint the pipeline was
	// restored from (0 → none): events of replayed records up to it are
	// marked Restored, so restored detectors skip what their snapshot
	// already holds while the others rebuild their state from them.
	RestoredThrough uint64
	// IdempotencyTTL is how long an idempotency key is kept after its
	// request was accepted (0 → DefaultIdempotencyTTL).
	IdempotencyTTL time.Duration
	// MaxKeysPerScope caps the idempotency keys held per scope (API
	// token); past it the scope's oldest keys are forgotten before their
	// TTL (0 → DefaultMaxKeysPerScope).
	MaxKeysPerScope int
	// HandOffEvents bounds how many decoded events (api.Stored.Events)
	// are held for the consumer, about 1.3 KB each: a record stored with
	// its events is fed from them rather than decoded again, while no
	// more than this many wait (0 → DefaultHandOffEvents, < 0 → none;
	// past it records are decoded from the spool as after a restart).
	HandOffEvents int
	// Now is the clock of acceptance times and key expiry (nil →
	// time.Now).
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Ingester is serve's durable ingest: the spool, the idempotency keys it
// holds and the consumer that feeds the pipeline from it.
type Ingester struct {
	sp      *spool.Spool
	opts    Options
	log     *slog.Logger
	mu      sync.Mutex
	keys    keyTable         // idempotency keys (guarded by mu)
	tailEnd map[string]int64 // tail key prefix → end of its furthest stored chunk (guarded by mu)
	first   uint64           // first offset of the retained spool at start-up
	resumed uint64           // first offset appended after start-up
	failed  atomic.Pointer[error]
	lastSub atomic.Int64 // wall clock of the last submission to the pipeline
	// waiting: (offset, acceptance time) of requests stored since start-up
	// and not yet taken by the consumer, oldest first (guarded by mu).
	waiting []stamp
	lagNs   atomic.Int64 // acceptance → submission of the last consumed record
	pending atomic.Int64 // records appended but not yet consumed
	// lastMark is when the consumer last passed a mark; lastCheckpoint
	// when it last asked for a checkpoint.
	lastMark       time.Time
	lastCheckpoint time.Time
	// handMu guards handed and handEvents: the decoded events of records
	// stored since start-up and not yet consumed, by offset (handOff).
	handMu     sync.Mutex
	handed     map[uint64]*handOff
	handEvents int
}

// DefaultHandOffEvents is Options.HandOffEvents when it is 0: about
// 10 MB of decoded events at most, 8 requests of 1,000 events. In steady
// state the consumer keeps up and a few requests wait; under overload
// (haechi bench's serve phase) every slot the consumer frees is taken by
// the next request, so most records are still handed over: a bound of
// 32,768 saved little more CPU there and cost ≈ 50 MiB more peak RSS.
const DefaultHandOffEvents = 8192

// handOff is a stored request's decoded events, waiting for the consumer
// (Options.HandOffEvents). Every append through store sets or clears the
// entry of the offset it is given, under the spool's lock and before the
// record can be read, so the entry the consumer takes for an offset is
// always that of the record stored there: one whose append failed (its
// offset then given again) is replaced or cleared.
type handOff struct {
	evs []event.Event
}

// Open opens (or recovers) the spool and reads the idempotency keys of
// what it retains.
func Open(opts Options) (*Ingester, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Spool.Logger == nil {
		opts.Spool.Logger = opts.Logger
	}
	sp, err := spool.Open(opts.Spool)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if opts.RetainBytes <= 0 {
		maxBytes := opts.Spool.MaxBytes
		if maxBytes <= 0 {
			maxBytes = spool.DefaultMaxBytes
		}
		opts.RetainBytes = maxBytes / 2
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HandOffEvents == 0 {
		opts.HandOffEvents = DefaultHandOffEvents
	}
	in := &Ingester{sp: sp, opts: opts, log: opts.Logger, keys: newKeyTable(opts.IdempotencyTTL, opts.MaxKeysPerScope), tailEnd: map[string]int64{},
		handed: map[uint64]*handOff{}}
	st := sp.Stats()
	in.first, in.resumed = st.FirstOffset, st.NextOffset
	if opts.RestoredThrough >= st.NextOffset && opts.RestoredThrough > 0 {
		// The checkpoint is from beyond this spool's end: the spool was
		// reset (removed, or restored from an older copy). Its records
		// are not in the checkpoint; none may be skipped.
		in.log.Warn("spool: the detector checkpoint is from later than the spool holds; the spool was reset, so every record is processed in full",
			"checkpoint_mark", opts.RestoredThrough, "spool_next", st.NextOffset)
		in.opts.RestoredThrough = 0
	} else if opts.RestoredThrough > 0 && opts.RestoredThrough+1 < st.FirstOffset {
		in.log.Warn("spool: records between the detector checkpoint and the oldest retained record were deleted; the detectors miss them",
			"checkpoint_mark", opts.RestoredThrough, "spool_first", st.FirstOffset)
	}
	if err := in.scanKeys(st); err != nil {
		sp.Close()
		return nil, err
	}
	in.pending.Store(int64(st.NextOffset - st.FirstOffset))
	if opts.Registerer != nil {
		in.register(opts.Registerer)
	}
	return in, nil
}

// scanKeys reads the idempotency key of every retained record: those
// accepted within the TTL are remembered (with the rule Append applies,
// so the first acceptance of a key is kept), and every tail key's end.
func (in *Ingester) scanKeys(st spool.Stats) error {
	if st.FirstOffset == st.NextOffset {
		return nil
	}
	rd, err := in.sp.Reader(st.FirstOffset)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer rd.Close()
	ctx := context.Background()
	for off := st.FirstOffset; off < st.NextOffset; off++ {
		got, rec, err := rd.Next(ctx)
		if err != nil {
			return fmt.Errorf("spool: reading record %d at start-up: %w", off, err)
		}
		r, err := decodeSpoolRecord(rec)
		if err != nil {
			return fmt.Errorf("spool: record %d: %w", got, err)
		}
		if r.Key == "" {
			continue
		}
		if r.Scope == tailScope {
			in.noteTail(r.Key)
		}
		if now := in.opts.Now(); now.Sub(r.Accepted) < in.opts.IdempotencyTTL {
			in.keys.note(idemKey{r.Scope, r.Key}, r.Hash, r.Accepted)
		}
	}
	return nil
}

// idemKey is an idempotency key in its scope.
type idemKey struct{ scope, key string }

// idemEntry is a remembered key: the body hash and acceptance time of the
// request stored with it. done is open while that request is being stored
// (at is then zero) and nil once it is.
type idemEntry struct {
	hash [sha256.Size]byte
	at   time.Time
	done chan struct{}
}

// keyTable holds idempotency keys for ttl after their acceptance, at most
// max per scope: past that, the scope's oldest keys are forgotten early,
// so one token holder sending fresh keys without end cannot grow serve's
// memory without bound, nor push out another token's keys. Forgetting a
// key early can only store a retry twice, never lose a request.
//
// Each scope keeps its keys in a queue in the order they were put, which
// is their acceptance order up to the few milliseconds concurrent stores
// take: expiry and the cap take keys from the front, so neither walks the
// table while the ingest lock is held. It is not safe for concurrent use.
type keyTable struct {
	ttl       time.Duration
	max       int
	m         map[idemKey]*idemEntry
	scopes    map[string]*keyQueue
	lastSweep time.Time
	evicted   int64 // keys forgotten early (before their TTL) by the cap
}

// keyQueue is one scope's keys in the order they were put. An element
// whose key was since removed or put again (q.m[k] is another entry) is
// stale and skipped when met.
type keyQueue struct {
	q    []queued
	head int // q[:head] were taken
	n    int // live keys of the scope
}

type queued struct {
	key string
	e   *idemEntry
}

func newKeyTable(ttl time.Duration, max int) keyTable {
	if max <= 0 {
		max = DefaultMaxKeysPerScope
	}
	return keyTable{ttl: ttl, max: max, m: map[idemKey]*idemEntry{}, scopes: map[string]*keyQueue{}}
}

// DefaultMaxKeysPerScope is how many idempotency keys serve holds per API
// token when Options.MaxKeysPerScope is 0: ~200 bytes each, so about
// 200 MB for a token at the cap. A shipper posting 10 batches a second
// holds 864,000 keys a day.
const DefaultMaxKeysPerScope = 1_000_000

// put holds e for k (replacing an entry k had), forgetting the scope's
// oldest key when the scope is past the cap.
func (t *keyTable) put(k idemKey, e *idemEntry) {
	sq := t.scopes[k.scope]
	if sq == nil {
		sq = &keyQueue{}
		t.scopes[k.scope] = sq
	}
	if _, ok := t.m[k]; !ok {
		sq.n++
	}
	t.m[k] = e
	sq.q = append(sq.q, queued{k.key, e})
	t.compact(k.scope, sq)
	for sq.n > t.max && t.popFront(k.scope, sq, func(*idemEntry) bool { return true }) {
		t.evicted++
	}
}

// remove forgets k. The element of a key removed right after it was put
// (a request that could not be stored) leaves the back of the queue at
// once, so failing requests do not pile stale elements up for the TTL.
func (t *keyTable) remove(k idemKey) {
	e, ok := t.m[k]
	if !ok {
		return
	}
	delete(t.m, k)
	sq := t.scopes[k.scope]
	if last := len(sq.q) - 1; last >= sq.head && sq.q[last].e == e {
		sq.q[last] = queued{}
		sq.q = sq.q[:last]
	}
	if sq.n--; sq.n == 0 {
		delete(t.scopes, k.scope) // its queue holds only stale elements
	}
}

// popFront forgets the oldest key of scope if drop says so, and reports
// whether it did; stale elements at the front are discarded. A key whose
// request is still being stored is passed over: it stays.
func (t *keyTable) popFront(scope string, sq *keyQueue, drop func(*idemEntry) bool) bool {
	for i := sq.head; i < len(sq.q); i++ {
		el := sq.q[i]
		k := idemKey{scope, el.key}
		switch {
		case t.m[k] != el.e: // stale
			if i == sq.head {
				sq.q[i] = queued{}
				sq.head++
			}
			continue
		case el.e.done != nil: // being stored
			continue
		case !drop(el.e):
			return false
		}
		if i == sq.head {
			sq.q[i] = queued{}
			sq.head++
		} // else it is stale from now on
		t.remove(k)
		t.compact(scope, sq)
		return true
	}
	return false
}

// compact drops the taken front and the stale elements of scope's queue
// once they are more than its live keys (and 64): a rebuild, paid for by
// the elements that went stale since the last one.
func (t *keyTable) compact(scope string, sq *keyQueue) {
	if len(sq.q)-sq.head <= 2*sq.n+64 {
		return
	}
	kept := sq.q[:0]
	for _, el := range sq.q[sq.head:] {
		if t.m[idemKey{scope, el.key}] == el.e {
			kept = append(kept, el)
		}
	}
	clear(sq.q[len(kept):])
	sq.q, sq.head = kept, 0
}

// live returns k's entry as of now: nil when absent or expired (an expired
// one is forgotten). An entry still being stored is live.
func (t *keyTable) live(k idemKey, now time.Time) *idemEntry {
	e := t.m[k]
	if e != nil && e.done == nil && now.Sub(e.at) >= t.ttl {
		t.remove(k)
		return nil
	}
	return e
}

// note records a stored request with k accepted at at, unless k is live
// then (the first acceptance within the TTL is what later ones are
// compared with). It reports whether an earlier request with k and the
// same hash is live — at is then a duplicate of it. In the tailer's scope
// a key with another hash is a range of a file rewritten in place, stored
// again (Append): it replaces the key's entry, as Append does.
func (t *keyTable) note(k idemKey, hash [sha256.Size]byte, at time.Time) (duplicate bool) {
	t.sweep(at)
	if e := t.live(k, at); e != nil && (e.hash == hash || k.scope != tailScope) {
		return e.hash == hash
	}
	t.put(k, &idemEntry{hash: hash, at: at})
	return false
}

// sweep forgets expired keys, at most once per sweepEvery of now (live
// forgets them too as they are met; sweep bounds the memory of keys never
// used again), taking them from the front of each scope's queue. A now
// before the last sweep (records stored slightly out of acceptance order,
// a clock set back) waits for the next period.
func (t *keyTable) sweep(now time.Time) {
	if now.Sub(t.lastSweep) < sweepEvery {
		return
	}
	t.lastSweep = now
	expired := func(e *idemEntry) bool { return now.Sub(e.at) >= t.ttl }
	for scope, sq := range t.scopes {
		for t.popFront(scope, sq, expired) {
		}
	}
}

// sweepEvery is how often keyTable.sweep looks for expired keys.
const sweepEvery = time.Minute

// noteTail records the end of a stored tail chunk ("tail:…:<start>-<end>")
// for TailEnd. These are kept as long as serve runs, whatever the TTL:
// one per followed file generation.
func (in *Ingester) noteTail(key string) {
	i := strings.LastIndexByte(key, ':')
	_, e, ok := strings.Cut(key[i+1:], "-")
	if !ok {
		return
	}
	if v, err := strconv.ParseInt(e, 10, 64); err == nil {
		if prefix := key[:i+1]; v > in.tailEnd[prefix] {
			in.tailEnd[prefix] = v
		}
	}
}

// Append stores a validated request body durably. It implements
// api.Options.Spool.
//
// A request with a key (req.Key, in req.Scope) is checked and stored
// atomically: while one is being stored, another with the same key and
// scope waits for it (or for ctx), then gets the answer a later request
// would — a duplicate (nothing stored) for the same format and body,
// api.ErrKeyReused for another. A failed store forgets the key. "tail:"
// keys belong to the tailer's scope and are refused in any other; in it, a
// key with another body is a range of a file rewritten in place since
// (copytruncate), and is stored.
func (in *Ingester) Append(ctx context.Context, req api.Stored) (duplicate bool, err error) {
	key, scope, format := req.Key, req.Scope, req.Format
	if len(format) > 255 {
		return false, fmt.Errorf("spool: format name of %d bytes", len(format))
	}
	if len(scope) > 255 {
		return false, fmt.Errorf("spool: key scope of %d bytes", len(scope))
	}
	if scope == DrillScope {
		return false, fmt.Errorf("spool: key scope %q is the drill runner's (AppendDrill)", scope)
	}
	if key != "" && strings.HasPrefix(key, api.TailKeyPrefix) != (scope == tailScope) {
		return false, fmt.Errorf("spool: idempotency key %q in scope %q: the %q space is the file tailer's", key, scope, api.TailKeyPrefix)
	}
	if key == "" {
		_, err := in.store(ctx, req, [sha256.Size]byte{})
		return false, err
	}
	hash := bodyHash(format, req.Body)
	k := idemKey{scope, key}
	in.mu.Lock()
	for {
		now := in.opts.Now()
		in.keys.sweep(now)
		e := in.keys.live(k, now)
		if e == nil {
			break
		}
		if done := e.done; done != nil {
			in.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
				return false, ctx.Err()
			}
			in.mu.Lock()
			continue
		}
		if e.hash != hash && scope == tailScope {
			break // a file rewritten in place (copytruncate): new lines
		}
		at := e.at
		in.mu.Unlock()
		if e.hash == hash {
			return true, nil
		}
		return false, fmt.Errorf("%w: Idempotency-Key %q was first used at %s, and keys are kept for %s after their request was accepted (ingest.idempotency_ttl)",
			api.ErrKeyReused, key, at.UTC().Format(time.RFC3339), in.opts.IdempotencyTTL)
	}
	e := &idemEntry{hash: hash, done: make(chan struct{})}
	in.keys.put(k, e) // reserved: a request with the same key waits for this one
	in.mu.Unlock()
	accepted, err := in.store(ctx, req, hash)
	in.mu.Lock()
	if err != nil {
		in.keys.remove(k)
	} else {
		e.at = accepted
		if scope == tailScope {
			in.noteTail(key)
		}
	}
	close(e.done)
	e.done = nil
	in.mu.Unlock()
	return false, err
}

// AppendDrill stores a drill's events (contract NDJSON) durably under
// DrillScope, with key as its idempotency key (a drill run's id): the
// consumer marks every event of it a drill (event.Event.Drill) and feeds it
// through the same pipeline as any request, from its own origin.
func (in *Ingester) AppendDrill(ctx context.Context, key string, body []byte) error {
	if key == "" {
		return errors.New("spool: a drill needs a run id as its key")
	}
	_, err := in.store(ctx, api.Stored{Scope: DrillScope, Key: key, Body: body}, bodyHash("", body))
	return err
}

// store appends req to the spool and returns its acceptance time.
func (in *Ingester) store(ctx context.Context, req api.Stored, hash [sha256.Size]byte) (time.Time, error) {
	if err := in.lagging(); err != nil {
		return time.Time{}, err
	}
	accepted := in.opts.Now()
	var h *handOff
	if n := len(req.Events); n > 0 && n <= in.opts.HandOffEvents {
		h = &handOff{evs: req.Events}
	}
	var off uint64
	assigned := func(first uint64) { // under the spool's lock
		off = first
		in.handMu.Lock()
		if old := in.handed[first]; old != nil { // an append that failed
			delete(in.handed, first)
			in.handEvents -= len(old.evs)
		}
		if h != nil && in.handEvents+len(h.evs) <= in.opts.HandOffEvents {
			in.handed[first] = h
			in.handEvents += len(h.evs)
		}
		in.handMu.Unlock()
	}
	_, last, err := in.sp.AppendAssigned(ctx, assigned, encodeSpoolRecord(spoolRecord{Accepted: accepted, NotAfter: req.NotAfter,
		Scope: req.Scope, Key: req.Key, Hash: hash, Format: req.Format, Body: req.Body}))
	if err != nil && h != nil {
		// Not acknowledged. Should the record become durable after all
		// (ctx ended first), the consumer decodes it from the spool.
		in.handMu.Lock()
		if in.handed[off] == h {
			delete(in.handed, off)
			in.handEvents -= len(h.evs)
		}
		in.handMu.Unlock()
	}
	switch {
	case errors.Is(err, spool.ErrFull):
		return time.Time{}, fmt.Errorf("%w: %w", api.ErrBusy, err)
	case errors.Is(err, spool.ErrClosed):
		return time.Time{}, api.ErrStopping
	case errors.Is(err, spool.ErrTooLarge):
		return time.Time{}, fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	case err != nil:
		in.failed.Store(&err)
		return time.Time{}, fmt.Errorf("%w: %w", api.ErrUnavailable, err)
	}
	in.failed.Store(nil)
	in.pending.Add(1)
	in.mu.Lock()
	in.waiting = append(in.waiting, stamp{off: last, at: time.Now()})
	in.mu.Unlock()
	return accepted, nil
}

// lagging is ErrBusy (wrapped) while the pipeline is more than MaxLag
// behind.
func (in *Ingester) lagging() error {
	if lag := in.Backlog(); in.opts.MaxLag > 0 && lag > in.opts.MaxLag {
		return fmt.Errorf("%w: the pipeline is %s behind (spool.max_lag %s)", api.ErrBusy, lag.Round(time.Second), in.opts.MaxLag)
	}
	return nil
}

// Admit turns a request away before its body is read when the pipeline is
// more than MaxLag behind or the spool has no room for a body of size
// bytes (implements api.Options.Admit).
func (in *Ingester) Admit(size int64) error {
	if err := in.lagging(); err != nil {
		return err
	}
	maxBytes := in.opts.Spool.MaxBytes
	if maxBytes <= 0 {
		maxBytes = spool.DefaultMaxBytes
	}
	if int64(in.sp.Stats().Bytes)+size > maxBytes {
		return fmt.Errorf("%w: the spool is full", api.ErrBusy)
	}
	return nil
}

// Health reports a failed spool (the last append's error while it lasts).
func (in *Ingester) Health() error {
	if ok, err := in.sp.Healthy(); !ok {
		if err == nil {
			err = errors.New("unhealthy")
		}
		return fmt.Errorf("spool: %w", err)
	}
	if e := in.failed.Load(); e != nil {
		return fmt.Errorf("spool: %w", *e)
	}
	return nil
}

// LastSubmit returns the wall clock of the last submission to the
// pipeline (zero before the first).
func (in *Ingester) LastSubmit() time.Time {
	if ns := in.lastSub.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Backlog returns how long the oldest request stored since start-up and
// not yet taken by the pipeline has waited (0 when none waits; requests
// replayed after a restart do not count).
func (in *Ingester) Backlog() time.Duration {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.waiting) == 0 {
		return 0
	}
	return time.Since(in.waiting[0].at)
}

// Pending returns how many stored records the pipeline has not taken yet.
func (in *Ingester) Pending() int64 { return in.pending.Load() }

// Pipeline is what the consumer (Run) feeds: app's pipeline satisfies it.
// Run calls it from one goroutine only.
//
// NewBatch returns an empty event slice (its capacity is the batch size the
// consumer fills); Submit takes ownership of it. Submit hands a batch over,
// waiting while the pipeline is full, until ctx ends. Mark passes the mark
// m (a spool offset, never 0) through the pipeline in order with the
// batches submitted before and after it, so whatever reports stored state
// (Options.Durable) can tell when everything before it is stored;
// Checkpoint is Mark with a snapshot of the detectors' learnt state at m.
// Both wait for room until ctx ends, and return an error wrapping
// engine.ErrClosed once the pipeline is closed.
//
// SubmitFrom names each batch's origin of event time (Origin) and its
// arrival (the request's acceptance time), see engine.Batch.
type Pipeline interface {
	NewBatch() []event.Event
	SubmitFrom(ctx context.Context, origin string, arrived time.Time, evs []event.Event) error
	Mark(ctx context.Context, m uint64) error
	Checkpoint(ctx context.Context, m uint64) error
}

// Run feeds the pipeline from the spool, starting with the first retained
// record (the warm restart), until ctx ends. Records are decoded with
// their offset as the input index, so evidence references
// ("req-<offset>:<line>") are stable across restarts.
func (in *Ingester) Run(ctx context.Context, p Pipeline) error {
	rd, err := in.sp.Reader(in.first)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer rd.Close()
	if n := in.pending.Load(); n > 0 {
		in.log.Info("spool: replaying the retained spool to rebuild detector state", "records", n, "from", in.first)
	}
	// Keys consumed, by the rule Append applies: a record with the key
	// and body of one consumed within the TTL before it is a duplicate (a
	// retry stored again after its first store's answer was lost) and
	// never reaches the pipeline twice; any other record is processed.
	seen := newKeyTable(in.opts.IdempotencyTTL, in.opts.MaxKeysPerScope)
	var last, lastCheckpoint uint64 // offsets: handed over, and of the last checkpoint asked for
	for {
		off, rec, err := in.next(ctx, p, rd, last)
		if err != nil {
			if ctx.Err() != nil {
				// A graceful stop: checkpoint what was handed over, so the
				// next start resumes from here.
				if in.opts.CheckpointEvery > 0 && last > lastCheckpoint && last > in.opts.RestoredThrough {
					if err := p.Checkpoint(context.WithoutCancel(ctx), last); err != nil && !errors.Is(err, engine.ErrClosed) {
						in.log.Warn("spool: final checkpoint", "err", err)
					}
				}
				return nil
			}
			return fmt.Errorf("spool: %w", err)
		}
		r, err := decodeSpoolRecord(rec)
		if err != nil {
			return fmt.Errorf("spool: record %d: %w", off, err)
		}
		h := in.takeHandOff(off)
		if r.Key == "" || !seen.note(idemKey{r.Scope, r.Key}, r.Hash, r.Accepted) {
			if h != nil {
				err = in.feedDecoded(ctx, p, off, r, h.evs)
			} else {
				err = in.feed(ctx, p, off, r)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if off >= in.resumed { // replayed records were processed before
				in.lagNs.Store(int64(time.Since(r.Accepted)))
			}
		}
		in.pending.Add(-1)
		last = off
		if every := in.opts.CheckpointEvery; every > 0 && off > in.opts.RestoredThrough {
			if in.lastCheckpoint.IsZero() {
				in.lastCheckpoint = time.Now() // the first one a period after start-up
			} else if time.Since(in.lastCheckpoint) >= every {
				in.lastCheckpoint = time.Now()
				lastCheckpoint = off
				if err := p.Checkpoint(ctx, off); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("spool: checkpoint %d: %w", off, err)
				}
			}
		}
		in.mu.Lock()
		i := 0
		for i < len(in.waiting) && in.waiting[i].off <= off {
			i++
		}
		in.waiting = in.waiting[i:]
		in.mu.Unlock()
		// Retention and the marks that bound it only matter once the
		// spool holds more than RetainBytes; a mark makes the ledger store
		// its state.
		st := in.sp.Stats()
		if int64(st.Bytes) <= in.opts.RetainBytes {
			continue
		}
		if time.Since(in.lastMark) >= markEvery {
			in.lastMark = time.Now()
			if err := p.Mark(ctx, off); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("spool: mark %d: %w", off, err)
			}
		}
		in.retain(off, st)
	}
}

// next waits for the next stored record. While it waits with more than
// RetainBytes held, it keeps retention going every markEvery — a mark for
// last, the last record handed over, then deleting what the ledger has
// stored since: retention otherwise advances only as records are consumed,
// so a spool that filled up in a burst, with everything in it consumed
// before the ledger had stored it, stayed full — every request answered
// 429 — until one small enough to fit the space left arrived.
func (in *Ingester) next(ctx context.Context, p Pipeline, rd *spool.Reader, last uint64) (uint64, []byte, error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, markEvery)
		off, rec, err := rd.Next(wctx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return off, rec, err
		}
		st := in.sp.Stats()
		if last == 0 || int64(st.Bytes) <= in.opts.RetainBytes {
			continue
		}
		if time.Since(in.lastMark) >= markEvery {
			in.lastMark = time.Now()
			if err := p.Mark(ctx, last); err != nil {
				if ctx.Err() != nil {
					return 0, nil, ctx.Err()
				}
				return 0, nil, fmt.Errorf("spool: mark %d: %w", last, err)
			}
		}
		in.retain(last, st)
	}
}

// takeHandOff removes and returns the decoded events stored with the
// record at off, or nil.
func (in *Ingester) takeHandOff(off uint64) *handOff {
	in.handMu.Lock()
	defer in.handMu.Unlock()
	h := in.handed[off]
	if h != nil {
		delete(in.handed, off)
		in.handEvents -= len(h.evs)
	}
	return h
}

// feedDecoded submits the events decoded when the record at off was
// accepted (handOff) in batches, as feed would after decoding its body:
// lines after r.NotAfter were left out then, and the input index is off.
// It is only given records stored since start-up, so none is Restored.
func (in *Ingester) feedDecoded(ctx context.Context, p Pipeline, off uint64, r spoolRecord, evs []event.Event) error {
	drill := r.Scope == DrillScope
	for len(evs) > 0 {
		batch := p.NewBatch()
		n := min(len(evs), max(cap(batch)-len(batch), 1))
		batch = append(batch, evs[:n]...)
		for i := len(batch) - n; i < len(batch); i++ {
			batch[i].Input = uint32(off)
			batch[i].Restored = off <= in.opts.RestoredThrough
			batch[i].Drill = drill
		}
		evs = evs[n:]
		if err := in.submit(ctx, p, r, batch); err != nil {
			return err
		}
	}
	if drill {
		if e, ok := p.(originEnder); ok {
			return e.EndOrigin(ctx, Origin(r.Scope, r.Key))
		}
	}
	return nil
}

// feed decodes one stored body and submits its events in batches.
func (in *Ingester) feed(ctx context.Context, p Pipeline, off uint64, r spoolRecord) error {
	format, body := r.Format, r.Body
	if format == "" {
		format = input.FormatECS
	}
	inputs := in.opts.Inputs
	if inputs == nil {
		inputs = defaultInputs
	}
	rd, err := inputs.Open(format, bytes.NewReader(body), uint32(off))
	if err != nil {
		// The format was accepted when the request was; a configuration
		// change since (a mapping removed) cannot read it now.
		in.log.Error("spool: cannot read a stored request; skipped", "offset", off, "format", format, "err", err)
		return nil
	}
	restored := off <= in.opts.RestoredThrough
	drill := r.Scope == DrillScope
	batch := p.NewBatch()
	for {
		batch = append(batch, event.Event{})
		err := rd.Next(&batch[len(batch)-1])
		batch[len(batch)-1].Restored = restored
		batch[len(batch)-1].Drill = drill
		if err == nil && !r.NotAfter.IsZero() && batch[len(batch)-1].Time.After(r.NotAfter) {
			batch = batch[:len(batch)-1] // rejected when the request was accepted
			continue
		}
		if err == nil {
			if len(batch) == cap(batch) {
				if err := in.submit(ctx, p, r, batch); err != nil {
					return err
				}
				batch = p.NewBatch()
			}
			continue
		}
		batch = batch[:len(batch)-1]
		var le *decode.LineError
		if errors.As(err, &le) {
			continue // rejected (and reported) when the request was accepted
		}
		if errors.Is(err, io.EOF) {
			break
		}
		return fmt.Errorf("spool: record %d: %w", off, err)
	}
	if len(batch) > 0 {
		if err := in.submit(ctx, p, r, batch); err != nil {
			return err
		}
	}
	if drill {
		// A drill run is a finite input, like a replayed file: its
		// origin ends with it, so it never holds event time (or the
		// issuer stream a token_hijack drill's mint rides on) back.
		if e, ok := p.(originEnder); ok {
			return e.EndOrigin(ctx, Origin(r.Scope, r.Key))
		}
	}
	return nil
}

// originEnder is the optional part of a Pipeline that ends an origin
// (engine.Engine.EndOrigin); app's pipeline has it.
type originEnder interface {
	EndOrigin(ctx context.Context, origin string) error
}

func (in *Ingester) submit(ctx context.Context, p Pipeline, r spoolRecord, batch []event.Event) error {
	in.lastSub.Store(time.Now().UnixNano())
	return p.SubmitFrom(ctx, Origin(r.Scope, r.Key), r.Accepted, batch)
}

// Origin names the engine origin (engine.Batch.Origin) of a stored request
// from its key scope and idempotency key: one per API token ("token " and
// the token's id; the anonymous scope of --insecure-no-auth is "token "),
// so give each shipper its own token and a slow one holds the others back
// rather than having its events marked late; and one per tailed file
// ("tail " and the file's identity, which its keys carry); and one per
// drill run ("drill " and the run's id), ended once it is fed; and
// "verify" for the inline check's refusals (VerifyScope).
func Origin(scope, key string) string {
	if scope == tailScope {
		if rest, ok := strings.CutPrefix(key, api.TailKeyPrefix); ok {
			if i := strings.LastIndexByte(rest, ':'); i > 0 {
				return "tail " + rest[:i]
			}
		}
		return "tail"
	}
	if scope == DrillScope {
		return "drill " + key // one per run, ended after it
	}
	if scope == VerifyScope {
		return "verify"
	}
	return "token " + scope
}

// OriginToken returns the API token id whose requests make up origin (an
// Origin of a token's scope: "" for the anonymous scope of
// --insecure-no-auth), and false for any other origin (a tailed file, a
// drill run, the inline check's refusals, or one Origin did not name).
func OriginToken(origin string) (string, bool) {
	return strings.CutPrefix(origin, "token ")
}

// retain deletes the oldest segments while the spool holds more than
// RetainBytes, never past the last durable mark (or off, the last record
// handed over, without a Durable function).
func (in *Ingester) retain(off uint64, st spool.Stats) {
	safe := off
	if in.opts.Durable != nil {
		safe = min(safe, in.opts.Durable())
	}
	if safe < st.FirstOffset {
		return
	}
	if err := in.sp.DeleteThrough(safe); err != nil {
		in.log.Warn("spool: retention", "through", safe, "err", err)
	}
}

// Close closes the spool; Run must have returned.
func (in *Ingester) Close() error { return in.sp.Close() }

func (in *Ingester) register(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "haechi_spool_lag_seconds",
			Help: "Time from acknowledging a request to handing its events to the pipeline (then haechi_processing_lag_seconds), for the last one handed over; 0 when nothing waits.",
		}, func() float64 {
			if in.pending.Load() <= 0 {
				return 0
			}
			return time.Duration(in.lagNs.Load()).Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "haechi_spool_pending_records",
			Help: "Stored requests the pipeline has not taken yet.",
		}, func() float64 { return float64(in.pending.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "haechi_spool_bytes",
			Help: "Bytes held in the spool's segments.",
		}, func() float64 { return float64(in.sp.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "haechi_idempotency_keys",
			Help: "Idempotency keys held (all API tokens), each for ingest.idempotency_ttl.",
		}, func() float64 {
			in.mu.Lock()
			defer in.mu.Unlock()
			return float64(len(in.keys.m))
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "haechi_idempotency_keys_evicted_total",
			Help: "Idempotency keys forgotten before their TTL because their API token held ingest.idempotency_max_keys.",
		}, func() float64 {
			in.mu.Lock()
			defer in.mu.Unlock()
			return float64(in.keys.evicted)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "haechi_spool_syncs_total",
			Help: "Spool fsyncs (group commits).",
		}, func() float64 { return float64(in.sp.Stats().Syncs) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "haechi_spool_healthy",
			Help: "1 while the spool accepts appends; 0 after a write or sync failure.",
		}, func() float64 {
			if in.Health() != nil {
				return 0
			}
			return 1
		}),
	)
}
