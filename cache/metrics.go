package cache

import "github.com/prometheus/client_golang/prometheus"

// NewMetricVecs creates gateway_cache_bytes{tier} and
// gateway_cache_evictions_total{tier} as the README names them, for
// Options.Bytes and Options.Evictions. They are not registered: the caller
// registers them on its own registry, next to its other series. Both tiers'
// series exist from the start, so dashboards see zeros rather than gaps.
func NewMetricVecs() (bytes *prometheus.GaugeVec, evictions *prometheus.CounterVec) {
	bytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gateway_cache_bytes", Help: "Bytes held by the object cache, by tier (memory: bodies; disk: entry files).",
	}, []string{"tier"})
	evictions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_cache_evictions_total", Help: "Object cache entries dropped to make room, by tier.",
	}, []string{"tier"})
	for _, t := range []string{"memory", "disk"} {
		bytes.WithLabelValues(t)
		evictions.WithLabelValues(t)
	}
	return bytes, evictions
}

// tierMetrics resolves the optional vecs into per-tier series; a nil vec
// gets unregistered stand-ins, so the cache never checks for nil.
func tierMetrics(b *prometheus.GaugeVec, ev *prometheus.CounterVec) (memBytes, diskBytes prometheus.Gauge, memEvict, diskEvict prometheus.Counter) {
	if b != nil {
		memBytes, diskBytes = b.WithLabelValues("memory"), b.WithLabelValues("disk")
	} else {
		memBytes, diskBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "unused"}), prometheus.NewGauge(prometheus.GaugeOpts{Name: "unused"})
	}
	if ev != nil {
		memEvict, diskEvict = ev.WithLabelValues("memory"), ev.WithLabelValues("disk")
	} else {
		memEvict, diskEvict = prometheus.NewCounter(prometheus.CounterOpts{Name: "unused"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "unused"})
	}
	return memBytes, diskBytes, memEvict, diskEvict
}
