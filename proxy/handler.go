// Package proxy is the gateway's request path: it routes a client request to
// a site by Host, maps its path to an object key, applies the site's rules,
// signs it for OSS when the bucket is private, and streams the response back.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oss-gateway/gateway/cache"
	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/internal/framing"
	"github.com/oss-gateway/gateway/proxy/upstream"
)

// Options are the long-lived collaborators of a Handler; they outlive config
// reloads.
type Options struct {
	Metrics     *Metrics
	Logger      *slog.Logger // operational errors; nil discards
	AccessLog   *slog.Logger // one line per request; nil = off
	Credentials credentials.CredentialsProvider
	// Transport carries requests to OSS; nil builds one from [server],
	// and a new one whenever a reload changes its settings.
	Transport http.RoundTripper
	// Getenv reads url_auth keys; nil means os.Getenv.
	Getenv func(string) string
	// CacheNow is the object cache's clock for when entries were stored;
	// nil means time.Now. Tests set it.
	CacheNow func() time.Time
}

// Handler is the gateway's http.Handler. Its config can be swapped while it
// serves: each request reads the current one once and keeps it to the end.
type Handler struct {
	opts     Options
	creds    atomic.Pointer[credentials.CredentialsProvider] // signs private sites; SetCredentials swaps it
	ids      *requestIDs
	state    atomic.Pointer[state]
	inflight atomic.Int64

	health        healthTable
	probeInterval atomic.Int64 // set by Probe; 0 = upstreams not checked

	// cache is the object cache of [cache] path, nil without one. It is
	// opened once, by New: a reload that changes [cache] keeps the open
	// one (with a warning) until the gateway restarts, since the running
	// fills and the directory lock belong to it.
	cache     *cache.Cache
	cacheConf config.Cache
}

// state is everything derived from one config. It is immutable once built.
type state struct {
	cfg       *config.Config
	routes    router
	sites     []*site
	trusted   trustedSet
	anySigned bool

	// progressTimeout bounds each read and write on a client connection
	// (idle_timeout; none when write_timeout bounds the whole response).
	progressTimeout time.Duration
	// uploadStall bounds silence in a client's request body
	// (read_header_timeout).
	uploadStall time.Duration
	// accessLogSample is log.access_log_sample.
	accessLogSample float64
	// accessLog is log.access_log.
	accessLog bool

	// transport carries this config's requests to OSS; transportOpts
	// are the settings it was built with (zero when injected). oss is the
	// transport step every request to OSS takes, over transport.
	transport     http.RoundTripper
	transportOpts upstream.Options
	oss           *upstream.Client
}

// New builds a Handler serving cfg.
func New(cfg *config.Config, o Options) (*Handler, error) {
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: o, ids: newRequestIDs()}
	h.SetCredentials(o.Credentials)
	c, err := openCache(cfg.Cache, o.Metrics, o)
	if err != nil {
		return nil, err
	}
	h.cache, h.cacheConf = c, cfg.Cache
	h.purgeChangedSites(nil, cfg) // sites changed while the gateway was stopped
	if err := h.Load(cfg); err != nil {
		_ = h.Close()
		return nil, err
	}
	return h, nil
}

// Load swaps in cfg. Requests already running finish on the config they
// started with.
func (h *Handler) Load(cfg *config.Config) error {
	st, err := h.compile(cfg)
	if err != nil {
		return err
	}
	old := h.state.Swap(st)
	h.health.prune(st)
	if old != nil {
		h.purgeChangedSites(old.cfg, cfg)
	}
	if cfg.Cache != h.cacheConf && old != nil {
		h.opts.Logger.Warn("reload: [cache] changed; the cache opened at start is kept until the gateway restarts",
			"path", h.cacheConf.Path, "new_path", cfg.Cache.Path)
	}
	if old != nil && old.transport != st.transport {
		// Requests still running on the old config keep their
		// connections; what they leave idle is closed once they are done.
		if ci, ok := old.transport.(interface{ CloseIdleConnections() }); ok {
			ci.CloseIdleConnections()
			time.AfterFunc(cfg.Server.ShutdownGrace.D()+time.Second, ci.CloseIdleConnections)
		}
	}
	return nil
}

// transportFor returns the transport cfg's requests go through: the
// injected one, the running one when its settings are unchanged, or a new
// one.
func (h *Handler) transportFor(cfg *config.Config) (http.RoundTripper, upstream.Options) {
	if h.opts.Transport != nil {
		return h.opts.Transport, upstream.Options{}
	}
	o := upstream.Options{
		Mode:          cfg.Server.UpstreamTransport,
		DialTimeout:   cfg.Server.UpstreamDialTimeout.D(),
		HeaderTimeout: cfg.Server.UpstreamHeaderTimeout.D(),
	}
	if cur := h.state.Load(); cur != nil && cur.transportOpts == o {
		return cur.transport, o
	}
	return upstream.New(o), o
}

// SetCredentials makes p sign every private-site request from now on (a
// reload that changed [credentials]); requests already signed keep theirs.
func (h *Handler) SetCredentials(p credentials.CredentialsProvider) { h.creds.Store(&p) }

func (h *Handler) credentials() credentials.CredentialsProvider { return *h.creds.Load() }

// Config returns the config being served.
func (h *Handler) Config() *config.Config { return h.state.Load().cfg }

func (h *Handler) compile(cfg *config.Config) (*state, error) {
	st := &state{
		cfg:             cfg,
		routes:          make(router),
		trusted:         trustedSet(cfg.Server.TrustedProxyNets),
		uploadStall:     cfg.Server.ReadHeaderTimeout.D(),
		accessLogSample: cfg.Log.AccessLogSample,
		accessLog:       cfg.Log.AccessLog,
	}
	st.transport, st.transportOpts = h.transportFor(cfg)
	st.oss = upstream.NewClient(st.transport, cfg.Server.UpstreamHeaderTimeout.D()) // the stall bound of a body mid-stream
	if cfg.Server.WriteTimeout == 0 {
		st.progressTimeout = cfg.Server.IdleTimeout.D()
	}
	for i := range cfg.Sites {
		s, err := newSite(&cfg.Sites[i], h.opts.Metrics, h.opts.Getenv)
		if err != nil {
			return nil, fmt.Errorf("site %q: %w", cfg.Sites[i].Name, err)
		}
		if sc := cfg.Sites[i].Cache; sc.Enabled && h.cache != nil {
			s.cache, s.cacheTTL, s.cacheStale = h.cache, sc.TTL.D(), sc.StaleIfError.D()
		}
		s.primary.health = h.health.get(s.primary)
		if s.fallback != nil {
			s.fallback.health = h.health.get(s.fallback)
		}
		for _, d := range cfg.Sites[i].Domains {
			d = normalizeHost(d)
			if other, dup := st.routes[d]; dup {
				return nil, fmt.Errorf("site %q: domain %q is already served by site %q", s.name, d, other.name)
			}
			st.routes[d] = s
		}
		st.sites = append(st.sites, s)
		if s.private {
			st.anySigned = true
		}
	}
	return st, nil
}

// Ready reports why the gateway should not take traffic, or nil: the config
// is loaded, the credentials resolve when a site signs, and (while Probe
// runs) every site's OSS endpoint answered recently, so a load balancer
// takes an instance that cannot reach OSS out of rotation.
func (h *Handler) Ready(ctx context.Context) error {
	st := h.state.Load()
	if st == nil {
		return errors.New("no config loaded")
	}
	if st.anySigned {
		if _, err := resolveCredentials(ctx, h.credentials()); err != nil {
			return err
		}
	}
	return h.upstreamsReady(st)
}

// exchange is one client request on its way through the gateway: what the
// access log and the metrics report once it is done.
type exchange struct {
	start      time.Time
	st         *state
	id         string
	site       *site
	key        string
	query      string      // raw query to forward, after the gateway took its own parameters
	grant      grant       // private sites: what the trust policy let through to OSS
	upload     *uploadBody // the client's body on its way to OSS, if any
	status     int
	bytesOut   int64
	bytesIn    int64
	client     netip.Addr
	upstreamID string
	// upstreamWait is the last attempt's time to OSS's response headers.
	upstreamWait time.Duration
	retries      int
	resumes      int
	denied       string
	err          error
	// cache is how the object cache answered: hit, miss, revalidated or
	// stale (X-Cache in lower case); "" when the request did not go
	// through it.
	cache string

	w http.ResponseWriter // the client's, for deadlines on its connection

	download     bool   // ?download asked for an attachment
	downloadName string // file name it asked for, "" = the key's
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.inflight.Add(1)
	defer h.inflight.Add(-1)
	st := h.state.Load()
	x := exchange{start: time.Now(), st: st, id: h.ids.next(), w: w}
	w.Header()["X-Request-Id"] = []string{x.id}
	x.client = clientIP(r.RemoteAddr, r.Header["X-Forwarded-For"], st.trusted)

	x.site = st.routes.lookup(r.Host)
	if framing.Conflict(r) {
		// Content-Length and Transfer-Encoding together: net/http chose
		// one, a proxy in front may have chosen the other.
		h.refuse(w, r, &x, errAmbiguousFraming)
		h.finish(r, &x)
		return
	}
	if x.site == nil {
		h.refuse(w, r, &x, errMisdirected)
		h.finish(r, &x)
		return
	}
	s := x.site
	s.metrics.inflight.Inc()
	defer s.metrics.inflight.Dec()
	aborted := h.serveSite(w, r, s, &x)
	h.finish(r, &x)
	if aborted {
		// The response was cut after its headers went out: make sure the
		// client sees a broken connection, never a short body taken for whole.
		panic(http.ErrAbortHandler)
	}
}

// Redirect answers r with a 308 to location (the plain-HTTP listener's
// redirect to HTTPS) and records it like every other answer, so the
// access log and the metrics show the redirects clients get.
func (h *Handler) Redirect(w http.ResponseWriter, r *http.Request, location string) {
	st := h.state.Load()
	x := exchange{start: time.Now(), st: st, id: h.ids.next(), w: w}
	hdr := w.Header()
	hdr["X-Request-Id"] = []string{x.id}
	x.client = clientIP(r.RemoteAddr, r.Header["X-Forwarded-For"], st.trusted)
	x.site = st.routes.lookup(r.Host)
	if framing.Conflict(r) {
		h.refuse(w, r, &x, errAmbiguousFraming)
		h.finish(r, &x)
		return
	}
	hdr.Set("Location", location)
	hdr.Set("Content-Length", "0")
	x.status = http.StatusPermanentRedirect
	w.WriteHeader(x.status)
	h.finish(r, &x)
}

// serveSite runs a routed request through the site's checks and then to
// OSS. It returns true when a response had to be cut after its headers were
// sent.
func (h *Handler) serveSite(w http.ResponseWriter, r *http.Request, s *site, x *exchange) bool {
	if !h.admit(w, r, s, x) {
		return false
	}
	if s.cache != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return h.serveCached(w, r, x)
	}
	return h.forward(w, r, x)
}

// admit applies the site's rules in the documented order: path,
// allow_ips, rate limits, CORS preflight, method, request body, url_auth,
// Referer, and on private sites the trust policy. It
// returns false when it has answered the request itself; otherwise x.key and
// x.query are what to ask OSS for.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, s *site, x *exchange) bool {
	key, ok := objectKey(s.prefix, s.pathBucket, r.URL)
	if !ok {
		h.refuse(w, r, x, errBadObjectName)
		return false
	}
	x.key = key
	if !s.allowIPs.contains(x.client) && len(s.allowIPs) > 0 {
		h.refuse(w, r, x, errIPDenied)
		return false
	}
	now := x.start
	if ok, wait := s.ipLimit.allow(x.client, now); !ok {
		h.refuseRetryAfter(w, r, x, wait)
		return false
	}
	if ok, wait := s.siteLimit.allow(now); !ok {
		h.refuseRetryAfter(w, r, x, wait)
		return false
	}
	origin := r.Header.Get("Origin")
	if r.Method == http.MethodOptions && origin != "" {
		if acrm := r.Header.Get("Access-Control-Request-Method"); acrm != "" {
			if !s.cors.preflight(w.Header(), origin, acrm, r.Header.Get("Access-Control-Request-Headers")) {
				h.refuse(w, r, x, errCORSForbidden)
				return false
			}
			s.cors.varyOnly(w.Header())
			x.status = http.StatusOK
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusOK)
			return false
		}
	}
	if !s.methods.has(r.Method) {
		w.Header().Set("Allow", s.allowHeader)
		h.refuse(w, r, x, errMethodNotAllowed)
		return false
	}
	if !takesBody(r.Method) {
		// GET/HEAD/OPTIONS/DELETE carry no body to OSS. An empty one, in
		// any framing, is no body.
		if e := noBody(w, r, x.st.uploadStall); e != nil {
			h.refuse(w, r, x, e)
			return false
		}
	}
	query := r.URL.RawQuery
	if s.urlAuth != nil {
		var ok bool
		if query, ok = s.urlAuth.check(r.URL.EscapedPath(), query, now); !ok {
			h.refuse(w, r, x, errURLAuth)
			return false
		}
	}
	// On public sites a request with an AccessKey Authorization header is
	// OSS's to judge; everything else (anonymous, signed URLs, and every
	// request on a private site, whose Authorization is stripped) is held to
	// the Referer rules, as OSS holds them.
	if s.private || r.Header.Get("Authorization") == "" {
		if !s.referer.allow(r.Header.Get("Referer")) {
			h.refuse(w, r, x, errRefererDenied)
			return false
		}
	}
	query, x.download, x.downloadName = s.disposition.takeParam(query)
	x.query = query
	if s.private {
		g, refused := s.trust.authorize(r.Method, query, r.Header)
		if refused != nil {
			h.refuse(w, r, x, refused)
			return false
		}
		x.grant = g
	}

	rel := key[len(s.prefix):]
	if s.website.Index != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		key = s.prefix + websiteIndexKey(rel, s.website)
	} else if rel == "" {
		// No key below the prefix: that would be a bucket listing, which
		// is never the site's to give.
		h.refuse(w, r, x, errBadObjectName)
		return false
	}
	x.key = key
	return true
}

// refuse answers with one of the gateway's own errors. A site's CORS rules
// apply to it, so that a page's script can read why it was refused.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, x *exchange, e *ossError) {
	x.status = e.status
	x.denied = e.reason
	if e == errClientGone {
		return
	}
	if x.site != nil && e != errCORSForbidden {
		x.site.cors.apply(w.Header(), r.Header.Get("Origin"), r.Method)
	}
	if e.closesConn() {
		w.Header().Set("Connection", "close")
		// Nothing more is read from this connection: without this,
		// net/http would first wait to drain what is left of the body.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
	x.bytesOut += int64(writeError(w, r, e, x.id))
}

// refuseRetryAfter answers 429 with the wait in whole seconds.
func (h *Handler) refuseRetryAfter(w http.ResponseWriter, r *http.Request, x *exchange, wait time.Duration) {
	w.Header().Set("Retry-After", retryAfterSeconds(wait))
	h.refuse(w, r, x, errRateLimited)
}

// finish records the exchange in the metrics and the access log.
func (h *Handler) finish(r *http.Request, x *exchange) {
	m := h.opts.Metrics
	elapsed := time.Since(x.start)
	method := methodLabel(r.Method)
	if x.site == nil {
		m.Requests.WithLabelValues("unknown", method, codeLabel(x.status)).Inc()
		m.RequestDuration.WithLabelValues("unknown", method).Observe(elapsed.Seconds())
	} else {
		sm := &x.site.metrics
		sm.request(r.Method, x.status).Inc()
		sm.duration(method).Observe(elapsed.Seconds())
		if x.bytesOut > 0 {
			sm.bytesOut.Add(float64(x.bytesOut))
		}
		if x.bytesIn > 0 {
			sm.bytesIn.Add(float64(x.bytesIn))
		}
		if x.denied != "" {
			m.Denied.WithLabelValues(x.site.name, x.denied).Inc()
		}
	}
	var cause string // why a 5xx the gateway made is one
	if x.err != nil && x.status >= 500 && !errors.Is(x.err, context.Canceled) {
		cause = x.err.Error()
		h.opts.Logger.Warn("upstream request failed", "request_id", x.id, "status", x.status, "error", cause)
	}
	if al := h.opts.AccessLog; al != nil && x.st.accessLog && x.logged(x.st.accessLogSample) {
		siteName := "unknown"
		if x.site != nil {
			siteName = x.site.name
		}
		al.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("site", siteName),
			slog.String("host", clip(r.Host)),
			slog.String("method", clip(r.Method)),
			slog.String("key", x.key),
			slog.String("query", redactQuery(r.URL.RawQuery)),
			slog.Int("status", x.status),
			slog.Int64("bytes_in", x.bytesIn),
			slog.Int64("bytes_out", x.bytesOut),
			slog.Float64("duration", elapsed.Seconds()),
			slog.Float64("upstream_time", x.upstreamWait.Seconds()),
			slog.Int("retries", x.retries),
			slog.String("client_ip", addrString(x.client)),
			slog.String("user_agent", clip(r.UserAgent())),
			slog.String("referer", clip(r.Referer())),
			slog.String("request_id", x.id),
			slog.String("upstream_request_id", x.upstreamID),
			slog.String("denied", x.denied),
			slog.String("upstream_error", cause),
			slog.String("cache", x.cache),
		)
	}
}

// logged decides whether the access log takes this exchange: every error
// and refusal, and the given share of the rest.
func (x *exchange) logged(sample float64) bool {
	return sample >= 1 || x.status >= 400 || x.denied != "" || rand.Float64() < sample
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Inflight is the number of client requests being served now; a drain
// that runs out of time reports how many it cut.
func (h *Handler) Inflight() int64 { return h.inflight.Load() }

// noBody checks that a request whose method takes no body has none. A
// body of unknown length (chunked, or HTTP/2 without content-length, as
// the Go SDK sends GET over HTTP/2) is read for one byte: an immediate end
// means it is empty. That read waits at most d for the client.
func noBody(w http.ResponseWriter, r *http.Request, d time.Duration) *ossError {
	switch {
	case r.ContentLength > 0:
		return errBodyNotAllowed
	case r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody:
		return nil
	}
	if d > 0 {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(d))
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	var b [1]byte
	for {
		n, err := r.Body.Read(b[:])
		switch {
		case n > 0:
			return errBodyNotAllowed
		case err == io.EOF:
			return nil
		case err != nil && upstream.IsTimeout(err):
			return errRequestTimeout
		case err != nil:
			return errIncompleteBody
		}
	}
}

// takesBody reports whether a method carries a body to OSS.
func takesBody(method string) bool {
	return method == http.MethodPut || method == http.MethodPost
}
