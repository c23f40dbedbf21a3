package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	routed    prometheus.Counter
	processed prometheus.Counter
	late      prometheus.Counter
	lag       prometheus.Gauge
	findings  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, e *Engine) *metrics {
	m := &metrics{
		routed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haechi_events_routed_total",
			Help: "Events routed to the detectors' shards (queued; haechi_events_processed_total once processed).",
		}),
		processed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haechi_events_processed_total",
			Help: "Events every detector they were routed to has processed.",
		}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haechi_events_late_total",
			Help: "Events that arrived after the watermark had passed their event time (processed, marked late).",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "haechi_processing_lag_seconds",
			Help: "Wall-clock time from admission of the last processed batch to the end of its processing.",
		}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haechi_findings_total",
			Help: "Findings emitted, per detector.",
		}, []string{"detector"}),
	}
	for _, d := range e.dets {
		m.findings.WithLabelValues(d.Name())
	}
	if reg != nil {
		reg.MustRegister(m.routed, m.processed, m.late, m.lag, m.findings, newFootprintCollector(e),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "haechi_queue_depth_events",
				Help: "Events admitted but not yet processed.",
			}, func() float64 { return float64(e.QueueDepth()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "haechi_queue_capacity_events",
				Help: "Events the engine admits before ingest answers 429.",
			}, func() float64 { return float64(e.opts.QueueSize) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "haechi_watermark_timestamp_seconds",
				Help: "Event-time watermark (newest event time minus allowed lateness), unix seconds.",
			}, func() float64 {
				w := e.Watermark()
				if w.IsZero() {
					return 0
				}
				return float64(w.UnixNano()) / 1e9
			}),
		)
	}
	return m
}
