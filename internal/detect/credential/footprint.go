package credential

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per credential.
func (s *shard) Footprint() (entities int, bytes int64) {
	return len(s.creds), memsize.Of(s.creds)
}
