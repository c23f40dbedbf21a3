package binding

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per live token.
func (s *shard) Footprint() (entities int, bytes int64) {
	return len(s.tokens), memsize.Of(s.tokens, s.hostingVerdict)
}
