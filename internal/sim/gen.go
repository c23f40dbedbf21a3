package sim

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

const custBase = 10_000_001 // customer number of customer index 0

type gen struct {
	o                 Options
	seed              uint64
	C                 uint64
	startMS, endMS    int64
	rng               *rand.Rand
	clk               clockFmt
	arena, spare, out []byte
	items             []item
	cur               item
	gseq              uint64
	nids              int
	n                 int64
	w                 io.Writer

	tr     *truth.Truth
	sc     [12]*truth.Scenario // by tag-1, nil when disabled
	benign []*truth.Benign

	natPool      uint64
	dailySess    float64
	keyOld       string
	keyCur       string
	keyNew       string
	rotMS        int64
	emps         []*emp
	admins       []*emp // not in emps: they run on the private stream
	svcs         []*actor
	partners     []*actor
	sched        []sched
	actors       []func(t0, t1 int64)
	hbBackfill   int16
	backfillDay  int64
	hbStall      int16
	stalls       []stall
	oncallByWeek []int
}

type sched struct {
	t  int64
	fn func()
}

func mix(a, b uint64) uint64 {
	z := a ^ (b+0x9e3779b97f4a7c15)*0xbf58476d1ce4e5b9
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (g *gen) h(vals ...uint64) uint64 {
	z := g.seed
	for _, v := range vals {
		z = mix(z, v)
	}
	return z
}

// Generate streams the simulated events as NDJSON lines to w in event-time
// order — except the mints an auth replica's stalled log shipper held back
// (shipper.go), which come when it resumes, with their own timestamps — and
// returns the ground truth. The same Options give byte-identical
// output and truth. progress, if non-nil, is called now and then with the
// number of events written and the simulated time reached.
func Generate(ctx context.Context, o Options, w io.Writer, progress func(n int64, t time.Time)) (*truth.Truth, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	g := &gen{o: o, seed: o.Seed, C: uint64(o.Customers), w: w,
		startMS: o.Start.UnixMilli(), endMS: o.Start.UnixMilli() + int64(o.Days)*dayMS,
		tr: &truth.Truth{Seed: o.Seed, Scenarios: []truth.Scenario{}, HardBenign: []truth.Benign{}}}
	g.arena = make([]byte, 0, 1<<20)
	g.setup()
	// Prelude: key inventory history before Start.
	if err := g.flush(-1); err != nil {
		return nil, err
	}
	nChunks := (g.endMS - g.startMS) / chunkMS
	si := 0
	for c := int64(0); c < nChunks; c++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := g.startMS + c*chunkMS
		t1 := t0 + chunkMS
		g.rng = rand.New(rand.NewPCG(g.seed, uint64(c)^0x5eed0000c0ffee)) // #nosec G404 -- the simulator must be reproducible from its seed
		for si < len(g.sched) && g.sched[si].t < t1 {
			g.sched[si].fn()
			si++
		}
		g.customers(t0, t1)
		g.employees(t0, t1)
		g.machines(t0, t1)
		for _, a := range g.actors {
			a(t0, t1)
		}
		if err := g.flush(t1); err != nil {
			return nil, err
		}
		if progress != nil && c%6 == 5 {
			progress(g.n, time.UnixMilli(t1).UTC())
		}
	}
	// Sessions begun near the end (a shift, a scrape) would run on past
	// it; the period is [Start, Start+Days), so what lies beyond is not
	// written (nor labelled: labels are given as events are written). A
	// replay that ends "now" then holds no event dated in the future.
	if err := g.flush(g.endMS); err != nil {
		return nil, err
	}
	g.items = g.items[:0]
	if progress != nil {
		progress(g.n, time.UnixMilli(g.endMS).UTC())
	}
	return g.finishTruth(), nil
}

func (g *gen) label(tag int16, id string, ts int64) {
	if tag >= benignBase {
		b := g.benign[tag-benignBase]
		b.EventIDs = append(b.EventIDs, id)
		return
	}
	s := g.sc[tag-1]
	if s == nil {
		return
	}
	t := time.UnixMilli(ts).UTC()
	if len(s.MaliciousEventIDs) == 0 {
		s.FirstMalicious = t
	}
	s.LastMalicious = t
	s.MaliciousEventIDs = append(s.MaliciousEventIDs, id)
}

func (g *gen) finishTruth() *truth.Truth {
	for i := range scenarioNames {
		if s := g.sc[i]; s != nil && len(s.MaliciousEventIDs) > 0 {
			g.tr.Scenarios = append(g.tr.Scenarios, *s)
		}
	}
	for _, b := range g.benign {
		if len(b.EventIDs) > 0 {
			g.tr.HardBenign = append(g.tr.HardBenign, *b)
		}
	}
	return g.tr
}

func (g *gen) addBenign(name string) int16 {
	g.benign = append(g.benign, &truth.Benign{Name: name, Entities: []event.EntityKey{}, EventIDs: []string{}})
	return int16(benignBase + len(g.benign) - 1)
}

func (g *gen) benignEntity(tag int16, k event.EntityKind, id string) {
	b := g.benign[tag-benignBase]
	for _, e := range b.Entities {
		if e.Kind == k && e.ID == id {
			return
		}
	}
	b.Entities = append(b.Entities, event.EntityKey{Kind: k, ID: id})
}

func (g *gen) scenarioEntity(i int, k event.EntityKind, id string) {
	s := g.sc[i]
	if s == nil {
		return
	}
	for _, e := range s.AttackerEntities {
		if e.Kind == k && e.ID == id {
			return
		}
	}
	s.AttackerEntities = append(s.AttackerEntities, event.EntityKey{Kind: k, ID: id})
}

// day returns the UTC ms of Start + d days (clamped to the last day).
func (g *gen) dayAt(d int) int64 {
	if d > g.o.Days-1 {
		d = g.o.Days - 1
	}
	return g.startMS + int64(d)*dayMS
}

// kday is the absolute Asia/Seoul calendar day of t.
func kday(t int64) int64 { return floorDiv(t+kstOff, dayMS) }

// kdayStart is the UTC ms of the Seoul midnight starting day d.
func kdayStart(d int64) int64 { return d*dayMS - kstOff }

// weekday of a Seoul day: 0 Sunday … 6 Saturday.
func weekday(d int64) int { return int((d%7 + 7 + 4) % 7) }

func (g *gen) keyAt(t int64) string {
	if t >= g.rotMS {
		return g.keyNew
	}
	return g.keyCur
}

func keyName(t time.Time) string { return "auth-" + t.Format("2006-01") }

func (g *gen) poisson(l float64) int {
	if l <= 0 {
		return 0
	}
	if l > 30 {
		v := int(math.Round(l + math.Sqrt(l)*g.rng.NormFloat64()))
		return max(v, 0)
	}
	L := math.Exp(-l)
	k, p := 0, 1.0
	for {
		p *= g.rng.Float64()
		if p <= L {
			return k
		}
		k++
	}
}

func (g *gen) between(a, b int64) int64 {
	if b <= a {
		return a
	}
	return a + g.rng.Int64N(b-a)
}

// ---- customers ----

type customer struct {
	n         uint64 // customer number (records id of the profile)
	h         uint64
	carrier   int
	ua        int
	nAddr     int
	nOrd      int
	prop      uint32 // activity propensity out of 10
	travelDay int64  // absolute Seoul day a trip starts, -1 none
	travelLen int64
	travelNet *netw
}

func (g *gen) customer(i uint64) customer {
	h := g.h(0xc05, i)
	c := customer{n: custBase + i, h: h}
	c.carrier = int(h % 100)
	switch {
	case c.carrier < 31:
		c.carrier = 0
	case c.carrier < 70:
		c.carrier = 1
	case c.carrier < 92:
		c.carrier = 2
	default:
		c.carrier = 3
	}
	c.ua = int(uaTable[h>>8%100])
	c.nAddr = 1 + int(h>>16%7)/3 // 1..3, mostly 1-2
	c.nOrd = int(h >> 20 % 60)
	switch p := h >> 28 % 100; {
	case p < 55:
		c.prop = 1
	case p < 85:
		c.prop = 3
	default:
		c.prop = 10
	}
	c.travelDay = -1
	if h>>36%1000 < 6 { // 0.6% travel during the period
		c.travelDay = kday(g.startMS) - 3 + int64(h>>46%uint64(g.o.Days+3))
		c.travelLen = 3 + int64(h>>52%6)
		c.travelNet = travelNets[h>>58%4]
	}
	return c
}

func (c *customer) travelling(d int64) bool {
	return c.travelDay >= 0 && d >= c.travelDay && d < c.travelDay+c.travelLen
}

func (g *gen) pickCustomer() customer {
	for {
		c := g.customer(g.rng.Uint64N(g.C))
		if g.rng.Uint32N(10) < c.prop {
			return c
		}
	}
}

// KST hour weights of customer sessions.
var hourW = [24]float64{0.9, 0.55, 0.3, 0.18, 0.14, 0.2, 0.4, 0.8, 1.3, 1.5, 1.6, 1.7, 2.0, 1.8, 1.6, 1.6, 1.6, 1.7, 1.9, 2.1, 2.4, 2.6, 2.4, 1.6}
var hourWSum = func() float64 {
	s := 0.0
	for _, v := range hourW {
		s += v
	}
	return s
}()
var dayW = [7]float64{1.2, 1.05, 0.97, 0.95, 0.95, 0.93, 1.15} // Sun..Sat

func (g *gen) customers(t0, t1 int64) {
	kh := (t0 + kstOff) / hourMS % 24
	wd := weekday(kday(t0))
	exp := g.dailySess * hourW[kh] / hourWSum * float64(t1-t0) / float64(hourMS) * dayW[wd]
	n := int(exp)
	if g.rng.Float64() < exp-float64(n) {
		n++
	}
	for range n {
		c := g.pickCustomer()
		g.session(&c, g.between(t0, t1), 0, false)
	}
}

const (
	fProfile   = `["name","email","phone"]`
	fAddr      = `["name","phone","address"]`
	fAddrCode  = `["name","phone","address","entrance_code"]`
	fOrders    = `["order_history"]`
	fAddrWrite = `["name","phone","address","entrance_code"]`
)

func (c *customer) addrFields() string {
	if c.h>>40&3 == 0 {
		return fAddrCode
	}
	return fAddr
}

// customerSource picks the address a customer's session comes from.
func (g *gen) customerSource(c *customer, t int64) src {
	d := kday(t)
	r := g.rng.Uint64()
	u := &customerUAs[c.ua]
	switch {
	case c.travelling(d) && r%3 != 0: // abroad on local networks (else roaming via the home carrier)
		return c.travelNet.ip(mix(c.h, uint64(d)) % 4096 * 31)
	case u.mobile && r>>8%10 < 6: // carrier NAT: a shared pool, a new address per session
		return mobileNets[c.carrier].ip(r >> 16 % g.natPool * 157)
	default: // home broadband, re-leased now and then
		return bbNets[c.carrier].ip(mix(c.h, uint64(d)/(4+c.h%25)))
	}
}

// session emits one customer session starting at t: a login or token
// refresh, a token, then a few reads of the customer's own data.
func (g *gen) session(c *customer, t int64, tag int16, forceLogin bool) {
	s := g.customerSource(c, t)
	u := &customerUAs[c.ua]
	r := g.rng.Uint64()
	if forceLogin || !u.app || r%10 < 3 {
		if r>>8%100 < 3 {
			g.login(c.n, s, u.frag, t, "failure", tag)
			t += 3000 + g.rng.Int64N(15000)
		}
		g.login(c.n, s, u.frag, t, "success", tag)
		t += 200 + g.rng.Int64N(600)
	}
	tok := g.rng.Uint64()
	kid := g.keyAt(t)
	shipped, held := g.mintShipped(tok, t)
	if held && tag == 0 {
		tag = g.hbStall
	}
	g.tokenIssued("m:", c.n, "", tok, kid, t, t+12*hourMS, s, tag)
	if held {
		g.items[len(g.items)-1].at = shipped
	}
	iat := t
	reads := 1 + int(r>>16%4)
	if r>>24%4 == 0 {
		reads += int(r >> 28 % 5)
	}
	for i := range reads {
		t += 800 + g.rng.Int64N(25000)
		if i > 0 && g.rng.Uint32N(8) == 0 {
			t += g.rng.Int64N(5 * minMS)
		}
		var a uint32
		if i == 0 {
			a = uint32(r >> 34 % 3)
		} else {
			a = g.rng.Uint32N(100)
			switch {
			case a < 45:
				a = 2
			case a < 75:
				a = 0
			case a < 98:
				a = 1
			default:
				a = 3
			}
		}
		g.custRead(c, a, t, tok, kid, iat, s, u.frag, tag)
	}
}

func (g *gen) login(n uint64, s src, ua string, t int64, outcome string, tag int16) {
	g.begin(t, tag, event.DatasetLogin, "login", outcome)
	g.userNum("m:", n)
	g.source(s)
	g.raw(ua)
	g.end()
}

func (g *gen) tokenIssued(prefix string, n uint64, id string, tok uint64, kid string, t, exp int64, s src, tag int16) {
	g.begin(t, tag, event.DatasetToken, event.ActionTokenIssued, "success")
	if prefix != "" {
		g.userNum(prefix, n)
	} else {
		g.userStr(id, "")
	}
	g.token(tok, kid, t, exp)
	g.source(s)
	g.end()
}

// custRead emits one customer API call on the customer's own data:
// a = 0 profile, 1 addresses, 2 orders, 3 address update.
func (g *gen) custRead(c *customer, a uint32, t int64, tok uint64, kid string, iat int64, s src, ua string, tag int16) {
	switch a {
	case 0:
		g.begin(t, tag, event.DatasetGateway, "member.profile.read", "success")
	case 1:
		g.begin(t, tag, event.DatasetGateway, "member.address.list", "success")
	case 2:
		g.begin(t, tag, event.DatasetGateway, "member.order.list", "success")
	default:
		g.begin(t, tag, event.DatasetGateway, "member.address.update", "success")
	}
	g.userNum("m:", c.n)
	g.token(tok, kid, iat, 0)
	g.source(s)
	g.raw(ua)
	switch a {
	case 0:
		g.http("GET", 200, 600+int(c.h>>44%300))
		g.path("/api/v2/members/", c.n, "/profile")
		g.recordsOpen("customer")
		g.idNum(c.n)
		g.recordsClose(fProfile)
	case 1:
		g.http("GET", 200, 420+c.nAddr*390+int(c.h>>48%90))
		g.path("/api/v2/members/", c.n, "/addresses")
		g.recordsOpen("address")
		for k := 1; k <= c.nAddr; k++ {
			g.idSub("a:", c.n, k)
		}
		g.recordsClose(c.addrFields())
	case 2:
		k := min(c.nOrd, 10)
		g.http("GET", 200, 300+k*520)
		g.path("/api/v2/members/", c.n, "/orders")
		g.recordsOpen("order")
		for j := 0; j < k; j++ {
			g.idSub("o:", c.n, c.nOrd-j)
		}
		g.recordsClose(fOrders)
	default:
		k := 1 + int(g.rng.Uint32N(uint32(c.nAddr)))
		g.http("PUT", 200, 310)
		b := append(g.arena, `,"url":{"path":"/api/v2/members/`...)
		b = strconv.AppendUint(b, c.n, 10)
		b = append(b, "/addresses/"...)
		b = strconv.AppendInt(b, int64(k), 10)
		g.arena = append(b, `"}`...)
		g.recordsOpen("address")
		g.idSub("a:", c.n, k)
		g.recordsClose(fAddrWrite)
	}
	g.end()
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
