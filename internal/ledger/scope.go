package ledger

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/store"
)

// Reader reads the ledger back; *store.Store implements it.
type Reader interface {
	LedgerRows(ctx context.Context, dim string, values []string, fromDay, toDay int64) ([]store.LedgerRow, error)
	LedgerValues(ctx context.Context, dim string, fromDay, toDay int64) ([]string, error)
	LedgerDictNames(ctx context.Context, ids []uint32) (map[uint32]string, error)
}

// Term selects the records touched by any of Values of one dimension. A
// Source value may be a CIDR prefix ("203.0.113.0/24"), matching every
// stored address in it.
//
// From and To narrow the query's days for this term alone (zero: the
// query's bound). Within, when set, keeps only the records also touched
// under at least one of its terms (each over its own days): "the token,
// within the attacker's sources" is the records read with the token that
// were also read from those sources — read there by anyone, so the answer
// is exact when the Within terms are the attacker's alone (an incident's
// scope, docs/scope.md). Within terms may not nest further.
type Term struct {
	Dim    Dimension `json:"dim"`
	Values []string  `json:"values"`
	From   time.Time `json:"-"`
	To     time.Time `json:"-"`
	Within []Term    `json:"within,omitempty"`
	// FromDay and ToDay echo From and To in an answer (YYYY-MM-DD).
	FromDay string `json:"from_day,omitempty"`
	ToDay   string `json:"to_day,omitempty"`
}

// String renders the term: "token tk-1 on 2025-06-04…2025-06-06 within
// (source 203.0.113.9)".
func (t Term) String() string {
	var b strings.Builder
	b.WriteString(string(t.Dim))
	b.WriteByte(' ')
	b.WriteString(strings.Join(t.Values, ", "))
	if !t.From.IsZero() || !t.To.IsZero() {
		from, to := "the start", "now"
		if !t.From.IsZero() {
			from = t.From.UTC().Format(time.DateOnly)
		}
		if !t.To.IsZero() {
			to = t.To.UTC().Format(time.DateOnly)
		}
		fmt.Fprintf(&b, " on %s…%s", from, to)
	}
	if len(t.Within) > 0 {
		parts := make([]string, len(t.Within))
		for i, w := range t.Within {
			parts[i] = w.String()
		}
		b.WriteString(" within (" + strings.Join(parts, " or ") + ")")
	}
	return b.String()
}

// Query is a scope question: the records touched by the terms on the UTC
// days from From to To (inclusive, day granularity; a zero From or To is
// unbounded). Terms are combined by union, or with Intersect by
// intersection (records touched under every term).
type Query struct {
	Terms     []Term
	From, To  time.Time
	Intersect bool
}

// Result is the exact answer to a Query. Counts are distinct records;
// records of different types are different records.
type Result struct {
	Total    int64            `json:"total"`
	ByType   map[string]int64 `json:"by_type"`
	ByField  map[string]int64 `json:"by_field"`
	NameOnly int64            `json:"name_only"` // records whose only field exposed was "name"
	// First and Last bound the accesses recorded in the selected rows (for
	// an intersection, the rows of the surviving record types of every
	// term); zero when nothing was found.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// Terms, Intersect and the UTC days FromDay to ToDay (YYYY-MM-DD;
	// empty when unbounded) echo what was answered.
	Terms     []Term `json:"terms"`
	Intersect bool   `json:"intersect,omitempty"`
	FromDay   string `json:"from_day,omitempty"`
	ToDay     string `json:"to_day,omitempty"`
	// LeftOut, on an incident's scope (IncidentScope), names the entities
	// the incident shows that its scope leaves out, and why.
	LeftOut []store.ScopeLeftOut `json:"left_out,omitempty"`

	sets map[string]*roaring.Bitmap
	r    Reader
}

// FieldName is the field category whose exposure alone counts as NameOnly.
const FieldName = "name"

type termSet struct {
	all         map[string]*roaring.Bitmap            // by type
	fields      map[string]map[string]*roaring.Bitmap // by type, field
	first, last map[string]int64                      // by type
}

// ErrInvalidQuery marks Scope's errors about the query itself (no terms,
// an unknown dimension, a bad source prefix, from after to) — a caller's
// mistake, not a failure of the ledger.
var ErrInvalidQuery = errors.New("invalid scope query")

// Scope answers q from the ledger in r.
func Scope(ctx context.Context, r Reader, q Query) (*Result, error) {
	if len(q.Terms) == 0 {
		return nil, fmt.Errorf("scope: no terms: %w", ErrInvalidQuery)
	}
	fromDay, toDay := int64(math.MinInt32), int64(math.MaxInt32)
	if !q.From.IsZero() {
		fromDay = Day(q.From)
	}
	if !q.To.IsZero() {
		toDay = Day(q.To)
	}
	if fromDay > toDay {
		return nil, fmt.Errorf("scope: from %s is after to %s: %w", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), ErrInvalidQuery)
	}
	var sets []*termSet
	terms := make([]Term, len(q.Terms))
	for i, t := range q.Terms {
		ts, err := termScope(ctx, r, t, fromDay, toDay, true)
		if err != nil {
			return nil, err
		}
		if len(t.Within) > 0 {
			var within []*termSet
			for _, w := range t.Within {
				ws, err := termScope(ctx, r, w, fromDay, toDay, false)
				if err != nil {
					return nil, err
				}
				within = append(within, ws)
			}
			ts.restrict(within)
		}
		sets = append(sets, ts)
		terms[i] = echo(t)
	}
	res := combine(sets, q.Intersect)
	res.r = r
	res.Terms, res.Intersect = terms, q.Intersect
	if !q.From.IsZero() {
		res.FromDay = q.From.UTC().Format(time.DateOnly)
	}
	if !q.To.IsZero() {
		res.ToDay = q.To.UTC().Format(time.DateOnly)
	}
	return res, nil
}

// termScope validates t and reads its records over its days (the query's,
// narrowed by t.From and t.To).
func termScope(ctx context.Context, r Reader, t Term, fromDay, toDay int64, top bool) (*termSet, error) {
	if !t.Dim.Valid() {
		return nil, fmt.Errorf("scope: unknown dimension %q: %w", t.Dim, ErrInvalidQuery)
	}
	if len(t.Values) == 0 {
		return nil, fmt.Errorf("scope: no values for %s: %w", t.Dim, ErrInvalidQuery)
	}
	if !top && len(t.Within) > 0 {
		return nil, fmt.Errorf("scope: %s: within terms do not nest: %w", t.Dim, ErrInvalidQuery)
	}
	if !t.From.IsZero() {
		fromDay = max(fromDay, Day(t.From))
	}
	if !t.To.IsZero() {
		toDay = min(toDay, Day(t.To))
	}
	ts := &termSet{all: map[string]*roaring.Bitmap{}, fields: map[string]map[string]*roaring.Bitmap{},
		first: map[string]int64{}, last: map[string]int64{}}
	if fromDay > toDay {
		return ts, nil // the term's days miss the query's: nothing
	}
	values, err := expand(ctx, r, t, fromDay, toDay)
	if err != nil {
		return nil, err
	}
	if len(values) > 0 {
		rows, err := r.LedgerRows(ctx, string(t.Dim), values, fromDay, toDay)
		if err != nil {
			return nil, fmt.Errorf("scope: %w", err)
		}
		if err := ts.build(rows); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// echo is t as an answer repeats it: its days written out.
func echo(t Term) Term {
	if !t.From.IsZero() {
		t.FromDay = t.From.UTC().Format(time.DateOnly)
	}
	if !t.To.IsZero() {
		t.ToDay = t.To.UTC().Format(time.DateOnly)
	}
	if len(t.Within) > 0 {
		w := make([]Term, len(t.Within))
		for i := range t.Within {
			w[i] = echo(t.Within[i])
		}
		t.Within = w
	}
	return t
}

// restrict keeps, per record type, only ts's records also in one of
// within's; First and Last become the latest first and earliest last of
// ts and the within terms' union (bounds of the accesses kept, clipped
// to ts's own when they cross).
func (ts *termSet) restrict(within []*termSet) {
	for t, all := range ts.all {
		var bms []*roaring.Bitmap
		wfirst, wlast := int64(0), int64(0)
		for _, w := range within {
			if bm := w.all[t]; bm != nil {
				bms = append(bms, bm)
				if f := w.first[t]; wfirst == 0 || f < wfirst {
					wfirst = f
				}
				wlast = max(wlast, w.last[t])
			}
		}
		if len(bms) == 0 {
			delete(ts.all, t)
			delete(ts.fields, t)
			delete(ts.first, t)
			delete(ts.last, t)
			continue
		}
		all.And(roaring.FastOr(bms...))
		if all.IsEmpty() {
			delete(ts.all, t)
			delete(ts.fields, t)
			delete(ts.first, t)
			delete(ts.last, t)
			continue
		}
		for _, fb := range ts.fields[t] {
			fb.And(all)
		}
		if f, l := max(ts.first[t], wfirst), min(ts.last[t], wlast); f <= l {
			ts.first[t], ts.last[t] = f, l
		}
	}
}

// expand resolves CIDR values of the source dimension to stored addresses.
func expand(ctx context.Context, r Reader, t Term, fromDay, toDay int64) ([]string, error) {
	var out, prefixes []string
	for _, v := range t.Values {
		if t.Dim == Source && strings.Contains(v, "/") {
			prefixes = append(prefixes, v)
			continue
		}
		if t.Dim == Source {
			if a, err := netip.ParseAddr(v); err == nil {
				v = a.String() // canonical, as stored
			}
		}
		out = append(out, v)
	}
	if len(prefixes) == 0 {
		return dedupe(out), nil
	}
	var ps []netip.Prefix
	for _, p := range prefixes {
		pf, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("scope: source %q: %w (%w)", p, ErrInvalidQuery, err)
		}
		ps = append(ps, pf.Masked())
	}
	stored, err := r.LedgerValues(ctx, string(Source), fromDay, toDay)
	if err != nil {
		return nil, fmt.Errorf("scope: %w", err)
	}
	for _, v := range stored {
		a, err := netip.ParseAddr(v)
		if err != nil {
			continue
		}
		for _, p := range ps {
			if p.Contains(a) || (a.Is4In6() && p.Contains(a.Unmap())) {
				out = append(out, v)
				break
			}
		}
	}
	return dedupe(out), nil
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// build unions one term's rows per (type, field), in parallel.
func (ts *termSet) build(rows []store.LedgerRow) error {
	type group struct {
		rtype, field string
		bms          []*roaring.Bitmap
		out          *roaring.Bitmap
	}
	groups := map[[2]string]*group{}
	for i := range rows {
		row := &rows[i]
		bm := roaring.New()
		if _, err := bm.FromUnsafeBytes(row.Bitmap); err != nil {
			return fmt.Errorf("scope: %s=%s day %d: %w", row.Dim, row.Value, row.Day, err)
		}
		k := [2]string{row.RType, row.Field}
		g := groups[k]
		if g == nil {
			g = &group{rtype: row.RType, field: row.Field}
			groups[k] = g
		}
		g.bms = append(g.bms, bm)
		if row.Field == "" {
			if f, ok := ts.first[row.RType]; !ok || row.First < f {
				ts.first[row.RType] = row.First
			}
			ts.last[row.RType] = max(ts.last[row.RType], row.Last)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, g := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			g.out = roaring.FastOr(g.bms...)
			g.bms = nil
		}()
	}
	wg.Wait()
	for _, g := range groups {
		if g.field == "" {
			ts.all[g.rtype] = g.out
			continue
		}
		m := ts.fields[g.rtype]
		if m == nil {
			m = map[string]*roaring.Bitmap{}
			ts.fields[g.rtype] = m
		}
		m[g.field] = g.out
	}
	return nil
}

func combine(sets []*termSet, intersect bool) *Result {
	res := &Result{ByType: map[string]int64{}, ByField: map[string]int64{}, sets: map[string]*roaring.Bitmap{}}
	types := map[string]bool{}
	for _, s := range sets {
		for t := range s.all {
			types[t] = true
		}
	}
	var first, last int64
	for t := range types {
		var all *roaring.Bitmap
		if intersect {
			for _, s := range sets {
				bm := s.all[t]
				if bm == nil {
					all = nil
					break
				}
				if all == nil {
					all = bm.Clone()
				} else {
					all.And(bm)
				}
			}
		} else {
			var bms []*roaring.Bitmap
			for _, s := range sets {
				if bm := s.all[t]; bm != nil {
					bms = append(bms, bm)
				}
			}
			all = roaring.FastOr(bms...)
		}
		if all == nil || all.IsEmpty() {
			continue
		}
		res.sets[t] = all
		n := int64(all.GetCardinality())
		res.ByType[t] = n
		res.Total += n
		for _, s := range sets {
			f, ok := s.first[t]
			if !ok {
				continue
			}
			if first == 0 || f < first {
				first = f
			}
			last = max(last, s.last[t])
		}
		// Per field: the union over terms, within the result set.
		fields := map[string][]*roaring.Bitmap{}
		for _, s := range sets {
			for f, bm := range s.fields[t] {
				fields[f] = append(fields[f], bm)
			}
		}
		others := roaring.New()
		var name *roaring.Bitmap
		for f, bms := range fields {
			fb := roaring.FastOr(bms...)
			if intersect {
				fb.And(all)
			}
			if c := int64(fb.GetCardinality()); c > 0 {
				res.ByField[f] += c
			}
			if f == FieldName {
				name = fb
			} else {
				others.Or(fb)
			}
		}
		if name != nil {
			res.NameOnly += int64(roaring.AndNot(name, others).GetCardinality())
		}
	}
	if first != 0 {
		res.First = time.Unix(0, first).UTC()
	}
	if last != 0 {
		res.Last = time.Unix(0, last).UTC()
	}
	return res
}

// Types returns the record types found, sorted.
func (r *Result) Types() []string {
	out := make([]string, 0, len(r.sets))
	for t := range r.sets {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Each calls fn for every record of the result, by type (sorted) then by
// number: small integer ids first, ascending, then dictionary ids in the
// order they were first seen. Dictionary ids are read from the store in
// batches.
func (r *Result) Each(ctx context.Context, fn func(rtype, id string) error) error {
	const batch = 4096
	var buf [20]byte
	for _, t := range r.Types() {
		it := r.sets[t].ManyIterator()
		ids := make([]uint32, batch)
		var pend []uint32
		flush := func() error {
			if len(pend) == 0 {
				return nil
			}
			names, err := r.r.LedgerDictNames(ctx, pend)
			if err != nil {
				return err
			}
			for _, v := range pend {
				name, ok := names[v]
				if !ok {
					return fmt.Errorf("scope: record number %d of type %s is not in the dictionary", v, t)
				}
				if err := fn(t, name); err != nil {
					return err
				}
			}
			pend = pend[:0]
			return nil
		}
		for {
			n := it.NextMany(ids)
			if n == 0 {
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			for _, v := range ids[:n] {
				if v < DictBase {
					if err := fn(t, string(strconv.AppendUint(buf[:0], uint64(v), 10))); err != nil {
						return err
					}
					continue
				}
				pend = append(pend, v)
				if len(pend) == batch {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

// WriteCSV writes the records as CSV with the header record_type,record_id.
func (r *Result) WriteCSV(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("record_type,record_id\n")
	err := r.Each(ctx, func(t, id string) error {
		bw.WriteString(CSVField(t))
		bw.WriteByte(',')
		bw.WriteString(CSVField(id))
		_, err := bw.WriteString("\n")
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// CSVField renders s as one CSV cell (RFC 4180) that a spreadsheet reads
// as text, never as a formula — every CSV haechi writes builds its cells
// with it. Following OWASP's advice on CSV injection, a value that begins
// with "=", "+", "-", "@", a tab or a carriage return gets a leading
// single quote ("=1+1" is written '=1+1, "-5" as '-5) and is quoted; a
// value holding a comma, a semicolon (the separator in some locales), a
// double quote, a line break or a tab, or beginning or ending with a
// space, is quoted, its double quotes doubled. Anything else is written as
// it is. A reader that wants the value back removes the single quote from
// a cell that begins with one followed by one of those characters.
func CSVField(s string) string {
	formula := s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0
	if formula {
		s = "'" + s
	} else if !strings.ContainsAny(s, ",;\"\r\n\t") && (s == "" || (s[0] != ' ' && s[len(s)-1] != ' ')) {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// WriteNDJSON writes one {"record_type":…,"record_id":…} object per line.
func (r *Result) WriteNDJSON(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	type line struct {
		Type string `json:"record_type"`
		ID   string `json:"record_id"`
	}
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := r.Each(ctx, func(t, id string) error { return enc.Encode(line{t, id}) })
	if err != nil {
		return err
	}
	return bw.Flush()
}
