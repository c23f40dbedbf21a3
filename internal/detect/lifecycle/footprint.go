package lifecycle

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per rostered identity.
func (s *shard) Footprint() (entities int, bytes int64) {
	return len(s.ids), memsize.Of(s.ids)
}
