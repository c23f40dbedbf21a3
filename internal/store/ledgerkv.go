package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2"
)

// LedgerKV is the access ledger in a pebble LSM (github.com/cockroachdb/pebble/v2)
// instead of SQL tables: a candidate write path measured against
// MergeLedger's (docs/bench.md). A flush is blind writes — each ledger day
// is a pebble Merge of its cells, ORed into what is stored by a merge
// operator when pebble reads or compacts the key — so no stored day is read
// on the write path.
//
// Keys:
//
//	'd' dim 0 value 0 day(8, big-endian, sign-flipped) → cells (encodeCells); merged by OR
//	'v' dim 0 day(8) value                             → empty (LedgerValues by day)
//	'i' id(4, big-endian)                              → rid (the dictionary)
//	'r' rid                                            → id(4, big-endian) (its inverse)
//
// dim and value are escaped (0x00 → 0x00 0xff) so keys sort by (dim,
// value, day) and one value's key is never a prefix of another's.
//
// One process owns the directory (pebble locks it).
type LedgerKV struct {
	db *pebble.DB
}

// ledgerMergerName is stored in pebble's OPTIONS: a database written with
// another merge operator refuses to open.
const ledgerMergerName = "haechi.ledger.cells.v1"

// OpenLedgerKV opens (creating it if needed) the pebble ledger in dir;
// pebble's messages go to logger (nil: discarded), its errors (a failed
// compaction, say) at level error.
func OpenLedgerKV(dir string, logger *slog.Logger) (*LedgerKV, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := &pebble.Options{
		Merger: &pebble.Merger{Name: ledgerMergerName, Merge: newCellsMerger},
		Logger: pebbleLogger{logger.With("ledger", dir)},
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	return &LedgerKV{db: db}, nil
}

// Close closes the database.
func (k *LedgerKV) Close() error { return k.db.Close() }

// pebbleLogger is pebble's Logger over slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...))
	}
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic("pebble: " + msg) // pebble's contract: Fatalf does not return
}

func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, s[i])
		if s[i] == 0 {
			dst = append(dst, 0xff)
		}
	}
	return append(dst, 0, 0)
}

func appendDay(dst []byte, day int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(day)^(1<<63))
}

// cutEscaped reads an escaped string off b.
func cutEscaped(b []byte) (string, []byte, error) {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch b[i+1] {
		case 0:
			out = append(out, b[:i]...)
			return string(out), b[i+2:], nil
		case 0xff:
			out = append(out, b[:i+1]...)
			b = b[i+2:]
			i = -1
		default:
			return "", nil, errors.New("malformed ledger key")
		}
	}
	return "", nil, errors.New("malformed ledger key")
}

func dayKeyBytes(dst []byte, dim, value string, day int64) []byte {
	dst = append(dst, 'd')
	dst = appendEscaped(dst, dim)
	dst = appendEscaped(dst, value)
	return appendDay(dst, day)
}

// MergeLedger writes dictionary entries and ORs rows into the ledger in one
// synced pebble batch, with the contract of Store.MergeLedger except that
// dictionary entries are written blind, unchecked: a pebble ledger has one
// process, whose ledger.Dict loaded every stored entry and never renumbers
// one, so no entry can conflict (a check was a read per new record id,
// most of a flush's cost).
func (k *LedgerKV) MergeLedger(ctx context.Context, dict []LedgerDictEntry, rows []LedgerRow) error {
	if len(dict) == 0 && len(rows) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	rows, err := sortedLedgerRows(rows)
	if err != nil {
		return fmt.Errorf("merge ledger: %w", err)
	}
	b := k.db.NewBatch()
	defer b.Close()
	var key []byte
	var id [4]byte
	for _, e := range dict {
		key = binary.BigEndian.AppendUint32(append(key[:0], 'i'), e.ID)
		if err := b.Set(key, []byte(e.RID), nil); err != nil {
			return fmt.Errorf("merge ledger: %w", err)
		}
		binary.BigEndian.PutUint32(id[:], e.ID)
		if err := b.Set(append(append(key[:0], 'r'), e.RID...), id[:], nil); err != nil {
			return fmt.Errorf("merge ledger: %w", err)
		}
	}
	for _, d := range groupDays(rows) {
		cells, err := mergeCells(nil, d.rows)
		if err != nil {
			return fmt.Errorf("merge ledger: %w", err)
		}
		if err := k.putDay(b, d.key, encodeCells(cells), &key); err != nil {
			return fmt.Errorf("merge ledger: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("merge ledger: %w", err)
	}
	return nil
}

// putDay adds to b the merge of one day's cells and the day's entry in the
// values' index (key is scratch space).
func (k *LedgerKV) putDay(b *pebble.Batch, d dayKey, cells []byte, key *[]byte) error {
	*key = dayKeyBytes((*key)[:0], d.dim, d.value, d.day)
	if err := b.Merge(*key, cells, nil); err != nil {
		return err
	}
	*key = append((*key)[:0], 'v')
	*key = appendEscaped(*key, d.dim)
	*key = appendDay(*key, d.day)
	*key = append(*key, d.value...)
	return b.Set(*key, nil, nil)
}

// LedgerRows is Store.LedgerRows.
func (k *LedgerKV) LedgerRows(ctx context.Context, dim string, values []string, fromDay, toDay int64) ([]LedgerRow, error) {
	var out []LedgerRow
	scan := func(lo, hi []byte) error {
		it, err := k.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			rest := it.Key()[1:]
			_, rest, err := cutEscaped(rest)
			if err != nil {
				return err
			}
			value, rest, err := cutEscaped(rest)
			if err != nil {
				return err
			}
			if len(rest) != 8 {
				return errors.New("malformed ledger key")
			}
			day := int64(binary.BigEndian.Uint64(rest) ^ (1 << 63))
			if day < fromDay || day > toDay {
				if len(values) > 0 && day > toDay {
					break
				}
				continue
			}
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			rows, err := DecodeLedgerCells(dim, value, day, bytes.Clone(v))
			if err != nil {
				return fmt.Errorf("%s=%s day %d: %w", dim, value, day, err)
			}
			out = append(out, rows...)
		}
		return it.Error()
	}
	if len(values) == 0 {
		lo := appendEscaped([]byte{'d'}, dim)
		if err := scan(lo, prefixEnd(lo)); err != nil {
			return nil, fmt.Errorf("ledger rows: %w", err)
		}
		return out, nil
	}
	for _, v := range values {
		lo := dayKeyBytes(nil, dim, v, fromDay)
		hi := prefixEnd(appendEscaped(appendEscaped([]byte{'d'}, dim), v))
		if err := scan(lo, hi); err != nil {
			return nil, fmt.Errorf("ledger rows: %w", err)
		}
	}
	return out, nil
}

// prefixEnd returns the least key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// LedgerValues is Store.LedgerValues.
func (k *LedgerKV) LedgerValues(ctx context.Context, dim string, fromDay, toDay int64) ([]string, error) {
	p := appendEscaped([]byte{'v'}, dim)
	it, err := k.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: appendDay(slices.Clone(p), fromDay), UpperBound: prefixEnd(appendDay(slices.Clone(p), toDay))})
	if err != nil {
		return nil, fmt.Errorf("ledger values: %w", err)
	}
	defer it.Close()
	seen := map[string]bool{}
	var out []string
	for it.First(); it.Valid(); it.Next() {
		v := it.Key()[len(p)+8:]
		if !seen[string(v)] {
			seen[string(v)] = true
			out = append(out, string(v))
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("ledger values: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// LoadLedgerDict is Store.LoadLedgerDict.
func (k *LedgerKV) LoadLedgerDict(ctx context.Context) ([]LedgerDictEntry, error) {
	it, err := k.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{'i'}, UpperBound: []byte{'j'}})
	if err != nil {
		return nil, fmt.Errorf("load ledger dictionary: %w", err)
	}
	defer it.Close()
	var out []LedgerDictEntry
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) != 5 {
			return nil, errors.New("load ledger dictionary: malformed key")
		}
		out = append(out, LedgerDictEntry{ID: binary.BigEndian.Uint32(it.Key()[1:]), RID: string(it.Value())})
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("load ledger dictionary: %w", err)
	}
	return out, nil
}

// ScanLedgerDict is Store.ScanLedgerDict.
func (k *LedgerKV) ScanLedgerDict(ctx context.Context, fn func(id uint32, rid string) error) error {
	it, err := k.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{'i'}, UpperBound: []byte{'j'}})
	if err != nil {
		return fmt.Errorf("scan ledger dictionary: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) != 5 {
			return errors.New("scan ledger dictionary: malformed key")
		}
		if err := fn(binary.BigEndian.Uint32(it.Key()[1:]), string(it.Value())); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("scan ledger dictionary: %w", err)
	}
	return nil
}

// LookupLedgerDict is Store.LookupLedgerDict: one point read per id of
// the inverse keys ('r').
func (k *LedgerKV) LookupLedgerDict(ctx context.Context, rids []string) (map[string]uint32, error) {
	out := make(map[string]uint32, len(rids))
	var key []byte
	for _, rid := range rids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		key = append(append(key[:0], 'r'), rid...)
		v, closer, err := k.db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ledger dictionary: %w", err)
		}
		if len(v) != 4 {
			closer.Close()
			return nil, fmt.Errorf("ledger dictionary: malformed number of %q", rid)
		}
		out[rid] = binary.BigEndian.Uint32(v)
		closer.Close()
	}
	return out, nil
}

// indexDict writes the inverse key ('r') of every dictionary entry of a
// ledger written before it had them, then the marker kvDictIndexedKey.
func (k *LedgerKV) indexDict(ctx context.Context) error {
	if _, closer, err := k.db.Get(kvDictIndexedKey); err == nil {
		closer.Close()
		return nil
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	b := k.db.NewBatch()
	defer func() { b.Close() }()
	var key []byte
	err := k.ScanLedgerDict(ctx, func(id uint32, rid string) error {
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], id)
		key = append(append(key[:0], 'r'), rid...)
		if err := b.Set(key, v[:], nil); err != nil {
			return err
		}
		if b.Len() > 16<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Close()
			b = k.db.NewBatch()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := b.Set(kvDictIndexedKey, nil, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// kvDictIndexedKey marks a pebble ledger whose dictionary has its inverse
// keys.
var kvDictIndexedKey = []byte("m/dict-by-rid")

// LedgerDictNames is Store.LedgerDictNames.
func (k *LedgerKV) LedgerDictNames(ctx context.Context, ids []uint32) (map[uint32]string, error) {
	out := make(map[uint32]string, len(ids))
	var key []byte
	for _, id := range ids {
		key = binary.BigEndian.AppendUint32(append(key[:0], 'i'), id)
		v, closer, err := k.db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ledger dictionary: %w", err)
		}
		out[id] = string(v)
		closer.Close()
	}
	return out, nil
}

// LedgerBytes is Store.LedgerBytes: the keys and merged cells of every day
// and the dictionary (payload, without pebble's block and index overhead).
func (k *LedgerKV) LedgerBytes(ctx context.Context) (int64, error) {
	it, err := k.db.NewIterWithContext(ctx, &pebble.IterOptions{})
	if err != nil {
		return 0, fmt.Errorf("ledger bytes: %w", err)
	}
	defer it.Close()
	var n int64
	for it.First(); it.Valid(); it.Next() {
		if c := it.Key()[0]; c == 'd' || c == 'i' {
			n += int64(len(it.Key()) + len(it.Value()))
		}
	}
	return n, it.Error()
}

// cellsMerger ORs ledger days (encodeCells values): operands are buffered
// and merged once, at Finish. OR, min and max commute, so the order of
// operands does not matter, and a partial merge (a compaction without the
// base) is as good as a full one.
type cellsMerger struct{ ops [][]byte }

func newCellsMerger(_, value []byte) (pebble.ValueMerger, error) {
	return &cellsMerger{ops: [][]byte{bytes.Clone(value)}}, nil
}

func (m *cellsMerger) MergeNewer(v []byte) error { m.ops = append(m.ops, bytes.Clone(v)); return nil }
func (m *cellsMerger) MergeOlder(v []byte) error { m.ops = append(m.ops, bytes.Clone(v)); return nil }

func (m *cellsMerger) Finish(bool) ([]byte, io.Closer, error) {
	if len(m.ops) == 1 {
		return m.ops[0], nil, nil
	}
	out, err := orCellBlobs(m.ops...)
	if err != nil {
		return nil, nil, err
	}
	return out, nil, nil
}

// orCellBlobs returns the union of ledger days (encodeCells values) of one
// key: each cell's bitmaps ORed, its first the earliest and its last the
// latest. The result does not alias blobs.
func orCellBlobs(blobs ...[]byte) ([]byte, error) {
	var all []ledgerCell
	for _, op := range blobs {
		cs, err := decodeCells(op)
		if err != nil {
			return nil, err
		}
		all = append(all, cs...)
	}
	slices.SortStableFunc(all, func(a, b ledgerCell) int { return compareCells(&a, &b) })
	out := all[:0]
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && compareCells(&all[i], &all[j]) == 0 {
			j++
		}
		c := all[i]
		if j > i+1 {
			bms := make([]*roaring.Bitmap, 0, j-i)
			for _, o := range all[i:j] {
				c.first, c.last = min(c.first, o.first), max(c.last, o.last)
				bm := roaring.New()
				if _, err := bm.FromUnsafeBytes(o.bitmap); err != nil {
					return nil, fmt.Errorf("ledger merge: %w", err)
				}
				bms = append(bms, bm)
			}
			u := roaring.FastOr(bms...)
			u.RunOptimize()
			b, err := u.ToBytes()
			if err != nil {
				return nil, err
			}
			c.bitmap = b
		}
		out = append(out, c)
		i = j
	}
	return encodeCells(out), nil
}

// pickLedgerDir returns the pebble ledger's directory of the SQLite store
// in dir ("" when the ledger stays in the tables) for the engine asked.
func pickLedgerDir(dir, engine string) (string, error) {
	p := filepath.Join(dir, LedgerDirName)
	_, err := os.Stat(p)
	exists := err == nil
	switch engine {
	case LedgerPebble:
		return p, nil
	case "":
		if exists {
			return p, nil
		}
		return "", nil
	case LedgerSQLite:
		if exists {
			return "", fmt.Errorf("open store: its ledger is in pebble (%s); it stays there (store.ledger_engine: pebble)", p)
		}
		return "", nil
	}
	return "", fmt.Errorf("open store: unknown ledger engine %q (want %s or %s)", engine, LedgerSQLite, LedgerPebble)
}

// ledgerKV returns the pebble ledger (nil: the ledger is in the tables),
// opening it on first use. A new pebble ledger gets a copy of what the
// tables hold (a store switched to pebble keeps its ledger); the copy ends
// with a marker, and a ledger opened without the marker copies again (the
// copy only ORs, so a repeated one changes nothing).
func (s *Store) ledgerKV(ctx context.Context) (*LedgerKV, error) {
	if s.ledgerDir == "" {
		return nil, nil
	}
	s.kvMu.Lock()
	defer s.kvMu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := OpenLedgerKV(s.ledgerDir, s.logger)
	if err != nil {
		return nil, fmt.Errorf("%w (one process at a time opens a pebble ledger: while serve runs, ask its API, e.g. GET /v1/scope)", err)
	}
	if _, closer, err := kv.db.Get(kvImportedKey); err == nil {
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		kv.Close()
		return nil, fmt.Errorf("open ledger: %w", err)
	} else if err := s.copyLedgerToKV(ctx, kv); err != nil {
		kv.Close()
		return nil, fmt.Errorf("open ledger: copy the tables' ledger: %w", err)
	}
	if err := kv.indexDict(ctx); err != nil {
		kv.Close()
		return nil, fmt.Errorf("open ledger: index the dictionary: %w", err)
	}
	s.kv = kv
	return kv, nil
}

// kvImportedKey marks a pebble ledger that holds the tables' ledger.
var kvImportedKey = []byte("m/imported")

// copyLedgerToKV ORs the tables' ledger (ledger_days, ledger_dict) into
// kv, a batch of days at a time, and sets the marker.
func (s *Store) copyLedgerToKV(ctx context.Context, kv *LedgerKV) error {
	dict, err := s.loadLedgerDictSQL(ctx)
	if err != nil {
		return err
	}
	b := kv.db.NewBatch()
	defer func() { b.Close() }()
	var key []byte
	for _, e := range dict {
		key = binary.BigEndian.AppendUint32(append(key[:0], 'i'), e.ID)
		if err := b.Set(key, []byte(e.RID), nil); err != nil {
			return err
		}
	}
	rs, err := s.db.QueryContext(ctx, `SELECT dim, value, day, cells FROM ledger_days`)
	if err != nil {
		return err
	}
	defer rs.Close()
	days := 0
	for rs.Next() {
		var (
			k     dayKey
			cells []byte
		)
		if err := rs.Scan(&k.dim, &k.value, &k.day, &cells); err != nil {
			return err
		}
		if _, err := decodeCells(cells); err != nil {
			return fmt.Errorf("%s=%s day %d: %w", k.dim, k.value, k.day, err)
		}
		if err := kv.putDay(b, k, cells, &key); err != nil {
			return err
		}
		if days++; b.Len() > 16<<20 {
			if err := b.Commit(pebble.Sync); err != nil {
				return err
			}
			b.Close()
			b = kv.db.NewBatch()
		}
	}
	if err := rs.Err(); err != nil {
		return err
	}
	if err := b.Set(kvImportedKey, nil, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	if days > 0 || len(dict) > 0 {
		s.logger.Info("store: ledger copied into pebble", "days", days, "dict", len(dict), "dir", s.ledgerDir)
	}
	return nil
}
