package proxy

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultProbeInterval is how often an upstream that served no request is
// probed; readiness fails when one has not answered for three intervals.
const DefaultProbeInterval = 10 * time.Second

// upstreamHealth remembers when an OSS endpoint last answered with any HTTP
// response. Real traffic keeps it fresh for free; the probe covers idle
// sites. It is keyed by where requests go, so it survives config reloads.
type upstreamHealth struct {
	lastAnswer atomic.Int64 // unix nanoseconds; 0 = never
}

// answered records an answer at t, writing the shared word at most once a
// second so busy sites do not bounce its cache line between cores.
func (u *upstreamHealth) answered(t time.Time) {
	n := t.UnixNano()
	if n-u.lastAnswer.Load() > int64(time.Second) {
		u.lastAnswer.Store(n)
	}
}

// since is how long ago the upstream last answered (a large value when never).
func (u *upstreamHealth) since(now time.Time) time.Duration {
	last := u.lastAnswer.Load()
	if last == 0 {
		return time.Duration(1<<62 - 1)
	}
	return now.Sub(time.Unix(0, last))
}

// healthTable hands out one upstreamHealth per upstream.
type healthTable struct {
	mu sync.Mutex
	m  map[string]*upstreamHealth
}

// get returns the entry for up, creating it; keep lists the keys the current
// config uses so entries of endpoints no longer configured are dropped.
func (t *healthTable) get(up *endpoint) *upstreamHealth {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*upstreamHealth{}
	}
	k := up.Scheme + "://" + up.Addr + "|" + up.Host
	u := t.m[k]
	if u == nil {
		u = &upstreamHealth{}
		t.m[k] = u
	}
	return u
}

// prune drops entries the sites of st do not use.
func (t *healthTable) prune(st *state) {
	keep := map[*upstreamHealth]bool{}
	for _, s := range st.sites {
		keep[s.primary.health] = true
		if s.fallback != nil {
			keep[s.fallback.health] = true
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, u := range t.m {
		if !keep[u] {
			delete(t.m, k)
		}
	}
}

// Probe keeps every site's upstream health fresh until ctx ends: each
// interval, an upstream that has not answered within the interval gets a
// cheap unsigned HEAD of the bucket root. Any HTTP answer (a 403 from a
// private bucket included) proves OSS is reachable; only a failure to get
// one leaves the upstream stale. interval <= 0 means DefaultProbeInterval.
func (h *Handler) Probe(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	h.probeInterval.Store(int64(interval))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		h.probeOnce(ctx, interval)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeOnce probes, in parallel, every stale upstream of the current config.
func (h *Handler) probeOnce(ctx context.Context, interval time.Duration) {
	st := h.state.Load()
	now := time.Now()
	var wg sync.WaitGroup
	seen := map[*upstreamHealth]bool{}
	for _, s := range st.sites {
		for _, up := range []*endpoint{s.primary, s.fallback} {
			if up == nil || seen[up.health] || up.health.since(now) < interval {
				continue
			}
			seen[up.health] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.probe(ctx, up, interval)
			}()
		}
	}
	wg.Wait()
}

func (h *Handler) probe(ctx context.Context, up *endpoint, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, up.Scheme+"://"+up.Addr+"/", nil)
	if err != nil {
		return
	}
	req.Host = up.Host
	req.Header.Set("User-Agent", "oss-gateway-probe")
	resp, err := h.state.Load().oss.Do(req)
	if err != nil {
		h.opts.Logger.Debug("upstream probe failed", "upstream", up.Addr, "error", err)
		return
	}
	resp.Body.Close()
	up.health.answered(time.Now())
}

// upstreamsReady reports the first site none of whose upstreams answered
// within three probe intervals.
func (h *Handler) upstreamsReady(st *state) error {
	window := 3 * time.Duration(h.probeInterval.Load())
	if window == 0 {
		return nil // nothing probes (tests of the handler alone)
	}
	now := time.Now()
	for _, s := range st.sites {
		age := s.primary.health.since(now)
		if s.fallback != nil {
			age = min(age, s.fallback.health.since(now))
		}
		if age > window {
			if s.primary.health.lastAnswer.Load() == 0 && (s.fallback == nil || s.fallback.health.lastAnswer.Load() == 0) {
				return fmt.Errorf("site %q: OSS at %s has not answered yet", s.name, s.primary.Addr)
			}
			return fmt.Errorf("site %q: OSS at %s has not answered for %s", s.name, s.primary.Addr, age.Round(time.Second))
		}
	}
	return nil
}
