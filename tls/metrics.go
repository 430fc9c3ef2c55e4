package tls

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the certificate series. The Manager keeps them current
// because it is what knows which certificate each domain is served with.
type Metrics struct {
	// CertExpiry is gateway_tls_certificate_expiry_timestamp_seconds{domain}:
	// an alert fires on it before a renewal that keeps failing runs out.
	CertExpiry *prometheus.GaugeVec
}

// NewMetrics creates the certificate series and registers them on reg, the
// registry the gateway's admin listener serves.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		CertExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_tls_certificate_expiry_timestamp_seconds", Help: "Expiry time of the certificate served for each domain.",
		}, []string{"domain"}),
	}
	reg.MustRegister(m.CertExpiry)
	return m
}
