package cli

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/haechi-sec/haechi/internal/ledger"
)

// ledgerValuer lists a ledger dimension's values; *store.Store is one.
type ledgerValuer interface {
	LedgerValues(ctx context.Context, dim string, fromDay, toDay int64) ([]string, error)
}

// ledgerValueForm is implemented by a store that does not hold every
// ledger value as it is (PostgreSQL shortens a long one: see
// store.Store.LedgerValueForm); *store.Store is one.
type ledgerValueForm interface {
	LedgerValueForm() func(string) string
}

// maxNear is how many near matches neverSeen names for an unknown value.
const maxNear = 3

// neverSeen returns one sentence for each value of res's terms that the
// ledger holds on no day at all — "key auth-2022-12 was never seen in the
// access ledger (near: auth-2022-11)" — so that an unknown or mistyped id
// is said to be unknown instead of answered "0 distinct records touched",
// as if it were known and had exposed nothing. A source prefix (CIDR) is
// not a value and is not checked. A value seen only outside --from/--to
// is not named: its 0 is the honest answer for those days.
func neverSeen(ctx context.Context, r ledgerValuer, res *ledger.Result) ([]string, error) {
	var out []string
	known := map[ledger.Dimension][]string{}
	var form func(string) string
	if f, ok := r.(ledgerValueForm); ok {
		form = f.LedgerValueForm()
	}
	for _, t := range res.Terms {
		for _, v := range t.Values {
			if t.Dim == ledger.Source {
				if strings.Contains(v, "/") {
					continue
				}
				if a, err := netip.ParseAddr(v); err == nil {
					v = a.String() // canonical, as stored
				}
			}
			vals, ok := known[t.Dim]
			if !ok {
				var err error
				if vals, err = r.LedgerValues(ctx, string(t.Dim), math.MinInt32, math.MaxInt32); err != nil {
					return nil, err
				}
				known[t.Dim] = vals
			}
			stored := v
			if form != nil {
				stored = form(v) // as the store holds it
			}
			if slices.Contains(vals, stored) { // (sorted by the database's collation, not Go's)
				continue
			}
			s := fmt.Sprintf("%s %s was never seen in the access ledger", t.Dim, v)
			if near := nearMatches(v, vals, maxNear); len(near) > 0 {
				s += " (near: " + strings.Join(near, ", ") + ")"
			} else {
				s += " (nothing near it either)"
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// nearMatches returns up to n of candidates nearest to v: those within an
// edit distance of a third of v's length (at least 2), compared without
// case, or that contain v or are contained in it; nearest first, ties in
// candidate order.
func nearMatches(v string, candidates []string, n int) []string {
	lv := strings.ToLower(v)
	limit := max(2, len([]rune(lv))/3)
	type match struct {
		s string
		d int
	}
	var ms []match
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := editDistance(lv, lc, limit)
		if d > limit && len(lv) >= 3 && len(lc) >= 3 && (strings.Contains(lc, lv) || strings.Contains(lv, lc)) {
			d = limit // a containment is as near as the farthest kept edit
		}
		if d <= limit {
			ms = append(ms, match{c, d})
		}
	}
	slices.SortStableFunc(ms, func(a, b match) int { return a.d - b.d })
	out := make([]string, 0, min(n, len(ms)))
	for i := 0; i < len(ms) && i < n; i++ {
		out = append(out, ms[i].s)
	}
	return out
}

// editDistance is the Levenshtein distance of a and b (in runes), or
// limit+1 as soon as it is known to exceed limit.
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d > limit || -d > limit {
		return limit + 1
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		best := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			best = min(best, cur[j])
		}
		if best > limit {
			return limit + 1
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
