package main

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossemu"
)

// designMetrics is the documented metrics table: every name, its type and
// its labels.
var designMetrics = map[string]struct {
	typ    dto.MetricType
	labels []string
}{
	"gateway_requests_total":                               {dto.MetricType_COUNTER, []string{"code", "method", "site"}},
	"gateway_request_duration_seconds":                     {dto.MetricType_HISTOGRAM, []string{"method", "site"}},
	"gateway_response_bytes_total":                         {dto.MetricType_COUNTER, []string{"site"}},
	"gateway_request_bytes_total":                          {dto.MetricType_COUNTER, []string{"site"}},
	"gateway_inflight_requests":                            {dto.MetricType_GAUGE, []string{"site"}},
	"gateway_upstream_requests_total":                      {dto.MetricType_COUNTER, []string{"code", "endpoint", "site"}},
	"gateway_upstream_duration_seconds":                    {dto.MetricType_HISTOGRAM, []string{"endpoint", "site"}},
	"gateway_upstream_retries_total":                       {dto.MetricType_COUNTER, []string{"reason", "site"}},
	"gateway_denied_total":                                 {dto.MetricType_COUNTER, []string{"reason", "site"}},
	"gateway_tls_certificate_expiry_timestamp_seconds":     {dto.MetricType_GAUGE, []string{"domain"}},
	"gateway_config_reloads_total":                         {dto.MetricType_COUNTER, []string{"result"}},
	"gateway_config_last_reload_successful":                {dto.MetricType_GAUGE, nil},
	"gateway_config_last_reload_success_timestamp_seconds": {dto.MetricType_GAUGE, nil},
	"gateway_tls_handshake_errors_total":                   {dto.MetricType_COUNTER, []string{"reason"}},
	"gateway_build_info":                                   {dto.MetricType_GAUGE, []string{"goversion", "revision", "version"}},
}

// TestMetricsAfterTraffic drives the binary through every kind of outcome
// (success, upload, OSS error, unknown host, each denial, a retry, the
// fallback, a reload) and then checks the scrape: every documented metric with
// its type and exact label names, label values from the bounded sets only,
// and the counts the traffic implies.
func TestMetricsAfterTraffic(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	emu.CreateBucket("bkt", ossemu.Private)
	emu.PutObject("bkt", "a.txt", []byte("hello metrics"), nil)
	certFile, keyFile := cnameTestCertificate(t, "m.test")

	cfg := fmt.Sprintf(`
[server]
http_listen = "HTTPADDR"
https_listen = "%s"
redirect_http = false

[admin]
listen = "ADMINADDR"

[credentials]
source = "env"

[[site]]
name = "m"
domains = ["m.test"]
bucket = "bkt"
region = "cn-hangzhou"
endpoint = "http://%s"
fallback_endpoint = "http://%s"
access = "private"
methods = ["GET", "HEAD", "PUT"]
tls = "files"
cert_file = %q
key_file = %q
[site.referer]
allow_empty = true
deny = ["https://evil.example/*"]
[site.retry]
max_attempts = 2
base_delay = "1ms"
max_delay = "2ms"
`, freePort(t), emuAddr, emuAddr, certFile, keyFile)
	p := startGateway(t, cfg, testCredentials...)

	get := func(host, path string, hdr http.Header) int {
		resp, _ := p.get(t, host, path, hdr)
		return resp.StatusCode
	}
	for i := 0; i < 3; i++ {
		if c := get("m.test", "/a.txt", nil); c != 200 {
			t.Fatalf("GET = %d", c)
		}
	}
	if c := get("m.test", "/missing.txt", nil); c != 404 {
		t.Fatalf("missing = %d", c)
	}
	if c := get("nobody.test", "/a.txt", nil); c != 421 {
		t.Fatalf("unknown host = %d", c)
	}
	if c := get("m.test", "/a.txt", http.Header{"Referer": {"https://evil.example/x"}}); c != 403 {
		t.Fatalf("denied referer = %d", c)
	}
	if c := get("m.test", "/a/../b", nil); c != 400 {
		t.Fatalf("dot segment = %d", c)
	}
	req, _ := http.NewRequest("DELETE", "http://"+p.http+"/a.txt", nil)
	req.Host = "m.test"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Fatalf("DELETE: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	req, _ = http.NewRequest("PUT", "http://"+p.http+"/up.txt", strings.NewReader("0123456789"))
	req.Host = "m.test"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// Two 503s use up both attempts on the primary; the fallback answers.
	emu.AddFault(ossemu.Fault{Key: "a.txt", Times: 2, Status: 503})
	if c := get("m.test", "/a.txt", nil); c != 200 {
		t.Fatalf("GET through the fallback = %d", c)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var fams map[string]*dto.MetricFamily
	testkit.Eventually(t, 10*time.Second, "the reload counted in /metrics", func() bool {
		fams = parseScrape(t, scrape(t, p.admin))
		return sum(fams, "gateway_config_reloads_total", map[string]string{"result": "success"}) == 1
	})

	for name, want := range designMetrics {
		f := fams[name]
		if f == nil {
			t.Errorf("%s missing from /metrics", name)
			continue
		}
		if f.GetType() != want.typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), want.typ)
		}
		if len(f.GetMetric()) == 0 {
			t.Errorf("%s has no series after the traffic", name)
		}
		for _, m := range f.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName())
				checkLabelValue(t, name, l.GetName(), l.GetValue())
			}
			sort.Strings(got)
			if !slices.Equal(got, want.labels) {
				t.Errorf("%s has labels %v, want %v", name, got, want.labels)
			}
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing: the Go and process collectors are not registered", name)
		}
	}

	counts := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gateway_requests_total", map[string]string{"site": "m", "method": "GET", "code": "200"}, 4},
		{"gateway_requests_total", map[string]string{"site": "m", "method": "GET", "code": "404"}, 1},
		{"gateway_requests_total", map[string]string{"site": "m", "method": "GET", "code": "403"}, 1},
		{"gateway_requests_total", map[string]string{"site": "m", "method": "GET", "code": "400"}, 1},
		{"gateway_requests_total", map[string]string{"site": "m", "method": "DELETE", "code": "405"}, 1},
		{"gateway_requests_total", map[string]string{"site": "m", "method": "PUT", "code": "200"}, 1},
		{"gateway_requests_total", map[string]string{"site": "unknown", "method": "GET", "code": "421"}, 1},
		{"gateway_denied_total", map[string]string{"site": "m", "reason": "referer"}, 1},
		{"gateway_denied_total", map[string]string{"site": "m", "reason": "method"}, 1},
		{"gateway_denied_total", map[string]string{"site": "m", "reason": "path"}, 1},
		{"gateway_upstream_retries_total", map[string]string{"site": "m", "reason": "status"}, 2},
		{"gateway_upstream_requests_total", map[string]string{"site": "m", "endpoint": "primary", "code": "503"}, 2},
		{"gateway_upstream_requests_total", map[string]string{"site": "m", "endpoint": "fallback", "code": "200"}, 1},
		{"gateway_upstream_requests_total", map[string]string{"site": "m", "endpoint": "primary", "code": "404"}, 1},
		{"gateway_request_bytes_total", map[string]string{"site": "m"}, 10},
		{"gateway_response_bytes_total", map[string]string{"site": "m"}, -1}, // checked below
		{"gateway_inflight_requests", map[string]string{"site": "m"}, 0},
		{"gateway_config_reloads_total", map[string]string{"result": "success"}, 1},
		{"gateway_build_info", map[string]string{"version": "dev"}, 1},
	}
	for _, c := range counts {
		got := sum(fams, c.name, c.labels)
		if c.want >= 0 && got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := sum(fams, "gateway_response_bytes_total", map[string]string{"site": "m"}); got < 4*float64(len("hello metrics")) {
		t.Errorf("response bytes = %v, want at least the four bodies", got)
	}
	if n := histCount(fams, "gateway_request_duration_seconds", map[string]string{"site": "m", "method": "GET"}); n != 7 {
		t.Errorf("request duration count for GET = %d, want 7", n)
	}
	if n := histCount(fams, "gateway_upstream_duration_seconds", map[string]string{"site": "m", "endpoint": "primary"}); n < 6 {
		t.Errorf("upstream duration count = %d, want every primary attempt", n)
	}
	// Buckets span a 1 KiB image on a warm connection to a long download.
	for _, m := range fams["gateway_request_duration_seconds"].GetMetric() {
		b := m.GetHistogram().GetBucket()
		if b[0].GetUpperBound() > 0.001 || b[len(b)-1].GetUpperBound() < 300 {
			t.Errorf("duration buckets run %v..%v s", b[0].GetUpperBound(), b[len(b)-1].GetUpperBound())
		}
		break
	}
	if v := sum(fams, "gateway_tls_certificate_expiry_timestamp_seconds", map[string]string{"domain": "m.test"}); v < float64(time.Now().Unix()) {
		t.Errorf("certificate expiry = %v", v)
	}
}

// checkLabelValue fails on a label value outside the bounded sets the contract
// fixes: no label may carry raw client input.
func checkLabelValue(t *testing.T, metric, label, value string) {
	t.Helper()
	ok := true
	switch label {
	case "site":
		ok = value == "m" || value == "unknown"
	case "method":
		ok = slices.Contains([]string{"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "other"}, value) || value == "OTHER"
	case "code":
		ok = len(value) == 3 || value == "0"
	case "endpoint":
		ok = value == "primary" || value == "fallback"
	case "reason":
		switch metric {
		case "gateway_upstream_retries_total":
			ok = slices.Contains([]string{"status", "reset", "dial", "timeout", "body_cut"}, value)
		case "gateway_tls_handshake_errors_total":
			ok = slices.Contains([]string{"eof", "timeout", "unknown_server_name", "protocol_version", "no_shared_cipher", "not_tls", "client_rejected_certificate", "other"}, value)
		default:
			ok = slices.Contains([]string{"referer", "cors", "ip", "rate_limit", "method", "url_auth", "path", "header", "process"}, value)
		}
	case "result":
		ok = value == "success" || value == "error"
	case "domain":
		ok = value == "m.test"
	}
	if !ok {
		t.Errorf("%s{%s=%q}: value outside the bounded set", metric, label, value)
	}
}

func parseScrape(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// matches reports whether m carries every label in want.
func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// sum adds the counter or gauge values of name's series matching labels.
func sum(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	var v float64
	for _, m := range fams[name].GetMetric() {
		if matches(m, labels) {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}

func histCount(fams map[string]*dto.MetricFamily, name string, labels map[string]string) uint64 {
	var n uint64
	for _, m := range fams[name].GetMetric() {
		if matches(m, labels) {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}
