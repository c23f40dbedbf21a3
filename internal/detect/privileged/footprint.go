package privileged

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per identity (and per role's profile).
func (s *shard) Footprint() (entities int, bytes int64) {
	return len(s.ids) + len(s.roles) + len(s.hours), memsize.Of(s.ids, s.roles, s.hours)
}
