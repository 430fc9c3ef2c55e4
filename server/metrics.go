package server

import (
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/oss-gateway/gateway/proxy"
	gwtls "github.com/oss-gateway/gateway/tls"
)

// Metrics are every series a gateway process exports, on one registry: the
// handler's and the certificates' (defined by the packages that set them)
// and the process's own, which Run sets: config reloads, client TLS
// handshake failures and the build.
type Metrics struct {
	handler *proxy.Metrics
	certs   *gwtls.Metrics
	// reloads is gateway_config_reloads_total{result}.
	reloads *prometheus.CounterVec
	// lastReloadOK is 1 while the last reload attempt succeeded (or
	// none was made), 0 after one was refused: an alert can fire on it
	// without waiting for a rate to move.
	lastReloadOK *prometheus.GaugeVec
	// lastReloadTime is when the running config was loaded.
	lastReloadTime *prometheus.GaugeVec
	// handshakeErrors counts failed client handshakes by a bounded
	// reason (scanners, old clients, unknown names).
	handshakeErrors *prometheus.CounterVec
	// buildInfo is gateway_build_info: which release and revision run.
	buildInfo *prometheus.GaugeVec
}

// NewMetrics creates the gateway's series and registers them, with the Go
// and process collectors, on reg. version is the gateway's release string.
// The deploy tests read the metric contract from the registry it fills.
func NewMetrics(reg prometheus.Registerer, version string) *Metrics {
	m := &Metrics{
		handler: proxy.NewMetrics(reg),
		certs:   gwtls.NewMetrics(reg),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_config_reloads_total", Help: "Config reloads, by result.",
		}, []string{"result"}),
		lastReloadOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_config_last_reload_successful", Help: "1 when the last config reload succeeded (or none was tried), 0 when it was refused.",
		}, nil),
		lastReloadTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_config_last_reload_success_timestamp_seconds", Help: "When the running config was loaded, in Unix seconds.",
		}, nil),
		handshakeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_tls_handshake_errors_total", Help: "Client TLS handshakes that failed, by reason.",
		}, []string{"reason"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_build_info", Help: "Always 1; labels carry the build.",
		}, []string{"version", "revision", "goversion"}),
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(m.reloads, m.lastReloadOK, m.lastReloadTime, m.handshakeErrors, m.buildInfo)
	m.buildInfo.WithLabelValues(version, Revision(), runtime.Version()).Set(1)
	// Both results exist from the start, so rate() and increase() see the
	// first failure, and the loaded config counts as a good reload.
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("error")
	m.loaded(nil, time.Now())
	for _, r := range handshakeReasons() {
		m.handshakeErrors.WithLabelValues(r)
	}
	return m
}

// handshakeReasons is the bounded label set of
// gateway_tls_handshake_errors_total: every series exists from the start.
func handshakeReasons() []string {
	return []string{"eof", "timeout", "unknown_server_name", "protocol_version", "no_shared_cipher", "not_tls", "client_rejected_certificate", "other"}
}

// reloaded counts a reload attempt and records its result: err nil for
// the config now running.
func (m *Metrics) reloaded(err error, now time.Time) {
	result := "success"
	if err != nil {
		result = "error"
	}
	m.reloads.WithLabelValues(result).Inc()
	m.loaded(err, now)
}

// loaded records a config load: err nil for the config now running.
func (m *Metrics) loaded(err error, now time.Time) {
	if err != nil {
		m.lastReloadOK.WithLabelValues().Set(0)
		return
	}
	m.lastReloadOK.WithLabelValues().Set(1)
	m.lastReloadTime.WithLabelValues().Set(float64(now.UnixNano()) / 1e9)
}

// Revision is the VCS revision the binary was built from ("unknown" when
// the build recorded none), with "-dirty" when the tree had changes. It is
// gateway_build_info's revision, and what `gateway version` prints when
// the build passed no commit.
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
