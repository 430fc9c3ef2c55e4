package ossemu

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/internal/testkit"
)

const testRegion = "cn-hangzhou"

// startEmulator serves a new emulator on 127.0.0.1 and returns it with its
// address (host:port).
func startEmulator(t *testing.T, o Options) (*Emulator, string) {
	t.Helper()
	e := New(o)
	return e, testkit.Serve(t, e.Serve)
}

// listen opens a listener on a free 127.0.0.1 port, closed when the test
// ends (TestFaultDelay serves on it by hand).
// sdkClient is an official SDK client pointed at the emulator (path style,
// since the endpoint is an IP), without retries so errors surface as is.
func sdkClient(addr, ak, sk, token string, region string) *oss.Client {
	cfg := oss.LoadDefaultConfig().
		WithRegion(region).
		WithEndpoint("http://" + addr).
		WithCredentialsProvider(credentials.NewStaticCredentialsProvider(ak, sk, token)).
		WithRetryMaxAttempts(1)
	return oss.NewClient(cfg)
}

// freshClient is an http.Client that never reuses connections, so a fault
// on one request is not hidden by the transport's automatic retry of
// idempotent requests on reused connections.
func freshClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// response is a fully read HTTP response.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request; host overrides the Host header when non-empty.
func do(t *testing.T, method, url, host string, hdr http.Header, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if host != "" {
		req.Host = host
	}
	resp, err := freshClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// errorCode extracts <Code> from an OSS error body.
func errorCode(body string) string {
	_, rest, ok := strings.Cut(body, "<Code>")
	if !ok {
		return ""
	}
	code, _, _ := strings.Cut(rest, "</Code>")
	return code
}

// serviceError unwraps an SDK error into the OSS service error.
func serviceError(t *testing.T, err error) *oss.ServiceError {
	t.Helper()
	var se *oss.ServiceError
	if !errors.As(err, &se) {
		t.Fatalf("want an OSS service error, got %v", err)
	}
	return se
}

// lastRequest is the last logged request.
func lastRequest(t *testing.T, e *Emulator) Request {
	t.Helper()
	rs := e.Requests()
	if len(rs) == 0 {
		t.Fatal("no request logged")
	}
	return rs[len(rs)-1]
}
