package geo

import (
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/memsize"
)

var _ engine.Footprinter = (*shard)(nil)

// Footprint implements engine.Footprinter: one entity per customer, staff identity and workload.
func (s *shard) Footprint() (entities int, bytes int64) {
	return len(s.customers) + len(s.staff) + len(s.workloads), memsize.Of(s.customers, s.staff, s.workloads, s.hostingVerdict)
}
