package sim

// The customer auth service runs authReplicas replicas behind a load
// balancer, each shipping its own log (auth.token) to the pipeline. Now and
// then one replica's shipper stalls — a full buffer, a broker failover, a
// restarted agent — for a minute or three; what that replica minted in the
// meantime is shipped when the stall ends, in order, with its original
// timestamps. Meanwhile the other replicas' mints keep the issuer's stream
// moving and the tokens are already in use at the gateway: the mint of a
// genuine token reaches the stream after the token's first use, often by
// more than any sensible mint skew. That is ordinary operations, not an
// attack: the sessions whose mint was held back (their mint and their
// reads) are labelled hard benign ("auth-log-shipper-stall").

const (
	authReplicas = 4
	// stallsPerWeek is the expected number of stalls a week, over all
	// replicas (a few a fortnight).
	stallsPerWeek = 2.0
	stallMin      = 40 * secMS
	stallSpread   = 140 * secMS // stalls last stallMin … stallMin+stallSpread
)

// stall is one replica's shipper stalling over [from, to).
type stall struct {
	replica  uint64
	from, to int64
}

// setupShipperStalls draws the period's stalls from the seed (a hash per
// Seoul day, so the rest of the stream is untouched) and registers the
// hard-benign entry their sessions are labelled with.
func (g *gen) setupShipperStalls() {
	g.hbStall = g.addBenign("auth-log-shipper-stall")
	for d := kday(g.startMS); kdayStart(d) < g.endMS; d++ {
		h := g.h(0x57a11, uint64(d))
		if float64(h%1_000_000) >= stallsPerWeek/7*1_000_000 {
			continue
		}
		from := kdayStart(d) + int64(h>>20%uint64(dayMS))
		if from < g.startMS || from >= g.endMS {
			continue
		}
		g.stalls = append(g.stalls, stall{
			replica: h >> 56 % authReplicas,
			from:    from,
			to:      from + stallMin + int64(g.h(0x57a12, uint64(d))%uint64(stallSpread)),
		})
	}
}

// mintShipped returns when the mint of token tok, minted at t, reaches the
// stream, and whether its replica's shipper held it back.
func (g *gen) mintShipped(tok uint64, t int64) (int64, bool) {
	replica := mix(tok, 0x4e91) % authReplicas
	for _, s := range g.stalls {
		if s.replica == replica && t >= s.from && t < s.to {
			// Shipped when the stall ends, within a couple of seconds.
			return s.to + int64(mix(tok, 0x4e92)%uint64(2*secMS)), true
		}
	}
	return t, false
}
