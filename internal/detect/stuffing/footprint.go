package stuffing

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per cohort (network),
// account awaiting recovery, candidate login, source address of the last
// two windows and user agent counted. The queues (queue, candQ, campaigns)
// hold pointers the maps own: only their arrays count.
func (s *shard) Footprint() (entities int, bytes int64) {
	entities = len(s.cohorts) + len(s.pending) + len(s.cands) + len(s.srcNow) + len(s.srcPrev) + len(s.agentSucc)
	bytes = memsize.Of(s.cohorts, s.srcNow, s.srcPrev, s.hist, s.agentSucc) +
		memsize.Skipping((*cohort)(nil)).Of(s.pending, s.cands) +
		memsize.Skipping((*cohort)(nil), (*failure)(nil), (*cand)(nil)).Of(s.queue, s.candQ, s.campaigns)
	return entities, bytes
}
