package behaviour

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per identity of a
// role. A role's open list holds identities its map owns: each identity
// (and its open window) is counted once, through the map.
func (s *shard) Footprint() (entities int, bytes int64) {
	bytes = memsize.Skipping((*ident)(nil)).Of(s.roles, s.pool)
	for _, r := range s.roles {
		entities += len(r.ids)
		for _, id := range r.ids {
			bytes += memsize.Of(id)
		}
	}
	return entities, bytes
}
