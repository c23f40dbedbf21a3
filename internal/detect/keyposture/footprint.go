package keyposture

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per signing key and per rostered identity.
func (s *shard) Footprint() (entities int, bytes int64) {
	return len(s.keys) + len(s.ids), memsize.Of(s.keys, s.order, s.ids)
}
