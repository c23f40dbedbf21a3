package terminated

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per rostered
// identity. Equal descriptions in an identity's ring are one string (see
// Process), counted once.
func (s *shard) Footprint() (entities int, bytes int64) {
	bytes = memsize.Of(s.ids)
	for _, id := range s.ids {
		for i := range id.recent {
			for j := range i {
				if w := id.recent[i].what; w != "" && id.recent[j].what == w {
					bytes -= memsize.Of(w)
					break
				}
			}
		}
	}
	return len(s.ids), bytes
}
