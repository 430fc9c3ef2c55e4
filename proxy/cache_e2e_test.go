package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossemu"
	"github.com/oss-gateway/gateway/proxy"
)

// cacheSites are a public and a private cache-enabled site, both with a
// Referer rule, in front of the emulator's buckets.
const cacheSites = `
[[site]]
name = "cpub"
domains = ["cpub.test"]
bucket = "pub-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "public"
tls = "off"
methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
[site.referer]
allow_empty = true
deny = ["https://evil.example.com/*"]
[site.cache]
enabled = true
ttl = "%s"
stale_if_error = "%s"

[[site]]
name = "cprv"
domains = ["cprv.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
tls = "off"
methods = ["GET", "HEAD", "PUT", "DELETE"]
[site.referer]
allow_empty = true
deny = ["https://evil.example.com/*"]
[site.cache]
enabled = true
ttl = "%s"
stale_if_error = "%s"

[[site]]
name = "nocache"
domains = ["nocache.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
tls = "off"
methods = ["GET", "HEAD", "PUT", "DELETE"]
`

func newCacheEnv(t *testing.T, ttl, stale string) *env {
	t.Helper()
	return newCacheEnvTimeout(t, ttl, stale, "300ms")
}

// newCacheEnvTimeout is newCacheEnv with another upstream_header_timeout
// (which also bounds a stalled body): tests whose fills must not fail on a
// busy machine give OSS seconds, not the 300ms that makes timeouts quick
// to provoke.
func newCacheEnvTimeout(t *testing.T, ttl, stale, headerTimeout string) *env {
	t.Helper()
	return newEnv(t, envOpts{
		server: fmt.Sprintf("upstream_header_timeout = %q\n", headerTimeout),
		top:    fmt.Sprintf("[cache]\npath = %q\nmax_size = \"64MiB\"\nmemory = \"1MiB\"\nmax_object_size = \"8MiB\"\n", t.TempDir()),
		sites:  fmt.Sprintf(cacheSites, ttl, stale, ttl, stale),
	})
}

// ossGets counts the GETs of key the emulator received.
func (e *env) ossGets(key string) int {
	n := 0
	for _, r := range e.emu.Requests() {
		if r.Method == http.MethodGet && r.Key == key {
			n++
		}
	}
	return n
}

// waitHit polls until target is a HIT with body: for fills whose client
// left before their end, which are stored in the background.
func waitHit(t *testing.T, e *env, host, target, body string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp := e.do("GET", host, target, nil, nil)
		if got := readBody(t, resp); got != body {
			t.Fatalf("GET %s%s: body %q, want %q", host, target, got, body)
		}
		if resp.Header.Get("X-Cache") == "HIT" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s%s: never a HIT", host, target)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getCached(t *testing.T, e *env, host, target string, hdr http.Header, wantStatus int, wantXCache, wantBody string) *http.Response {
	t.Helper()
	resp := e.do("GET", host, target, hdr, nil)
	body := readBody(t, resp)
	if resp.StatusCode != wantStatus || resp.Header.Get("X-Cache") != wantXCache || body != wantBody {
		t.Fatalf("GET %s %s: status %d X-Cache %q body %q; want %d %q %q", host, target, resp.StatusCode, resp.Header.Get("X-Cache"), body, wantStatus, wantXCache, wantBody)
	}
	return resp
}

// A second GET is answered from the cache with no OSS request, on a
// public and a private (signed) site; a site without [site.cache] is
// untouched.
func TestCacheHitServesWithoutOSS(t *testing.T) {
	e := newCacheEnv(t, "1m", "1m")
	for _, c := range []struct{ host, key, body string }{{"cpub.test", "hello.txt", "hello public"}, {"cprv.test", "secret.txt", "hello private"}} {
		getCached(t, e, c.host, "/"+c.key, nil, 200, "MISS", c.body)
		before := e.ossGets(c.key)
		resp := getCached(t, e, c.host, "/"+c.key, nil, 200, "HIT", c.body)
		if resp.Header.Get("Content-Type") != "text/plain" || resp.Header.Get("ETag") == "" || resp.ContentLength != int64(len(c.body)) {
			t.Fatalf("hit headers %v", resp.Header)
		}
		if n := e.ossGets(c.key); n != before {
			t.Fatalf("%s: hit made %d OSS GETs", c.host, n-before)
		}
	}
	resp := e.do("GET", "pub.test", "/hello.txt", nil, nil)
	readBody(t, resp)
	if xc := resp.Header.Get("X-Cache"); xc != "" {
		t.Fatalf("site without cache: X-Cache %q", xc)
	}
	if v := counterValue(t, e.reg, "gateway_cache_requests_total", map[string]string{"site": "cpub", "result": "hit"}); v != 1 {
		t.Fatalf("hit counter %v", v)
	}
}

// Policy runs before the cache: a denied Referer is refused for a key the
// cache holds, on both sites.
func TestCachePolicyAppliesToHits(t *testing.T) {
	e := newCacheEnv(t, "1m", "1m")
	for _, c := range []struct{ host, key, body string }{{"cpub.test", "hello.txt", "hello public"}, {"cprv.test", "secret.txt", "hello private"}} {
		getCached(t, e, c.host, "/"+c.key, nil, 200, "MISS", c.body)
		getCached(t, e, c.host, "/"+c.key, nil, 200, "HIT", c.body)
		resp := e.do("GET", c.host, "/"+c.key, http.Header{"Referer": {"https://evil.example.com/x"}}, nil)
		body := readBody(t, resp)
		if resp.StatusCode != 403 || !strings.Contains(body, "referer") || resp.Header.Get("X-Cache") != "" {
			t.Fatalf("%s: denied Referer got %d %q X-Cache %q", c.host, resp.StatusCode, body, resp.Header.Get("X-Cache"))
		}
	}
}

// Range, If-None-Match and If-Modified-Since are answered from a stored
// object; HEAD too.
func TestCacheConditionalAndRangeOnHit(t *testing.T) {
	e := newCacheEnv(t, "1m", "1m")
	first := getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "MISS", "hello public")
	etag, lm := first.Header.Get("ETag"), first.Header.Get("Last-Modified")
	before := e.ossGets("hello.txt")

	resp := getCached(t, e, "cpub.test", "/hello.txt", http.Header{"Range": {"bytes=6-"}}, 206, "HIT", "public")
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 6-11/12" {
		t.Fatalf("Content-Range %q", cr)
	}
	resp = getCached(t, e, "cpub.test", "/hello.txt", http.Header{"Range": {"bytes=-3"}}, 206, "HIT", "lic")
	resp = e.do("GET", "cpub.test", "/hello.txt", http.Header{"Range": {"bytes=100-"}}, nil)
	if body := readBody(t, resp); resp.StatusCode != 416 || !strings.Contains(body, "InvalidRange") || resp.Header.Get("Content-Range") != "bytes */12" {
		t.Fatalf("unsatisfiable range: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp = getCached(t, e, "cpub.test", "/hello.txt", http.Header{"If-None-Match": {etag}}, 304, "HIT", "")
	if resp.Header.Get("ETag") != etag {
		t.Fatalf("304 ETag %q", resp.Header.Get("ETag"))
	}
	getCached(t, e, "cpub.test", "/hello.txt", http.Header{"If-None-Match": {`"other"`}}, 200, "HIT", "hello public")
	if lm != "" {
		getCached(t, e, "cpub.test", "/hello.txt", http.Header{"If-Modified-Since": {lm}}, 304, "HIT", "")
	}
	resp = e.do("HEAD", "cpub.test", "/hello.txt", nil, nil)
	readBody(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "HIT" || resp.ContentLength != 12 {
		t.Fatalf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
	if n := e.ossGets("hello.txt"); n != before {
		t.Fatalf("answers from the stored object made %d OSS GETs", n-before)
	}
}

// Concurrent cold GETs of one key make one OSS GET, and every client gets
// the exact body.
func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	e := newCacheEnvTimeout(t, "1m", "1m", "10s")
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	e.emu.PutObject(pubBucket, "big.bin", big, nil)
	remove := e.emu.AddFault(ossemu.Fault{Key: "big.bin", Delay: 200 * time.Millisecond, Times: 1})
	defer remove()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.gw.URL+"/big.bin", nil)
			req.Host = "cpub.test"
			resp, err := e.gw.Client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, big) {
				errs <- fmt.Errorf("status %d, %d bytes, %v", resp.StatusCode, len(b), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.ossGets("big.bin"); n != 1 {
		t.Fatalf("%d OSS GETs for 50 concurrent cold GETs", n)
	}
}

// Past ttl one conditional GET revalidates: a 304 refreshes the entry
// (REVALIDATED, then HIT again), a 200 stores the new content (MISS).
func TestCacheRevalidation(t *testing.T) {
	e := newCacheEnv(t, "200ms", "1s")
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "MISS", "hello public")
	time.Sleep(250 * time.Millisecond)
	before := e.ossGets("hello.txt")
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "REVALIDATED", "hello public")
	reqs := e.emu.Requests()
	last := reqs[len(reqs)-1]
	if e.ossGets("hello.txt") != before+1 || last.Header.Get("If-None-Match") == "" || last.Status != 304 {
		t.Fatalf("revalidation: %d GETs, If-None-Match %q, status %d", e.ossGets("hello.txt")-before, last.Header.Get("If-None-Match"), last.Status)
	}
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "HIT", "hello public")

	e.emu.PutObject(pubBucket, "hello.txt", []byte("hello again"), http.Header{"Content-Type": {"text/plain"}})
	time.Sleep(250 * time.Millisecond)
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "MISS", "hello again")
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "HIT", "hello again")
	if v := counterValue(t, e.reg, "gateway_cache_requests_total", map[string]string{"site": "cpub", "result": "revalidated"}); v != 1 {
		t.Fatalf("revalidated counter %v", v)
	}
}

// When OSS fails (503, a reset, no headers in time) a copy within
// stale_if_error past its ttl is served STALE; after that, the error.
func TestCacheStaleIfError(t *testing.T) {
	e := newCacheEnv(t, "200ms", "1s")
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "MISS", "hello public")
	time.Sleep(250 * time.Millisecond)
	for _, f := range []ossemu.Fault{
		{Key: "hello.txt", Status: 503},
		{Key: "hello.txt", ResetBeforeHeaders: true},
		{Key: "hello.txt", Delay: time.Second},
	} {
		remove := e.emu.AddFault(f)
		getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "STALE", "hello public")
		remove()
	}
	if v := counterValue(t, e.reg, "gateway_cache_requests_total", map[string]string{"site": "cpub", "result": "stale"}); v != 3 {
		t.Fatalf("stale counter %v", v)
	}
	time.Sleep(1100 * time.Millisecond) // past ttl + stale_if_error
	remove := e.emu.AddFault(ossemu.Fault{Key: "hello.txt", Status: 503})
	defer remove()
	resp := e.do("GET", "cpub.test", "/hello.txt", nil, nil)
	body := readBody(t, resp)
	if resp.StatusCode < 500 || resp.Header.Get("X-Cache") == "STALE" || body == "hello public" {
		t.Fatalf("past stale_if_error: %d X-Cache %q body %q", resp.StatusCode, resp.Header.Get("X-Cache"), body)
	}
}

// A PUT or DELETE of a key through the gateway drops its entries.
func TestCacheWritesThroughGatewayPurge(t *testing.T) {
	e := newCacheEnv(t, "1m", "1m")
	getCached(t, e, "cprv.test", "/secret.txt", nil, 200, "MISS", "hello private")
	getCached(t, e, "cprv.test", "/secret.txt", nil, 200, "HIT", "hello private")
	resp := e.do("PUT", "cprv.test", "/secret.txt", nil, strings.NewReader("new secret"))
	if body := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	getCached(t, e, "cprv.test", "/secret.txt", nil, 200, "MISS", "new secret")
	getCached(t, e, "cprv.test", "/secret.txt", nil, 200, "HIT", "new secret")
	resp = e.do("DELETE", "cprv.test", "/secret.txt", nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 204 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	resp = e.do("GET", "cprv.test", "/secret.txt", nil, nil)
	if readBody(t, resp); resp.StatusCode != 404 {
		t.Fatalf("GET after DELETE: %d X-Cache %q", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
}

// PurgeCache (the admin /-/purge) drops a key's or a prefix's entries; a
// reload that changes a site drops its entries, one that does not keeps
// them.
func TestCachePurgeAndReload(t *testing.T) {
	e := newCacheEnv(t, "1m", "1m")
	e.emu.PutObject(pubBucket, "dir/a.txt", []byte("a"), nil)
	e.emu.PutObject(pubBucket, "dir/b.txt", []byte("b"), nil)
	for _, k := range []string{"hello.txt", "dir/a.txt", "dir/b.txt"} {
		e.do("GET", "cpub.test", "/"+k, nil, nil).Body.Close()
	}
	if n, err := e.h.PurgeCache("cpub", "hello.txt", false); n != 1 || err != nil {
		t.Fatalf("PurgeCache key: %d %v", n, err)
	}
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "MISS", "hello public")
	if n, err := e.h.PurgeCache("cpub", "dir/", true); n != 2 || err != nil {
		t.Fatalf("PurgeCache prefix: %d %v", n, err)
	}
	getCached(t, e, "cpub.test", "/dir/a.txt", nil, 200, "MISS", "a")
	if _, err := e.h.PurgeCache("nope", "x", false); !errors.Is(err, proxy.ErrNoSuchSite) {
		t.Fatalf("unknown site: %v", err)
	}

	same := *e.h.Config()
	same.Sites = append([]config.Site(nil), same.Sites...)
	if err := e.h.Load(&same); err != nil {
		t.Fatal(err)
	}
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "HIT", "hello public")
	changed := same
	changed.Sites = append([]config.Site(nil), same.Sites...)
	for i := range changed.Sites {
		if changed.Sites[i].Name == "cpub" {
			changed.Sites[i].Cache.TTL = config.Duration(2 * time.Minute)
		}
	}
	if err := e.h.Load(&changed); err != nil {
		t.Fatal(err)
	}
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "MISS", "hello public")
	getCached(t, e, "cprv.test", "/secret.txt", nil, 200, "MISS", "hello private")
	getCached(t, e, "cprv.test", "/secret.txt", nil, 200, "HIT", "hello private")
}

// On a miss the fill asks OSS for the whole identity-encoded object
// whatever the client sent; the client's Range is answered by seeking the
// fill and its If-None-Match with a 304, and the object is stored whole.
func TestCacheMissWithRangeAndConditional(t *testing.T) {
	e := newCacheEnv(t, "1m", "1m")
	resp := getCached(t, e, "cpub.test", "/hello.txt", http.Header{"Range": {"bytes=0-4"}, "Accept-Encoding": {"gzip"}, "Origin": {"https://a.example"}}, 206, "MISS", "hello")
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 0-4/12" {
		t.Fatalf("Content-Range %q", cr)
	}
	reqs := e.emu.Requests()
	last := reqs[len(reqs)-1]
	for _, k := range []string{"Range", "Accept-Encoding", "Origin"} {
		if v := last.Header.Get(k); v != "" {
			t.Fatalf("fill sent %s: %q", k, v)
		}
	}
	// The 206's client left before the end; the fill goes on to store it.
	waitHit(t, e, "cpub.test", "/hello.txt", "hello public")

	e.emu.PutObject(pubBucket, "other.txt", []byte("other"), nil)
	getCached(t, e, "cpub.test", "/other.txt", http.Header{"If-None-Match": {`"nope"`}}, 200, "MISS", "other")
	e.emu.PutObject(pubBucket, "third.txt", []byte("third"), nil)
	first := e.do("HEAD", "pub.test", "/third.txt", nil, nil)
	readBody(t, first)
	getCached(t, e, "cpub.test", "/third.txt", http.Header{"If-None-Match": {first.Header.Get("ETag")}}, 304, "MISS", "")
	// The 304's client read no body; the fill stores it on its own time.
	waitHit(t, e, "cpub.test", "/third.txt", "third")
}

// Responses OSS marks private or no-store are passed on, never stored;
// HEAD misses go to OSS uncached.
func TestCacheNotStored(t *testing.T) {
	e := newCacheEnv(t, "1m", "1m")
	e.emu.PutObject(pubBucket, "nostore.txt", []byte("x"), http.Header{"Cache-Control": {"no-store"}})
	e.emu.PutObject(pubBucket, "private.txt", []byte("y"), http.Header{"Cache-Control": {"max-age=60, private"}})
	for _, c := range []struct{ key, body string }{{"nostore.txt", "x"}, {"private.txt", "y"}} {
		getCached(t, e, "cpub.test", "/"+c.key, nil, 200, "MISS", c.body)
		getCached(t, e, "cpub.test", "/"+c.key, nil, 200, "MISS", c.body)
	}
	resp := e.do("HEAD", "cpub.test", "/hello.txt", nil, nil)
	readBody(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "" {
		t.Fatalf("HEAD miss: %d X-Cache %q", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "MISS", "hello public")
}

// The access log and the byte counters see what a hit sent.
func TestCacheHitAccounting(t *testing.T) {
	e := newCacheEnv(t, "1m", "1m")
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "MISS", "hello public")
	getCached(t, e, "cpub.test", "/hello.txt", nil, 200, "HIT", "hello public")
	getCached(t, e, "cpub.test", "/hello.txt", http.Header{"Range": {"bytes=0-1"}}, 206, "HIT", "he")
	if v := counterValue(t, e.reg, "gateway_response_bytes_total", map[string]string{"site": "cpub"}); v != 12+12+2 {
		t.Fatalf("response bytes %v", v)
	}
	if !strings.Contains(e.logs.String(), `"bytes_out":2,`) {
		t.Fatalf("access log lacks the 206 hit's bytes_out:\n%s", e.logs.String())
	}
}

// A body larger than the memory tier takes is served from its file, whole
// and by range, byte-exact.
func TestCacheFileBackedHit(t *testing.T) {
	e := newCacheEnv(t, "1m", "1m")
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7 >> 3)
	}
	e.emu.PutObject(pubBucket, "big.bin", big, nil)
	getCached(t, e, "cpub.test", "/big.bin", nil, 200, "MISS", string(big))
	getCached(t, e, "cpub.test", "/big.bin", nil, 200, "HIT", string(big))
	getCached(t, e, "cpub.test", "/big.bin", http.Header{"Range": {"bytes=1000000-2999999"}}, 206, "HIT", string(big[1000000:3000000]))
	if n := e.ossGets("big.bin"); n != 1 {
		t.Fatalf("%d OSS GETs", n)
	}
}

// The client that started a fill leaving does not stop it: the object is
// stored for the next request.
func TestCacheFillOutlivesItsClient(t *testing.T) {
	e := newCacheEnvTimeout(t, "1m", "1m", "10s")
	remove := e.emu.AddFault(ossemu.Fault{Key: "hello.txt", Delay: 300 * time.Millisecond, Times: 1})
	defer remove()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.gw.URL+"/hello.txt", nil)
	req.Host = "cpub.test"
	if resp, err := e.gw.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("request outlived its context: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp := e.do("GET", "cpub.test", "/hello.txt", nil, nil)
		body := readBody(t, resp)
		if resp.Header.Get("X-Cache") == "HIT" && body == "hello public" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HIT after the first client left: %q %q", resp.Header.Get("X-Cache"), body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := e.ossGets("hello.txt"); n != 1 {
		t.Fatalf("%d OSS GETs, want the one fill the first client started", n)
	}
}

// On a path_style site the purge's key may start with the bucket, as the
// client's path does; a site prefix is added as for requests.
func TestCachePurgePathStyleAndPrefix(t *testing.T) {
	e := newEnv(t, envOpts{
		top: fmt.Sprintf("[cache]\npath = %q\nmax_size = \"64MiB\"\nmemory = \"1MiB\"\nmax_object_size = \"8MiB\"\n", t.TempDir()),
		sites: `
[[site]]
name = "ps"
domains = ["ps.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
prefix = "jail/"
path_style = true
tls = "off"
[site.cache]
enabled = true
ttl = "1m"
`,
	})
	for _, target := range []string{"/prv-bucket/in.txt", "/in.txt"} {
		getCached(t, e, "ps.test", target, nil, 200, "MISS", "inside")
		getCached(t, e, "ps.test", target, nil, 200, "HIT", "inside")
		key := strings.TrimPrefix(target, "/")
		if n, err := e.h.PurgeCache("ps", key, false); n != 1 || err != nil {
			t.Fatalf("PurgeCache(%q): %d %v", key, n, err)
		}
	}
	getCached(t, e, "ps.test", "/in.txt", nil, 200, "MISS", "inside")
	if n, err := e.h.PurgeCache("ps", "", true); n != 1 || err != nil {
		t.Fatalf("PurgeCache of the whole site: %d %v", n, err)
	}
}

// An object deleted behind the gateway's back is dropped when its
// revalidation gets a 404, so a later OSS failure cannot bring it back
// as STALE.
func TestCacheRevalidation404Drops(t *testing.T) {
	e := newCacheEnv(t, "200ms", "1m")
	getCached(t, e, "cprv.test", "/secret.txt", nil, 200, "MISS", "hello private")
	resp := e.do("DELETE", "nocache.test", "/secret.txt", nil, nil)
	if readBody(t, resp); resp.StatusCode != 204 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	time.Sleep(250 * time.Millisecond)
	resp = e.do("GET", "cprv.test", "/secret.txt", nil, nil)
	if readBody(t, resp); resp.StatusCode != 404 {
		t.Fatalf("revalidation of a deleted object: %d", resp.StatusCode)
	}
	remove := e.emu.AddFault(ossemu.Fault{Key: "secret.txt", Status: 503})
	defer remove()
	resp = e.do("GET", "cprv.test", "/secret.txt", nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 503 || resp.Header.Get("X-Cache") == "STALE" {
		t.Fatalf("after the 404: %d X-Cache %q %q", resp.StatusCode, resp.Header.Get("X-Cache"), body)
	}
}

// A config changed while the gateway was stopped is caught at start: each
// step starts a gateway on the same cache directory and emulator, asks
// for hello.txt on sites a and b, and stops. A site's entries survive a
// restart only if its [[site]] table is unchanged; a removed site's are
// gone even when it comes back as it was.
func TestCacheSitesChangedWhileStopped(t *testing.T) {
	emu := ossemu.New(ossemu.Options{Region: region})
	emu.CreateBucket(pubBucket, ossemu.PublicRead)
	emu.PutObject(pubBucket, "hello.txt", []byte("hello public"), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := emu.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	site := func(name, ttl string) string {
		return fmt.Sprintf("\n[[site]]\nname = %q\ndomains = [\"%s.test\"]\nbucket = %q\nregion = %q\nendpoint = \"http://%s\"\naccess = \"public\"\ntls = \"off\"\n[site.cache]\nenabled = true\nttl = %q\n",
			name, name, pubBucket, region, ln.Addr(), ttl)
	}
	for _, step := range []struct {
		name  string
		sites string
		want  map[string]string // site -> X-Cache of the first GET
	}{
		{"first start", site("a", "1m") + site("b", "1m"), map[string]string{"a": "MISS", "b": "MISS"}},
		{"unchanged", site("a", "1m") + site("b", "1m"), map[string]string{"a": "HIT", "b": "HIT"}},
		{"a changed", site("a", "2m") + site("b", "1m"), map[string]string{"a": "MISS", "b": "HIT"}},
		{"b removed", site("a", "2m"), map[string]string{"a": "HIT"}},
		{"b back as it was", site("a", "2m") + site("b", "1m"), map[string]string{"a": "HIT", "b": "MISS"}},
	} {
		text := fmt.Sprintf("[server]\nhttps_listen = \"\"\nhttp_listen = \"127.0.0.1:0\"\n[cache]\npath = %q\nmax_size = \"64MiB\"\nmax_object_size = \"8MiB\"\n%s", dir, step.sites)
		cfg, err := config.Parse("test.toml", []byte(text))
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		h, err := proxy.New(cfg, proxy.Options{})
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		for name, want := range step.want {
			for i, xc := range []string{want, "HIT"} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "http://"+name+".test/hello.txt", nil))
				if rec.Code != 200 || rec.Body.String() != "hello public" || rec.Header().Get("X-Cache") != xc {
					t.Errorf("%s: GET %s #%d: %d %q X-Cache %q, want %s", step.name, name, i+1, rec.Code, rec.Body.String(), rec.Header().Get("X-Cache"), xc)
				}
			}
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
