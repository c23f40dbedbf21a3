package sim

import (
	"strconv"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// The newer attack classes — token hijack, stolen cloud credentials,
// privileged takeover, slow insider export — with the company parts they
// need (administrators, a cloud workload, data engineers' routine
// exports) and their hard-benign twins. Everything here runs on the
// private stream (variants.go), so the older traffic is unchanged.

const (
	scHijack = iota + scPartner + 1
	scCloud
	scTakeover
	scSlow
)

func (g *gen) setupClasses() {
	g.admins = nil
	for i := range 4 {
		e := &emp{idx: 100_000 + i, num: uint64(9001 + i), role: "admin", forceDay: -1}
		h := g.h(0xad31, uint64(i))
		e.id = "e:" + strconv.FormatUint(e.num, 10)
		e.rolesJSON = `["admin"]`
		e.rolesFrag = `,"roles":` + e.rolesJSON
		e.ua = staffUAs[h%uint64(len(staffUAs))]
		e.desk = officeNet.ip(9000 + uint64(i)*7)
		e.home = bbNets[h>>16%4].ip(h >> 20)
		g.admins = append(g.admins, e)
	}
	g.atX(partRoster, g.startMS, func() {
		for _, e := range g.admins {
			g.identity(g.startMS, event.ActionIdentityUpsert, e.id, "employee", e.rolesJSON, "active", 0)
		}
	})
	g.actorX(partAdmins, g.adminWork)
	g.adminMaintenance()
	g.cloudWorkload()
	g.actorX(partRoutine, g.routineExports)
	g.approvedExport()
	g.tokenRoaming()
	if g.sc[scHijack] != nil {
		g.tokenHijack()
	}
	if g.sc[scCloud] != nil {
		g.cloudTheft()
	}
	if g.sc[scTakeover] != nil {
		g.takeover()
	}
	if g.sc[scSlow] != nil {
		g.slowInsider()
	}
}

// ---- administrators ----

// adminWork: the administrators' workdays, from the office or the VPN:
// user and role administration, configuration, the audit log and now and
// then a small customer export.
func (g *gen) adminWork(t0, t1 int64) {
	d := kday(t0)
	for _, e := range g.admins {
		for dd := d - 1; dd <= d; dd++ {
			s, end, ok := g.shiftOf(e, dd)
			if !ok || s < t0 || s >= t1 || s < g.startMS {
				continue
			}
			loc := e.desk
			if g.h(0xad10, uint64(e.idx), uint64(dd))%100 < 25 {
				loc = vpnNet.ip(g.h(0xad11, uint64(e.idx), uint64(dd)))
			}
			tok := g.staffLogin(e, s, loc, 0, 12*hourMS)
			for range g.poisson(1.2 * float64(end-s) / float64(hourMS)) {
				g.adminAction(e, g.between(s+minMS, end), tok, g.keyAt(s), s+300, loc, 0, g.rng.IntN(100))
			}
		}
	}
}

// staffLogin emits a staff login and its admin-console token (lifetime
// life) at s and returns the token.
func (g *gen) staffLogin(e *emp, s int64, loc src, tag int16, life int64) uint64 {
	g.begin(s, tag, event.DatasetLogin, "login", "success")
	g.userStr(e.id, e.rolesFrag)
	g.source(loc)
	g.raw(e.ua)
	g.end()
	tok := g.staffToken(e, s)
	g.begin(s+300, tag, event.DatasetToken, event.ActionTokenIssued, "success")
	g.userStr(e.id, e.rolesFrag)
	g.token(tok, g.keyAt(s), s+300, s+300+life)
	g.source(loc)
	g.end()
	return tok
}

// adminAction emits one administrator action; kind < 100 picks it (the
// ordinary mix), 100 a role change, 101 a configuration change.
func (g *gen) adminAction(e *emp, t int64, tok uint64, kid string, iat int64, loc src, tag int16, kind int) {
	switch {
	case kind < 30:
		g.staffBegin(e, t, tag, "admin.user.list", tok, kid, iat, loc)
		g.http("GET", 200, 5200)
		g.raw(`,"url":{"path":"/admin/users"}`)
	case kind < 50:
		g.staffBegin(e, t, tag, "admin.audit.read", tok, kid, iat, loc)
		g.http("GET", 200, 18000)
		g.raw(`,"url":{"path":"/admin/audit"}`)
	case kind < 75:
		g.staffBegin(e, t, tag, "admin.config.read", tok, kid, iat, loc)
		g.http("GET", 200, 3100)
		g.raw(`,"url":{"path":"/admin/config"}`)
	case kind < 90 || kind == 101:
		g.staffBegin(e, t, tag, "admin.config.write", tok, kid, iat, loc)
		g.http("PUT", 200, 240)
		g.raw(`,"url":{"path":"/admin/config"}`)
	case kind < 97 || kind == 100:
		g.staffBegin(e, t, tag, "admin.role.change", tok, kid, iat, loc)
		g.http("POST", 200, 180)
		g.path("/admin/users/e:", 1000+g.rng.Uint64N(300), "/roles")
	default: // a small customer export (a list for a campaign, an audit sample)
		n := 20 + g.rng.IntN(80)
		g.querySegment(e, t, tag, "admin.customer.export", "/admin/customers/export", tok, kid, iat, loc, g.rng.Uint64N(g.C), n)
		return
	}
	g.end()
}

// export emits one export of n consecutive customers from off: a dump
// that walks the customer table.
func (g *gen) export(e *emp, t int64, tag int16, action, path string, tok uint64, kid string, iat int64, loc src, off uint64, n int) {
	g.exportIDs(e, t, tag, action, path, tok, kid, iat, loc, off, n, 1)
}

// querySegment emits one export of n customers selected by a query (a
// segment, a campaign list, an audit sample): sorted by customer number
// from off, with gaps, as a query's result is.
func (g *gen) querySegment(e *emp, t int64, tag int16, action, path string, tok uint64, kid string, iat int64, loc src, off uint64, n int) {
	g.exportIDs(e, t, tag, action, path, tok, kid, iat, loc, off, n, 40)
}

// exportIDs emits one export of n customers from off; gap > 1 skips 0 to
// gap-1 customers between two.
func (g *gen) exportIDs(e *emp, t int64, tag int16, action, path string, tok uint64, kid string, iat int64, loc src, off uint64, n int, gap int) {
	g.staffBegin(e, t, tag, action, tok, kid, iat, loc)
	g.http("GET", 200, n*96)
	g.raw(`,"url":{"path":"` + path + `"}`)
	g.recordsOpen("customer")
	id := off
	for i := range n {
		if gap > 1 && i > 0 {
			id += 1 + uint64(g.rng.IntN(gap))
		} else if i > 0 {
			id++
		}
		g.idNum(custBase + id%g.C)
	}
	g.recordsClose(`["name","email","phone","address"]`)
	g.end()
}

// adminMaintenance: an administrator's legitimate weekend maintenance from
// the office — configuration and role changes and one data-fix export of
// a few hundred customers (hard benign "admin-weekend-maintenance").
func (g *gen) adminMaintenance() {
	e := g.admins[3]
	tag := g.addBenign("admin-weekend-maintenance")
	g.benignEntity(tag, event.EntityPrincipal, e.id)
	d := kday(g.dayAt(1))
	for weekday(d) != 6 && kdayStart(d+1) < g.endMS {
		d++
	}
	s := max(kdayStart(d)+10*hourMS+int64(g.h(0xad20)%uint64(40*minMS)), g.startMS+minMS)
	if s+3*hourMS >= g.endMS {
		s = max(g.endMS-4*hourMS, g.startMS)
	}
	g.atX(partMaintenance, s, func() {
		tok := g.staffLogin(e, s, e.desk, tag, 12*hourMS)
		t := s + 300
		for i := range 6 + g.rng.IntN(6) {
			t += 2*minMS + g.rng.Int64N(12*minMS)
			kind := 101
			if i%4 == 2 {
				kind = 100
			} else if i%4 == 3 {
				kind = 40
			}
			g.adminAction(e, t, tok, g.keyAt(s), s+300, e.desk, tag, kind)
		}
		t += 5*minMS + g.rng.Int64N(20*minMS)
		g.querySegment(e, t, tag, "admin.customer.export", "/admin/customers/export", tok, g.keyAt(s), s+300, e.desk,
			g.rng.Uint64N(g.C), 300+g.rng.IntN(500))
	})
}

// takeover: an administrator's account is taken over: a login at night
// from a network the account never used, a look around, then a bulk
// customer export.
//
// Variants: the victim, the day and Seoul hour (22:00–04:59), failed
// attempts first, the token's lifetime, the wait before the export, how
// many requests of how many customers, the client (another browser or the
// admin's own) and the network (hosting or residential abroad, a domestic
// proxy, a Korean phone).
func (g *gen) takeover() {
	sc := g.sc[scTakeover]
	e := g.admins[int(vrange(g, scTakeover, 1, 0, 0, 2))]
	g.scenarioEntity(scTakeover, event.EntityPrincipal, e.id)
	day := int(vrange(g, scTakeover, 2, 5, 1, 12))
	hour := vpick(g, scTakeover, 3, int64(2), 22, 23, 0, 1, 2, 3, 4)
	s := kdayStart(kday(g.dayAt(day))+1) + hour*hourMS + int64(g.vdraw(scTakeover, 4)%uint64(50*minMS))
	if hour >= 22 {
		s -= dayMS
	}
	if s >= g.endMS-hourMS || s < g.startMS {
		s = max(g.endMS-2*hourMS, g.startMS)
	}
	fails := int(vrange(g, scTakeover, 5, 0, 0, 3))
	life := vpick(g, scTakeover, 6, 12*hourMS, hourMS, 8*hourMS, 12*hourMS)
	wait := min(vrange(g, scTakeover, 7, 6, 1, 90)*minMS, life/2) // the export comes while the token lives
	reqs := int(vrange(g, scTakeover, 8, 8, 3, 20))
	size := int(vpick(g, scTakeover, 9, 2000, 500, 1000, 2000, 5000))
	ownUA := vpick(g, scTakeover, 10, false, false, true)
	net := vpick(g, scTakeover, 11, netHostingAbroad, netHostingAbroad, netResidentialAbroad, netDomesticProxy, netMobileDomestic)
	loc := addr(net, g.vdraw(scTakeover, 12), src{})
	g.scenarioEntity(scTakeover, event.EntitySource, loc.String())
	var note variantNote
	note.add("network", net.String())
	note.add("seoul_hour", strconv.FormatInt(hour, 10))
	note.int("failed_logins", int64(fails))
	note.dur("token_life", life)
	note.dur("wait", wait)
	note.add("export", strconv.Itoa(reqs)+"x"+strconv.Itoa(size))
	note.add("client", map[bool]string{false: "other-browser", true: "admins-own"}[ownUA])
	g.setVariant(scTakeover, note)
	ua := attackerUAs[1]
	if ownUA {
		ua = e.ua
	}
	g.atX(partTakeover, s, func() {
		tag := int16(1 + scTakeover)
		t := s
		for range fails {
			g.begin(t, tag, event.DatasetLogin, "login", "failure")
			g.userStr(e.id, e.rolesFrag)
			g.source(loc)
			g.raw(ua)
			g.end()
			t += 5*secMS + g.rng.Int64N(40*secMS)
		}
		g.begin(t, tag, event.DatasetLogin, "login", "success")
		g.userStr(e.id, e.rolesFrag)
		g.source(loc)
		g.raw(ua)
		g.end()
		tok := g.h(0xad40, uint64(t))
		iat, kid := t+300, g.keyAt(t)
		g.scenarioEntity(scTakeover, event.EntityToken, "tk-"+string(appendHex(nil, tok)))
		g.begin(iat, tag, event.DatasetToken, event.ActionTokenIssued, "success")
		g.userStr(e.id, e.rolesFrag)
		g.token(tok, kid, iat, iat+life)
		g.source(loc)
		g.end()
		eu := *e
		eu.ua = ua
		t = iat + 30*secMS + g.rng.Int64N(90*secMS)
		g.adminAction(&eu, t, tok, kid, iat, loc, tag, 10) // the users
		t += 20*secMS + g.rng.Int64N(60*secMS)
		g.adminAction(&eu, t, tok, kid, iat, loc, tag, 40) // the audit log
		t += wait
		off := g.rng.Uint64N(g.C)
		total := 0
		for range reqs {
			if t >= iat+life-minMS {
				break
			}
			g.export(&eu, t, tag, "admin.customer.export", "/admin/customers/export", tok, kid, iat, loc, off+uint64(total), size)
			total += size
			t += 30*secMS + g.rng.Int64N(60*secMS)
		}
		sc.RecordsTouched = int(min(uint64(total), g.C))
	})
}

// ---- cloud workload ----

const (
	awsAccount = "210987654321"
	cloudRole  = "order-export-worker"
	cloudUA    = "Boto3/1.34.131 md/Botocore#1.34.131 ua/2.0 os/linux#6.1.0-1019-aws md/arch#x86_64 lang/python#3.12.4 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.131"
	cliUA      = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-26-generic exe/x86_64.ubuntu.22 prompt/off command/s3.cp"
	cloudBkt   = "exampleshop-order-exports"
)

// instance is the EC2 instance id of the order-export worker.
func (g *gen) instance() string {
	b := append([]byte("i-0"), appendHex(nil, g.h(0xc10d))[:16]...)
	return string(b)
}

func (g *gen) cloudARN() string {
	return "arn:aws:sts::" + awsAccount + ":assumed-role/" + cloudRole + "/" + g.instance()
}

// accessKey is the instance-role credential issued in hour k (the
// instance metadata service hands out a new one about hourly, each valid
// six hours).
func (g *gen) accessKey(k int64) string {
	const b32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	h := g.h(0xc1d, uint64(k))
	b := []byte("ASIA")
	for i := range 16 {
		b = append(b, b32[h>>(i*4)&31])
		if i == 11 {
			h = mix(h, 0xc1e)
		}
	}
	return string(b)
}

// cloudEvent emits one CloudTrail-shaped event (the fields the cloudtrail
// input maps, in the event contract).
func (g *gen) cloudEvent(t int64, tag int16, provider, action, key string, s src, ua, objType, obj string) {
	g.cur = item{ts: t, at: t, seq: g.gseq, off: uint32(len(g.arena)), tag: tag}
	g.gseq++
	b := append(g.arena, `"dataset":"aws.cloudtrail","action":"`...)
	b = append(b, action...)
	b = append(b, `","outcome":"success","provider":"`...)
	b = append(b, provider...)
	b = append(b, `"},"user":{"id":"`...)
	b = append(b, g.cloudARN()...)
	b = append(b, `","name":"`...)
	b = append(b, g.instance()...)
	b = append(b, `","roles":["`+cloudRole+`"]},"token":{"id":"`...)
	b = append(b, key...)
	g.arena = append(b, `"}`...)
	g.source(s)
	g.raw(uaFrag(ua))
	if obj != "" {
		b = append(g.arena, `,"records":{"type":"`...)
		b = append(b, objType...)
		b = append(b, `","ids":["`...)
		b = append(b, obj...)
		g.arena = append(b, `"]}`...)
	}
	g.end()
}

// cloudWorkload: the order-export worker on EC2 reads and writes order
// export files in S3 all day with its instance-role credentials, from its
// NAT gateways in AWS Seoul (hard benign "instance-credentials-in-provider":
// the same credentials the theft uses, inside the provider, by the
// instance).
func (g *gen) cloudWorkload() {
	tag := g.addBenign("instance-credentials-in-provider")
	g.benignEntity(tag, event.EntityPrincipal, g.cloudARN())
	nat := [2]src{awsSeoul.ip(7777), awsSeoul.ip(7778)}
	g.actorX(partWorkload, func(t0, t1 int64) {
		for range g.poisson(15 * float64(t1-t0) / float64(hourMS)) {
			t := g.between(t0, t1)
			key := g.accessKey(floorDiv(t, hourMS))
			s := nat[0]
			if g.rng.IntN(5) == 0 {
				s = nat[1]
			}
			hr := time.UnixMilli(t).UTC().Format("2006/01/02/15")
			part := "/part-" + strconv.Itoa(g.rng.IntN(400)) + ".json.gz"
			if g.rng.IntN(3) == 0 {
				g.cloudEvent(t, tag, "s3.amazonaws.com", "PutObject", key, s, cloudUA, "s3_object", cloudBkt+"/out/"+hr+part)
			} else {
				g.cloudEvent(t, tag, "s3.amazonaws.com", "GetObject", key, s, cloudUA, "s3_object", cloudBkt+"/in/"+hr+part)
			}
		}
	})
}

// cloudTheft: the worker's instance-role credentials, taken through the
// metadata service (an SSRF), are used from outside the workload's
// network: who am I, the buckets, then the export files.
//
// Variants: the day and hour, how long (10 min – 4 h), how many files
// (5–300), the client (the AWS CLI, or the worker's own SDK string) and
// the network (hosting abroad, residential abroad, a domestic proxy, a
// Korean hosting provider, or AWS itself in another region).
func (g *gen) cloudTheft() {
	sc := g.sc[scCloud]
	day := int(vrange(g, scCloud, 1, 6, 1, 12))
	s := g.dayAt(day) + vrange(g, scCloud, 2, 14*60, 0, 24*60-1)*minMS
	if s >= g.endMS-hourMS {
		s = max(g.endMS-2*hourMS, g.startMS)
	}
	dur := vrange(g, scCloud, 3, 40, 10, 240) * minMS
	files := int(vrange(g, scCloud, 4, 60, 5, 300))
	ua := vpick(g, scCloud, 5, cliUA, cliUA, cloudUA)
	netName := vpick(g, scCloud, 6, "hosting-abroad", "hosting-abroad", "residential-abroad", "domestic-proxy", "hosting-domestic", "aws-other-region")
	x := g.vdraw(scCloud, 7)
	var loc src
	switch netName {
	case "hosting-abroad":
		loc = doSG.ip(x)
	case "residential-abroad":
		loc = addr(netResidentialAbroad, x, src{})
	case "domestic-proxy":
		loc = addr(netDomesticProxy, x, src{})
	case "hosting-domestic":
		loc = kinxKR.ip(x)
	default:
		loc = awsUSEast.ip(x)
	}
	key := g.accessKey(floorDiv(s, hourMS) - 1) // issued up to two hours before, valid six
	if dur > 4*hourMS {
		dur = 4 * hourMS
	}
	g.scenarioEntity(scCloud, event.EntityToken, key)
	g.scenarioEntity(scCloud, event.EntitySource, loc.String())
	var note variantNote
	note.add("network", netName)
	note.dur("for", dur)
	note.int("files", int64(files))
	note.add("client", map[bool]string{true: "aws-cli", false: "workload-sdk"}[ua == cliUA])
	note.add("start", time.UnixMilli(s).UTC().Format("01-02T15:04"))
	g.setVariant(scCloud, note)
	g.atX(partCloud, s, func() {
		tag := int16(1 + scCloud)
		t := s
		g.cloudEvent(t, tag, "sts.amazonaws.com", "GetCallerIdentity", key, loc, ua, "", "")
		t += 4*secMS + g.rng.Int64N(20*secMS)
		g.cloudEvent(t, tag, "s3.amazonaws.com", "ListBuckets", key, loc, ua, "", "")
		t += 3*secMS + g.rng.Int64N(20*secMS)
		g.cloudEvent(t, tag, "s3.amazonaws.com", "ListObjectsV2", key, loc, ua, "s3_bucket", cloudBkt)
		seen := map[string]bool{}
		step := dur / int64(files)
		for i := range files {
			t = max(t+secMS, s+int64(i+1)*step+g.rng.Int64N(max(step/2, 1)))
			d := time.UnixMilli(s - int64(g.rng.IntN(14*24))*hourMS).UTC().Format("2006/01/02/15")
			obj := cloudBkt + "/out/" + d + "/part-" + strconv.Itoa(g.rng.IntN(400)) + ".json.gz"
			g.cloudEvent(t, tag, "s3.amazonaws.com", "GetObject", key, loc, ua, "s3_object", obj)
			seen[obj] = true
		}
		sc.RecordsTouched = len(seen)
	})
}

// ---- data engineers ----

// dataEngineers returns the data engineers employed throughout, in order.
func (g *gen) dataEngineers() []*emp {
	var out []*emp
	for _, e := range g.emps {
		if e.role == "data-engineer" && e.join == 0 && e.term == 0 && e.tag == 0 && e.abroadTo == 0 {
			out = append(out, e)
		}
	}
	return out
}

// shiftLoc is where employee e works its shift of Seoul day d (the choice
// employees() makes, from the same hash).
func (g *gen) shiftLoc(e *emp, d int64) src {
	h := g.h(0x10c, uint64(e.idx), uint64(d))
	switch {
	case e.night || h%100 < 22:
		return vpnNet.ip(h >> 8)
	case h%100 < 27:
		return corpNAT.ip(h >> 8)
	}
	return e.desk
}

// routineExports: on about a third of their workdays data engineers export
// one to three customer lists of a few dozen to a few hundred customers
// (ordinary traffic: a busy data engineer's normal day).
func (g *gen) routineExports(t0, t1 int64) {
	d := kday(t0)
	for _, e := range g.dataEngineers() {
		for dd := d - 1; dd <= d; dd++ {
			s, end, ok := g.shiftOf(e, dd)
			if !ok || s < t0 || s >= t1 || s < g.startMS || g.h(0xde01, uint64(e.idx), uint64(dd))%100 >= 35 {
				continue
			}
			loc := g.shiftLoc(e, dd)
			for range 1 + g.rng.IntN(3) {
				g.querySegment(e, g.between(s+hourMS, end), 0, "admin.query.export", "/admin/query/export",
					g.staffToken(e, s), g.keyAt(s), s+300, loc, g.rng.Uint64N(g.C), 30+g.rng.IntN(220))
			}
		}
	}
}

// approvedExport: a data engineer's one approved large export — twenty
// thousand customers in one afternoon, at the office, in working hours
// (hard benign "approved-large-export").
func (g *gen) approvedExport() {
	des := g.dataEngineers()
	if len(des) < 2 {
		return
	}
	e := des[len(des)-1]
	tag := g.addBenign("approved-large-export")
	g.benignEntity(tag, event.EntityPrincipal, e.id)
	for d := kday(g.dayAt(3)); kdayStart(d) < g.endMS; d++ {
		s, end, ok := g.shiftOf(e, d)
		if !ok || s < g.startMS || s+3*hourMS >= min(end, g.endMS) {
			continue
		}
		t := s + 3*hourMS
		loc := g.shiftLoc(e, d)
		g.atX(partApproved, t, func() {
			n := int(min(g.C/2, 20_000))
			off := g.rng.Uint64N(g.C)
			for i := range 4 {
				g.querySegment(e, t+int64(i)*(2*minMS+g.rng.Int64N(3*minMS)), tag, "admin.query.export", "/admin/query/export",
					g.staffToken(e, s), g.keyAt(s), s+300, loc, off+uint64(i)*uint64(n/4)*21, n/4)
			}
		})
		return
	}
}

// slowInsider: a data engineer exports a few hundred extra customers
// every evening from home, for weeks, with the export their peers use.
//
// Variants: the first day, how many customers an evening (100–600) in
// how many requests, every evening or weekdays only, and where from (home
// in the evening, a phone, the VPN, or the office in working hours).
func (g *gen) slowInsider() {
	sc := g.sc[scSlow]
	des := g.dataEngineers()
	if len(des) == 0 {
		return
	}
	e := des[int(g.vdraw(scSlow, 1)%uint64(max(len(des)-1, 1)))]
	if !g.o.Variants {
		e = des[0]
	}
	g.scenarioEntity(scSlow, event.EntityPrincipal, e.id)
	first := int(vrange(g, scSlow, 2, 2, 1, 5))
	perDay := int(vrange(g, scSlow, 3, 300, 100, 600))
	reqs := int(vrange(g, scSlow, 4, 3, 1, 6))
	weekdays := vpick(g, scSlow, 5, false, false, true)
	where := vpick(g, scSlow, 6, "home", "home", "mobile-domestic", "vpn", "office")
	walk := vpick(g, scSlow, 7, true, true, false) // walk the table, or take query-like segments as peers do
	var note variantNote
	note.add("from", where)
	note.int("per_day", int64(perDay))
	note.int("requests", int64(reqs))
	note.add("days", map[bool]string{false: "every", true: "weekdays"}[weekdays])
	note.int("first_day", int64(first))
	note.add("ids", map[bool]string{true: "walk", false: "segments"}[walk])
	g.setVariant(scSlow, note)
	off := g.h(0xde55) % g.C
	total := 0
	d0 := kday(g.dayAt(first))
	if g.o.Days == 1 {
		d0 = kday(g.startMS)
	}
	for d := d0; kdayStart(d) < g.endMS; d++ {
		if weekdays && (weekday(d) == 0 || weekday(d) == 6) {
			continue
		}
		var s int64
		var loc src
		var tok uint64
		login := true
		switch where {
		case "office":
			st, end, ok := g.shiftOf(e, d)
			if !ok {
				continue
			}
			s, loc, tok, login = st+4*hourMS+int64(g.h(0xde56, uint64(d))%uint64(2*hourMS)), g.shiftLoc(e, d), g.staffToken(e, st), false
			if s+hourMS > end {
				continue
			}
		case "vpn":
			s, loc = kdayStart(d)+20*hourMS+int64(g.h(0xde56, uint64(d))%uint64(2*hourMS)), vpnNet.ip(g.h(0xde57, uint64(d)))
		case "mobile-domestic":
			s, loc = kdayStart(d)+20*hourMS+int64(g.h(0xde56, uint64(d))%uint64(2*hourMS)), addr(netMobileDomestic, g.h(0xde57, uint64(d)), src{})
		default:
			s, loc = kdayStart(d)+20*hourMS+int64(g.h(0xde56, uint64(d))%uint64(2*hourMS)), e.home
		}
		if s < g.startMS || s+hourMS >= g.endMS {
			continue
		}
		if where != "vpn" && where != "office" {
			g.scenarioEntity(scSlow, event.EntitySource, loc.String())
		}
		g.atX(partSlow, s, func() {
			tag := int16(1 + scSlow)
			tk, iat := tok, int64(0)
			if login {
				tk = g.staffLogin(e, s, loc, tag, 12*hourMS)
				iat = s + 300
			} else {
				st, _, _ := g.shiftOf(e, d)
				iat = st + 300
			}
			t := s + 300
			for i := range reqs {
				t += 4*minMS + g.rng.Int64N(25*minMS)
				n := perDay / reqs
				if i == reqs-1 {
					n = perDay - n*(reqs-1)
				}
				if walk {
					g.export(e, t, tag, "admin.query.export", "/admin/query/export", tk, g.keyAt(iat), iat, loc, off+uint64(total), n)
				} else { // disjoint segments: each day's lie beyond the last
					g.querySegment(e, t, tag, "admin.query.export", "/admin/query/export", tk, g.keyAt(iat), iat, loc, off+uint64(total)*21, n)
				}
				total += n
			}
			sc.RecordsTouched = int(min(uint64(total), g.C))
		})
	}
}

// ---- customer tokens ----

// tokenHijack: a customer's minted token (taken by an infostealer or a
// phishing proxy) is replayed hours later from another network while it
// is still valid: profile, addresses, orders, and a new shipping address.
//
// Variants: how many victims (1–12), the token's lifetime (2 h – 7 d),
// how long after the mint (20 min up to the lifetime), whether the victim
// is still using it at the same time, the client (the victim's app
// string, or a script) and the network (hosting abroad or in Korea,
// residential abroad, a domestic or mobile proxy).
func (g *gen) tokenHijack() {
	sc := g.sc[scHijack]
	victims := int(vrange(g, scHijack, 1, 3, 1, 12))
	life := vpick(g, scHijack, 2, 12*hourMS, 2*hourMS, 12*hourMS, 24*hourMS, 7*dayMS)
	delayMax := vrange(g, scHijack, 3, 4*60, 20, max(life/minMS-10, 21))
	concurrent := vpick(g, scHijack, 4, false, false, true)
	script := vpick(g, scHijack, 5, false, false, true)
	net := vpick(g, scHijack, 6, netHostingAbroad, netHostingAbroad, netHostingDomestic, netResidentialAbroad, netDomesticProxy, netMobileDomestic)
	var note variantNote
	note.add("network", net.String())
	note.int("victims", int64(victims))
	note.dur("token_life", life)
	note.dur("replay_up_to", delayMax*minMS)
	note.add("concurrent", strconv.FormatBool(concurrent))
	note.add("client", map[bool]string{false: "victims-app", true: "script"}[script])
	g.setVariant(scHijack, note)
	span := max(int64(g.o.Days-1), 1)
	for j := range victims {
		c := g.customer(g.h(0x41ac, uint64(j)) % g.C)
		g.scenarioEntity(scHijack, event.EntityPrincipal, "m:"+itoa(c.n))
		day := (1 + int64(j)*3 + int64(g.vdraw(scHijack, 20+uint64(j))%3)) % span
		if g.o.Days > 1 {
			day = max(day, 1)
		}
		m := g.startMS + day*dayMS + int64(g.h(0x41ad, uint64(j))%uint64(14*hourMS))
		delay := (20 + int64(g.h(0x41ae, uint64(j))%uint64(max(delayMax-19, 1)))) * minMS
		if !g.o.Variants {
			delay = (3*60 + int64(g.h(0x41ae, uint64(j))%60)) * minMS
		}
		if m+delay+30*minMS >= g.endMS {
			m = max(g.endMS-delay-time.Hour.Milliseconds(), g.startMS)
			if m+delay+30*minMS >= g.endMS {
				delay = (g.endMS - m) / 2
			}
		}
		loc := addr(net, g.h(0x41af, uint64(j)), src{})
		g.scenarioEntity(scHijack, event.EntitySource, loc.String())
		tok := g.h(0x41b0, uint64(j))
		g.scenarioEntity(scHijack, event.EntityToken, "tk-"+string(appendHex(nil, tok)))
		g.atX(partHijack, m, func() {
			// The victim's own session: a login, the token, a few reads.
			home := g.customerSource(&c, m)
			u := &customerUAs[c.ua]
			g.login(c.n, home, u.frag, m, "success", 0)
			kid := g.keyAt(m)
			iat := m + 400
			g.tokenIssued("m:", c.n, "", tok, kid, iat, iat+life, home, 0)
			t := iat
			for range 2 + g.rng.IntN(3) {
				t += 2*secMS + g.rng.Int64N(40*secMS)
				g.custRead(&c, uint32(g.rng.IntN(3)), t, tok, kid, iat, home, u.frag, 0)
			}
			// The replay.
			ua := u.frag
			if script {
				ua = attackerUAs[0]
			}
			tag := int16(1 + scHijack)
			r := iat + delay
			for i, a := range []uint32{0, 1, 2, 1, 3} {
				r += 3*secMS + g.rng.Int64N(50*secMS)
				g.custRead(&c, a, r, tok, kid, iat, loc, ua, tag)
				if concurrent && i%2 == 0 { // the victim, still in the app at home
					g.custRead(&c, 2, r+g.rng.Int64N(20*secMS), tok, kid, iat, home, u.frag, 0)
				}
			}
			sc.RecordsTouched += 1 + c.nAddr + min(c.nOrd, 10)
		})
	}
}

// tokenRoaming: customers whose token moves with them inside one carrier:
// a traveller on a foreign mobile network and commuters on a Korean
// one, the same token used over hours from new addresses of the same AS
// and country (hard benign "token-roams-within-carrier").
func (g *gen) tokenRoaming() {
	tag := g.addBenign("token-roams-within-carrier")
	for j := range 6 {
		c := g.customer(g.h(0x70a, uint64(j)) % g.C)
		g.benignEntity(tag, event.EntityPrincipal, "m:"+itoa(c.n))
		n := mobileNets[c.carrier%3]
		if j%2 == 0 {
			n = travelNets[j/2%len(travelNets)]
		}
		m := g.startMS + int64(g.h(0x70b, uint64(j))%uint64(max(g.o.Days, 1)))*dayMS + int64(g.h(0x70c, uint64(j))%uint64(10*hourMS))
		if m+10*hourMS >= g.endMS {
			m = max(g.endMS-11*hourMS, g.startMS)
		}
		tok := g.h(0x70d, uint64(j))
		g.atX(partRoaming, m, func() {
			u := &customerUAs[c.ua]
			kid := g.keyAt(m)
			s := n.ip(g.rng.Uint64())
			g.tokenIssued("m:", c.n, "", tok, kid, m, m+12*hourMS, s, tag)
			for _, after := range []int64{1, 40, 130, 300, 560} {
				t := m + after*minMS + g.rng.Int64N(5*minMS)
				if t >= g.endMS {
					break
				}
				s = n.ip(g.rng.Uint64()) // a new address of the same carrier
				g.custRead(&c, uint32(g.rng.IntN(3)), t, tok, kid, m, s, u.frag, tag)
			}
		})
	}
}
