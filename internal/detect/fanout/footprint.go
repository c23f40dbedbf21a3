package fanout

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per source address of a network (its window and its own peak), and per network.
func (s *shard) Footprint() (entities int, bytes int64) {
	for _, n := range s.nets {
		entities += 1 + max(len(n.addrs), len(n.own))
	}
	return entities, memsize.Of(s.nets)
}
