package sim

import (
	"strconv"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

type emp struct {
	idx        int
	num        uint64
	id         string
	role       string
	rolesFrag  string // `,"roles":["cs-agent"]`
	rolesJSON  string // `["cs-agent"]`
	join, term int64  // 0: employed before Start / not leaving
	night      bool
	ua         string
	desk       src
	home       src
	rate       float64 // actions per working hour
	tag        int16   // hard-benign label for all activity (new cohort)
	abroadTag  int16
	abroadFrom int64
	abroadTo   int64
	forceDay   int64 // a Seoul day the employee certainly works (-1 none)
}

// actor is a service or partner API client.
type actor struct {
	idx       int
	id        string
	rolesJSON string
	srcs      []src
	ua        string
	perMin    float64
	live      int64 // first activity; the roster upsert is emitted then when > Start
	tag       int16
	off       int64 // token renewal offset within the hour
	kind      int
}

const (
	kindRecommend = iota
	kindRouting
	kindBackfill
	kindPartner
)

var roleRates = map[string]float64{
	"cs-agent": 5, "engineer": 1.5, "auth-engineer": 1, "data-engineer": 0.8, "analyst": 0.6, "logistics": 6,
}

func (g *gen) newEmp(role string, join int64) *emp {
	i := len(g.emps)
	h := g.h(0xe3, uint64(i))
	e := &emp{idx: i, num: uint64(1000 + 3*i + int(h%3)), role: role, join: join, forceDay: -1}
	e.id = "e:" + strconv.FormatUint(e.num, 10)
	e.rolesJSON = `["` + role + `"]`
	e.rolesFrag = `,"roles":` + e.rolesJSON
	e.ua = staffUAs[h>>8%uint64(len(staffUAs))]
	e.desk = officeNet.ip(uint64(i)*37 + 300)
	e.home = bbNets[h>>16%4].ip(h >> 20)
	e.rate = roleRates[role]
	e.night = role == "cs-agent" && h>>40%10 == 0
	g.emps = append(g.emps, e)
	return e
}

func (g *gen) setup() {
	o := g.o
	C := g.C
	g.natPool = min(max(C/400, 64), 1<<15)
	g.dailySess = float64(C) * 0.085

	// Keys: an old key never retired, the current key, and a rotation during the period.
	oldT := time.Date(o.Start.Year(), o.Start.Month(), 1, 1, 0, 0, 0, time.UTC).AddDate(0, -29, 8)
	curT := time.Date(o.Start.Year(), o.Start.Month(), 1, 1, 0, 0, 0, time.UTC).AddDate(0, -5, 6)
	g.keyOld, g.keyCur = keyName(oldT), keyName(curT)
	g.rotMS = g.dayAt(7) + 2*hourMS
	g.keyNew = keyName(time.UnixMilli(g.rotMS).UTC())
	if g.keyNew == g.keyCur || g.keyNew == g.keyOld {
		g.keyNew += "b"
	}

	// Staff.
	H := 120 + int(min(C/50000, 2000))
	for range 4 {
		g.newEmp("auth-engineer", 0)
	}
	for i := 4; i < H; i++ {
		r := g.h(0x201e, uint64(i)) % 100
		role := "cs-agent"
		switch {
		case r < 40:
		case r < 60:
			role = "engineer"
		case r < 68:
			role = "data-engineer"
		case r < 78:
			role = "analyst"
		default:
			role = "logistics"
		}
		g.newEmp(role, 0)
	}
	find := func(role string, skip int, day bool) *emp {
		for _, e := range g.emps {
			if e.role == role && e.term == 0 && e.tag == 0 && e.abroadTo == 0 && (!day || !e.night) {
				if skip == 0 {
					return e
				}
				skip--
			}
		}
		return g.newEmp(role, 0)
	}
	ghost := g.emps[0]
	ghost.term = g.dayAt(0) + 9*hourMS // 18:00 KST on the first day
	insider := find("cs-agent", 2, true)
	dI := kday(g.dayAt(3))
	insider.term = kdayStart(dI) + 17*hourMS
	insider.forceDay = dI
	snooper := find("cs-agent", 5, true)
	abroad := find("engineer", 1, false)
	if a := g.dayAt(3); true {
		abroad.abroadTag = g.addBenign("employee-working-abroad")
		abroad.abroadFrom = kdayStart(kday(a))
		abroad.abroadTo = min(abroad.abroadFrom+7*dayMS, g.endMS)
		g.benignEntity(abroad.abroadTag, event.EntityPrincipal, abroad.id)
	}
	// Ordinary leavers and a joiner.
	if o.Days >= 5 {
		find("logistics", 3, false).term = g.dayAt(4) + 9*hourMS
		find("analyst", 1, false).term = g.dayAt(o.Days-2) + 8*hourMS
		g.newEmp("engineer", g.dayAt(5))
	}
	// A new CS cohort joins and ramps up.
	cohortTag := g.addBenign("new-cs-cohort")
	for range 5 {
		e := g.newEmp("cs-agent", g.dayAt(1))
		e.tag = cohortTag
		e.rate = 12
		e.night = false
		g.benignEntity(cohortTag, event.EntityPrincipal, e.id)
	}
	// On-call rotation among engineers.
	for _, e := range g.emps {
		if e.role == "engineer" && e.join == 0 && e.term == 0 {
			g.oncallByWeek = append(g.oncallByWeek, e.idx)
		}
	}
	var auth []*emp
	auth = append(auth, g.emps[:4]...)

	// Key inventory prelude (history before Start) and rotation during the period.
	g.keyEvent(oldT.UnixMilli(), event.ActionKeyCreated, g.keyOld, "active", 0, ids(auth[0], auth[1]))
	g.keyEvent(curT.UnixMilli(), event.ActionKeyCreated, g.keyCur, "active", 0, ids(auth[1], auth[2]))
	g.at(g.rotMS, func() {
		g.keyEvent(g.rotMS, event.ActionKeyCreated, g.keyNew, "active", 0, ids(auth[2], auth[3]))
	})
	if ret := g.rotMS + dayMS; ret < g.endMS {
		g.at(ret, func() {
			g.keyEvent(ret, event.ActionKeyRetired, g.keyCur, "retired", ret, ids(auth[1], auth[2]))
		})
	}

	// Services and partners.
	g.svcs = []*actor{
		{id: "s:recommendation", srcs: []src{svcNet.ip(1201), svcNet.ip(1202), svcNet.ip(1203)}, ua: uaFrag("Go-http-client/2.0"), perMin: max(1, float64(C)/40000), kind: kindRecommend},
		{id: "s:delivery-routing", srcs: []src{awsSeoul.ip(4410), awsSeoul.ip(9021)}, ua: uaFrag("Apache-HttpClient/5.2.1 (Java/17.0.9)"), perMin: max(0.5, float64(C)/60000), kind: kindRouting},
		{id: "s:nightly-backfill", srcs: []src{batchNet.ip(77)}, ua: uaFrag("python-requests/2.31.0"), kind: kindBackfill},
	}
	pRate := max(0.3, float64(C)/150000)
	g.partners = []*actor{
		{id: "p:hanjin-express", srcs: []src{lgDacom.ip(20517), lgDacom.ip(20518)}, ua: uaFrag("Apache-HttpClient/4.5.14 (Java/11.0.21)"), perMin: pRate, kind: kindPartner},
		{id: "p:cj-logistics", srcs: []src{ktBB.ip(880123), ktBB.ip(880124), ktBB.ip(880125)}, ua: uaFrag("okhttp/4.12.0"), perMin: pRate * 1.6, kind: kindPartner},
		{id: "p:lotte-global", srcs: []src{skbBB.ip(51234)}, ua: uaFrag("axios/1.7.2"), perMin: pRate * 0.8, kind: kindPartner},
		{id: "p:logen-parcel", srcs: []src{naverNet.ip(301), naverNet.ip(302)}, ua: uaFrag("Go-http-client/1.1"), perMin: pRate * 0.7, kind: kindPartner, live: g.dayAt(2)},
	}
	np := g.partners[3]
	np.tag = g.addBenign("new-partner-integration")
	g.benignEntity(np.tag, event.EntityPrincipal, np.id)
	for _, s := range np.srcs {
		g.benignEntity(np.tag, event.EntitySource, s.String())
	}
	for i, a := range append(append([]*actor(nil), g.svcs...), g.partners...) {
		a.idx = i
		a.off = int64(g.h(0xa0, uint64(i)) % uint64(hourMS))
		if a.kind == kindPartner {
			a.rolesJSON = `["partner"]`
		} else {
			a.rolesJSON = `["service"]`
		}
		if a.live == 0 {
			a.live = g.startMS
		}
	}
	g.hbBackfill = g.addBenign("one-off-backfill")
	g.benignEntity(g.hbBackfill, event.EntityPrincipal, "s:nightly-backfill")
	g.backfillDay = kday(g.dayAt(6)) + 1 // the night after day 6 (Seoul)
	if kdayStart(g.backfillDay)+hourMS >= g.endMS {
		g.backfillDay--
	}

	// Roster at Start, joiners and leavers during the period.
	g.at(g.startMS, func() {
		for _, e := range g.emps {
			if e.join == 0 {
				g.identity(g.startMS, event.ActionIdentityUpsert, e.id, "employee", e.rolesJSON, "active", 0)
			}
		}
		for _, a := range g.svcs {
			g.identity(g.startMS, event.ActionIdentityUpsert, a.id, "service", a.rolesJSON, "active", 0)
		}
		for _, a := range g.partners {
			if a.live == g.startMS {
				g.identity(g.startMS, event.ActionIdentityUpsert, a.id, "service", a.rolesJSON, "active", 0)
			}
		}
	})
	for _, e := range g.emps {
		if e.join > 0 {
			g.at(e.join, func() {
				g.identity(e.join, event.ActionIdentityUpsert, e.id, "employee", e.rolesJSON, "active", 0)
			})
		}
		if e.term > 0 && e.term < g.endMS {
			g.at(e.term, func() {
				g.identity(e.term, event.ActionIdentityTerminated, e.id, "employee", e.rolesJSON, "terminated", e.term)
			})
		}
	}
	g.at(np.live, func() {
		g.identity(np.live, event.ActionIdentityUpsert, np.id, "service", np.rolesJSON, "active", 0)
	})

	g.setupScenarios(ghost, insider, snooper)
	g.setupShipperStalls()
	sortSched(g.sched)
}

func ids(es ...*emp) []string {
	var s []string
	for _, e := range es {
		s = append(s, e.id)
	}
	return s
}

func (g *gen) at(t int64, fn func()) { g.sched = append(g.sched, sched{t, fn}) }

func sortSched(s []sched) {
	for i := 1; i < len(s); i++ { // stable insertion sort: few entries
		for j := i; j > 0 && s[j].t < s[j-1].t; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func (g *gen) identity(t int64, action, id, kind, rolesJSON, status string, termAt int64) {
	g.begin(t, 0, event.DatasetRoster, action, "success")
	b := append(g.arena, `,"identity":{"id":"`...)
	b = append(b, id...)
	b = append(b, `","kind":"`...)
	b = append(b, kind...)
	b = append(b, `","roles":`...)
	b = append(b, rolesJSON...)
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	if termAt != 0 {
		b = append(b, `","terminated_at":"`...)
		b = g.clk.appendTS(b, termAt)
	}
	g.arena = append(b, `","country":"KR"}`...)
	g.end()
}

func (g *gen) keyEvent(t int64, action, id, status string, retired int64, custodians []string) {
	g.begin(t, 0, event.DatasetKeys, action, "success")
	b := append(g.arena, `,"key":{"id":"`...)
	b = append(b, id...)
	b = append(b, `","status":"`...)
	b = append(b, status...)
	if retired != 0 {
		b = append(b, `","retired_at":"`...)
		b = g.clk.appendTS(b, retired)
	}
	b = append(b, `","custodians":[`...)
	for i, c := range custodians {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, c...)
		b = append(b, '"')
	}
	g.arena = append(b, "]}"...)
	g.end()
}

// ---- employees ----

func (g *gen) employees(t0, t1 int64) {
	d := kday(t0)
	for _, e := range g.emps {
		for dd := d - 1; dd <= d; dd++ {
			s, end, ok := g.shiftOf(e, dd)
			if !ok || s < t0 || s >= t1 || s < g.startMS {
				continue
			}
			loc := e.desk
			h := g.h(0x10c, uint64(e.idx), uint64(dd))
			tag := e.tag
			switch {
			case e.abroadTo != 0 && s >= e.abroadFrom && s < e.abroadTo:
				loc = usHotel.ip(g.h(0xab, uint64(e.idx)) % 65536 * 13)
				tag = e.abroadTag
				g.benignEntity(tag, event.EntitySource, loc.String())
			case e.night || h%100 < 22:
				loc = vpnNet.ip(h >> 8)
			case h%100 < 27:
				loc = corpNAT.ip(h >> 8)
			}
			g.shift(e, s, end, loc, tag, e.rate)
		}
	}
	// On-call engineer: now and then a night incident.
	if len(g.oncallByWeek) > 0 {
		wk := (d - kday(g.startMS)) / 7
		e := g.emps[g.oncallByWeek[int(wk+int64(g.seed%97))%len(g.oncallByWeek)]]
		h := g.h(0x0c, uint64(d))
		s := kdayStart(d) + 30*minMS + int64(h>>8%uint64(210*minMS))
		if h%10 < 3 && s >= t0 && s < t1 && (e.term == 0 || s < e.term) {
			g.shift(e, s, s+20*minMS+int64(h>>40%uint64(40*minMS)), vpnNet.ip(h>>20), 0, 9)
		}
	}
}

// shiftOf returns the shift employee e starts on Seoul day d.
func (g *gen) shiftOf(e *emp, d int64) (start, end int64, ok bool) {
	h := g.h(0x5f, uint64(e.idx), uint64(d))
	wd := weekday(d)
	base := kdayStart(d)
	abroad := e.abroadTo != 0 && base >= e.abroadFrom-dayMS && base < e.abroadTo
	switch {
	case d == e.forceDay:
		start, end = max(base+8*hourMS+50*minMS, g.startMS), base+17*hourMS
	case e.night:
		if (int(d)+e.idx)%7 < 2 {
			return 0, 0, false
		}
		start = base + 21*hourMS + 45*minMS + int64(h>>8%uint64(30*minMS))
		end = start + 9*hourMS
	case abroad: // 09:00 local time in California = 01:00 Seoul the next day
		if wd == 0 || wd == 6 {
			return 0, 0, false
		}
		start = base + 25*hourMS + int64(h>>8%uint64(40*minMS))
		end = start + 8*hourMS + int64(h>>20%uint64(80*minMS))
	default:
		if wd == 0 || wd == 6 || h%25 == 0 {
			return 0, 0, false
		}
		start = base + 8*hourMS + 30*minMS + int64(h>>8%uint64(75*minMS))
		end = start + 8*hourMS + 45*minMS + int64(h>>20%uint64(90*minMS))
	}
	if (e.join != 0 && start < e.join) || (e.term != 0 && start >= e.term) {
		return 0, 0, false
	}
	if e.term != 0 && end > e.term {
		end = e.term
	}
	return start, end, true
}

// staffToken is the admin-console token of a shift starting at s.
func (g *gen) staffToken(e *emp, s int64) uint64 { return g.h(0x70c, uint64(e.idx), uint64(s)) }

// shift emits a staff login, the admin-console token and the shift's work.
func (g *gen) shift(e *emp, s, end int64, loc src, tag int16, rate float64) {
	g.begin(s, tag, event.DatasetLogin, "login", "success")
	g.userStr(e.id, e.rolesFrag)
	g.source(loc)
	g.raw(e.ua)
	g.end()
	tok := g.staffToken(e, s)
	kid := g.keyAt(s)
	g.begin(s+300, tag, event.DatasetToken, event.ActionTokenIssued, "success")
	g.userStr(e.id, e.rolesFrag)
	g.token(tok, kid, s+300, s+300+12*hourMS)
	g.source(loc)
	g.end()
	n := g.poisson(rate * float64(end-s) / float64(hourMS))
	for range n {
		g.staffAction(e, g.between(s+minMS, end), tok, kid, s+300, loc, tag)
	}
}

func (g *gen) staffBegin(e *emp, t int64, tag int16, action string, tok uint64, kid string, iat int64, loc src) {
	g.begin(t, tag, event.DatasetGateway, action, "success")
	g.userStr(e.id, e.rolesFrag)
	g.token(tok, kid, iat, 0)
	g.source(loc)
	g.raw(e.ua)
}

func (g *gen) path2(a string, n1 uint64, b string, n2 uint64, c string) {
	x := append(g.arena, `,"url":{"path":"`...)
	x = append(x, a...)
	x = strconv.AppendUint(x, n1, 10)
	x = append(x, b...)
	x = strconv.AppendUint(x, n2, 10)
	x = append(x, c...)
	g.arena = append(x, `"}`...)
}

func (g *gen) staffAction(e *emp, t int64, tok uint64, kid string, iat int64, loc src, tag int16) {
	r := g.rng.Uint64()
	switch e.role {
	case "cs-agent":
		c := g.pickCustomer()
		ticket := 4_100_000 + (uint64(t)/1000)%900_000 + r%97
		if r>>8%100 < 15 {
			g.staffBegin(e, t, tag, "admin.customer.search", tok, kid, iat, loc)
			g.http("POST", 200, 900+int(r>>16%2000))
			g.raw(`,"url":{"path":"/admin/customers/search"}`)
			g.recordsOpen("customer")
			g.idNum(c.n)
			for range 2 + int(r>>24%6) {
				g.idNum(custBase + g.rng.Uint64N(g.C))
			}
			g.recordsClose(`["name","phone"]`)
			g.end()
			t += 5000 + g.rng.Int64N(40000)
		}
		g.staffBegin(e, t, tag, "admin.customer.view", tok, kid, iat, loc)
		g.http("GET", 200, 1800+int(r>>32%900))
		g.path2("/admin/tickets/T-", ticket, "/customers/", c.n, "")
		g.recordsOpen("customer")
		g.idNum(c.n)
		g.recordsClose(`["name","email","phone","address"]`)
		g.end()
		if r>>40%2 == 0 && c.nOrd > 0 {
			t += 4000 + g.rng.Int64N(90000)
			g.staffBegin(e, t, tag, "admin.order.view", tok, kid, iat, loc)
			g.http("GET", 200, 2400+int(r>>44%900))
			g.path2("/admin/tickets/T-", ticket, "/orders/", c.n, "")
			g.recordsOpen("order")
			for j := 0; j < min(c.nOrd, 1+int(r>>48%3)); j++ {
				g.idSub("o:", c.n, c.nOrd-j)
			}
			g.recordsClose(`["order_history","address"]`)
			g.end()
		}
	case "engineer", "auth-engineer":
		switch r >> 8 % 3 {
		case 0:
			test := uint64(9_990_001) + r>>16%80
			g.staffBegin(e, t, tag, "admin.customer.view", tok, kid, iat, loc)
			g.http("GET", 200, 1700)
			g.path("/admin/customers/", test, "")
			g.recordsOpen("customer")
			g.idNum(test)
			g.recordsClose(`["name","email","phone","address"]`)
		case 1:
			if e.role == "auth-engineer" {
				g.staffBegin(e, t, tag, "admin.key.list", tok, kid, iat, loc)
				g.http("GET", 200, 640)
				g.raw(`,"url":{"path":"/admin/keys"}`)
			} else {
				g.staffBegin(e, t, tag, "admin.config.read", tok, kid, iat, loc)
				g.http("GET", 200, 3100)
				g.raw(`,"url":{"path":"/admin/config"}`)
			}
		default:
			g.staffBegin(e, t, tag, "admin.metrics.read", tok, kid, iat, loc)
			g.http("GET", 200, 12000+int(r>>20%9000))
			g.raw(`,"url":{"path":"/admin/metrics"}`)
		}
		g.end()
	case "data-engineer":
		g.staffBegin(e, t, tag, "admin.query.run", tok, kid, iat, loc)
		g.http("POST", 200, 3000+int(r>>16%40000))
		g.raw(`,"url":{"path":"/admin/query"}`)
		g.recordsOpen("customer")
		g.recordsClose(`["order_history"]`)
		g.end()
	case "analyst":
		g.staffBegin(e, t, tag, "admin.report.export", tok, kid, iat, loc)
		g.http("GET", 200, 20000+int(r>>16%200000))
		g.path("/admin/reports/", 300+r>>24%40, "/export")
		g.recordsOpen("order")
		if r>>32%10 < 3 {
			for range 1 + int(r>>36%3) {
				c := g.customer(g.rng.Uint64N(g.C))
				g.idSub("o:", c.n, max(c.nOrd, 1))
			}
		}
		g.recordsClose(`["order_history"]`)
		g.end()
	default: // logistics
		c := g.customer(g.rng.Uint64N(g.C))
		k := 1 + int(r>>8%uint64(c.nAddr))
		g.staffBegin(e, t, tag, "admin.order.address.view", tok, kid, iat, loc)
		g.http("GET", 200, 900)
		g.path2("/admin/orders/", c.n, "-", uint64(max(c.nOrd, 1)), "/address")
		g.recordsOpen("address")
		g.idSub("a:", c.n, k)
		g.recordsClose(fAddrCode)
		g.end()
	}
}
