// Command gen writes the insider golden cases of the behaviour detector:
//
//	go run ./internal/detect/behaviour/testdata/gen
//
// A role of data engineers, each reading a few hundred customers a day on
// weekdays from its own working set (so its distinct set saturates), with
// natural variance; then either an insider adding ~300 new customers every
// evening from a home network (insider_export), or the hard-benign twins
// (insider_benign): one approved large export in one day, a busy peer
// re-reading the same customers, a new hire ramping up.
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

type ev struct {
	t    time.Time
	user string
	ip   string
	ids  []uint64
}

type peer struct {
	id    string
	ws    []uint64 // working set
	reads int      // record reads per weekday
	from  int      // first day
}

var start = time.Date(2025, 4, 7, 0, 0, 0, 0, time.UTC) // a Monday

const days = 42

func main() {
	dir := "internal/detect/behaviour/testdata"
	write(filepath.Join(dir, "insider_export", "events.ndjson"), insider(true))
	write(filepath.Join(dir, "insider_benign", "events.ndjson"), insider(false))
}

func insider(attack bool) []ev {
	rng := rand.New(rand.NewPCG(20, 4)) // #nosec G404 -- golden test data must be reproducible from its seed
	fresh := func(n int) []uint64 {
		s := make([]uint64, n)
		for i := range s {
			s[i] = 1_000_000 + rng.Uint64N(9_000_000)
		}
		return s
	}
	peers := []*peer{
		{id: "e:300", ws: fresh(1500), reads: 300},
		{id: "e:310", ws: fresh(1200), reads: 250},
		{id: "e:311", ws: fresh(1800), reads: 300},
		{id: "e:312", ws: fresh(2000), reads: 350},
		{id: "e:313", ws: fresh(2500), reads: 400},
		{id: "e:314", ws: fresh(3000), reads: 600}, // a busy peer: each day like the insider's
	}
	if !attack {
		peers = append(peers,
			&peer{id: "e:301", ws: fresh(1500), reads: 300},                  // one approved large export
			&peer{id: "e:302", ws: fresh(1300), reads: 2000},                 // busy, re-reading the same customers
			&peer{id: "e:303", ws: fresh(1500), reads: 300, from: days - 21}, // a new hire
		)
	}
	var out []ev
	for d := range days {
		day := start.AddDate(0, 0, d)
		weekday := day.Weekday() != time.Saturday && day.Weekday() != time.Sunday
		for pi, p := range peers {
			if d < p.from || !weekday {
				continue
			}
			reads := p.reads * (70 + rng.IntN(61)) / 100 // ±30%
			if p.id == "e:303" {
				reads = reads * min(10, 1+d-p.from) / 10 // ramping up over ten days
			}
			ip := "10.1.0." + strconv.Itoa(10+pi)
			for reads > 0 {
				k := min(reads, 15+rng.IntN(16))
				reads -= k
				ids := make([]uint64, k)
				for i := range ids {
					ids[i] = p.ws[rng.IntN(len(p.ws))]
				}
				at := day.Add(9*time.Hour + time.Duration(rng.IntN(9*3600))*time.Second)
				out = append(out, ev{t: at, user: p.id, ip: ip, ids: ids})
			}
		}
		switch {
		case attack && d >= days-21:
			// Every evening, from home: ~300 customers it never read.
			n := 260 + rng.IntN(81)
			for n > 0 {
				k := min(n, 20+rng.IntN(11))
				n -= k
				at := day.Add(19*time.Hour + time.Duration(rng.IntN(3*3600))*time.Second)
				out = append(out, ev{t: at, user: "e:300", ip: "203.0.113.7", ids: fresh(k)})
			}
		case !attack && d == days-18:
			// The approved export: 6,000 customers in three office hours.
			for n := 6000; n > 0; n -= 50 {
				at := day.Add(10*time.Hour + time.Duration(rng.IntN(3*3600))*time.Second)
				out = append(out, ev{t: at, user: "e:301", ip: "10.1.0.6", ids: fresh(50)})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b ev) int { return a.t.Compare(b.t) })
	return out
}

func write(path string, evs []ev) {
	var b strings.Builder
	for i, e := range evs {
		ids := make([]string, len(e.ids))
		for j, x := range e.ids {
			ids[j] = `"` + strconv.FormatUint(x, 10) + `"`
		}
		fmt.Fprintf(&b, `{"@timestamp":%q,"event":{"id":"i%d","dataset":"gateway.access","action":"read"},"user":{"id":%q,"roles":["data-engineer"]},"source":{"ip":%q},"url":{"path":"/admin/customers/search"},"http":{"request":{"method":"GET"},"response":{"status_code":200,"body":{"bytes":%d}}},"records":{"type":"customer","ids":[%s],"fields":["name","email"]}}`+"\n",
			e.t.Format(time.RFC3339), i+1, e.user, e.ip, 200*len(ids), strings.Join(ids, ","))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		panic(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		panic(err)
	}
}
