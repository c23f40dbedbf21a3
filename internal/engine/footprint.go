package engine

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Footprint is one detector's tracked entities and estimated state bytes,
// summed over the shards, as last reported (see Footprinter).
type Footprint struct {
	Detector string
	Entities int64
	Bytes    int64
}

// PerEntity returns Bytes / Entities (0 without entities).
func (f Footprint) PerEntity() float64 {
	if f.Entities == 0 {
		return 0
	}
	return float64(f.Bytes) / float64(f.Entities)
}

// Footprint sampling: at least minFootprintEvery apart on a busy shard
// (idleFootprintEvery on one that has drained its queue, so a quiet
// stream's gauges stay fresh), and at least footprintCostFactor times the
// last sampling's own duration, so sampling never costs a shard more than
// 1/footprintCostFactor of its time.
const (
	minFootprintEvery   = 5 * time.Second
	idleFootprintEvery  = time.Second
	footprintCostFactor = 50
)

// footprints holds the last sample of every shard's detectors.
type footprints struct {
	reported []atomic.Bool    // by detector: some shard implements Footprinter
	cells    [][]atomic.Int64 // [shard][2*detector + 0|1]: entities, bytes
}

func newFootprints(dets, shards int) *footprints {
	f := &footprints{reported: make([]atomic.Bool, dets), cells: make([][]atomic.Int64, shards)}
	for i := range f.cells {
		f.cells[i] = make([]atomic.Int64, 2*dets)
	}
	return f
}

// shardSampler is a shard goroutine's footprint sampling state.
type shardSampler struct {
	e     *Engine
	shard int
	fps   []Footprinter // by detector, nil when not one
	last  time.Time     // wall time of the last sample
	took  time.Duration // how long it took
}

func (e *Engine) newShardSampler(shard int, states []Shard) *shardSampler {
	s := &shardSampler{e: e, shard: shard, fps: make([]Footprinter, len(states))}
	for d, st := range states {
		if fp, ok := st.(Footprinter); ok {
			s.fps[d] = fp
			e.fp.reported[d].Store(true)
		}
	}
	return s
}

// maybe samples when due (or always, when force); idle says the shard
// has nothing queued.
func (s *shardSampler) maybe(force, idle bool) {
	now := s.e.opts.Clock.Now()
	every := minFootprintEvery
	if idle {
		every = idleFootprintEvery
	}
	if !force && !s.last.IsZero() && now.Sub(s.last) < max(every, footprintCostFactor*s.took) {
		return
	}
	cells := s.e.fp.cells[s.shard]
	for d, fp := range s.fps {
		if fp == nil {
			continue
		}
		n, b := fp.Footprint()
		cells[2*d].Store(int64(n))
		cells[2*d+1].Store(b)
	}
	s.last, s.took = now, s.e.opts.Clock.Now().Sub(now)
}

// Footprints returns every detector's footprint that implements
// Footprinter on its shards, in detector order, as last sampled: every few
// seconds while events flow, and once more before the input's end is
// announced to the shards. Zero before the shards have started.
func (e *Engine) Footprints() []Footprint {
	var out []Footprint
	for d, det := range e.dets {
		if !e.fp.reported[d].Load() {
			continue
		}
		f := Footprint{Detector: det.Name()}
		for _, cells := range e.fp.cells {
			f.Entities += cells[2*d].Load()
			f.Bytes += cells[2*d+1].Load()
		}
		out = append(out, f)
	}
	return out
}

// footprintCollector exports Footprints as haechi_detector_entities and
// haechi_detector_bytes.
type footprintCollector struct {
	e               *Engine
	entities, bytes *prometheus.Desc
}

func newFootprintCollector(e *Engine) *footprintCollector {
	return &footprintCollector{e: e,
		entities: prometheus.NewDesc("haechi_detector_entities",
			"Entities a detector tracks state for (principals, tokens, sources, …), over every shard, as last sampled.", []string{"detector"}, nil),
		bytes: prometheus.NewDesc("haechi_detector_bytes",
			"Estimated heap bytes of a detector's state over every shard, as last sampled (an estimate: see internal/memsize).", []string{"detector"}, nil),
	}
}

func (c *footprintCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entities
	ch <- c.bytes
}

func (c *footprintCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.e.Footprints() {
		ch <- prometheus.MustNewConstMetric(c.entities, prometheus.GaugeValue, float64(f.Entities), f.Detector)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(f.Bytes), f.Detector)
	}
}
