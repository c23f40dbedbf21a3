package sim

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// Variants: with Options.Variants each scenario draws its parameters from
// the seed (a hash per scenario and parameter, so the draw does not depend
// on what else is generated) within what the scenario means. Without it
// every parameter keeps its canonical value, the scenario as documented.

// netKind is the kind of network an attacker's requests come from.
type netKind uint8

const (
	netHostingAbroad     netKind = iota // VPS and cloud networks abroad
	netHostingDomestic                  // Korean hosting (AWS Seoul for most, KINX where the provider matters)
	netResidentialAbroad                // home routers and phones abroad (a botnet, a residential proxy)
	netMobileDomestic                   // Korean carrier NAT (a mobile proxy, a tethered phone)
	netDomesticProxy                    // Korean home broadband addresses sold by residential-proxy services
	netOwn                              // the identity's own usual network (home, VPN, partner egress)
)

var netKindNames = [...]string{"hosting-abroad", "hosting-domestic", "residential-abroad", "mobile-domestic", "domestic-proxy", "own"}

func (k netKind) String() string { return netKindNames[k] }

// Networks only the variants use.
var (
	// AWS Seoul addresses outside the company's own (an attacker's EC2).
	awsSeoulOther = mkNet("43.200.0.0/16", "KR", 16509, "AMAZON-02")
	// A Korean hosting provider that is not AWS.
	kinxKR = mkNet("110.45.128.0/17", "KR", 9286, "KINX")
	// AWS in another region (us-east-1): inside the provider, not the workload's network.
	awsUSEast = mkNet("44.192.0.0/11", "US", 14618, "AMAZON-AES")
)

// addr returns an address of network kind k chosen by x. own is the
// identity's own address (used for netOwn).
func addr(k netKind, x uint64, own src) src {
	switch k {
	case netHostingAbroad:
		return hostingNets[x%uint64(len(hostingNets))].ip(x >> 8)
	case netHostingDomestic:
		return awsSeoulOther.ip(x >> 8)
	case netResidentialAbroad:
		return botNets[x%uint64(len(botNets))].ip(x >> 8)
	case netMobileDomestic:
		return mobileNets[x%3].ip(x >> 8)
	case netDomesticProxy:
		return bbNets[x%4].ip(x >> 8)
	}
	return own
}

// vdraw returns the seed's draw k for scenario sc (a hash: independent of
// the rest of the stream).
func (g *gen) vdraw(sc int, k uint64) uint64 { return g.h(0x7a41a47, uint64(sc), k) }

// vpick returns canonical without variants, else one of choices drawn by
// (sc, k).
func vpick[T any](g *gen, sc int, k uint64, canonical T, choices ...T) T {
	if !g.o.Variants || len(choices) == 0 {
		return canonical
	}
	return choices[g.vdraw(sc, k)%uint64(len(choices))]
}

// vrange returns canonical without variants, else a value in [lo, hi]
// drawn by (sc, k).
func vrange(g *gen, sc int, k uint64, canonical, lo, hi int64) int64 {
	if !g.o.Variants || hi <= lo {
		return canonical
	}
	return lo + int64(g.vdraw(sc, k)%uint64(hi-lo+1))
}

// variantNote collects a scenario's drawn parameters for its truth entry.
type variantNote []string

func (n *variantNote) add(k, v string) { *n = append(*n, k+"="+v) }

func (n *variantNote) dur(k string, ms int64) { n.add(k, fmtDur(ms)) }

func (n *variantNote) int(k string, v int64) { n.add(k, strconv.FormatInt(v, 10)) }

func (n variantNote) String() string { return strings.Join(n, " ") }

// setVariant records the drawn variant of scenario i (nothing without
// variants: the canonical form has no note).
func (g *gen) setVariant(i int, n variantNote) {
	if g.o.Variants && g.sc[i] != nil {
		g.sc[i].Variant = n.String()
	}
}

func fmtDur(ms int64) string {
	if ms > 10*minMS { // whole minutes are enough
		ms = (ms + minMS/2) / minMS * minMS
	}
	switch {
	case ms%dayMS == 0:
		return strconv.FormatInt(ms/dayMS, 10) + "d"
	case ms%hourMS == 0:
		return strconv.FormatInt(ms/hourMS, 10) + "h"
	case ms%minMS == 0:
		return strconv.FormatInt(ms/minMS, 10) + "m"
	case ms%secMS == 0:
		return strconv.FormatInt(ms/secMS, 10) + "s"
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// seoulHour is the Asia/Seoul hour of day of t.
func seoulHour(t int64) int64 { return floorDiv(t+kstOff, hourMS) % 24 }

// inHours reports whether t lies in the Seoul hours [lo, hi) (wrapping
// past midnight when lo > hi); lo == hi is all day.
func inHours(t int64, lo, hi int64) bool {
	if lo == hi {
		return true
	}
	h := seoulHour(t)
	if lo < hi {
		return h >= lo && h < hi
	}
	return h >= lo || h < hi
}

// nextHours returns the next Seoul hour boundary at or after t where
// inHours(lo, hi) begins to hold.
func nextHours(t int64, lo int64) int64 {
	d := kday(t)
	s := kdayStart(d) + lo*hourMS
	if s < t {
		s += dayMS
	}
	return s
}

// Each part of the newer classes (a scenario, a twin, a company part
// they need) draws from its own random stream, seeded by the seed, the
// part and the time, so none of them shifts the draws of the older
// traffic or of each other: the older traffic stays event for event what
// it was without them, and enabling one scenario changes nothing else.

// Parts of the newer classes, naming their random streams.
const (
	partAdmins uint64 = 0xa0 + iota
	partMaintenance
	partWorkload
	partRoutine
	partApproved
	partRoaming
	partHijack
	partCloud
	partTakeover
	partSlow
	partRoster
)

// private runs fn with g.rng set to part's stream at t.
func (g *gen) private(part uint64, t int64, fn func()) {
	saved := g.rng
	g.rng = rand.New(rand.NewPCG(g.seed^part*0x9e3779b97f4a7c15, uint64(t)^0x2ec0dc4a11)) // #nosec G404 -- the simulator must be reproducible from its seed
	fn()
	g.rng = saved
}

// atX schedules fn at t on part's stream.
func (g *gen) atX(part uint64, t int64, fn func()) { g.at(t, func() { g.private(part, t, fn) }) }

// actorX adds an actor that runs on part's stream.
func (g *gen) actorX(part uint64, fn func(t0, t1 int64)) {
	g.actors = append(g.actors, func(t0, t1 int64) { g.private(part, t0, func() { fn(t0, t1) }) })
}
