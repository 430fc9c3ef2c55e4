package proxy

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSiteMetricsHotSeries proves the cached series of the commonest
// answers count into the same series as the uncached path, and that a
// series appears only once it happened.
func TestSiteMetricsHotSeries(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	sm := newSiteMetrics(m, "s")
	if n := testutil.CollectAndCount(m.Requests); n != 0 {
		t.Fatalf("%d request series before any request", n)
	}
	for _, c := range []struct {
		method string
		code   int
	}{{"GET", 200}, {"GET", 200}, {"HEAD", 200}, {"GET", 304}, {"PUT", 200}, {"GET", 503}, {"BREW", 404}} {
		sm.request(c.method, c.code).Inc()
	}
	for _, c := range []struct {
		endpoint string
		code     int
	}{{"primary", 200}, {"primary", 200}, {"fallback", 200}, {"primary", 0}, {"fallback", 206}} {
		sm.upstream(c.endpoint, c.code).Inc()
	}
	for _, w := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"s", "GET", "200"}, 2}, {[]string{"s", "HEAD", "200"}, 1}, {[]string{"s", "GET", "304"}, 1},
		{[]string{"s", "PUT", "200"}, 1}, {[]string{"s", "GET", "503"}, 1}, {[]string{"s", "other", "404"}, 1},
	} {
		if got := testutil.ToFloat64(m.Requests.WithLabelValues(w.labels...)); got != w.want {
			t.Errorf("requests%v = %v, want %v", w.labels, got, w.want)
		}
	}
	for _, w := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"s", "primary", "200"}, 2}, {[]string{"s", "fallback", "200"}, 1},
		{[]string{"s", "primary", "0"}, 1}, {[]string{"s", "fallback", "206"}, 1},
	} {
		if got := testutil.ToFloat64(m.Upstream.WithLabelValues(w.labels...)); got != w.want {
			t.Errorf("upstream%v = %v, want %v", w.labels, got, w.want)
		}
	}
}
