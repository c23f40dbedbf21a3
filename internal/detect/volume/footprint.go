package volume

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per identity of a role (its window and its own peak).
func (s *shard) Footprint() (entities int, bytes int64) {
	for _, r := range s.roles {
		entities += max(len(r.ids), len(r.own))
	}
	return entities, memsize.Of(s.roles)
}
