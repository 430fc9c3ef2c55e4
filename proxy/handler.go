// Package proxy is the gateway's request path: it routes a client request to
// a site by Host, maps its path to an object key, applies the site's rules,
// signs it for OSS when the bucket is private, and streams the response back.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oss-gateway/gateway/config"
)

// Options are the long-lived collaborators of a Handler; they outlive config
// reloads.
type Options struct {
	Metrics     *Metrics
	Logger      *slog.Logger // operational errors; nil discards
	AccessLog   *slog.Logger // one line per request; nil = off
	Credentials credentials.CredentialsProvider
	// Transport carries requests to OSS; nil builds one from [server].
	Transport http.RoundTripper
}

// Handler is the gateway's http.Handler. Its config can be swapped while it
// serves: each request reads the current one once and keeps it to the end.
type Handler struct {
	opts  Options
	ids   *requestIDs
	state atomic.Pointer[state]
}

// state is everything derived from one config. It is immutable once built.
type state struct {
	cfg       *config.Config
	routes    router
	sites     []*site
	trusted   trustedSet
	anyPublic bool
	anySigned bool
}

// New builds a Handler serving cfg.
func New(cfg *config.Config, o Options) (*Handler, error) {
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry(), "test")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Transport == nil {
		o.Transport = NewTransport(TransportOptions{
			DialTimeout:   cfg.Server.UpstreamDialTimeout.D(),
			HeaderTimeout: cfg.Server.UpstreamHeaderTimeout.D(),
		})
	}
	h := &Handler{opts: o, ids: newRequestIDs()}
	if err := h.Load(cfg); err != nil {
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
	h.state.Store(st)
	return nil
}

// Config returns the config being served.
func (h *Handler) Config() *config.Config { return h.state.Load().cfg }

func (h *Handler) compile(cfg *config.Config) (*state, error) {
	st := &state{cfg: cfg, routes: make(router), trusted: trustedSet(cfg.Server.TrustedProxyNets)}
	for i := range cfg.Sites {
		s, err := newSite(&cfg.Sites[i], h.opts.Metrics)
		if err != nil {
			return nil, fmt.Errorf("site %q: %w", cfg.Sites[i].Name, err)
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
		} else {
			st.anyPublic = true
		}
	}
	return st, nil
}

// Ready reports why the gateway should not take traffic, or nil: the config
// is loaded and, when a site signs, the credentials resolve.
func (h *Handler) Ready(ctx context.Context) error {
	st := h.state.Load()
	if st == nil {
		return errors.New("no config loaded")
	}
	if st.anySigned {
		if _, err := resolveCredentials(ctx, h.opts.Credentials); err != nil {
			return err
		}
	}
	return nil
}

// exchange is one client request on its way through the gateway: what the
// access log and the metrics report once it is done.
type exchange struct {
	start      time.Time
	id         string
	site       *site
	key        string
	status     int
	bytesOut   int64
	bytesIn    int64
	client     netip.Addr
	upstreamID string
	denied     string
	err        error
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := h.state.Load()
	x := exchange{start: time.Now(), id: h.ids.next()}
	w.Header()["X-Request-Id"] = []string{x.id}
	x.client = clientIP(r.RemoteAddr, r.Header["X-Forwarded-For"], st.trusted)

	x.site = st.routes.lookup(r.Host)
	if x.site == nil {
		h.refuse(w, r, &x, errMisdirected)
		h.finish(r, &x)
		return
	}
	sm := &x.site.metrics
	sm.inflight.Inc()
	defer sm.inflight.Dec()

	key, ok := objectKey(x.site.prefix, r.URL)
	if !ok || len(key) == len(x.site.prefix) {
		// No key below the prefix: that would be a bucket listing, which
		// is never the site's to give.
		h.refuse(w, r, &x, errBadObjectName)
		h.finish(r, &x)
		return
	}
	x.key = key
	if !x.site.methods.has(r.Method) {
		w.Header().Set("Allow", x.site.allowHeader)
		h.refuse(w, r, &x, errMethodNotAllowed)
		h.finish(r, &x)
		return
	}
	aborted := h.forward(w, r, st, &x)
	h.finish(r, &x)
	if aborted {
		// The response was cut after its headers went out: make sure the
		// client sees a broken connection, never a short body taken for whole.
		panic(http.ErrAbortHandler)
	}
}

// refuse answers with one of the gateway's own errors.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, x *exchange, e *ossError) {
	x.status = e.status
	x.denied = e.reason
	writeError(w, r, e, x.id)
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
		m.Requests.WithLabelValues(x.site.name, method, codeLabel(x.status)).Inc()
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
	if x.err != nil && !errors.Is(x.err, context.Canceled) {
		h.opts.Logger.Warn("upstream request failed", "request_id", x.id, "error", x.err)
	}
	if al := h.opts.AccessLog; al != nil {
		siteName := "unknown"
		if x.site != nil {
			siteName = x.site.name
		}
		al.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("site", siteName),
			slog.String("host", r.Host),
			slog.String("method", r.Method),
			slog.String("key", x.key),
			slog.Int("status", x.status),
			slog.Int64("bytes", x.bytesOut),
			slog.Int64("bytes_in", x.bytesIn),
			slog.Float64("duration", elapsed.Seconds()),
			slog.String("client_ip", addrString(x.client)),
			slog.String("request_id", x.id),
			slog.String("upstream_request_id", x.upstreamID),
			slog.String("denied", x.denied),
		)
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
