package sim

import (
	"github.com/haechi-sec/haechi/internal/event"
)

// tokenAt returns the client-credentials token an actor holds at t: one
// minted at go-live, then one per hour at a fixed offset.
func (g *gen) tokenAt(a *actor, t int64) (uint64, int64) {
	k := floorDiv(t-a.live-a.off, hourMS)
	if k < 0 {
		return g.h(0x7a, uint64(a.idx), 1<<40), a.live
	}
	iat := a.live + a.off + k*hourMS
	return g.h(0x7a, uint64(a.idx), uint64(k)), iat
}

func (g *gen) actorBegin(a *actor, t int64, tag int16, action string, s src) {
	tok, iat := g.tokenAt(a, t)
	g.begin(t, tag, event.DatasetGateway, action, "success")
	g.userStr(a.id, `,"roles":`+a.rolesJSON)
	g.token(tok, g.keyAt(iat), iat, 0)
	g.source(s)
	g.raw(a.ua)
}

// machines emits service and partner traffic for [t0, t1).
func (g *gen) machines(t0, t1 int64) {
	kh := (t0 + kstOff) / hourMS % 24
	for _, a := range append(g.svcs[:len(g.svcs):len(g.svcs)], g.partners...) {
		if a.live >= t1 {
			continue
		}
		// Token issuance: one at go-live, then hourly.
		if a.live >= t0 {
			g.actorToken(a, a.live)
		}
		k := max(0, -floorDiv(-(t0-a.live-a.off), hourMS))
		for iat := a.live + a.off + k*hourMS; iat < t1; iat += hourMS {
			g.actorToken(a, iat)
		}
		from := max(t0, a.live)
		mins := float64(t1-from) / float64(minMS)
		switch a.kind {
		case kindRecommend:
			for range g.poisson(a.perMin * mins * (0.7 + 0.3*hourW[kh]/2)) {
				g.recommend(a, g.between(from, t1))
			}
		case kindRouting:
			w := 0.05
			if kh >= 6 && kh < 22 {
				w = 1.3
			}
			for range g.poisson(a.perMin * mins * w) {
				g.routing(a, g.between(from, t1))
			}
		case kindBackfill:
			g.backfill(a, t0, t1)
		case kindPartner:
			w := 0.03
			if kh >= 7 && kh < 21 {
				w = 1.5
			}
			if a.tag != 0 { // ramping up over its first days
				w *= min(1, 0.25+float64(t0-a.live)/float64(4*dayMS))
			}
			for range g.poisson(a.perMin * mins * w) {
				g.partnerRead(a, g.between(from, t1), a.tag)
			}
		}
	}
}

func (g *gen) recommend(a *actor, t int64) {
	s := a.srcs[g.rng.IntN(len(a.srcs))]
	if g.rng.IntN(5) == 0 {
		g.actorBegin(a, t, 0, "internal.customer.read", s)
		n := 1 + g.rng.IntN(10)
		g.http("POST", 200, 200+n*310)
		g.raw(`,"url":{"path":"/internal/v1/customers/batch"}`)
		g.recordsOpen("customer")
		for range n {
			g.idNum(custBase + g.rng.Uint64N(g.C))
		}
		g.recordsClose(`["name","email"]`)
		g.end()
		return
	}
	c := g.customer(g.rng.Uint64N(g.C))
	g.actorBegin(a, t, 0, "internal.order.read", s)
	k := min(c.nOrd, 20)
	g.http("GET", 200, 150+k*260)
	g.path("/internal/v1/members/", c.n, "/orders")
	g.recordsOpen("order")
	for j := 0; j < k; j++ {
		g.idSub("o:", c.n, c.nOrd-j)
	}
	g.recordsClose(fOrders)
	g.end()
}

func (g *gen) routing(a *actor, t int64) {
	s := a.srcs[g.rng.IntN(len(a.srcs))]
	g.actorBegin(a, t, 0, "internal.address.read", s)
	n := 1 + g.rng.IntN(6)
	g.http("POST", 200, 120+n*340)
	g.raw(`,"url":{"path":"/internal/v1/addresses/batch"}`)
	g.recordsOpen("address")
	for range n {
		c := g.customer(g.rng.Uint64N(g.C))
		g.idSub("a:", c.n, 1+int(c.h>>50%uint64(c.nAddr)))
	}
	g.recordsClose(fAddrCode)
	g.end()
}

// backfill: a nightly batch at 02:00 Seoul reading recently changed
// customers; one night a one-off full re-index (hard benign).
func (g *gen) backfill(a *actor, t0, t1 int64) {
	d := kday(t0)
	oneOff := d == g.backfillDay
	s := kdayStart(d) + 2*hourMS + a.off%(10*minMS)
	batch, reqs, dur := 100, max(10, int(g.C/5000)), 30*minMS
	var tag int16
	if oneOff {
		s = kdayStart(d) + hourMS + a.off%(10*minMS)
		batch = 500
		reqs = int(min(g.C, 2_000_000)+499) / 500
		dur = 4 * hourMS
		tag = g.hbBackfill
	}
	if s < t0 || s >= t1 || s < g.startMS {
		return
	}
	next := g.rng.Uint64N(g.C)
	for i := range reqs {
		t := s + int64(i)*dur/int64(reqs) + g.rng.Int64N(2000)
		g.actorBegin(a, t, tag, "internal.customer.read", a.srcs[0])
		g.http("POST", 200, 200+batch*290)
		g.raw(`,"url":{"path":"/internal/v1/customers/batch"}`)
		g.recordsOpen("customer")
		for range batch {
			if oneOff {
				g.idNum(custBase + next%g.C)
				next++
			} else {
				g.idNum(custBase + g.rng.Uint64N(g.C))
			}
		}
		g.recordsClose(`["name","email","phone","address"]`)
		g.end()
	}
}

func (g *gen) partnerRead(a *actor, t int64, tag int16) {
	s := a.srcs[g.rng.IntN(len(a.srcs))]
	c := g.customer(g.rng.Uint64N(g.C))
	if g.rng.IntN(20) == 0 {
		g.actorBegin(a, t, tag, "partner.customer.lookup", s)
		g.http("GET", 200, 380)
		g.path("/partner/v1/customers/", c.n, "")
		g.recordsOpen("customer")
		g.idNum(c.n)
		g.recordsClose(`["name","phone"]`)
		g.end()
		return
	}
	k := 1 + int(c.h>>50%uint64(c.nAddr))
	g.actorBegin(a, t, tag, "partner.order.address.read", s)
	g.http("GET", 200, 520)
	g.path2("/partner/v1/orders/", c.n, "-", uint64(max(c.nOrd, 1)), "/address")
	g.recordsOpen("address")
	g.idSub("a:", c.n, k)
	g.recordsClose(fAddrCode)
	g.end()
}

func (g *gen) actorToken(a *actor, t int64) {
	tok, iat := g.tokenAt(a, t)
	g.begin(iat, a.tag, event.DatasetToken, event.ActionTokenIssued, "success")
	g.userStr(a.id, `,"roles":`+a.rolesJSON)
	g.token(tok, g.keyAt(iat), iat, iat+hourMS+5*minMS)
	g.source(a.srcs[0])
	g.end()
}
