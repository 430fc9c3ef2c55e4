package proxy

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
)

func TestSignCache(t *testing.T) {
	sec := time.Unix(1_800_000_000, 0)
	cred := credentials.Credentials{AccessKeyID: "LTAIcache", AccessKeySecret: "secret"}
	newReq := func(method, query string, hdr http.Header) *http.Request {
		if hdr == nil {
			hdr = http.Header{}
		}
		return &http.Request{Method: method, URL: &url.URL{Scheme: "http", Host: "bkt.oss", Path: "/a.jpg", RawQuery: query}, Header: hdr}
	}
	type call struct {
		method, key, region, query string
		hdr                        http.Header
		cred                       credentials.Credentials
		at                         time.Time
	}
	base := call{"GET", "a.jpg", "cn-hangzhou", "", nil, cred, sec.Add(300 * time.Millisecond)}
	for _, tc := range []struct {
		name   string
		change func(c *call)
		cached bool // the second call is answered from the table
	}{
		{"same request, same second", func(c *call) { c.at = sec.Add(900 * time.Millisecond) }, true},
		{"next second", func(c *call) { c.at = sec.Add(time.Second) }, false},
		{"other key", func(c *call) { c.key = "b.jpg" }, false},
		{"other method", func(c *call) { c.method = "HEAD" }, false},
		{"other query", func(c *call) { c.query = "x-oss-process=image%2Fresize%2Cw_100" }, false},
		{"other region", func(c *call) { c.region = "cn-beijing" }, false},
		{"content type", func(c *call) { c.hdr = http.Header{"Content-Type": {"image/png"}} }, false},
		{"rotated credentials", func(c *call) {
			c.cred = credentials.Credentials{AccessKeyID: "STS.new", AccessKeySecret: "s2", SecurityToken: "tok"}
		}, false},
		{"same id, new secret", func(c *call) { c.cred.AccessKeySecret = "other" }, false},
		{"unsigned header differs", func(c *call) { c.hdr = http.Header{"Range": {"bytes=0-9"}} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c signCache
			first := newReq(base.method, base.query, nil)
			if err := c.sign(context.Background(), first, "bkt", base.key, base.region, &base.cred, base.at); err != nil {
				t.Fatal(err)
			}
			// The first signature is the SDK's own for the start of the second.
			fresh := newReq(base.method, base.query, nil)
			if err := signRequest(context.Background(), fresh, "bkt", base.key, base.region, &base.cred, sec); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(first.Header, fresh.Header) {
				t.Fatalf("cached signing gave %v, the SDK %v", first.Header, fresh.Header)
			}
			// Mark the entry, so a hit shows.
			for _, e := range c.m {
				e.authz = "from-cache"
			}
			next := base
			tc.change(&next)
			second := newReq(next.method, next.query, next.hdr.Clone())
			if err := c.sign(context.Background(), second, "bkt", next.key, next.region, &next.cred, next.at); err != nil {
				t.Fatal(err)
			}
			if hit := second.Header.Get("Authorization") == "from-cache"; hit != tc.cached {
				t.Fatalf("answered from the table: %v, want %v (Authorization %q)", hit, tc.cached, second.Header.Get("Authorization"))
			}
			if !tc.cached {
				want := newReq(next.method, next.query, next.hdr.Clone())
				if err := signRequest(context.Background(), want, "bkt", next.key, next.region, &next.cred, time.Unix(next.at.Unix(), 0)); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(second.Header, want.Header) {
					t.Fatalf("re-signed %v, the SDK %v", second.Header, want.Header)
				}
			}
		})
	}
}

// TestSignCacheSkipsOwnOSSHeaders proves a request carrying x-oss-* headers
// of its own is signed afresh and never stored.
func TestSignCacheSkipsOwnOSSHeaders(t *testing.T) {
	var c signCache
	cred := credentials.Credentials{AccessKeyID: "LTAIcache", AccessKeySecret: "secret"}
	for i := 0; i < 2; i++ {
		req := &http.Request{Method: "GET", URL: &url.URL{Path: "/a"}, Header: http.Header{"X-Oss-Range-Behavior": {"standard"}}}
		if err := c.sign(context.Background(), req, "bkt", "a", "cn-hangzhou", &cred, time.Now()); err != nil {
			t.Fatal(err)
		}
		if req.Header.Get("Authorization") == "" {
			t.Fatal("not signed")
		}
	}
	if len(c.m) != 0 {
		t.Fatalf("%d entries stored for requests with their own x-oss-* headers", len(c.m))
	}
}

// BenchmarkSignCached is BenchmarkSign for a hot object: the signer runs
// once a second, every other request copies its headers.
func BenchmarkSignCached(b *testing.B) {
	var c signCache
	cred := credentials.Credentials{AccessKeyID: "LTAIbench", AccessKeySecret: "secret"}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("GET", "http://bkt.oss-cn-hangzhou.aliyuncs.com/images/photo.jpg", nil)
		if err := c.sign(context.Background(), req, "bkt", "images/photo.jpg", "cn-hangzhou", &cred, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
