// Package ossclient is the gateway's use of the official SDK beyond the
// signer: the credentials providers [credentials] names (which the proxy
// signs with too), and SDK clients for the buckets the gateway manages
// outside the request path: certificate storage, the CNAME lifecycle and
// `gateway check`. The proxy itself signs with the SDK's signer directly;
// control-plane calls are rare, so the SDK's own client (retries, error
// decoding, XML models) is worth its weight here. Endpoint keywords map to
// hosts through the proxy's own table, so both reach a bucket alike.
package ossclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/proxy/upstream"
)

// Target names a bucket and how to reach it, in the vocabulary of a site's
// config: an endpoint keyword (public, internal, accelerate, dualstack) or an
// http(s) URL.
type Target struct {
	Bucket   string
	Region   string
	Endpoint string // keyword or URL; "" = public
	Scheme   string // for keyword endpoints; "" = https
}

// ForSite is the target a site's requests go to.
func ForSite(s *config.Site) Target {
	return Target{Bucket: s.Bucket, Region: s.Region, Endpoint: s.Endpoint, Scheme: s.UpstreamScheme}
}

// Options tune the client's connections.
type Options struct {
	DialTimeout time.Duration // 0 = 5s
	// RootCAs overrides the system roots (tests against a TLS emulator).
	RootCAs *x509.CertPool
}

// New returns an SDK client for t that signs with V4 using p. URL endpoints
// naming an IP address are addressed path-style (the SDK's own rule); every
// other endpoint is virtual-hosted, as OSS requires of new buckets.
func New(t Target, p credentials.CredentialsProvider, o Options) (*oss.Client, error) {
	if t.Bucket == "" || t.Region == "" {
		return nil, fmt.Errorf("bucket and region are required")
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	cfg := oss.LoadDefaultConfig().
		WithCredentialsProvider(p).
		WithRegion(t.Region).
		WithSignatureVersion(oss.SignatureVersionV4).
		WithConnectTimeout(o.DialTimeout)
	if host, ok := upstream.ServiceHost(t.Endpoint, t.Region); ok {
		// The proxy's own keyword table: the SDK adds the bucket to the
		// host, as the proxy does.
		scheme := t.Scheme
		if scheme == "" {
			scheme = "https"
		}
		cfg = cfg.WithEndpoint(scheme + "://" + host)
	} else {
		u, err := url.Parse(t.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("endpoint %q: not a keyword or an http(s) URL", t.Endpoint)
		}
		cfg = cfg.WithEndpoint(u.Scheme + "://" + u.Host)
		t.Scheme = u.Scheme
	}
	if t.Scheme == "http" {
		cfg = cfg.WithDisableSSL(true)
	}
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil, // like the proxy's transport: never via an environment proxy
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   o.DialTimeout + 5*time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       50 * time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
	}
	cfg = cfg.WithHttpClient(&http.Client{Transport: tr})
	return oss.NewClient(cfg), nil
}
