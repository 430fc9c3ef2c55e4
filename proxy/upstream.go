package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/oss-gateway/gateway/config"
)

// upstream is one place a site's requests can go: where to connect and which
// Host to name there. The two differ for URL endpoints and for buckets reached
// through a bound custom domain, so they are kept apart.
type upstream struct {
	scheme string // "http" or "https"
	addr   string // URL host the transport dials (and the TLS SNI)
	host   string // Host header sent to OSS
	label  string // "primary" or "fallback", for metrics
	health *upstreamHealth
}

// Addressing is where a site's requests for one endpoint go: the scheme and
// host[:port] connected to (also the TLS SNI), and the Host header sent.
// The two differ for URL endpoints and for buckets reached through a bound
// custom domain. `gateway check` probes exactly what the proxy uses.
type Addressing struct {
	Scheme string // "http" or "https"
	Addr   string
	Host   string
}

// ResolveEndpoint applies the upstream addressing rules (README, Configuration) to a site's
// endpoint keyword or URL.
func ResolveEndpoint(s *config.Site, endpoint string) (Addressing, error) {
	a := Addressing{Scheme: s.UpstreamScheme}
	if a.Scheme == "" {
		a.Scheme = "https"
	}
	switch endpoint {
	case "public":
		a.Addr = s.Bucket + ".oss-" + s.Region + ".aliyuncs.com"
	case "internal":
		a.Addr = s.Bucket + ".oss-" + s.Region + "-internal.aliyuncs.com"
	case "accelerate":
		a.Addr = s.Bucket + ".oss-accelerate.aliyuncs.com"
	case "dualstack":
		a.Addr = s.Bucket + "." + s.Region + ".oss.aliyuncs.com"
	default:
		pu, err := url.Parse(endpoint)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return a, fmt.Errorf("endpoint %q: not a keyword or an http(s) URL", endpoint)
		}
		a.Scheme, a.Addr, a.Host = pu.Scheme, pu.Host, s.Bucket+"."+pu.Host
	}
	if a.Host == "" {
		a.Host = a.Addr
	}
	if s.UpstreamHost != "" {
		a.Host = s.UpstreamHost
	}
	return a, nil
}

// resolveEndpoint is ResolveEndpoint as the request path keeps it, with
// the metrics label.
func resolveEndpoint(s *config.Site, endpoint, label string) (*upstream, error) {
	a, err := ResolveEndpoint(s, endpoint)
	if err != nil {
		return nil, err
	}
	return &upstream{scheme: a.Scheme, addr: a.Addr, host: a.Host, label: label}, nil
}

// TransportOptions are the upstream connection settings from [server].
type TransportOptions struct {
	// Mode is upstream_transport: "native" (or "") or "stdlib".
	Mode          string
	DialTimeout   time.Duration
	HeaderTimeout time.Duration
	// WriteTimeout bounds each write to OSS in the native client: a
	// connection that takes no request bytes for this long fails the
	// request, so a stuck socket cannot hold an upload forever. Zero means
	// 30s, or HeaderTimeout if that is longer.
	WriteTimeout time.Duration
	// RootCAs overrides the system roots (tests against a TLS emulator).
	RootCAs *x509.CertPool
}

// Transport is what NewTransport returns in either mode: a RoundTripper
// whose idle connections can be closed (config reloads, shutdown, tests).
// The native client also closes those idle past upstreamIdleTimeout on its
// own, as net/http's Transport does.
type Transport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// NewTransport returns the HTTP/1.1 client to OSS: a deep idle pool per
// bucket host (OSS is one host per bucket, so a shallow pool would make every
// burst dial), no transparent gzip (the client's Accept-Encoding passes
// through and bodies stream as OSS sent them), never an environment proxy,
// and the configured dial and response-header timeouts.
//
// Mode "stdlib" returns net/http's Transport with the same settings (and
// HTTP(S)_PROXY from the environment honoured): the reference the native
// client is held to, and the choice when a proxy must be used.
func NewTransport(o TransportOptions) Transport {
	if o.Mode == "stdlib" {
		return &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
			TLSHandshakeTimeout:   o.DialTimeout + 5*time.Second,
			ResponseHeaderTimeout: o.HeaderTimeout,
			DisableCompression:    true,
			MaxIdleConnsPerHost:   maxIdlePerHost,
			IdleConnTimeout:       upstreamIdleTimeout,
			// HTTP/1.1 as the native client speaks it: OSS serves both
			// alike, and one connection per request streams best.
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		}
	}
	writeTimeout := o.WriteTimeout
	if writeTimeout == 0 {
		writeTimeout = max(defaultWriteTimeout, o.HeaderTimeout)
	}
	return &upstreamClient{
		dialer:           net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second},
		tlsConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
		headerTimeout:    o.HeaderTimeout,
		handshakeTimeout: o.DialTimeout + 5*time.Second,
		idleTimeout:      upstreamIdleTimeout,
		writeTimeout:     writeTimeout,
		maxIdlePerHost:   maxIdlePerHost,
		maxHeadBytes:     maxResponseHeadBytes,
	}
}

const (
	// upstreamIdleTimeout closes idle connections to OSS before OSS's own
	// keep-alive timeout does.
	upstreamIdleTimeout = 50 * time.Second
	// maxIdlePerHost is deep: OSS is one host per bucket, so a shallow
	// pool would make every burst dial.
	maxIdlePerHost = 256
)

// isTimeout reports whether err is the transport giving up waiting, as
// opposed to a refused or reset connection.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}
