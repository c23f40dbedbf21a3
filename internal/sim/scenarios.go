package sim

import (
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

const (
	scGhost = iota
	scInsider
	scStuffing
	scSnoop
	scService
	scPartner
)

func (g *gen) setupScenarios(ghost, insider, snooper *emp) {
	for i, name := range scenarioNames {
		if g.o.enabled(name) {
			g.sc[i] = &truth.Scenario{Name: name, AttackerEntities: []event.EntityKey{}, MaliciousEventIDs: []string{}}
		}
	}
	g.marketingSpike()
	if g.sc[scGhost] != nil {
		g.ghostKey(ghost)
	}
	if g.sc[scInsider] != nil {
		g.insiderExport(insider)
	}
	if g.sc[scStuffing] != nil {
		g.stuffing()
	}
	if g.sc[scSnoop] != nil {
		g.snooping(snooper)
	}
	if g.sc[scService] != nil {
		g.serviceAbuse()
	}
	if g.sc[scPartner] != nil {
		g.partnerEnum()
	}
}

// marketingSpike: a push campaign at 11:00 Seoul brings many customers in
// within an hour (hard benign).
func (g *gen) marketingSpike() {
	tag := g.addBenign("marketing-campaign-spike")
	s := g.dayAt(7) + 2*hourMS
	total := int(min(g.C*3/100, 200_000))
	done := 0
	g.actors = append(g.actors, func(t0, t1 int64) {
		if t1 <= s || t0 >= s+hourMS {
			return
		}
		// Front-loaded: most arrive in the first minutes after the push.
		frac := func(t int64) float64 {
			x := float64(min(max(t-s, 0), hourMS)) / float64(hourMS)
			return 1 - (1-x)*(1-x)*(1-x)
		}
		n := int(frac(t1)*float64(total)) - done
		done += n
		for range n {
			c := g.pickCustomer()
			if len(g.benign[tag-benignBase].Entities) < 5000 {
				g.benign[tag-benignBase].Entities = append(g.benign[tag-benignBase].Entities,
					event.EntityKey{Kind: event.EntityPrincipal, ID: "m:" + itoa(c.n)})
			}
			g.session(&c, g.between(max(t0, s), t1), tag, false)
		}
	})
}

// ghostKey: the departed auth engineer forges tokens with the retained old
// key and slowly reads profiles and address books from hosting networks.
func (g *gen) ghostKey(ghost *emp) {
	sc := g.sc[scGhost]
	g.scenarioEntity(scGhost, event.EntitySigningKey, g.keyOld)
	g.scenarioEntity(scGhost, event.EntityPrincipal, ghost.id)
	start := g.dayAt(2) + 5*hourMS
	if g.o.Days == 1 {
		start = g.startMS + 12*hourMS
	}
	// A few requests per second at most; fewer for small companies so the
	// run reads about half the customers.
	attackS := float64(g.endMS-start) / 1000
	rate := min(3.0, float64(g.C)/attackS) // requests per second
	pool := make([]src, 48)
	used := make([]bool, len(pool))
	for i := range pool {
		h := g.h(0x6057, uint64(i))
		pool[i] = hostingNets[h%uint64(len(hostingNets))].ip(h >> 8)
	}
	// A permutation of customers: each is read once until all have been.
	a := g.h(0x6a)%g.C | 1
	for gcd(a, g.C) != 1 {
		a += 2
	}
	b := g.h(0x6b) % g.C
	var k uint64
	next := start
	active := [3]int{0, 1, 2}
	leaseEnd := [3]int64{}
	g.actors = append(g.actors, func(t0, t1 int64) {
		for next < t1 {
			t := next
			next += int64(g.rng.ExpFloat64()*2000/rate) + 1
			hr := uint64(t / hourMS)
			if g.h(0x6011, hr)%10 == 0 { // the script pauses now and then
				next = (int64(hr) + 1) * hourMS
				continue
			}
			slot := g.rng.IntN(3)
			if t >= leaseEnd[slot] {
				active[slot] = g.rng.IntN(len(pool))
				leaseEnd[slot] = t + 20*minMS + g.rng.Int64N(70*minMS)
			}
			pi := active[slot]
			s := pool[pi]
			if !used[pi] {
				used[pi] = true
				g.scenarioEntity(scGhost, event.EntitySource, s.String())
			}
			ua := attackerUAs[g.h(0x60a, uint64(pi))%uint64(len(attackerUAs))]
			c := g.customer((a*(k%g.C) + b) % g.C)
			if k < g.C {
				sc.RecordsTouched += 1 + c.nAddr
			}
			k++
			tok := g.rng.Uint64()
			iat := t - 300 - g.rng.Int64N(3000)
			g.custRead(&c, 0, t, tok, g.keyOld, iat, s, ua, 1+scGhost)
			g.custRead(&c, 1, t+400+g.rng.Int64N(2500), tok, g.keyOld, iat, s, ua, 1+scGhost)
		}
	})
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// insiderExport: a terminated employee's admin session, minted that morning
// and still valid, exports customer lists from home after the termination.
func (g *gen) insiderExport(e *emp) {
	sc := g.sc[scInsider]
	g.scenarioEntity(scInsider, event.EntityPrincipal, e.id)
	home := e.home
	g.scenarioEntity(scInsider, event.EntitySource, home.String())
	s, _, _ := g.shiftOf(e, e.forceDay)
	start := e.term + 70*minMS
	total := uint64(0)
	g.at(start, func() {
		tok, iat, kid := g.staffToken(e, s), s+300, g.keyAt(s+300)
		t := start
		g.staffBegin(e, t, 1+scInsider, "admin.customer.search", tok, kid, iat, home)
		g.http("POST", 200, 4100)
		g.raw(`,"url":{"path":"/admin/customers/search"}`)
		g.recordsOpen("customer")
		off := g.rng.Uint64N(g.C)
		for i := range uint64(20) {
			g.idNum(custBase + (off+i)%g.C)
		}
		total += 20
		g.recordsClose(`["name","phone"]`)
		g.end()
		for t < iat+12*hourMS-10*minMS && t < start+150*minMS {
			t += 4*minMS + g.rng.Int64N(12*minMS)
			n := uint64(200 + g.rng.IntN(800))
			g.staffBegin(e, t, 1+scInsider, "admin.customer.export", tok, kid, iat, home)
			g.http("GET", 200, int(n)*96)
			g.raw(`,"url":{"path":"/admin/customers/export"}`)
			g.recordsOpen("customer")
			for i := range n {
				g.idNum(custBase + (off+total+i)%g.C)
			}
			total += n
			g.recordsClose(`["name","email","phone","address"]`)
			g.end()
		}
		sc.RecordsTouched = int(min(total, g.C))
	})
}

// stuffing: a botnet of residential addresses abroad tries leaked
// passwords; the few that work get their shipping address changed.
func (g *gen) stuffing() {
	sc := g.sc[scStuffing]
	start := g.dayAt(4) + 17*hourMS // 02:00 Seoul
	dur := 3 * hourMS
	attempts := int(min(max(g.C/10, 300), 20000))
	bots := make([]src, 240)
	used := make([]bool, len(bots))
	for i := range bots {
		h := g.h(0xb07, uint64(i))
		bots[i] = botNets[h%uint64(len(botNets))].ip(h >> 8)
	}
	touched := map[uint64]bool{}
	i := 0
	g.actors = append(g.actors, func(t0, t1 int64) {
		for ; i < attempts; i++ {
			t := max(start+int64(i)*dur/int64(attempts)+g.rng.Int64N(800), t0)
			if t >= t1 {
				return
			}
			bi := g.rng.IntN(len(bots))
			s := bots[bi]
			if !used[bi] {
				used[bi] = true
				g.scenarioEntity(scStuffing, event.EntitySource, s.String())
			}
			ua := stuffingUAs[g.rng.IntN(len(stuffingUAs))]
			tag := int16(1 + scStuffing)
			if g.rng.IntN(6) == 0 { // leaked accounts that do not exist here
				g.login(custBase+g.C+g.rng.Uint64N(5_000_000), s, ua, t, "failure", tag)
				continue
			}
			c := g.customer(g.rng.Uint64N(g.C))
			if g.rng.IntN(90) != 0 && i != attempts/3 && i != 2*attempts/3 {
				g.login(c.n, s, ua, t, "failure", tag)
				continue
			}
			// Account taken over.
			g.scenarioEntity(scStuffing, event.EntityPrincipal, "m:"+itoa(c.n))
			g.login(c.n, s, ua, t, "success", tag)
			tok, kid := g.rng.Uint64(), g.keyAt(t)
			g.tokenIssued("m:", c.n, "", tok, kid, t+300, t+300+12*hourMS, s, tag)
			t += 2000 + g.rng.Int64N(20000)
			g.custRead(&c, 1, t, tok, kid, t, s, ua, tag)
			g.custRead(&c, 0, t+1500+g.rng.Int64N(5000), tok, kid, t, s, ua, tag)
			g.custRead(&c, 3, t+60000+g.rng.Int64N(240000), tok, kid, t, s, ua, tag)
			if !touched[c.n] {
				touched[c.n] = true
				sc.RecordsTouched += 1 + c.nAddr
			}
		}
	})
}

// snooping: a CS agent, on a few nights, views customers tied to no ticket.
func (g *gen) snooping(e *emp) {
	sc := g.sc[scSnoop]
	g.scenarioEntity(scSnoop, event.EntityPrincipal, e.id)
	seen := map[uint64]bool{}
	nights := map[int]bool{}
	for _, d := range []int{1, 4, 9} {
		n := min(d, g.o.Days-1)
		if nights[n] {
			continue
		}
		nights[n] = true
		// 01:00–02:30 Seoul on the night after day n, whatever hour the
		// simulation starts at (the demo starts at the current hour).
		s := kdayStart(kday(g.startMS)+int64(n)+1) + hourMS + int64(g.h(0x5a, uint64(n))%uint64(90*minMS))
		if s >= g.endMS {
			s -= dayMS
		}
		g.at(s, func() {
			tag := int16(1 + scSnoop)
			loc := vpnNet.ip(g.h(0x5b, uint64(n)))
			tok := g.h(0x5c, uint64(s))
			kid := g.keyAt(s)
			g.begin(s, tag, event.DatasetLogin, "login", "success")
			g.userStr(e.id, e.rolesFrag)
			g.source(loc)
			g.raw(e.ua)
			g.end()
			g.begin(s+300, tag, event.DatasetToken, event.ActionTokenIssued, "success")
			g.userStr(e.id, e.rolesFrag)
			g.token(tok, kid, s+300, s+300+12*hourMS)
			g.source(loc)
			g.end()
			t := s + 300
			for range 4 + g.rng.IntN(8) {
				t += minMS + g.rng.Int64N(15*minMS)
				c := g.customer(g.rng.Uint64N(g.C))
				g.staffBegin(e, t, tag, "admin.customer.view", tok, kid, s+300, loc)
				g.http("GET", 200, 1900)
				g.path("/admin/customers/", c.n, "")
				g.recordsOpen("customer")
				g.idNum(c.n)
				g.recordsClose(`["name","email","phone","address"]`)
				g.end()
				if !seen[c.n] {
					seen[c.n] = true
					sc.RecordsTouched++
				}
			}
		})
	}
}

// serviceAbuse: the recommendation service's client secret, used from a
// foreign hosting network at night, pulls customer profiles in bulk.
func (g *gen) serviceAbuse() {
	sc := g.sc[scService]
	a := g.svcs[0]
	g.scenarioEntity(scService, event.EntityPrincipal, a.id)
	srcs := []src{ovhFR.ip(g.h(0x5e1)), ovhFR.ip(g.h(0x5e2)), ovhFR.ip(g.h(0x5e3))}
	for _, s := range srcs {
		g.scenarioEntity(scService, event.EntitySource, s.String())
	}
	s := g.dayAt(8) + 16*hourMS + 30*minMS // 01:30 Seoul
	g.at(s, func() {
		tag := int16(1 + scService)
		total := min(g.C, 300_000)
		reqs := int((total + 199) / 200)
		off := g.rng.Uint64N(g.C)
		var tok uint64
		var iat int64
		t := s
		for i := range reqs {
			if i%1500 == 0 { // client-credentials grant from the new network
				tok, iat = g.rng.Uint64(), t
				g.begin(t, tag, event.DatasetToken, event.ActionTokenIssued, "success")
				g.userStr(a.id, `,"roles":`+a.rolesJSON)
				g.token(tok, g.keyAt(t), t, t+hourMS+5*minMS)
				g.source(srcs[i/1500%len(srcs)])
				g.end()
			}
			t += 900 + g.rng.Int64N(1500)
			g.begin(t, tag, event.DatasetGateway, "internal.customer.read", "success")
			g.userStr(a.id, `,"roles":`+a.rolesJSON)
			g.token(tok, g.keyAt(iat), iat, 0)
			g.source(srcs[g.rng.IntN(len(srcs))])
			g.raw(a.ua)
			g.http("POST", 200, 200+200*310)
			g.raw(`,"url":{"path":"/internal/v1/customers/batch"}`)
			g.recordsOpen("customer")
			for j := range uint64(200) {
				g.idNum(custBase + (off+uint64(i)*200+j)%g.C)
			}
			g.recordsClose(`["name","email","phone","address"]`)
			g.end()
		}
		sc.RecordsTouched = int(min(uint64(reqs)*200, g.C))
	})
}

// partnerEnum: a partner's API key walks sequential customer numbers
// through the recipient-lookup endpoint, from the partner's own network.
func (g *gen) partnerEnum() {
	sc := g.sc[scPartner]
	a := g.partners[2]
	g.scenarioEntity(scPartner, event.EntityPrincipal, a.id)
	start := g.dayAt(9) + hourMS // 10:00 Seoul
	n := min(g.C/2, 10_800)
	first := g.h(0x9e) % (g.C - n + 1)
	var i uint64
	g.actors = append(g.actors, func(t0, t1 int64) {
		for ; i < n; i++ {
			t := max(start+int64(i)*1100+g.rng.Int64N(400), t0)
			if t >= t1 {
				return
			}
			id := custBase + first + i
			g.actorBegin(a, t, 1+scPartner, "partner.customer.lookup", a.srcs[0])
			g.http("GET", 200, 380)
			g.path("/partner/v1/customers/", id, "")
			g.recordsOpen("customer")
			g.idNum(id)
			g.recordsClose(`["name","phone","address"]`)
			g.end()
			sc.RecordsTouched++
		}
	})
}
