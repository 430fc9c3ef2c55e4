package upstream

import (
	"fmt"
	"net/url"

	"github.com/oss-gateway/gateway/config"
)

// Endpoint is where a site's requests for one endpoint go: the scheme and
// host[:port] connected to (also the TLS SNI), and the Host header sent.
// The two differ for URL endpoints and for buckets reached through a bound
// custom domain. `gateway check` probes exactly what the proxy uses.
type Endpoint struct {
	Scheme string // "http" or "https"
	Addr   string
	Host   string
}

// ServiceHost is the OSS host an endpoint keyword names in region, without
// the bucket: a bucket's own host is bucket + "." + ServiceHost. It is the
// one table of keywords, shared by the proxy and the SDK clients of the
// control plane, so the two never disagree about where a bucket lives.
func ServiceHost(keyword, region string) (string, bool) {
	switch keyword {
	case "", "public":
		return "oss-" + region + ".aliyuncs.com", true
	case "internal":
		return "oss-" + region + "-internal.aliyuncs.com", true
	case "accelerate":
		return "oss-accelerate.aliyuncs.com", true
	case "dualstack":
		return region + ".oss.aliyuncs.com", true
	}
	return "", false
}

// Resolve applies the upstream addressing rules to a site's endpoint
// keyword or URL: a keyword is the bucket's own host over the site's
// upstream_scheme (https unless set); a URL is dialled as given and named
// bucket.host; upstream_host, when set, is the Host sent either way.
func Resolve(s *config.Site, endpoint string) (Endpoint, error) {
	e := Endpoint{Scheme: s.UpstreamScheme}
	if e.Scheme == "" {
		e.Scheme = "https"
	}
	if host, ok := ServiceHost(endpoint, s.Region); ok {
		e.Addr = s.Bucket + "." + host
		e.Host = e.Addr
	} else {
		pu, err := url.Parse(endpoint)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return e, fmt.Errorf("endpoint %q: not a keyword or an http(s) URL", endpoint)
		}
		e.Scheme, e.Addr, e.Host = pu.Scheme, pu.Host, s.Bucket+"."+pu.Host
	}
	if s.UpstreamHost != "" {
		e.Host = s.UpstreamHost
	}
	return e, nil
}
