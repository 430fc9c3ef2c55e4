package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/config"
)

// BenchmarkSign measures the SDK V4 signer on a typical GET.
func BenchmarkSign(b *testing.B) {
	cred := credentials.Credentials{AccessKeyID: "LTAIbench", AccessKeySecret: "secret"}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("GET", "http://bkt.oss-cn-hangzhou.aliyuncs.com/images/photo.jpg", nil)
		if err := signRequest(context.Background(), req, "bkt", "images/photo.jpg", "cn-hangzhou", &cred); err != nil {
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
`))
			if err != nil {
				b.Fatal(err)
			}
			h, err := New(cfg, Options{
				Transport:   fixedTransport{body: strings.Repeat("x", 1024)},
				Credentials: credentials.NewStaticCredentialsProvider("LTAIbench", "secret"),
			})
			if err != nil {
				b.Fatal(err)
			}
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
