package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// want returns the expected body bytes [start, start+n).
func want(start, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((start + int64(i)) % period)
	}
	return b
}

func do(t *testing.T, srv *httptest.Server, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Virtual-hosted Host and an Authorization the upstream must ignore.
	req.Host = "bucket.127.0.0.1:9000"
	req.Header.Set("Authorization", "OSS4-HMAC-SHA256 Credential=AK/20240101/cn-hangzhou/oss/aliyun_v4_request,Signature=00")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestSizesAndHeaders(t *testing.T) {
	srv := httptest.NewServer(handler{})
	defer srv.Close()
	for _, c := range []struct {
		key  string
		size int64
	}{{"1k", 1 << 10}, {"256k", 256 << 10}, {"64m", 64 << 20}} {
		resp, body := do(t, srv, http.MethodGet, "/"+c.key, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", c.key, resp.StatusCode)
		}
		if int64(len(body)) != c.size || resp.ContentLength != c.size {
			t.Fatalf("%s: got %d bytes (Content-Length %d), want %d", c.key, len(body), resp.ContentLength, c.size)
		}
		if !bytes.Equal(body, want(0, c.size)) {
			t.Fatalf("%s: body differs from the pattern", c.key)
		}
		for _, h := range []string{"ETag", "Last-Modified", "x-oss-request-id"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("%s: no %s", c.key, h)
			}
		}
		if got := resp.Header.Get("ETag"); got != objects[c.key].etag || len(got) != 34 {
			t.Errorf("%s: ETag %q", c.key, got)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/octet-stream" {
			t.Errorf("%s: Content-Type %q", c.key, got)
		}
		if got := resp.Header.Get("Accept-Ranges"); got != "bytes" {
			t.Errorf("%s: Accept-Ranges %q", c.key, got)
		}
	}
	// ETags differ between objects, request IDs between requests.
	r1, _ := do(t, srv, http.MethodHead, "/1k", nil)
	r2, _ := do(t, srv, http.MethodHead, "/256k", nil)
	if r1.Header.Get("ETag") == r2.Header.Get("ETag") {
		t.Error("two objects share an ETag")
	}
	if r1.Header.Get("x-oss-request-id") == r2.Header.Get("x-oss-request-id") {
		t.Error("two requests share an x-oss-request-id")
	}
}

func TestHead(t *testing.T) {
	srv := httptest.NewServer(handler{})
	defer srv.Close()
	resp, body := do(t, srv, http.MethodHead, "/1g", nil)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != 1<<30 || len(body) != 0 {
		t.Fatalf("HEAD /1g: status %d, Content-Length %d, %d body bytes", resp.StatusCode, resp.ContentLength, len(body))
	}
}

func TestRange(t *testing.T) {
	srv := httptest.NewServer(handler{})
	defer srv.Close()
	const size = 64 << 20
	for _, c := range []struct {
		spec       string
		start, n   int64
		contentRng string
	}{
		{"bytes=0-0", 0, 1, "bytes 0-0/67108864"},
		{"bytes=1000-1999", 1000, 1000, "bytes 1000-1999/67108864"},
		{"bytes=67108000-", 67108000, size - 67108000, "bytes 67108000-67108863/67108864"},
		{"bytes=-10", size - 10, 10, "bytes 67108854-67108863/67108864"},
		{"bytes=300000-99999999", 300000, size - 300000, "bytes 300000-67108863/67108864"},
	} {
		resp, body := do(t, srv, http.MethodGet, "/64m", map[string]string{"Range": c.spec})
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("%s: status %d", c.spec, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Range"); got != c.contentRng {
			t.Errorf("%s: Content-Range %q, want %q", c.spec, got, c.contentRng)
		}
		if resp.ContentLength != c.n || !bytes.Equal(body, want(c.start, c.n)) {
			t.Errorf("%s: wrong body (%d bytes, Content-Length %d)", c.spec, len(body), resp.ContentLength)
		}
	}
	for _, spec := range []string{"bytes=1024-", "bytes=5000-6000", "bytes=-0"} {
		resp, body := do(t, srv, http.MethodGet, "/1k", map[string]string{"Range": spec})
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Fatalf("%s: status %d, want 416", spec, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Range"); got != "bytes */1024" {
			t.Errorf("%s: Content-Range %q", spec, got)
		}
		if !bytes.Contains(body, []byte("<Code>InvalidRange</Code>")) {
			t.Errorf("%s: body %q", spec, body)
		}
	}
	// A multi-range is ignored: the whole object.
	resp, body := do(t, srv, http.MethodGet, "/1k", map[string]string{"Range": "bytes=0-1,5-6"})
	if resp.StatusCode != http.StatusOK || len(body) != 1024 {
		t.Errorf("multi-range: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestConditional(t *testing.T) {
	srv := httptest.NewServer(handler{})
	defer srv.Close()
	first, _ := do(t, srv, http.MethodGet, "/256k", nil)
	etag := first.Header.Get("ETag")
	resp, body := do(t, srv, http.MethodGet, "/256k", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 || resp.Header.Get("ETag") != etag {
		t.Fatalf("If-None-Match: status %d, %d bytes, ETag %q", resp.StatusCode, len(body), resp.Header.Get("ETag"))
	}
	resp, _ = do(t, srv, http.MethodGet, "/256k", map[string]string{"If-None-Match": `"other"`})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("If-None-Match other: status %d", resp.StatusCode)
	}
	resp, _ = do(t, srv, http.MethodGet, "/256k", map[string]string{"If-Modified-Since": first.Header.Get("Last-Modified")})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-Modified-Since: status %d", resp.StatusCode)
	}
	resp, _ = do(t, srv, http.MethodGet, "/256k", map[string]string{"If-Match": `"other"`, "Range": "bytes=10-"})
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("If-Match other: status %d", resp.StatusCode)
	}
	resp, body = do(t, srv, http.MethodGet, "/256k", map[string]string{"If-Match": etag, "Range": "bytes=10-"})
	if resp.StatusCode != http.StatusPartialContent || len(body) != 256<<10-10 {
		t.Fatalf("If-Match + Range: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestErrors(t *testing.T) {
	srv := httptest.NewServer(handler{})
	defer srv.Close()
	resp, body := do(t, srv, http.MethodGet, "/nope", nil)
	if resp.StatusCode != http.StatusNotFound || !bytes.Contains(body, []byte("NoSuchKey")) {
		t.Errorf("missing key: status %d, body %q", resp.StatusCode, body)
	}
	resp, body = do(t, srv, http.MethodPut, "/1k", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || !bytes.Contains(body, []byte("MethodNotAllowed")) {
		t.Errorf("PUT: status %d, body %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Errorf("PUT: Content-Length %q for %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
}

func TestPathStyleKey(t *testing.T) {
	srv := httptest.NewServer(handler{})
	defer srv.Close()
	resp, body := do(t, srv, http.MethodGet, "/bucket/1k?x=1", nil)
	if resp.StatusCode != http.StatusOK || len(body) != 1024 {
		t.Errorf("path-style: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestStatsCountsSigned(t *testing.T) {
	srv := httptest.NewServer(handler{})
	defer srv.Close()
	_, before := do(t, srv, http.MethodGet, statsPath, nil)
	do(t, srv, http.MethodHead, "/1k", nil) // do sends a V4 Authorization
	_, after := do(t, srv, http.MethodGet, statsPath, nil)
	if bytes.Equal(before, after) || !bytes.Contains(after, []byte(`"signed_v4":`)) {
		t.Errorf("stats did not move: %s then %s", before, after)
	}
}

func TestHotSetPaths(t *testing.T) {
	srv := httptest.NewServer(handler{})
	defer srv.Close()
	etags := map[string]string{}
	for _, c := range []struct {
		path string
		size int64
	}{{"/obj/0/1k", 1 << 10}, {"/obj/1/1k", 1 << 10}, {"/obj/1/256k", 256 << 10}, {"/bucket/obj/2/64m", 64 << 20}, {"/obj/herd/64m", 64 << 20}} {
		resp, body := do(t, srv, http.MethodGet, c.path, nil)
		if resp.StatusCode != http.StatusOK || int64(len(body)) != c.size || !bytes.Equal(body, want(0, c.size)) {
			t.Fatalf("%s: status %d, %d bytes (want %d of the pattern)", c.path, resp.StatusCode, len(body), c.size)
		}
		etag := resp.Header.Get("ETag")
		if len(etag) != 34 {
			t.Errorf("%s: ETag %q", c.path, etag)
		}
		for p, e := range etags {
			if e == etag {
				t.Errorf("%s and %s share ETag %s", p, c.path, etag)
			}
		}
		etags[c.path] = etag
		// The ETag is a function of the path: the same after a restart,
		// and conditionals work on it.
		again, _ := do(t, srv, http.MethodHead, c.path, nil)
		if again.Header.Get("ETag") != etag {
			t.Errorf("%s: ETag changed from %s to %s", c.path, etag, again.Header.Get("ETag"))
		}
		nm, _ := do(t, srv, http.MethodGet, c.path, map[string]string{"If-None-Match": etag})
		if nm.StatusCode != http.StatusNotModified {
			t.Errorf("%s: If-None-Match its ETag: status %d", c.path, nm.StatusCode)
		}
	}
	if etags["/obj/0/1k"] == objects["1k"].etag {
		t.Error("/obj/0/1k has the ETag of /1k")
	}
	resp, _ := do(t, srv, http.MethodGet, "/obj/3/2k", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/obj/3/2k: status %d, want 404", resp.StatusCode)
	}
}

// stats reads /-/stats (with ?path= when path is set).
func stats(t *testing.T, srv *httptest.Server, path string) map[string]any {
	t.Helper()
	q := ""
	if path != "" {
		q = "?path=" + url.QueryEscape(path)
	}
	_, body := do(t, srv, http.MethodGet, statsPath+q, nil)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("stats %q: %v", body, err)
	}
	return m
}

func TestStatsCountsGetsPerPath(t *testing.T) {
	srv := httptest.NewServer(handler{})
	defer srv.Close()
	const p = "/obj/count-test/1k"
	before := stats(t, srv, p)
	if before["path"] != p || before["path_gets"] != float64(0) {
		t.Fatalf("fresh path: %v", before)
	}
	for range 3 {
		do(t, srv, http.MethodGet, p, nil)
	}
	do(t, srv, http.MethodHead, p, nil)                    // HEAD is not a GET
	do(t, srv, http.MethodGet, "/obj/count-other/1k", nil) // another path
	after := stats(t, srv, p)
	if after["path_gets"] != float64(3) {
		t.Errorf("path_gets %v, want 3", after["path_gets"])
	}
	if d := after["gets"].(float64) - before["gets"].(float64); d != 4 {
		t.Errorf("gets went up by %v, want 4", d)
	}
	if _, ok := stats(t, srv, "")["path_gets"]; ok {
		t.Error("path_gets without ?path=")
	}
}

func TestDelay(t *testing.T) {
	const d = 60 * time.Millisecond
	srv := httptest.NewServer(handler{delay: d})
	defer srv.Close()
	do(t, srv, http.MethodGet, statsPath, nil) // connect first
	for _, c := range []struct {
		method, path string
		delayed      bool
	}{{http.MethodGet, "/1k", true}, {http.MethodHead, "/obj/1/64m", true}, {http.MethodGet, "/nope", true}, {http.MethodGet, statsPath, false}} {
		start := time.Now()
		do(t, srv, c.method, c.path, nil)
		took := time.Since(start)
		if c.delayed && took < d {
			t.Errorf("%s %s: answered in %s, before the %s delay", c.method, c.path, took, d)
		}
		if !c.delayed && took >= d {
			t.Errorf("%s %s: took %s, delayed like an object", c.method, c.path, took)
		}
	}
	// The zero handler (compare mode's -delay 0) does not wait.
	fast := httptest.NewServer(handler{})
	defer fast.Close()
	do(t, fast, http.MethodGet, "/1k", nil)
	start := time.Now()
	do(t, fast, http.MethodGet, "/1k", nil)
	if took := time.Since(start); took >= d {
		t.Errorf("no delay: GET /1k took %s", took)
	}
}

func TestEnvDelay(t *testing.T) {
	for _, c := range []struct {
		env  string
		want time.Duration
	}{{"", defaultDelay}, {"0", 0}, {"5ms", 5 * time.Millisecond}, {"bogus", defaultDelay}, {"-1s", defaultDelay}} {
		t.Setenv("UPSTREAM_DELAY", c.env)
		if got := envDelay(); got != c.want {
			t.Errorf("UPSTREAM_DELAY=%q: %s, want %s", c.env, got, c.want)
		}
	}
	if defaultDelay != 20*time.Millisecond {
		t.Errorf("default delay %s, want 20ms (OSS-like)", defaultDelay)
	}
}
