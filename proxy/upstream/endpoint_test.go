package upstream

import (
	"testing"

	"github.com/oss-gateway/gateway/config"
)

func TestResolve(t *testing.T) {
	base := config.Site{Bucket: "bkt", Region: "cn-hangzhou", UpstreamScheme: "https"}
	tests := []struct {
		name                 string
		endpoint, host       string
		scheme               string
		wantScheme, wantAddr string
		wantHost             string
	}{
		{"public", "public", "", "", "https", "bkt.oss-cn-hangzhou.aliyuncs.com", "bkt.oss-cn-hangzhou.aliyuncs.com"},
		{"internal", "internal", "", "", "https", "bkt.oss-cn-hangzhou-internal.aliyuncs.com", "bkt.oss-cn-hangzhou-internal.aliyuncs.com"},
		{"accelerate", "accelerate", "", "", "https", "bkt.oss-accelerate.aliyuncs.com", "bkt.oss-accelerate.aliyuncs.com"},
		{"dualstack", "dualstack", "", "", "https", "bkt.cn-hangzhou.oss.aliyuncs.com", "bkt.cn-hangzhou.oss.aliyuncs.com"},
		{"http scheme", "internal", "", "http", "http", "bkt.oss-cn-hangzhou-internal.aliyuncs.com", "bkt.oss-cn-hangzhou-internal.aliyuncs.com"},
		{"url endpoint", "https://oss-cn-hangzhou.aliyuncs.com", "", "", "https", "oss-cn-hangzhou.aliyuncs.com", "bkt.oss-cn-hangzhou.aliyuncs.com"},
		{"url with port", "http://127.0.0.1:9000", "", "", "http", "127.0.0.1:9000", "bkt.127.0.0.1:9000"},
		{"cname mode keeps the dial address", "public", "static.example.com", "", "https", "bkt.oss-cn-hangzhou.aliyuncs.com", "static.example.com"},
		{"cname mode on url", "http://127.0.0.1:9000", "static.example.com", "", "http", "127.0.0.1:9000", "static.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			s.UpstreamHost = tc.host
			if tc.scheme != "" {
				s.UpstreamScheme = tc.scheme
			}
			u, err := Resolve(&s, tc.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			if u.Scheme != tc.wantScheme || u.Addr != tc.wantAddr || u.Host != tc.wantHost {
				t.Fatalf("got scheme %q addr %q host %q; want %q %q %q", u.Scheme, u.Addr, u.Host, tc.wantScheme, tc.wantAddr, tc.wantHost)
			}
		})
	}
	for _, bad := range []string{"ftp://x", "nonsense", "http://"} {
		if _, err := Resolve(&base, bad); err == nil {
			t.Errorf("Resolve(%q) succeeded", bad)
		}
	}
}
