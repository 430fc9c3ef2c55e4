package proxy

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oss-gateway/gateway/cache"
)

// Metrics are the handler's Prometheus series (requests, upstream calls,
// denials, the object cache), exactly as the README names them. They live
// in one struct registered on a caller-supplied registry so that tests and
// config reloads never fight over a global one.
type Metrics struct {
	Requests         *prometheus.CounterVec
	RequestDuration  *prometheus.HistogramVec
	ResponseBytes    *prometheus.CounterVec
	RequestBytes     *prometheus.CounterVec
	Inflight         *prometheus.GaugeVec
	Upstream         *prometheus.CounterVec
	UpstreamDuration *prometheus.HistogramVec
	UpstreamRetries  *prometheus.CounterVec
	Denied           *prometheus.CounterVec
	// CacheRequests is gateway_cache_requests_total{site,result}: GETs and
	// HEADs of cache-enabled sites by hit, miss, revalidated or stale.
	CacheRequests *prometheus.CounterVec
	// CacheBytes and CacheEvictions are the object cache's
	// gateway_cache_bytes{tier} and gateway_cache_evictions_total{tier}.
	CacheBytes     *prometheus.GaugeVec
	CacheEvictions *prometheus.CounterVec
}

// durationBuckets span a 1 KiB image served from a warm connection (~1 ms)
// to a multi-GiB download (minutes).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 180, 600}

// NewMetrics creates the handler's series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_requests_total", Help: "Client requests answered, by site, method and status code.",
		}, []string{"site", "method", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_request_duration_seconds", Help: "Time from request to the last byte of the response.",
			Buckets: durationBuckets,
		}, []string{"site", "method"}),
		ResponseBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_response_bytes_total", Help: "Response body bytes sent to clients.",
		}, []string{"site"}),
		RequestBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_request_bytes_total", Help: "Request body bytes received from clients.",
		}, []string{"site"}),
		Inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_inflight_requests", Help: "Client requests being served now.",
		}, []string{"site"}),
		Upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_upstream_requests_total", Help: "Requests sent to OSS, by endpoint (primary or fallback) and status code (0 = no response).",
		}, []string{"site", "endpoint", "code"}),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_upstream_duration_seconds", Help: "Time from sending a request to OSS to its response headers.",
			Buckets: durationBuckets,
		}, []string{"site", "endpoint"}),
		UpstreamRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_upstream_retries_total", Help: "Retries of requests to OSS, by reason.",
		}, []string{"site", "reason"}),
		Denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_denied_total", Help: "Requests refused by site policy, by reason.",
		}, []string{"site", "reason"}),
		CacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_cache_requests_total", Help: "Requests of cache-enabled sites answered through the object cache, by result (hit, miss, revalidated, stale).",
		}, []string{"site", "result"}),
	}
	m.CacheBytes, m.CacheEvictions = cache.NewMetricVecs()
	reg.MustRegister(m.Requests, m.RequestDuration, m.ResponseBytes, m.RequestBytes, m.Inflight,
		m.Upstream, m.UpstreamDuration, m.UpstreamRetries, m.Denied,
		m.CacheRequests, m.CacheBytes, m.CacheEvictions)
	return m
}

// methodLabel bounds the method label: a client can send any token as a
// method, and a label must never take raw client input.
func methodLabel(m string) string {
	switch m {
	case "GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH":
		return m
	}
	return "other"
}

// codeLabel turns a status into its label without allocating for the codes a
// gateway answers every second.
func codeLabel(code int) string {
	switch code {
	case 0:
		return "0"
	case 200:
		return "200"
	case 204:
		return "204"
	case 206:
		return "206"
	case 304:
		return "304"
	case 400:
		return "400"
	case 403:
		return "403"
	case 404:
		return "404"
	case 416:
		return "416"
	case 421:
		return "421"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}
