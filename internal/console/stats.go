package console

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Stats is the pipeline's live state, read from its metrics.
type Stats struct {
	// EventRate is events processed per second over the last few seconds
	// (NaN until two samples exist).
	EventRate float64 `json:"event_rate"`
	// LagSeconds is the processing lag of the last batch.
	LagSeconds float64 `json:"lag_seconds"`
	Processed  float64 `json:"processed"`
	QueueDepth float64 `json:"queue_depth"`
	// Watermark is the engine's event-time watermark (zero before events).
	Watermark time.Time `json:"watermark,omitzero"`
	// SpoolLagSeconds is how far the consumer is behind the spool.
	SpoolLagSeconds float64 `json:"spool_lag_seconds"`
	// Findings counts findings per detector since start; every detector
	// the engine runs is listed (with 0 when silent).
	Findings map[string]float64 `json:"findings"`
	// Known is false when no metrics are available.
	Known bool `json:"known"`
}

type sample struct {
	at time.Time
	v  float64
}

// sampler turns the processed-events counter into a rate. It samples on
// demand (every page and every live stream's tick), keeping a minute.
type sampler struct {
	g   prometheus.Gatherer
	now func() time.Time

	mu      sync.Mutex
	samples []sample
}

// rateWindow is how far back the rate looks.
const rateWindow = 10 * time.Second

func (s *sampler) read() Stats {
	st := Stats{Findings: map[string]float64{}}
	if s.g == nil {
		return st
	}
	mfs, err := s.g.Gather()
	if err != nil && len(mfs) == 0 {
		return st
	}
	st.Known = true
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := metricValue(m)
			switch mf.GetName() {
			case "haechi_events_processed_total":
				st.Processed = v
			case "haechi_processing_lag_seconds":
				st.LagSeconds = v
			case "haechi_queue_depth_events":
				st.QueueDepth = v
			case "haechi_spool_lag_seconds":
				st.SpoolLagSeconds = v
			case "haechi_watermark_timestamp_seconds":
				if v > 0 {
					st.Watermark = time.Unix(0, int64(v*1e9)).UTC()
				}
			case "haechi_findings_total":
				for _, l := range m.GetLabel() {
					if l.GetName() == "detector" {
						st.Findings[l.GetValue()] += v
					}
				}
			}
		}
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, sample{now, st.Processed})
	// Keep a minute of samples, at least two.
	i := 0
	for i < len(s.samples)-2 && now.Sub(s.samples[i].at) > time.Minute {
		i++
	}
	s.samples = s.samples[i:]
	// The oldest sample within the window (or the newest before it).
	base := s.samples[0]
	for _, sm := range s.samples[:len(s.samples)-1] {
		if now.Sub(sm.at) <= rateWindow {
			break
		}
		base = sm
	}
	if dt := now.Sub(base.at).Seconds(); dt >= 0.5 {
		st.EventRate = (st.Processed - base.v) / dt
	} else {
		st.EventRate = -1 // not yet known
	}
	return st
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}
