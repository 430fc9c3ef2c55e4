package proxy

import (
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/oss-gateway/gateway/config"
)

// retryPolicy is a site's [site.retry]: which failures are worth another
// attempt and how long to wait before it. Acceleration endpoints answer
// 502/504 while they switch paths; a short, jittered retry hides that from
// clients without turning an outage into a stampede.
type retryPolicy struct {
	maxAttempts int
	base, max   time.Duration
	onStatus    [600]bool
	budget      *retryBudget
}

func newRetryPolicy(c config.Retry) *retryPolicy {
	p := &retryPolicy{
		maxAttempts: c.MaxAttempts,
		base:        c.BaseDelay.D(),
		max:         c.MaxDelay.D(),
		budget:      newRetryBudget(c.BudgetRatio),
	}
	if p.maxAttempts < 1 {
		p.maxAttempts = 1
	}
	for _, s := range c.OnStatus {
		if s >= 0 && s < len(p.onStatus) {
			p.onStatus[s] = true
		}
	}
	return p
}

// backoff is the full-jitter delay before retry n (1 = the first retry):
// uniform in [0, min(max, base*2^(n-1))], so that clients retrying the
// same failure spread out instead of arriving together.
func (p *retryPolicy) backoff(n int) time.Duration {
	d := p.base
	for i := 1; i < n && d < p.max; i++ {
		d *= 2
	}
	if d > p.max {
		d = p.max
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// retryBudget caps retries at a share of a site's client requests in each
// fixed 10 s window, with a floor so a quiet site can still retry. When OSS
// is down for everyone, retries stop multiplying the load on it.
type retryBudget struct {
	ratio   float64
	window  atomic.Int64 // index of the current window (unix seconds / 10)
	reqs    atomic.Int64
	retries atomic.Int64
}

const (
	budgetWindow = 10 * time.Second
	budgetFloor  = 10
)

func newRetryBudget(ratio float64) *retryBudget { return &retryBudget{ratio: ratio} }

func (b *retryBudget) roll(now time.Time) {
	w := now.UnixNano() / int64(budgetWindow)
	if old := b.window.Load(); old != w && b.window.CompareAndSwap(old, w) {
		b.reqs.Store(0)
		b.retries.Store(0)
	}
}

// request counts one client request.
func (b *retryBudget) request(now time.Time) {
	b.roll(now)
	b.reqs.Add(1)
}

// take spends one retry if the window still has budget for it.
func (b *retryBudget) take(now time.Time) bool {
	b.roll(now)
	limit := int64(b.ratio * float64(b.reqs.Load()))
	if limit < budgetFloor {
		limit = budgetFloor
	}
	if b.retries.Add(1) > limit {
		b.retries.Add(-1)
		return false
	}
	return true
}

// idempotent methods may be sent twice without changing what the client
// gets; nothing else is ever retried.
func idempotent(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// fetch asks OSS for key, retrying idempotent requests on the statuses and
// failures [site.retry] names, with backoff, within the client's context and
// the site's retry budget, and then once on fallback_endpoint. It returns
// OSS's response (the last one when every attempt failed with a status) or
// the gateway's own error.
func (h *Handler) fetch(r *http.Request, x *exchange, a ask) (*http.Response, *ossError) {
	s := x.site
	p := s.retry
	retryable := idempotent(a.method) && (!a.withBody || r.ContentLength == 0)
	up := s.primary
	for n := 1; ; n++ {
		resp, oerr, reason := h.attempt(r, x, up, a)
		if reason == "" || !retryable {
			return resp, oerr
		}
		next := up
		switch {
		case up == s.primary && n < p.maxAttempts:
		case up == s.primary && s.fallback != nil:
			next = s.fallback
		default:
			return resp, oerr
		}
		if !p.budget.take(time.Now()) {
			return resp, oerr
		}
		if resp != nil {
			discard(resp)
		}
		h.opts.Metrics.UpstreamRetries.WithLabelValues(s.name, reason).Inc()
		x.retries++
		t := time.NewTimer(p.backoff(n))
		select {
		case <-r.Context().Done():
			t.Stop()
			return nil, errClientGone
		case <-t.C:
		}
		up = next
	}
}

// attempt sends one request to up. reason is non-empty when the failure is
// one a retry may cure: "status" (a status in on_status), "timeout" (only
// when on_status has 504), "dial" or "reset".
func (h *Handler) attempt(r *http.Request, x *exchange, up *endpoint, a ask) (*http.Response, *ossError, string) {
	resp, oerr, reason := h.roundTrip(r, x, up, a)
	switch {
	case reason == "timeout" && !x.site.retry.onStatus[http.StatusGatewayTimeout]:
		return nil, oerr, ""
	case oerr != nil:
		return nil, oerr, reason
	case x.site.retry.onStatus[resp.StatusCode]:
		return resp, nil, "status"
	}
	return resp, nil, ""
}
