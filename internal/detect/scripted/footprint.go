package scripted

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per rostered staff identity and per entity reported recently.
func (s *shard) Footprint() (entities int, bytes int64) {
	return len(s.staff) + len(s.last), memsize.Of(s.staff, s.last)
}
