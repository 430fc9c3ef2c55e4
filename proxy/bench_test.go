package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/config"
)

// BenchmarkSign measures the SDK V4 signer on a typical GET.
func BenchmarkSign(b *testing.B) {
	cred := credentials.Credentials{AccessKeyID: "LTAIbench", AccessKeySecret: "secret"}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("GET", "http://bkt.oss-cn-hangzhou.aliyuncs.com/images/photo.jpg", nil)
		if err := signRequest(context.Background(), req, "bkt", "images/photo.jpg", "cn-hangzhou", &cred, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// fixedTransport answers every request with the same small object, so the
// handler benchmarks measure the gateway, not a network.
type fixedTransport struct{ body string }

func (f fixedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode:    200,
		Header:        http.Header{"Content-Type": {"image/jpeg"}, "Etag": {`"ABC"`}, "X-Oss-Request-Id": {"5F0000000000000000000000"}},
		Body:          io.NopCloser(strings.NewReader(f.body)),
		ContentLength: int64(len(f.body)),
		Request:       r,
	}, nil
}

// BenchmarkHandler is one 1 KiB GET through the whole request path, public
// and private (signed), with the upstream replaced by a fixed response.
func BenchmarkHandler(b *testing.B) {
	for _, access := range []string{"public", "private"} {
		b.Run(access, func(b *testing.B) {
			h := oneKiBHandler(b, access)
			req := httptest.NewRequest("GET", "http://img.example.com/images/photo.jpg", nil)
			req.RemoteAddr = "203.0.113.9:4567"
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}

// BenchmarkHandlerParallel runs BenchmarkHandler's requests from every P at
// once. With -cpu 1,2 it shows whether the request path scales across cores
// (no lock or shared counter that serialises requests): ns/op should halve.
func BenchmarkHandlerParallel(b *testing.B) {
	for _, access := range []string{"public", "private"} {
		b.Run(access, func(b *testing.B) {
			h := oneKiBHandler(b, access)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "http://img.example.com/images/photo.jpg", nil)
				req.RemoteAddr = "203.0.113.9:4567"
				for pb.Next() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatal(w.Code)
					}
				}
			})
		})
	}
}

// benchHandler builds a handler for one site "img" on img.example.com,
// of the given access type, with extra TOML appended to the site.
func benchHandler(tb testing.TB, access, extra string, opts Options) *Handler {
	cfg, err := config.Parse("bench.toml", []byte(`
[server]
https_listen = ""
[[site]]
name = "img"
domains = ["img.example.com"]
bucket = "bkt"
region = "cn-hangzhou"
access = "`+access+`"
tls = "off"
`+extra))
	if err != nil {
		tb.Fatal(err)
	}
	h, err := New(cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// oneKiBHandler is benchHandler with a 1 KiB object behind it and keys.
func oneKiBHandler(tb testing.TB, access string) *Handler {
	return benchHandler(tb, access, "", Options{
		Transport:   fixedTransport{body: strings.Repeat("x", 1024)},
		Credentials: credentials.NewStaticCredentialsProvider("LTAIbench", "secret"),
	})
}

// BenchmarkPolicy is the policy work of a request that passes every rule of
// a fully configured site: IP allowlist, per-IP and site rate limits (set
// high), CORS, Referer, disposition parameter. The client IP is the same on
// every iteration, so its limiter exists after the first request.
func BenchmarkPolicy(b *testing.B) {
	run := policyBench(b)
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
}

// TestPolicyDoesNotAllocate holds BenchmarkPolicy's request to zero heap
// allocations on every test run, not only when someone benchmarks.
func TestPolicyDoesNotAllocate(t *testing.T) {
	run := policyBench(t)
	run() // the first request creates the client's limiter
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Fatalf("policy work allocates %v times per request", n)
	}
}

func policyBench(b testing.TB) func() {
	h := benchHandler(b, "public", `cors_vary_origin = true
[site.referer]
allow_empty = false
allow = ["https://*.example.com/*", "https://partner.example.org/*"]
deny = ["https://bad.example.com/*"]
[[site.cors]]
allowed_origins = ["https://www.example.com"]
allowed_methods = ["GET", "HEAD"]
expose_headers = ["ETag"]
[site.limits]
per_ip_rps = 1e9
site_rps = 1e9
allow_ips = ["203.0.113.0/24", "2001:db8::/32"]
`, Options{Transport: fixedTransport{}})
	st := h.state.Load()
	s := st.routes.lookup("img.example.com")
	req := httptest.NewRequest("GET", "http://img.example.com/images/photo.jpg", nil)
	req.RemoteAddr = "203.0.113.9:4567"
	req.Header.Set("Referer", "https://www.example.com/gallery/1.html")
	req.Header.Set("Origin", "https://www.example.com")
	w := &nopWriter{h: http.Header{}}
	x := &exchange{st: st, site: s}
	return func() {
		*x = exchange{st: st, site: s, client: clientIP(req.RemoteAddr, nil, st.trusted)}
		clear(w.h)
		if !h.admit(w, req, s, x) {
			b.Fatal("refused")
		}
	}
}

// nopWriter is a ResponseWriter that keeps nothing.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkHandlerCacheHit is BenchmarkHandler/public answered from the
// object cache: what a hit costs above routing and policy (lookup, headers
// from the stored response, the body from memory). Compare with
// BenchmarkHandler/public, whose fixed transport costs next to nothing, so
// the difference is the hit path's own.
func BenchmarkHandlerCacheHit(b *testing.B) {
	h := benchHandler(b, "public", `
[site.cache]
enabled = true
ttl = "1h"
[cache]
path = "`+b.TempDir()+`"
memory = "64MiB"
`, Options{Transport: fixedTransport{body: strings.Repeat("x", 1024)}})
	b.Cleanup(func() { _ = h.Close() })
	req := httptest.NewRequest("GET", "http://img.example.com/images/photo.jpg", nil)
	req.RemoteAddr = "203.0.113.9:4567"
	for i := 0; ; i++ { // the fill completes in the background
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Header().Get("X-Cache") == "HIT" {
			break
		}
		if i > 1000 {
			b.Fatalf("no hit after %d requests: X-Cache %q", i, w.Header().Get("X-Cache"))
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 || w.Body.Len() != 1024 {
			b.Fatal(w.Code, w.Body.Len())
		}
	}
}
