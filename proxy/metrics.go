package proxy

import (
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/oss-gateway/gateway/cache"
)

// Metrics are the gateway's Prometheus series, exactly as the README names
// them. They live in one struct registered on a caller-supplied registry so
// that tests and config reloads never fight over a global one.
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
	CertExpiry       *prometheus.GaugeVec
	ConfigReloads    *prometheus.CounterVec
	// ConfigLastReloadOK is 1 while the last reload attempt succeeded (or
	// none was made), 0 after one was refused: an alert can fire on it
	// without waiting for a rate to move.
	ConfigLastReloadOK *prometheus.GaugeVec
	// ConfigLastReloadTime is when the running config was loaded.
	ConfigLastReloadTime *prometheus.GaugeVec
	// TLSHandshakeErrors counts failed client handshakes by a bounded
	// reason (scanners, old clients, unknown names).
	TLSHandshakeErrors *prometheus.CounterVec
	BuildInfo          *prometheus.GaugeVec
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

// NewMetrics creates the gateway's series and registers them, with the Go and
// process collectors, on reg. version is the gateway's release string.
func NewMetrics(reg prometheus.Registerer, version string) *Metrics {
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
		CertExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_tls_certificate_expiry_timestamp_seconds", Help: "Expiry time of the certificate served for each domain.",
		}, []string{"domain"}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_config_reloads_total", Help: "Config reloads, by result.",
		}, []string{"result"}),
		ConfigLastReloadOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_config_last_reload_successful", Help: "1 when the last config reload succeeded (or none was tried), 0 when it was refused.",
		}, nil),
		ConfigLastReloadTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_config_last_reload_success_timestamp_seconds", Help: "When the running config was loaded, in Unix seconds.",
		}, nil),
		TLSHandshakeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_tls_handshake_errors_total", Help: "Client TLS handshakes that failed, by reason.",
		}, []string{"reason"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_build_info", Help: "Always 1; labels carry the build.",
		}, []string{"version", "revision", "goversion"}),
		CacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_cache_requests_total", Help: "Requests of cache-enabled sites answered through the object cache, by result (hit, miss, revalidated, stale).",
		}, []string{"site", "result"}),
	}
	m.CacheBytes, m.CacheEvictions = cache.NewMetricVecs()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(m.Requests, m.RequestDuration, m.ResponseBytes, m.RequestBytes, m.Inflight,
		m.Upstream, m.UpstreamDuration, m.UpstreamRetries, m.Denied, m.CertExpiry, m.ConfigReloads,
		m.ConfigLastReloadOK, m.ConfigLastReloadTime, m.TLSHandshakeErrors, m.BuildInfo,
		m.CacheRequests, m.CacheBytes, m.CacheEvictions)
	m.BuildInfo.WithLabelValues(version, Revision(), runtime.Version()).Set(1)
	// Both results exist from the start, so rate() and increase() see the
	// first failure, and the loaded config counts as a good reload.
	m.ConfigReloads.WithLabelValues("success")
	m.ConfigReloads.WithLabelValues("error")
	m.ReloadResult(nil, time.Now())
	for _, r := range TLSHandshakeReasons() {
		m.TLSHandshakeErrors.WithLabelValues(r)
	}
	return m
}

// TLSHandshakeReasons is the bounded label set of
// gateway_tls_handshake_errors_total: every series exists from the start.
func TLSHandshakeReasons() []string {
	return []string{"eof", "timeout", "unknown_server_name", "protocol_version", "no_shared_cipher", "not_tls", "client_rejected_certificate", "other"}
}

// ReloadResult records a config load: err nil for the config now running.
func (m *Metrics) ReloadResult(err error, now time.Time) {
	if err != nil {
		m.ConfigLastReloadOK.WithLabelValues().Set(0)
		return
	}
	m.ConfigLastReloadOK.WithLabelValues().Set(1)
	m.ConfigLastReloadTime.WithLabelValues().Set(float64(now.UnixNano()) / 1e9)
}

// Revision is the VCS revision the binary was built from ("unknown" when
// the build recorded none), with "-dirty" when the tree had changes.
func Revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
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
