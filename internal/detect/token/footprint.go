package token

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per token in the mint
// index, use awaiting its mint and token flagged. The two heaps hold
// pointers pending owns: only their arrays count.
func (s *shard) Footprint() (entities int, bytes int64) {
	entities = len(s.mints.m) + len(s.pending) + len(s.flagged)
	bytes = memsize.Of(s.mints.m, s.pending, s.flagged, s.keyIdx, s.keys, s.refusedBy, s.refusedFlags) +
		memsize.Skipping((*pendingUse)(nil)).Of(s.queue.uses, s.deadlines.uses)
	return entities, bytes
}
