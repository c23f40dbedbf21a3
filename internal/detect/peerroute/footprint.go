package peerroute

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per identity of a role (its own routes), and per route of a role.
func (s *shard) Footprint() (entities int, bytes int64) {
	for _, r := range s.roles {
		entities += len(r.members) + len(r.routes)
	}
	return entities, memsize.Of(s.roles)
}
