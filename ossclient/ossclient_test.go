package ossclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossclient"
	"github.com/oss-gateway/gateway/ossemu"
	"github.com/oss-gateway/gateway/proxy/upstream"
)

// TestURLEndpointRoundTrip builds a client for a site whose endpoint is a
// URL on 127.0.0.1 and proves, against the emulator (which verifies V4
// independently of the SDK), that it addresses the bucket path-style and
// signs every request.
func TestURLEndpointRoundTrip(t *testing.T) {
	emu := ossemu.New(ossemu.Options{Region: "cn-hangzhou"})
	emu.AddCredential("LTAIclient", "client-secret", "")
	emu.CreateBucket("ctl-bucket", ossemu.Private)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := emu.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	site := &config.Site{Bucket: "ctl-bucket", Region: "cn-hangzhou", Endpoint: "http://" + addr, UpstreamScheme: "https"}
	c, err := ossclient.New(ossclient.ForSite(site), credentials.NewStaticCredentialsProvider("LTAIclient", "client-secret"), ossclient.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := context.Background()
	const key, body = "certs/a b+c.pem", "round trip through the SDK client"
	if _, err := c.PutObject(ctx, &oss.PutObjectRequest{Bucket: oss.Ptr("ctl-bucket"), Key: oss.Ptr(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	res, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("ctl-bucket"), Key: oss.Ptr(key)})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(got) != body {
		t.Fatalf("GetObject body = %q, %v", got, err)
	}
	if stored, ok := emu.Object("ctl-bucket", key); !ok || string(stored) != body {
		t.Fatalf("emulator holds %q, %v", stored, ok)
	}

	reqs := emu.Requests()
	if len(reqs) != 2 {
		t.Fatalf("emulator saw %d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		// Path style: the Host is the endpoint itself, the bucket leads the path.
		if r.Host != addr || !strings.HasPrefix(r.RawPath, "/ctl-bucket/certs/") || r.Key != key || r.Bucket != "ctl-bucket" {
			t.Errorf("%s host=%q path=%q bucket=%q key=%q, want path-style on %s", r.Method, r.Host, r.RawPath, r.Bucket, r.Key, addr)
		}
		if !r.Signed || !strings.HasPrefix(r.Header.Get("Authorization"), "OSS4-HMAC-SHA256 Credential=LTAIclient/") {
			t.Errorf("%s not V4-signed: signed=%v Authorization=%q", r.Method, r.Signed, r.Header.Get("Authorization"))
		}
		if r.Status != 200 {
			t.Errorf("%s answered %d", r.Method, r.Status)
		}
	}

	// A wrong secret is refused by the emulator, so the signature above was
	// really checked.
	bad, err := ossclient.New(ossclient.ForSite(site), credentials.NewStaticCredentialsProvider("LTAIclient", "wrong"), ossclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("ctl-bucket"), Key: oss.Ptr(key)})
	var se *oss.ServiceError
	if !errors.As(err, &se) || se.Code != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestNewRefusesBadTargets(t *testing.T) {
	p := credentials.NewStaticCredentialsProvider("ak", "sk")
	tests := []struct {
		name   string
		target ossclient.Target
	}{
		{"ftp URL", ossclient.Target{Bucket: "b-1", Region: "cn-hangzhou", Endpoint: "ftp://127.0.0.1:21"}},
		{"URL without host", ossclient.Target{Bucket: "b-1", Region: "cn-hangzhou", Endpoint: "http://"}},
		{"host without scheme", ossclient.Target{Bucket: "b-1", Region: "cn-hangzhou", Endpoint: "oss-cn-hangzhou.aliyuncs.com"}},
		{"unparsable URL", ossclient.Target{Bucket: "b-1", Region: "cn-hangzhou", Endpoint: "http://[::1"}},
		{"unknown keyword", ossclient.Target{Bucket: "b-1", Region: "cn-hangzhou", Endpoint: "private"}},
		{"no bucket", ossclient.Target{Region: "cn-hangzhou", Endpoint: "public"}},
		{"no region", ossclient.Target{Bucket: "b-1", Endpoint: "public"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := ossclient.New(tt.target, p, ossclient.Options{}); err == nil || c != nil {
				t.Fatalf("New(%+v) = %v, %v; want an error", tt.target, c, err)
			}
		})
	}
	for _, kw := range []string{"", "public", "internal", "accelerate", "dualstack", "https://oss-cn-hangzhou.aliyuncs.com"} {
		if _, err := ossclient.New(ossclient.Target{Bucket: "b-1", Region: "cn-hangzhou", Endpoint: kw}, p, ossclient.Options{}); err != nil {
			t.Errorf("endpoint %q: %v", kw, err)
		}
	}
}

// TestKeywordEndpointsMatchTheProxy proves a control-plane client reaches
// a bucket at the host the proxy sends its requests to, for every endpoint
// keyword and scheme: the two read one keyword table. A presigned URL shows
// the SDK's address without a request leaving the machine.
func TestKeywordEndpointsMatchTheProxy(t *testing.T) {
	for _, kw := range []string{"public", "internal", "accelerate", "dualstack"} {
		for _, scheme := range []string{"https", "http"} {
			site := config.Site{Bucket: "bkt", Region: "cn-shanghai", Endpoint: kw, UpstreamScheme: scheme}
			want, err := upstream.Resolve(&site, kw)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ossclient.New(ossclient.ForSite(&site), credentials.NewStaticCredentialsProvider("ak", "sk"), ossclient.Options{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Presign(context.Background(), &oss.GetObjectRequest{Bucket: oss.Ptr("bkt"), Key: oss.Ptr("k")})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(res.URL, want.Scheme+"://"+want.Addr+"/k?") {
				t.Errorf("%s over %s: SDK URL %s, proxy dials %s://%s", kw, scheme, res.URL, want.Scheme, want.Addr)
			}
		}
	}
}
