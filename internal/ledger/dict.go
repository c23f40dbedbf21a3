package ledger

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/haechi-sec/haechi/internal/store"
)

// DictBase is the first number the dictionary assigns.
const DictBase = 1 << 31

// dropID marks, in numberAll's output, an id that could not be numbered.
// No dictionary assigns it: numbering stops one short of it.
const dropID = math.MaxUint32

// parseSmall parses a canonical decimal integer below 2³¹.
func parseSmall(s string) (uint32, bool) {
	if len(s) == 0 || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v >= DictBase {
		return 0, false
	}
	return uint32(v), true
}

// Dict numbers record ids that are not small integers. It is safe for
// concurrent use; a number, once given to an id, is that id's for good.
//
// Three kinds:
//
//   - A local dictionary over a store (OpenDict: what serve and replay
//     use) numbers ids itself and has its new entries stored with the rows
//     that use them: one process must own the stored dictionary. Its
//     memory is bounded, not grown by every id ever seen: it remembers the
//     ids it met most recently (two generations of at most
//     DictOptions.CacheEntries each), every id it numbered that is not yet
//     stored, and a Bloom filter of every stored id (DictOptions.FilterBytes,
//     fixed). An id it does not remember is new when the filter says so
//     (no store read); otherwise the store is asked, once for all such ids
//     of a batch (Ledger.Number). A fuller filter answers "maybe" more
//     often — more reads, never a wrong number.
//   - A local dictionary without a store (NewDict: tests, tools) remembers
//     every id and name.
//   - A shared dictionary (NewSharedDict: cluster workers) has the store
//     number every id it does not know yet (DictAssigner), so that
//     processes sharing one store agree on every number; it remembers the
//     ids it met most recently, as a local one over a store does.
type Dict struct {
	mu sync.RWMutex
	// cur and old are the ids remembered (cur first; an id found in old
	// moves to cur). With genCap > 0, cur becomes old once it holds genCap
	// ids and the old old is forgotten; genCap 0 remembers every id in cur.
	cur, old map[string]uint32
	genCap   int
	// genBytes bounds the bytes of the ids in cur (with genCap > 0);
	// curBytes counts them.
	genBytes, curBytes int

	// Local dictionaries.
	names    []string                // names[id-DictBase]; NewDict only
	next     uint32                  // the next number to assign
	unstored map[string]uint32       // numbered here, not yet stored (pending or being written)
	pending  []store.LedgerDictEntry // numbered, not yet taken by the writer
	filter   *bloom.BloomFilter      // every stored or unstored id; nil: remember everything
	lookup   DictLookup              // asked for ids the filter may hold
	full     atomic.Int64

	// form maps a record id to the form the store holds it in (nil: as
	// it is); every id is numbered in that form (DictForm).
	form func(string) string

	// Shared dictionaries: the names of the numbers remembered (Name).
	byCur, byOld map[uint32]string
	assign       DictAssigner

	// numberAll's scratch (under d.mu): the new ids of a call, and what
	// it numbered or found.
	batchNew map[string]struct{}
	fresh    map[string]uint32
	asking   map[string]struct{} // the ids of ask

	lookups, asked, lookupFailures atomic.Int64
}

// DictAssigner numbers record ids in a store shared by several processes:
// it returns the stored number of each rid, storing the next free numbers
// (from first) for those without one. *store.Store implements it.
type DictAssigner interface {
	AssignLedgerDict(ctx context.Context, rids []string, first uint32) ([]store.LedgerDictEntry, error)
}

// DictLookup is what a local dictionary over a store reads of it.
// *store.Store implements it.
type DictLookup interface {
	// LookupLedgerDict returns the stored numbers of those of rids that
	// have one.
	LookupLedgerDict(ctx context.Context, rids []string) (map[string]uint32, error)
}

// DictForm is implemented by a store that does not hold every record id
// as it is (PostgreSQL: NUL bytes and invalid UTF-8 become U+FFFD). A
// dictionary over it numbers each id in the stored form, so that the
// store's answers (look-ups, numbers assigned, the entries read at
// start-up) name the ids it asked about, and two ids the store cannot
// tell apart get one number. *store.Store implements it.
type DictForm interface {
	// LedgerRIDForm returns the mapping, or nil when ids are stored as
	// they are.
	LedgerRIDForm() func(string) string
}

// storeForm returns x's DictForm mapping, if any.
func storeForm(x any) func(string) string {
	if f, ok := x.(DictForm); ok {
		return f.LedgerRIDForm()
	}
	return nil
}

// inForm returns rids in the store's form: rids itself when no id
// changes (always, for a store that holds ids as they are).
func (d *Dict) inForm(rids []string) []string {
	if d.form == nil {
		return rids
	}
	var out []string
	for i, rid := range rids {
		f := d.form(rid)
		if out == nil {
			if f == rid {
				continue
			}
			out = make([]string, len(rids))
			copy(out, rids[:i])
		}
		out[i] = f
	}
	if out == nil {
		return rids
	}
	return out
}

// DictStore is what OpenDict needs: the stored entries once, at start-up
// (in order of number), then look-ups.
type DictStore interface {
	DictLookup
	ScanLedgerDict(ctx context.Context, fn func(id uint32, rid string) error) error
}

// DictOptions bound a dictionary's memory (OpenDict, NewSharedDict).
type DictOptions struct {
	// CacheEntries is the most ids remembered per generation (two
	// generations; default 131,072, ≈ 9 MiB each with ids of ≈ 20 bytes).
	CacheEntries int
	// FilterBytes is the size of the Bloom filter of stored ids (default
	// 4 MiB: 1 % false positives at 3.5 million ids, 10 % at 7 million).
	FilterBytes int
}

// Defaults of DictOptions.
const (
	DefaultDictCacheEntries = 1 << 17
	DefaultDictFilterBytes  = 4 << 20
	dictFilterHashes        = 7
	// dictIDBytes is the average id length a generation is sized for: it
	// holds CacheEntries ids or CacheEntries × dictIDBytes bytes of ids,
	// whichever comes first.
	dictIDBytes = 128
)

// genBytes is the most bytes of ids a generation holds.
func (o *DictOptions) genBytes() int {
	if o.CacheEntries > math.MaxInt/dictIDBytes {
		return math.MaxInt
	}
	return o.CacheEntries * dictIDBytes
}

func (o *DictOptions) defaults() {
	if o.CacheEntries <= 0 {
		o.CacheEntries = DefaultDictCacheEntries
	}
	if o.FilterBytes <= 0 {
		o.FilterBytes = DefaultDictFilterBytes
	}
}

// Retry policy of the dictionary's store requests (numbering, look-ups):
// the caller waits, so it gives up after a few attempts (the ids are then
// dropped and counted in Stats.Unnumbered).
const (
	assignAttempts = 5
	assignTimeout  = 30 * time.Second
)

// NewDict returns an empty local dictionary that remembers every id.
func NewDict() *Dict {
	return &Dict{cur: map[string]uint32{}, next: DictBase, unstored: map[string]uint32{}, names: []string{}}
}

// OpenDict returns the local dictionary of the entries st holds, bounded
// as opts says (package doc of Dict). It reads every stored entry once:
// numbers must be contiguous from DictBase.
func OpenDict(ctx context.Context, st DictStore, opts DictOptions) (*Dict, error) {
	opts.defaults()
	d := &Dict{
		cur: map[string]uint32{}, genCap: opts.CacheEntries, genBytes: opts.genBytes(), next: DictBase,
		unstored: map[string]uint32{},
		filter:   bloom.New(uint(opts.FilterBytes)*8, dictFilterHashes),
		lookup:   st,
		form:     storeForm(st),
	}
	err := st.ScanLedgerDict(ctx, func(id uint32, rid string) error {
		if id != d.next {
			if id < DictBase {
				return fmt.Errorf("ledger dictionary: id %d below %d", id, DictBase)
			}
			return fmt.Errorf("ledger dictionary: id %d missing", d.next)
		}
		if d.next == dropID {
			return errors.New("ledger dictionary: full")
		}
		d.next++
		d.filter.AddString(rid)
		// The newest entries stay remembered: ids met lately are met again.
		d.remember(strings.Clone(rid), id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load ledger dictionary: %w", err)
	}
	return d, nil
}

// NewSharedDict returns an empty dictionary that asks a for the number of
// every id it does not remember (and remembers it, within opts' bounds;
// its filter is unused). Its entries are stored when they are numbered,
// never with the rows.
func NewSharedDict(a DictAssigner, opts ...DictOptions) *Dict {
	var o DictOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.defaults()
	return &Dict{cur: map[string]uint32{}, byCur: map[uint32]string{}, genCap: o.CacheEntries, genBytes: o.genBytes(), assign: a, form: storeForm(a)}
}

// known returns the number of an id the dictionary remembers or has not
// stored yet. The caller holds d.mu (for writing: an id found in old moves
// to cur).
func (d *Dict) known(rid string) (uint32, bool) {
	if v, ok := d.cur[rid]; ok {
		return v, true
	}
	if v, ok := d.unstored[rid]; ok {
		return v, true
	}
	if v, ok := d.old[rid]; ok {
		d.remember(rid, v)
		return v, true
	}
	return 0, false
}

// remember puts rid in the current generation, starting a new one when it
// is full. The caller holds d.mu for writing.
func (d *Dict) remember(rid string, v uint32) {
	if d.genCap > 0 && (len(d.cur) >= d.genCap || len(d.cur) > 0 && d.curBytes+len(rid) > d.genBytes) {
		d.old, d.cur = d.cur, make(map[string]uint32, d.genCap)
		d.curBytes = 0
		if d.byCur != nil {
			d.byOld, d.byCur = d.byCur, make(map[uint32]string, d.genCap)
		}
	}
	d.cur[rid] = v
	d.curBytes += len(rid)
	if d.byCur != nil {
		d.byCur[v] = rid
	}
}

// assignLocal gives rid the next number. The caller holds d.mu for
// writing and knows rid has none.
func (d *Dict) assignLocal(rid string) uint32 {
	if d.next == dropID {
		d.full.Add(1)
		return dropID
	}
	rid = strings.Clone(rid)
	v := d.next
	d.next++
	if d.names != nil {
		d.names = append(d.names, rid)
	}
	if d.filter != nil {
		// Held apart until stored, then remembered (stored). The filter
		// holds it already (numberAll tested and added it).
		d.unstored[rid] = v
	} else {
		d.cur[rid] = v
	}
	d.pending = append(d.pending, store.LedgerDictEntry{ID: v, RID: rid})
	return v
}

// numberAll sets out[i] to the number of rids[i] (dropID for an id that
// could not be numbered: the dictionary is full, or the store did not
// answer), numbering new ids in order of first appearance. A local
// dictionary over a store asks it once, for every id of rids it does not
// remember and its filter may hold. out must be as long as rids.
func (d *Dict) numberAll(out []uint32, rids []string) (dropped int) {
	return d.numberIn(out, d.inForm(rids))
}

// numberIn is numberAll of ids already in the store's form.
func (d *Dict) numberIn(out []uint32, rids []string) (dropped int) {
	if d.assign != nil {
		return d.numberShared(out, rids)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Remembered ids first; ids the store may have numbered before are
	// asked for once, after. The filter holds every id stored or numbered
	// (and may hold ids asked for): one it does not hold is new, with no
	// further look-up, and is added as it is tested.
	var ask []string
	var maybe []bool // maybe[i]: rids[i] was asked for
	clear(d.batchNew)
	for i, rid := range rids {
		if v, ok := parseSmall(rid); ok {
			out[i] = v
			continue
		}
		if v, ok := d.cur[rid]; ok {
			out[i] = v
			continue
		}
		out[i] = dropID
		if d.filter != nil {
			if _, ok := d.batchNew[rid]; ok {
				continue // new, met earlier in rids
			}
			if !d.filter.TestOrAddString(rid) {
				if d.batchNew == nil {
					d.batchNew = make(map[string]struct{})
				}
				d.batchNew[rid] = struct{}{}
				continue // never numbered: numbered below, in order
			}
		}
		if v, ok := d.known(rid); ok {
			out[i] = v
			continue
		}
		if d.filter == nil {
			continue // remembers every id: new
		}
		if maybe == nil {
			maybe = make([]bool, len(rids))
			if d.asking == nil {
				d.asking = make(map[string]struct{})
			}
		}
		maybe[i] = true
		if _, ok := d.asking[rid]; !ok {
			d.asking[rid] = struct{}{}
			ask = append(ask, rid)
		}
	}
	clear(d.asking)
	var found map[string]uint32
	failed := false
	if len(ask) > 0 {
		var err error
		found, err = d.ask(ask)
		failed = err != nil
	}
	// What this call numbers or finds, for the ids repeated in rids (the
	// lock is held throughout: nothing else numbers meanwhile).
	fresh := d.fresh
	clear(fresh)
	for i, rid := range rids {
		if out[i] != dropID {
			continue
		}
		if v, ok := fresh[rid]; ok {
			out[i] = v
			continue
		}
		v, ok := found[rid]
		switch {
		case ok:
			d.remember(strings.Clone(rid), v)
		case failed && maybe[i]:
			dropped++ // the store may hold a number for it: none given
			continue
		default:
			if v = d.assignLocal(rid); v == dropID {
				dropped++
				continue
			}
		}
		if fresh == nil {
			fresh = make(map[string]uint32)
			d.fresh = fresh
		}
		fresh[rid] = v
		out[i] = v
	}
	clear(fresh)
	clear(d.batchNew)
	return dropped
}

// ask reads the stored numbers of rids, retrying failures. The caller
// holds d.mu: numbering waits for the answer.
func (d *Dict) ask(rids []string) (map[string]uint32, error) {
	d.lookups.Add(1)
	d.asked.Add(int64(len(rids)))
	backoff := retryInitial
	var err error
	for attempt := 1; attempt <= assignAttempts; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), assignTimeout)
		var found map[string]uint32
		found, err = d.lookup.LookupLedgerDict(ctx, rids)
		cancel()
		if err == nil {
			return found, nil
		}
		d.lookupFailures.Add(1)
		if attempt < assignAttempts {
			time.Sleep(backoff)
			backoff = min(2*backoff, retryMax)
		}
	}
	return nil, err
}

// numberShared is numberAll for a shared dictionary.
func (d *Dict) numberShared(out []uint32, rids []string) (dropped int) {
	d.mu.RLock()
	rest := false
	for i, rid := range rids {
		if v, ok := parseSmall(rid); ok {
			out[i] = v
		} else if v, ok := d.cur[rid]; ok {
			out[i] = v
		} else {
			out[i], rest = dropID, true
		}
	}
	d.mu.RUnlock()
	if !rest {
		return 0
	}
	// The store's answer numbers the batch: what it remembered may be
	// forgotten already (more new ids than two generations hold, or
	// other shards numbering meanwhile).
	got := d.number(d.missing(rids))
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, rid := range rids {
		if out[i] != dropID {
			continue
		}
		if v, ok := got[rid]; ok {
			out[i] = v
		} else if v, ok := d.known(rid); ok {
			out[i] = v
		} else {
			dropped++
		}
	}
	return dropped
}

// appendIDs appends the numbers of rids to out, leaving out those that
// could not be numbered, and returns out and their count.
func (d *Dict) appendIDs(out []uint32, rids []string) ([]uint32, int) {
	start := len(out)
	out = append(out, make([]uint32, len(rids))...)
	dropped := d.numberAll(out[start:], rids)
	if dropped == 0 {
		return out, 0
	}
	n := start
	for _, v := range out[start:] {
		if v != dropID {
			out[n] = v
			n++
		}
	}
	return out[:n], dropped
}

// Prefetch has a shared dictionary number, in one request to the store,
// every id of rids it does not know yet, so that the shards that meet them
// later find them known instead of asking the store one event at a time
// (cluster mode numbers the ids of a whole poll of records at once). It
// does nothing for a local dictionary or when every id is known; a failed
// request is retried, and ids still unnumbered are left to the shards that
// need them.
func (d *Dict) Prefetch(rids []string) {
	if d.assign == nil || len(rids) == 0 {
		return
	}
	if missing := d.missing(d.inForm(rids)); len(missing) > 0 {
		d.number(missing)
	}
}

// missing returns the ids of rids (in the store's form) a shared
// dictionary does not remember.
func (d *Dict) missing(rids []string) []string {
	var missing []string
	d.mu.RLock()
	for _, rid := range rids {
		if _, ok := parseSmall(rid); ok {
			continue
		}
		_, ok := d.cur[rid]
		if !ok {
			_, ok = d.old[rid]
		}
		if !ok {
			missing = append(missing, rid)
		}
	}
	d.mu.RUnlock()
	return missing
}

// number asks the store for the numbers of rids, remembers them and
// returns them (nil when the store did not answer).
func (d *Dict) number(rids []string) map[string]uint32 {
	if len(rids) == 0 {
		return nil
	}
	backoff := retryInitial
	for attempt := 1; attempt <= assignAttempts; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), assignTimeout)
		es, err := d.assign.AssignLedgerDict(ctx, rids, DictBase)
		cancel()
		if err == nil {
			got := make(map[string]uint32, len(es))
			d.mu.Lock()
			for _, e := range es {
				if e.ID < DictBase {
					continue
				}
				got[e.RID] = e.ID
				if _, ok := d.known(e.RID); !ok {
					d.remember(strings.Clone(e.RID), e.ID)
				}
			}
			d.mu.Unlock()
			return got
		}
		if attempt < assignAttempts {
			time.Sleep(backoff)
			backoff = min(2*backoff, retryMax)
		}
	}
	return nil
}

// Load adds persisted entries to a dictionary made by NewDict (numbers
// must be contiguous from DictBase, in any order). It is for start-up,
// before the dictionary is shared.
func (d *Dict) Load(entries []store.LedgerDictEntry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.assign != nil || d.filter != nil {
		return errors.New("ledger dictionary: only a dictionary made by NewDict loads entries")
	}
	for _, e := range entries {
		if e.ID < DictBase || e.ID == dropID {
			return fmt.Errorf("ledger dictionary: id %d out of range", e.ID)
		}
		i := int(e.ID - DictBase)
		for len(d.names) <= i {
			d.names = append(d.names, "")
		}
		d.names[i] = e.RID
		d.cur[e.RID] = e.ID
	}
	for i, n := range d.names {
		if n == "" {
			return fmt.Errorf("ledger dictionary: id %d missing", DictBase+i)
		}
	}
	d.next = uint32(DictBase + len(d.names))
	return nil
}

// ID returns rid's number, assigning the next one if rid is new; ok is
// false when it could not be numbered (the dictionary is full, or the
// store did not answer).
func (d *Dict) ID(rid string) (uint32, bool) {
	var out [1]uint32
	if d.numberAll(out[:], []string{rid}) > 0 {
		return 0, false
	}
	return out[0], true
}

// Name returns the record id numbered v, when the dictionary remembers it
// (every number for NewDict's; for the others, those met lately).
func (d *Dict) Name(v uint32) (string, bool) {
	if v < DictBase {
		return "", false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.names != nil {
		i := int(v - DictBase)
		if i >= len(d.names) {
			return "", false
		}
		return d.names[i], true
	}
	if d.byCur != nil {
		if n, ok := d.byCur[v]; ok {
			return n, true
		}
		n, ok := d.byOld[v]
		return n, ok
	}
	for _, m := range []map[string]uint32{d.unstored, d.cur, d.old} {
		for n, x := range m {
			if x == v {
				return n, true
			}
		}
	}
	return "", false
}

// Len returns the number of entries: numbered (a local dictionary) or
// remembered (a shared one).
func (d *Dict) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.assign != nil {
		return len(d.cur) + len(d.old)
	}
	return int(d.next - DictBase)
}

// Remembered returns how many ids the dictionary holds in memory
// (remembered or not yet stored).
func (d *Dict) Remembered() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.cur) + len(d.old) + len(d.unstored)
}

func (d *Dict) takePending() []store.LedgerDictEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pending
	d.pending = nil
	return p
}

func (d *Dict) putBack(p []store.LedgerDictEntry) {
	if len(p) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending = append(p, d.pending...)
}

// stored notes that entries taken by takePending are in the store: a
// dictionary over a store stops holding them apart and remembers them
// among the ids met lately (the writer does this, not the numbering).
func (d *Dict) stored(p []store.LedgerDictEntry) {
	if len(p) == 0 || d.filter == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range p {
		delete(d.unstored, e.RID)
		d.remember(e.RID, e.ID)
	}
}
