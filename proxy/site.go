package proxy

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oss-gateway/gateway/cache"
	"github.com/oss-gateway/gateway/config"
)

// site is a config.Site compiled for the request path: everything a request
// needs is a field, nothing is parsed per request.
type site struct {
	name        string
	bucket      string
	region      string
	prefix      string
	pathBucket  string // path_style: the bucket, as a first path segment to drop; "" = off
	private     bool
	methods     methodSet
	allowHeader string
	primary     *endpoint
	fallback    *endpoint // nil when no fallback_endpoint
	metrics     siteMetrics

	allowIPs          trustedSet // limits.allow_ips; empty = everyone
	ipLimit           *ipLimiters
	siteLimit         *siteLimiter
	egressBytesPerSec int64
	cors              *corsPolicy
	referer           *refererPolicy
	urlAuth           *urlAuth // nil when url_auth is off
	disposition       *dispositionPolicy
	website           websitePolicy
	retry             *retryPolicy
	signatures        signCache    // private sites
	trust             *trustPolicy // private sites: what a request may ask OSS to do

	// cache is the object cache when [site.cache] is enabled and
	// [cache] path set, else nil; entries are fresh for cacheTTL and
	// served when OSS fails for cacheStale more.
	cache                *cache.Cache
	cacheTTL, cacheStale time.Duration
}

// maxIPLimiters bounds the per-client-IP limiter table of a site.
const maxIPLimiters = 65536

func newSite(c *config.Site, m *Metrics, getenv func(string) string) (*site, error) {
	s := &site{
		name:              c.Name,
		bucket:            c.Bucket,
		region:            c.Region,
		prefix:            c.Prefix,
		private:           c.Access == "private",
		allowIPs:          trustedSet(c.Limits.AllowIPNets),
		ipLimit:           newIPLimiters(c.Limits.PerIPRPS, c.Limits.PerIPBurst, maxIPLimiters),
		siteLimit:         newSiteLimiter(c.Limits.SiteRPS, c.Limits.SiteBurst),
		egressBytesPerSec: c.Limits.PerConnBytesPerSec,
		cors:              newCORSPolicy(c.CORS, c.CORSVaryOrigin),
		referer:           newRefererPolicy(c.Referer),
		disposition:       newDispositionPolicy(c.Disposition),
		website:           websitePolicy{c.Website},
		retry:             newRetryPolicy(c.Retry),
	}
	if s.private {
		s.trust = newTrustPolicy(c)
	}
	if c.PathStyle {
		s.pathBucket = c.Bucket
	}
	if c.URLAuth.Enabled {
		a, err := newURLAuth(c.URLAuth, getenv)
		if err != nil {
			return nil, fmt.Errorf("url_auth: %w", err)
		}
		s.urlAuth = a
	}
	for _, meth := range c.Methods {
		bit := methodBit(strings.ToUpper(meth))
		if bit == 0 {
			return nil, fmt.Errorf("method %q is not supported", meth)
		}
		s.methods |= bit
	}
	s.allowHeader = strings.Join(c.Methods, ", ")
	var err error
	if s.primary, err = resolveEndpoint(c, c.Endpoint, "primary"); err != nil {
		return nil, err
	}
	if c.FallbackEndpoint != "" {
		if s.fallback, err = resolveEndpoint(c, c.FallbackEndpoint, "fallback"); err != nil {
			return nil, fmt.Errorf("fallback_endpoint: %w", err)
		}
	}
	s.metrics = newSiteMetrics(m, s.name)
	return s, nil
}

// methodSet is a bit set of the methods a site lets through.
type methodSet uint8

// The methods a site can let through, one bit each.
const (
	mGet methodSet = 1 << iota
	mHead
	mPut
	mPost
	mDelete
	mOptions
)

func methodBit(m string) methodSet {
	switch m {
	case "GET":
		return mGet
	case "HEAD":
		return mHead
	case "PUT":
		return mPut
	case "POST":
		return mPost
	case "DELETE":
		return mDelete
	case "OPTIONS":
		return mOptions
	}
	return 0
}

func (s methodSet) has(m string) bool {
	b := methodBit(m)
	return b != 0 && s&b != 0
}

// siteMetrics are a site's series resolved once, so the request path does not
// hash label values for the series it touches on every request.
type siteMetrics struct {
	inflight      prometheus.Gauge
	bytesOut      prometheus.Counter
	bytesIn       prometheus.Counter
	durGet        prometheus.Observer
	durHead       prometheus.Observer
	m             *Metrics
	name          string
	upPrimaryDur  prometheus.Observer
	upFallbackDur prometheus.Observer

	// The counters of the commonest label sets, each resolved on its first
	// use (so /metrics only shows series that happened).
	hotRequests *[8]atomic.Pointer[prometheus.Counter] // GET, HEAD x hotCodes
	hotUpstream *[8]atomic.Pointer[prometheus.Counter] // primary, fallback x hotCodes
}

// hotIndex places a status code among the commonest answers to GET and HEAD:
// 200, 206, 304 and 404; -1 for the rest.
func hotIndex(code int) int {
	switch code {
	case 200:
		return 0
	case 206:
		return 1
	case 304:
		return 2
	case 404:
		return 3
	}
	return -1
}

// hotCounter returns slot i of hot, resolving it with resolve the first time.
func hotCounter(hot *[8]atomic.Pointer[prometheus.Counter], i int, resolve func() prometheus.Counter) prometheus.Counter {
	if c := hot[i].Load(); c != nil {
		return *c
	}
	c := resolve()
	hot[i].Store(&c)
	return c
}

// request is the gateway_requests_total series for one answer.
func (sm *siteMetrics) request(method string, code int) prometheus.Counter {
	i := hotIndex(code)
	switch {
	case i < 0:
	case method == "GET":
		return hotCounter(sm.hotRequests, i, func() prometheus.Counter { return sm.m.Requests.WithLabelValues(sm.name, "GET", codeLabel(code)) })
	case method == "HEAD":
		return hotCounter(sm.hotRequests, 4+i, func() prometheus.Counter { return sm.m.Requests.WithLabelValues(sm.name, "HEAD", codeLabel(code)) })
	}
	return sm.m.Requests.WithLabelValues(sm.name, methodLabel(method), codeLabel(code))
}

// upstream is the gateway_upstream_requests_total series for one answer
// from OSS (code 0: none).
func (sm *siteMetrics) upstream(endpoint string, code int) prometheus.Counter {
	if i := hotIndex(code); i >= 0 {
		if endpoint == "fallback" {
			i += 4
		}
		return hotCounter(sm.hotUpstream, i, func() prometheus.Counter { return sm.m.Upstream.WithLabelValues(sm.name, endpoint, codeLabel(code)) })
	}
	return sm.m.Upstream.WithLabelValues(sm.name, endpoint, codeLabel(code))
}

func newSiteMetrics(m *Metrics, name string) siteMetrics {
	return siteMetrics{
		inflight:      m.Inflight.WithLabelValues(name),
		bytesOut:      m.ResponseBytes.WithLabelValues(name),
		bytesIn:       m.RequestBytes.WithLabelValues(name),
		durGet:        m.RequestDuration.WithLabelValues(name, "GET"),
		durHead:       m.RequestDuration.WithLabelValues(name, "HEAD"),
		m:             m,
		name:          name,
		upPrimaryDur:  m.UpstreamDuration.WithLabelValues(name, "primary"),
		upFallbackDur: m.UpstreamDuration.WithLabelValues(name, "fallback"),
		hotRequests:   new([8]atomic.Pointer[prometheus.Counter]),
		hotUpstream:   new([8]atomic.Pointer[prometheus.Counter]),
	}
}

func (sm *siteMetrics) duration(method string) prometheus.Observer {
	switch method {
	case "GET":
		return sm.durGet
	case "HEAD":
		return sm.durHead
	}
	return sm.m.RequestDuration.WithLabelValues(sm.name, method)
}

func (sm *siteMetrics) upstreamDuration(label string) prometheus.Observer {
	if label == "fallback" {
		return sm.upFallbackDur
	}
	return sm.upPrimaryDur
}
