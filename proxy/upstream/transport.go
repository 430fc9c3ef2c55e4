package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"time"
)

// Options are the upstream connection settings from [server]. They are
// comparable, so a config reload that leaves them alone keeps the
// transport and its warm connections.
type Options struct {
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

// Transport is what New returns in either mode: a RoundTripper
// whose idle connections can be closed (config reloads, shutdown, tests).
// The native client also closes those idle past upstreamIdleTimeout on its
// own, as net/http's Transport does.
type Transport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// New returns the HTTP/1.1 client to OSS: a deep idle pool per
// bucket host (OSS is one host per bucket, so a shallow pool would make every
// burst dial), no transparent gzip (the client's Accept-Encoding passes
// through and bodies stream as OSS sent them), never an environment proxy,
// and the configured dial and response-header timeouts.
//
// Mode "stdlib" returns net/http's Transport with the same settings (and
// HTTP(S)_PROXY from the environment honoured): the reference the native
// client is held to, and the choice when a proxy must be used.
func New(o Options) Transport {
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

// IsTimeout reports whether err is the transport giving up waiting (or an
// upstream body stalling), as opposed to a refused or reset connection: the
// proxy answers the one 504 and the other 502.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}
