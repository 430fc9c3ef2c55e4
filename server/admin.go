package server

import (
	"context"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves the operator endpoints. Every path is behind the
// admin.allow CIDRs: metrics and readiness tell an attacker as much as
// pprof does.
type adminHandler struct {
	allow    func() []netip.Prefix
	ready    func(context.Context) error
	stopping *atomic.Bool
	metrics  http.Handler
	reload   func() error
	// purge drops cached objects (proxy.Handler.PurgeCache); nil = no
	// /-/purge.
	purge func(site, key string, prefix bool) (int, error)
}

func newAdminHandler(g prometheus.Gatherer, allow func() []netip.Prefix, ready func(context.Context) error, stopping *atomic.Bool, reload func() error) *adminHandler {
	return &adminHandler{
		allow:    allow,
		ready:    ready,
		stopping: stopping,
		reload:   reload,
		metrics:  promhttp.HandlerFor(g, promhttp.HandlerOpts{}),
	}
}

func (a *adminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.allowed(r.RemoteAddr) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	case "/readyz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if a.stopping.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("shutting down\n"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := a.ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	case "/metrics":
		a.metrics.ServeHTTP(w, r)
	case "/-/reload":
		// Synchronous, so `gateway reload` (systemd's ExecReload) learns
		// whether the new config is live or was refused, and why.
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "POST to reload the config", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := a.reload(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("reloaded\n"))
	case "/-/purge":
		a.servePurge(w, r)
	case "/debug/pprof/cmdline":
		pprof.Cmdline(w, r)
	case "/debug/pprof/profile":
		pprof.Profile(w, r)
	case "/debug/pprof/symbol":
		pprof.Symbol(w, r)
	case "/debug/pprof/trace":
		pprof.Trace(w, r)
	default:
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			pprof.Index(w, r) // the index and the named profiles (heap, goroutine, ...)
			return
		}
		http.NotFound(w, r)
	}
}

func (a *adminHandler) allowed(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range a.allow() {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// servePurge is POST /-/purge?site=S&key=K (or &prefix=P): it drops the
// object cache's entries of one key, or of every key under a prefix, K and
// P as in the client's URL path without the leading slash or the site's
// prefix. It answers the number of entries dropped.
func (a *adminHandler) servePurge(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST to purge cached objects", http.StatusMethodNotAllowed)
		return
	}
	if a.purge == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	site := q.Get("site")
	key, hasKey := q["key"]
	prefix, hasPrefix := q["prefix"]
	if site == "" || hasKey == hasPrefix || (hasKey && (len(key) != 1 || key[0] == "")) || (hasPrefix && len(prefix) != 1) {
		http.Error(w, "want site and exactly one of key (non-empty) or prefix", http.StatusBadRequest)
		return
	}
	var n int
	var err error
	if hasKey {
		n, err = a.purge(site, key[0], false)
	} else {
		n, err = a.purge(site, prefix[0], true)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(strconv.Itoa(n) + "\n"))
}
