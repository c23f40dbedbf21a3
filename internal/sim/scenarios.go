package sim

import (
	"strconv"
	"time"

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
	g.setupClasses()
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
//
// Variants: the start (day 1–4, any hour), the rate (0.2–3 requests/s),
// the hours (all day, Seoul night, Seoul office hours), the network
// (hosting abroad or in Korea, a Korean mobile or residential proxy), the
// pool of addresses, the client (scripts and a browser, or the victim's
// own app) and how old the forged tokens claim to be.
func (g *gen) ghostKey(ghost *emp) {
	sc := g.sc[scGhost]
	g.scenarioEntity(scGhost, event.EntitySigningKey, g.keyOld)
	g.scenarioEntity(scGhost, event.EntityPrincipal, ghost.id)
	var note variantNote
	day := int(vrange(g, scGhost, 1, 2, 1, 4))
	startH := vrange(g, scGhost, 2, 5, 0, 23)
	start := g.dayAt(day) + startH*hourMS
	maxRate := vpick(g, scGhost, 3, 3.0, 0.2, 0.5, 1, 3)
	hours := vpick(g, scGhost, 4, [2]int64{}, [2]int64{}, [2]int64{1, 6}, [2]int64{9, 19})
	net := vpick(g, scGhost, 5, netHostingAbroad, netHostingAbroad, netHostingDomestic, netMobileDomestic, netDomesticProxy)
	poolN := vpick(g, scGhost, 6, 48, 8, 48, 600)
	appUA := vpick(g, scGhost, 7, false, false, true)
	iatSpread := vpick(g, scGhost, 8, int64(3000), 3000, 10*minMS, 6*hourMS)
	if g.o.Days == 1 { // compressed: every variant must show
		start, hours = g.startMS+12*hourMS, [2]int64{}
	}
	note.add("network", net.String())
	note.int("addresses", int64(poolN))
	note.add("max_rate", strconv.FormatFloat(maxRate, 'g', -1, 64)+"/s")
	if hours[0] != hours[1] {
		note.add("seoul_hours", strconv.FormatInt(hours[0], 10)+"-"+strconv.FormatInt(hours[1], 10))
	}
	note.add("start", time.UnixMilli(start).UTC().Format("01-02T15"))
	note.add("client", map[bool]string{false: "scripts", true: "victims-app"}[appUA])
	note.dur("token_age_up_to", iatSpread)
	g.setVariant(scGhost, note)
	// A few requests per second at most; fewer for small companies so the
	// run reads about half the customers.
	attackS := float64(g.endMS-start) / 1000
	rate := min(maxRate, float64(g.C)/attackS) // requests per second
	pool := make([]src, poolN)
	used := make([]bool, len(pool))
	for i := range pool {
		h := g.h(0x6057, uint64(i))
		pool[i] = addr(net, h, src{})
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
			if !inHours(t, hours[0], hours[1]) {
				next = nextHours(t, hours[0])
				continue
			}
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
			if appUA {
				ua = customerUAs[c.ua].frag
			}
			if k < g.C {
				sc.RecordsTouched += 1 + c.nAddr
			}
			k++
			tok := g.rng.Uint64()
			iat := t - 300 - g.rng.Int64N(iatSpread)
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
//
// Variants: how long after the termination (10 min – 3 h, while the
// token lives), for how long, how many customers a request, and the
// network (home, a tethered phone, a VPS abroad, a domestic proxy).
func (g *gen) insiderExport(e *emp) {
	sc := g.sc[scInsider]
	g.scenarioEntity(scInsider, event.EntityPrincipal, e.id)
	delay := vrange(g, scInsider, 1, 70, 10, 180) * minMS
	dur := vrange(g, scInsider, 2, 150, 20, 240) * minMS
	sizes := vpick(g, scInsider, 3, [2]int{200, 800}, [2]int{50, 150}, [2]int{200, 800}, [2]int{1000, 3000})
	net := vpick(g, scInsider, 4, netOwn, netOwn, netMobileDomestic, netHostingAbroad, netDomesticProxy)
	home := addr(net, g.vdraw(scInsider, 5), e.home)
	var note variantNote
	note.add("network", net.String())
	note.dur("after_termination", delay)
	note.dur("for", dur)
	note.add("per_request", strconv.Itoa(sizes[0])+"-"+strconv.Itoa(sizes[0]+sizes[1]))
	g.setVariant(scInsider, note)
	g.scenarioEntity(scInsider, event.EntitySource, home.String())
	s, _, _ := g.shiftOf(e, e.forceDay)
	start := e.term + delay
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
		for t < iat+12*hourMS-10*minMS && t < start+dur {
			t += 4*minMS + g.rng.Int64N(12*minMS)
			n := uint64(sizes[0] + g.rng.IntN(sizes[1]))
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
//
// Variants: the day and hour, how long the run lasts (1–12 h), how many
// attempts (a quarter to all), how many bots, how often a password works,
// and the network (residential abroad, a domestic residential or mobile
// proxy, hosting abroad).
func (g *gen) stuffing() {
	sc := g.sc[scStuffing]
	start := g.dayAt(int(vrange(g, scStuffing, 1, 4, 1, 8))) + vrange(g, scStuffing, 2, 17, 0, 23)*hourMS // canonical 02:00 Seoul
	dur := vrange(g, scStuffing, 3, 3, 1, 12) * hourMS
	attempts := int(min(max(g.C/10, 300), 20000))
	attempts = max(attempts*int(vrange(g, scStuffing, 4, 4, 1, 4))/4, 100)
	nBots := int(vrange(g, scStuffing, 5, 240, 30, 1000))
	oneIn := int(vrange(g, scStuffing, 6, 90, 40, 200))
	net := vpick(g, scStuffing, 7, netResidentialAbroad, netResidentialAbroad, netDomesticProxy, netMobileDomestic, netHostingAbroad)
	var note variantNote
	note.add("network", net.String())
	note.int("bots", int64(nBots))
	note.int("attempts", int64(attempts))
	note.add("success", "1/"+strconv.Itoa(oneIn))
	note.add("start", time.UnixMilli(start).UTC().Format("01-02T15"))
	note.dur("for", dur)
	g.setVariant(scStuffing, note)
	bots := make([]src, nBots)
	used := make([]bool, len(bots))
	for i := range bots {
		h := g.h(0xb07, uint64(i))
		bots[i] = addr(net, h, src{})
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
			if g.rng.IntN(oneIn) != 0 && i != attempts/3 && i != 2*attempts/3 {
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
//
// Variants: how many nights (2–5) and which, how many customers a night,
// the hour (after midnight or late evening, Seoul) and the network (the
// VPN, home broadband, a phone).
func (g *gen) snooping(e *emp) {
	sc := g.sc[scSnoop]
	g.scenarioEntity(scSnoop, event.EntityPrincipal, e.id)
	days := []int{1, 4, 9}
	if g.o.Variants {
		days = days[:0]
		for k := range int(vrange(g, scSnoop, 1, 3, 2, 5)) {
			days = append(days, 1+int(g.vdraw(scSnoop, 10+uint64(k))%uint64(max(g.o.Days-1, 1))))
		}
	}
	victims := vpick(g, scSnoop, 2, [2]int{4, 8}, [2]int{1, 3}, [2]int{4, 8}, [2]int{8, 8})
	at := vpick(g, scSnoop, 3, hourMS, 0, hourMS, 2*hourMS, -3*hourMS)
	net := vpick(g, scSnoop, 4, netOwn, netOwn, netOwn, netDomesticProxy, netMobileDomestic)
	home := vpick(g, scSnoop, 5, false, false, true)
	var note variantNote
	nets := "vpn"
	if net != netOwn {
		nets = net.String()
	} else if home {
		nets = "home"
	}
	note.add("network", nets)
	note.add("nights", strconv.Itoa(len(days)))
	note.add("per_night", strconv.Itoa(victims[0])+"-"+strconv.Itoa(victims[0]+victims[1]-1))
	note.add("seoul_from", strconv.FormatInt((24+at/hourMS)%24, 10)+"h")
	g.setVariant(scSnoop, note)
	seen := map[uint64]bool{}
	nights := map[int]bool{}
	for _, d := range days {
		n := min(d, g.o.Days-1)
		if nights[n] {
			continue
		}
		nights[n] = true
		// 01:00–02:30 Seoul on the night after day n, whatever hour the
		// simulation starts at (the demo starts at the current hour).
		s := kdayStart(kday(g.startMS)+int64(n)+1) + at + int64(g.h(0x5a, uint64(n))%uint64(90*minMS))
		if s >= g.endMS {
			s -= dayMS
		}
		g.at(s, func() {
			tag := int16(1 + scSnoop)
			loc := vpnNet.ip(g.h(0x5b, uint64(n)))
			switch {
			case net != netOwn:
				loc = addr(net, g.h(0x5b, uint64(n)), loc)
			case home:
				loc = e.home
			}
			if g.o.Variants {
				g.scenarioEntity(scSnoop, event.EntitySource, loc.String())
			}
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
			for range victims[0] + g.rng.IntN(victims[1]) {
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
//
// Variants: the day and hour, how many customers (20k–300k), the batch
// size, the pace, the lifetime of the client-credentials tokens, and the
// network (OVH France, other hosting abroad, AWS Seoul, a domestic proxy).
func (g *gen) serviceAbuse() {
	sc := g.sc[scService]
	a := g.svcs[0]
	g.scenarioEntity(scService, event.EntityPrincipal, a.id)
	net := vpick(g, scService, 1, netOwn, netOwn, netHostingAbroad, netHostingDomestic, netDomesticProxy)
	srcs := []src{ovhFR.ip(g.h(0x5e1)), ovhFR.ip(g.h(0x5e2)), ovhFR.ip(g.h(0x5e3))}
	if net != netOwn { // netOwn here: the canonical OVH France servers
		for i := range srcs {
			srcs[i] = addr(net, g.h(0x5e1+uint64(i)), srcs[i])
		}
	}
	for _, s := range srcs {
		g.scenarioEntity(scService, event.EntitySource, s.String())
	}
	s := g.dayAt(int(vrange(g, scService, 2, 8, 2, 10))) + vrange(g, scService, 3, 16*60+30, 0, 24*60-1)*minMS // canonical 01:30 Seoul
	cap := uint64(vpick(g, scService, 4, 300_000, 20_000, 60_000, 150_000, 300_000))
	batch := vpick(g, scService, 5, 200, 50, 100, 200, 500)
	pace := vpick(g, scService, 6, [2]int64{900, 1500}, [2]int64{400, 600}, [2]int64{900, 1500}, [2]int64{3000, 6000})
	life := vpick(g, scService, 7, hourMS+5*minMS, 15*minMS, hourMS+5*minMS, 12*hourMS)
	grantEvery := max(int(life*4/5/(pace[0]+pace[1]/2)), 1) // a new grant before the token expires
	if !g.o.Variants {
		grantEvery = 1500
	}
	var note variantNote
	note.add("network", map[bool]string{true: "ovh-fr", false: net.String()}[net == netOwn])
	note.int("customers", int64(cap))
	note.int("batch", int64(batch))
	note.add("pace_ms", strconv.FormatInt(pace[0], 10)+"-"+strconv.FormatInt(pace[0]+pace[1], 10))
	note.dur("token_life", life)
	note.add("start", time.UnixMilli(s).UTC().Format("01-02T15:04"))
	g.setVariant(scService, note)
	g.at(s, func() {
		tag := int16(1 + scService)
		total := min(g.C, cap)
		reqs := int((total + uint64(batch) - 1) / uint64(batch))
		off := g.rng.Uint64N(g.C)
		var tok uint64
		var iat int64
		t := s
		for i := range reqs {
			if i%grantEvery == 0 { // client-credentials grant from the new network
				tok, iat = g.rng.Uint64(), t
				g.begin(t, tag, event.DatasetToken, event.ActionTokenIssued, "success")
				g.userStr(a.id, `,"roles":`+a.rolesJSON)
				g.token(tok, g.keyAt(t), t, t+life)
				g.source(srcs[i/grantEvery%len(srcs)])
				g.end()
			}
			t += pace[0] + g.rng.Int64N(pace[1])
			g.begin(t, tag, event.DatasetGateway, "internal.customer.read", "success")
			g.userStr(a.id, `,"roles":`+a.rolesJSON)
			g.token(tok, g.keyAt(iat), iat, 0)
			g.source(srcs[g.rng.IntN(len(srcs))])
			g.raw(a.ua)
			g.http("POST", 200, 200+batch*310)
			g.raw(`,"url":{"path":"/internal/v1/customers/batch"}`)
			g.recordsOpen("customer")
			for j := range uint64(batch) {
				g.idNum(custBase + (off+uint64(i)*uint64(batch)+j)%g.C)
			}
			g.recordsClose(`["name","email","phone","address"]`)
			g.end()
		}
		sc.RecordsTouched = int(min(uint64(reqs)*uint64(batch), g.C))
	})
}

// partnerEnum: a partner's API key walks sequential customer numbers
// through the recipient-lookup endpoint, from the partner's own network.
//
// Variants: the day and hour, how many customers (2k–20k), the pace
// (0.3–8 s a lookup), the stride of the walk, and the network (the
// partner's own egress with its own tokens, or a server at a Korean
// hosting provider that obtains its own client-credentials tokens).
func (g *gen) partnerEnum() {
	sc := g.sc[scPartner]
	a := g.partners[2]
	g.scenarioEntity(scPartner, event.EntityPrincipal, a.id)
	start := g.dayAt(int(vrange(g, scPartner, 1, 9, 2, 12))) + vrange(g, scPartner, 2, 1, 0, 23)*hourMS // canonical 10:00 Seoul
	n := min(g.C/2, uint64(vpick(g, scPartner, 3, 10_800, 2000, 5000, 10_800, 20_000)))
	pace := vpick(g, scPartner, 4, int64(1100), 300, 1100, 3000, 8000)
	stride := uint64(vpick(g, scPartner, 5, 1, 1, 3, 17))
	net := vpick(g, scPartner, 6, netOwn, netOwn, netHostingDomestic)
	from := addr(net, g.vdraw(scPartner, 7), a.srcs[0])
	if net == netHostingDomestic {
		from = kinxKR.ip(g.vdraw(scPartner, 7))
		g.scenarioEntity(scPartner, event.EntitySource, from.String())
	}
	var note variantNote
	note.add("network", map[bool]string{true: "partner", false: "hosting-domestic"}[net == netOwn])
	note.int("customers", int64(n))
	note.add("pace", fmtDur(pace))
	note.int("stride", int64(stride))
	note.add("start", time.UnixMilli(start).UTC().Format("01-02T15"))
	g.setVariant(scPartner, note)
	span := n * stride
	if span > g.C {
		stride, span = 1, n
	}
	first := g.h(0x9e) % (g.C - span + 1)
	var i uint64
	var tok uint64
	var iat int64 = -1
	g.actors = append(g.actors, func(t0, t1 int64) {
		for ; i < n; i++ {
			t := max(start+int64(i)*pace+g.rng.Int64N(400), t0)
			if t >= t1 {
				return
			}
			id := custBase + first + i*stride
			if net == netOwn {
				g.actorBegin(a, t, 1+scPartner, "partner.customer.lookup", from)
			} else {
				if iat < 0 || t-iat > 50*minMS { // its own client-credentials grant, hourly
					tok, iat = g.vdraw(scPartner, 100+i), t
					g.begin(t, 1+scPartner, event.DatasetToken, event.ActionTokenIssued, "success")
					g.userStr(a.id, `,"roles":`+a.rolesJSON)
					g.token(tok, g.keyAt(t), t, t+hourMS+5*minMS)
					g.source(from)
					g.end()
					t++
				}
				g.begin(t, 1+scPartner, event.DatasetGateway, "partner.customer.lookup", "success")
				g.userStr(a.id, `,"roles":`+a.rolesJSON)
				g.token(tok, g.keyAt(iat), iat, 0)
				g.source(from)
				g.raw(a.ua)
			}
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
