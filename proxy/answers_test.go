package proxy_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestLogAndMetricsMatchWhatClientSaw: for every answer the gateway makes
// itself (refusals, errors, the HTTP-to-HTTPS redirect), the access log's
// status and bytes_out, gateway_requests_total and
// gateway_response_bytes_total say what the client received, and a 5xx
// line names its upstream cause.
func TestLogAndMetricsMatchWhatClientSaw(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	e := newEnv(t, envOpts{sites: trustSite + `
[[site]]
name = "dead"
domains = ["dead.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://` + deadAddr + `"
access = "private"
tls = "off"
[site.retry]
max_attempts = 1
[site.referer]
allow_empty = false
allow = ["https://ok.test/*"]
`})
	tests := []struct {
		name, method, host, target string
		hdr                        http.Header
		site                       string
		status                     int
		cause                      bool // the log names an upstream cause
	}{
		{"unknown host", "GET", "nobody.test", "/a", nil, "unknown", 421, false},
		{"bad path", "GET", "tb.test", "/%2e%2e/x", nil, "tb", 400, false},
		{"method", "PATCH", "tb.test", "/a", nil, "tb", 405, false},
		{"copy refused", "PUT", "tb.test", "/a", http.Header{"X-Oss-Copy-Source": {"/x/y"}}, "tb", 403, false},
		{"process refused", "GET", "tb.test", "/a?x-oss-process=sys/saveas,o_eA", nil, "tb", 403, false},
		{"duplicate query", "GET", "tb.test", "/a?versionId=1&versionId=2", nil, "tb", 400, false},
		{"referer", "GET", "dead.test", "/a", nil, "dead", 403, false},
		{"head refusal", "HEAD", "tb.test", "/a?x-oss-process=sys/saveas,o_eA", nil, "tb", 403, false},
		{"upstream down", "GET", "dead.test", "/a", http.Header{"Referer": {"https://ok.test/p"}}, "dead", 502, true},
		{"OSS 404", "GET", "tb.test", "/missing", nil, "tb", 404, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bytesBefore := counterValue(t, e.reg, "gateway_response_bytes_total", map[string]string{"site": tc.site})
			reqsBefore := counterValue(t, e.reg, "gateway_requests_total", map[string]string{"site": tc.site, "code": strconv.Itoa(tc.status)})
			resp := e.do(tc.method, tc.host, tc.target, tc.hdr, nil)
			body := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			line := logLine(t, e, resp.Header.Get("X-Request-Id"))
			if line["status"] != float64(tc.status) || line["bytes_out"] != float64(len(body)) || line["site"] != tc.site {
				t.Errorf("log says site %v status %v bytes %v; client got %d with %d bytes", line["site"], line["status"], line["bytes_out"], tc.status, len(body))
			}
			if cause, _ := line["upstream_error"].(string); (cause != "") != tc.cause {
				t.Errorf("upstream_error = %q", cause)
			}
			if tc.site == "unknown" {
				return // bytes are counted per site
			}
			if got := counterValue(t, e.reg, "gateway_response_bytes_total", map[string]string{"site": tc.site}); got-bytesBefore != float64(len(body)) {
				t.Errorf("response bytes grew by %v, client got %d", got-bytesBefore, len(body))
			}
			if got := counterValue(t, e.reg, "gateway_requests_total", map[string]string{"site": tc.site, "code": strconv.Itoa(tc.status)}); got != reqsBefore+1 {
				t.Errorf("requests{code=%d} went %v -> %v", tc.status, reqsBefore, got)
			}
		})
	}

	// The redirect to HTTPS, answered by the handler for the TLS layer.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://tb.test/a.jpg?x=1", nil)
	e.h.Redirect(rec, req, "https://tb.test/a.jpg?x=1")
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 308 || res.Header.Get("Location") != "https://tb.test/a.jpg?x=1" || len(b) != 0 || res.Header.Get("X-Request-Id") == "" {
		t.Fatalf("redirect: %d %v %q", res.StatusCode, res.Header, b)
	}
	line := logLine(t, e, res.Header.Get("X-Request-Id"))
	if line["status"] != float64(308) || line["bytes_out"] != float64(0) || line["site"] != "tb" {
		t.Errorf("redirect log line %v", line)
	}
	if got := counterValue(t, e.reg, "gateway_requests_total", map[string]string{"site": "tb", "code": "308"}); got != 1 {
		t.Errorf("requests{code=308} = %v", got)
	}
}
