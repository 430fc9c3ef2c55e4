package ossemu

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
)

func TestRouting(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("b", PublicRead)
	e.BindDomain("img.example.com", "b")
	e.PutObject("b", "dir/file.txt", []byte("file"), nil)
	e.PutObject("b", "100%", []byte("percent"), nil)
	_, port, _ := strings.Cut(addr, ":")

	tests := []struct {
		name, host, path string
		status           int
		bucket, key      string
	}{
		{"public endpoint", "b.oss-cn-hangzhou.aliyuncs.com", "/dir/file.txt", 200, "b", "dir/file.txt"},
		{"internal endpoint", "b.oss-cn-hangzhou-internal.aliyuncs.com", "/dir/file.txt", 200, "b", "dir/file.txt"},
		{"accelerate endpoint", "b.oss-accelerate.aliyuncs.com", "/dir/file.txt", 200, "b", "dir/file.txt"},
		{"dual-stack endpoint", "b.cn-hangzhou.oss.aliyuncs.com", "/dir/file.txt", 200, "b", "dir/file.txt"},
		{"bucket dot IP", "b.127.0.0.1:" + port, "/dir/file.txt", 200, "b", "dir/file.txt"},
		{"custom domain with port and case", "IMG.example.com:8080", "/dir/file.txt", 200, "b", "dir/file.txt"},
		{"path style", addr, "/b/dir/file.txt", 200, "b", "dir/file.txt"},
		{"encoded slash decoded once", addr, "/b/dir%2Ffile.txt", 200, "b", "dir/file.txt"},
		{"encoded percent decoded once", addr, "/b/100%25", 200, "b", "100%"},
		{"unknown virtual bucket", "nob.oss-cn-hangzhou.aliyuncs.com", "/dir/file.txt", 404, "nob", "dir/file.txt"},
		{"unknown path bucket", addr, "/nob/x", 404, "nob", "x"},
		{"missing key", "b.oss-cn-hangzhou.aliyuncs.com", "/nope", 404, "b", "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodGet, "http://"+addr+tt.path, tt.host, nil, "")
			if r.status != tt.status {
				t.Errorf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			rq := lastRequest(t, e)
			if rq.Bucket != tt.bucket || rq.Key != tt.key || rq.Status != tt.status {
				t.Errorf("logged bucket=%q key=%q status=%d", rq.Bucket, rq.Key, rq.Status)
			}
		})
	}
	if r := do(t, http.MethodGet, "http://"+addr+"/nob/x", "", nil, ""); errorCode(r.body) != "NoSuchBucket" {
		t.Errorf("unknown bucket code: %s", r.body)
	}
	if r := do(t, http.MethodGet, "http://"+addr+"/b/nope", "", nil, ""); errorCode(r.body) != "NoSuchKey" {
		t.Errorf("missing key code: %s", r.body)
	}
}

func TestCommonHeadersAndErrorBody(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("pub", PublicRead)
	idPattern := regexp.MustCompile(`^[0-9A-F]{24}$`)
	seen := map[string]bool{}
	for range 3 {
		r := do(t, http.MethodGet, "http://"+addr+"/pub/missing", "", nil, "")
		id := r.header.Get("X-Oss-Request-Id")
		if !idPattern.MatchString(id) || seen[id] {
			t.Errorf("request id %q not 24 hex or not unique", id)
		}
		seen[id] = true
		if r.header.Get("Server") != "AliyunOSS" || r.header.Get("Date") == "" || r.header.Get("Content-Type") != "application/xml" {
			t.Errorf("headers = %v", r.header)
		}
		want := "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>NoSuchKey</Code>\n  <Message>The specified key does not exist.</Message>\n" +
			"  <RequestId>" + id + "</RequestId>\n  <HostId>" + addr + "</HostId>\n</Error>\n"
		if r.body != want {
			t.Errorf("body =\n%s\nwant\n%s", r.body, want)
		}
	}

	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"method not allowed", http.MethodPatch, "/pub/k", 405, "MethodNotAllowed"},
		{"options not allowed", http.MethodOptions, "/pub/k", 405, "MethodNotAllowed"},
		{"anonymous write on public-read", http.MethodPut, "/pub/k", 403, "AccessDenied"},
		{"anonymous delete on public-read", http.MethodDelete, "/pub/k", 403, "AccessDenied"},
		{"not implemented subresource", http.MethodGet, "/pub/k?tagging", 501, "NotImplemented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, "http://"+addr+tt.path, "", nil, "x")
			if r.status != tt.status || errorCode(r.body) != tt.code {
				t.Errorf("got %d %s", r.status, r.body)
			}
		})
	}

	t.Run("HEAD error carries x-oss-err", func(t *testing.T) {
		r := do(t, http.MethodHead, "http://"+addr+"/pub/missing", "", nil, "")
		b, err := base64.StdEncoding.DecodeString(r.header.Get("X-Oss-Err"))
		if r.status != 404 || err != nil || errorCode(string(b)) != "NoSuchKey" {
			t.Errorf("HEAD 404: %d %q %v", r.status, b, err)
		}
	})
}

func TestGetObjectHeadersAndRanges(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("pub", PublicRead)
	body := "0123456789abcdefghij" // 20 bytes
	e.PutObject("pub", "k", []byte(body), http.Header{
		"Content-Type":        {"text/plain"},
		"Cache-Control":       {"max-age=60"},
		"Content-Disposition": {`inline; filename="k.txt"`},
		"X-Oss-Meta-Color":    {"blue"},
	})
	sum := md5.Sum([]byte(body))
	etag := fmt.Sprintf(`"%X"`, sum)
	url := "http://" + addr + "/pub/k"

	full := do(t, http.MethodGet, url, "", nil, "")
	for k, want := range map[string]string{
		"Etag": etag, "Content-Length": "20", "Content-Type": "text/plain", "Accept-Ranges": "bytes",
		"X-Oss-Object-Type": "Normal", "X-Oss-Meta-Color": "blue", "Cache-Control": "max-age=60",
		"Content-Disposition": `inline; filename="k.txt"`,
	} {
		if got := full.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, err := http.ParseTime(full.header.Get("Last-Modified")); err != nil {
		t.Errorf("Last-Modified: %v", err)
	}

	tests := []struct {
		rng, wantBody, wantRange string
		status                   int
	}{
		{"bytes=0-9", body[:10], "bytes 0-9/20", 206},
		{"bytes=5-", body[5:], "bytes 5-19/20", 206},
		{"bytes=-3", body[17:], "bytes 17-19/20", 206},
		{"bytes=-30", body, "bytes 0-19/20", 206},
		{"bytes=15-100", body[15:], "bytes 15-19/20", 206},
		{"bytes=19-19", body[19:], "bytes 19-19/20", 206},
		{"bytes=20-", "", "bytes */20", 416},
		{"bytes=25-30", "", "bytes */20", 416},
		{"bytes=0-1,5-6", body, "", 200},
		{"bytes=abc", body, "", 200},
		{"bytes=9-5", body, "", 200},
		{"items=0-1", body, "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			r := do(t, http.MethodGet, url, "", http.Header{"Range": {tt.rng}}, "")
			if r.status != tt.status || r.header.Get("Content-Range") != tt.wantRange {
				t.Fatalf("got %d %q, want %d %q", r.status, r.header.Get("Content-Range"), tt.status, tt.wantRange)
			}
			if tt.status == 416 {
				if errorCode(r.body) != "InvalidRange" {
					t.Errorf("416 body: %s", r.body)
				}
				return
			}
			if r.body != tt.wantBody {
				t.Errorf("body = %q, want %q", r.body, tt.wantBody)
			}
		})
	}
}

func TestConditionals(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("pub", PublicRead)
	e.PutObject("pub", "k", []byte("0123456789"), nil)
	url := "http://" + addr + "/pub/k"
	first := do(t, http.MethodGet, url, "", nil, "")
	etag, lm := first.header.Get("Etag"), first.header.Get("Last-Modified")
	lmTime, _ := http.ParseTime(lm)
	before := lmTime.Add(-time.Hour).Format(http.TimeFormat)
	after := lmTime.Add(time.Hour).Format(http.TimeFormat)

	tests := []struct {
		name   string
		hdr    http.Header
		status int
		body   string
	}{
		{"If-Match hit", http.Header{"If-Match": {etag}}, 200, "0123456789"},
		{"If-Match unquoted hit", http.Header{"If-Match": {strings.Trim(etag, `"`)}}, 200, "0123456789"},
		{"If-Match list hit", http.Header{"If-Match": {`"nope", ` + etag}}, 200, "0123456789"},
		{"If-Match miss", http.Header{"If-Match": {`"0000"`}}, 412, ""},
		{"If-None-Match hit", http.Header{"If-None-Match": {etag}}, 304, ""},
		{"If-None-Match miss", http.Header{"If-None-Match": {`"0000"`}}, 200, "0123456789"},
		{"If-Modified-Since same", http.Header{"If-Modified-Since": {lm}}, 304, ""},
		{"If-Modified-Since later", http.Header{"If-Modified-Since": {after}}, 304, ""},
		{"If-Modified-Since earlier", http.Header{"If-Modified-Since": {before}}, 200, "0123456789"},
		{"If-Modified-Since invalid", http.Header{"If-Modified-Since": {"yesterday"}}, 200, "0123456789"},
		{"If-Unmodified-Since earlier", http.Header{"If-Unmodified-Since": {before}}, 412, ""},
		{"If-Unmodified-Since same", http.Header{"If-Unmodified-Since": {lm}}, 200, "0123456789"},
		{"If-Match with Range", http.Header{"If-Match": {etag}, "Range": {"bytes=4-"}}, 206, "456789"},
		{"If-Match miss with Range", http.Header{"If-Match": {`"0000"`}, "Range": {"bytes=4-"}}, 412, ""},
		{"If-None-Match beats If-Modified-Since", http.Header{"If-None-Match": {`"0000"`}, "If-Modified-Since": {after}}, 200, "0123456789"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodGet, url, "", tt.hdr, "")
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			switch tt.status {
			case 412:
				if errorCode(r.body) != "PreconditionFailed" {
					t.Errorf("412 body: %s", r.body)
				}
			case 304:
				if r.body != "" || r.header.Get("Etag") != etag {
					t.Errorf("304: body %q etag %q", r.body, r.header.Get("Etag"))
				}
			default:
				if r.body != tt.body {
					t.Errorf("body = %q, want %q", r.body, tt.body)
				}
			}
		})
	}

	// A new put changes the ETag and Last-Modified, so a resume pinned to
	// the old ETag fails.
	e.PutObject("pub", "k", []byte("new content"), nil)
	r := do(t, http.MethodGet, url, "", http.Header{"If-Match": {etag}, "Range": {"bytes=4-"}}, "")
	if r.status != 412 {
		t.Errorf("If-Match on replaced object = %d", r.status)
	}
	again := do(t, http.MethodGet, url, "", nil, "")
	if again.header.Get("Last-Modified") == lm || again.header.Get("Etag") == etag {
		t.Errorf("re-put kept Last-Modified %s / ETag %s", lm, etag)
	}
}

func TestForcedDownload(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("web", PublicRead)
	e.BindDomain("www.example.com", "web")
	e.PutObject("web", "index.html", []byte("<html></html>"), http.Header{"Content-Type": {"text/html; charset=utf-8"}})
	e.PutObject("web", "page.htm", []byte("<html></html>"), nil) // octet-stream, HTML by extension
	e.PutObject("web", "own.html", []byte("x"), http.Header{"Content-Type": {"text/html"}, "Content-Disposition": {`inline; filename="own.html"`}})
	e.PutObject("web", "a.txt", []byte("text"), http.Header{"Content-Type": {"text/plain"}})

	tests := []struct {
		name, method, host, path string
		forced                   bool
		disposition              string
	}{
		{"bucket domain GET", http.MethodGet, "web.oss-cn-hangzhou.aliyuncs.com", "/index.html", true, "attachment"},
		{"bucket domain HEAD", http.MethodHead, "web.oss-cn-hangzhou.aliyuncs.com", "/index.html", true, "attachment"},
		{"internal domain by extension", http.MethodGet, "web.oss-cn-hangzhou-internal.aliyuncs.com", "/page.htm", true, "attachment"},
		{"path style", http.MethodGet, "", "/web/index.html", true, "attachment"},
		{"forced over the object's own", http.MethodGet, "web.oss-accelerate.aliyuncs.com", "/own.html", true, "attachment"},
		{"not a web page", http.MethodGet, "web.oss-cn-hangzhou.aliyuncs.com", "/a.txt", false, ""},
		{"custom domain", http.MethodGet, "www.example.com", "/index.html", false, ""},
		{"custom domain HEAD", http.MethodHead, "www.example.com", "/index.html", false, ""},
		{"custom domain keeps own", http.MethodGet, "www.example.com", "/own.html", false, `inline; filename="own.html"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, "http://"+addr+tt.path, tt.host, nil, "")
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if got := r.header.Get("X-Oss-Force-Download") == "true"; got != tt.forced {
				t.Errorf("x-oss-force-download = %v, want %v", got, tt.forced)
			}
			if got := r.header.Get("Content-Disposition"); got != tt.disposition {
				t.Errorf("Content-Disposition = %q, want %q", got, tt.disposition)
			}
		})
	}
}

func TestResponseOverrides(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("pub", PublicRead)
	e.PutObject("pub", "k.html", []byte("<p>"), http.Header{"Content-Type": {"text/html"}})

	for _, p := range []string{"response-content-type=text%2Fplain", "response-content-disposition=inline", "response-cache-control=no-cache",
		"response-content-encoding=gzip", "response-expires=0", "response-content-language=en"} {
		r := do(t, http.MethodGet, "http://"+addr+"/pub/k.html?"+p, "", nil, "")
		if r.status != 403 || errorCode(r.body) != "AccessDenied" {
			t.Errorf("anonymous %s = %d %s", p, r.status, r.body)
		}
	}

	c := sdkClient(addr, "AKID", "SECRET", "", testRegion)
	res, err := c.GetObject(context.Background(), &oss.GetObjectRequest{
		Bucket:                     oss.Ptr("pub"),
		Key:                        oss.Ptr("k.html"),
		ResponseContentType:        oss.Ptr("text/plain; charset=utf-8"),
		ResponseContentDisposition: oss.Ptr(`inline; filename="k.html"`),
		ResponseCacheControl:       oss.Ptr("no-store"),
		ResponseContentLanguage:    oss.Ptr("zh-CN"),
	})
	if err != nil {
		t.Fatalf("signed GetObject with overrides: %v", err)
	}
	res.Body.Close()
	h := res.Headers
	if h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("Content-Disposition") != `inline; filename="k.html"` ||
		h.Get("Cache-Control") != "no-store" || h.Get("Content-Language") != "zh-CN" || h.Get("X-Oss-Force-Download") != "" {
		t.Errorf("overridden headers = %v", h)
	}
}

func TestPutDeleteAppend(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("rw", PublicReadWrite)
	base := "http://" + addr + "/rw/"

	r := do(t, http.MethodPut, base+"k", "", http.Header{"Content-Type": {"text/plain"}, "X-Oss-Meta-A": {"1"}}, "hello")
	if r.status != 200 || r.header.Get("Etag") != fmt.Sprintf(`"%X"`, md5.Sum([]byte("hello"))) || r.header.Get("X-Oss-Hash-Crc64ecma") == "" {
		t.Fatalf("PUT = %d %v", r.status, r.header)
	}
	if got := do(t, http.MethodGet, base+"k", "", nil, ""); got.body != "hello" || got.header.Get("Content-Type") != "text/plain" || got.header.Get("X-Oss-Meta-A") != "1" {
		t.Errorf("GET after PUT = %q %v", got.body, got.header)
	}

	forbid := http.Header{"X-Oss-Forbid-Overwrite": {"true"}}
	if r := do(t, http.MethodPut, base+"k", "", forbid, "again"); r.status != 409 || errorCode(r.body) != "FileAlreadyExists" {
		t.Errorf("forbid-overwrite on existing = %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodPut, base+"fresh", "", forbid, "new"); r.status != 200 {
		t.Errorf("forbid-overwrite on new key = %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodPut, base+"k", "", nil, "overwritten"); r.status != 200 {
		t.Errorf("overwrite = %d", r.status)
	}
	if b, _ := e.Object("rw", "k"); string(b) != "overwritten" {
		t.Errorf("stored = %q", b)
	}

	good := md5.Sum([]byte("md5 body"))
	if r := do(t, http.MethodPut, base+"m", "", http.Header{"Content-Md5": {base64.StdEncoding.EncodeToString(good[:])}}, "md5 body"); r.status != 200 {
		t.Errorf("PUT with right Content-MD5 = %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodPut, base+"m2", "", http.Header{"Content-Md5": {base64.StdEncoding.EncodeToString(good[:])}}, "other body"); r.status != 400 || errorCode(r.body) != "InvalidDigest" {
		t.Errorf("PUT with wrong Content-MD5 = %d %s", r.status, r.body)
	}
	if _, ok := e.Object("rw", "m2"); ok {
		t.Error("object stored despite a bad Content-MD5")
	}

	// AppendObject.
	if r := do(t, http.MethodPost, base+"log?append&position=0", "", http.Header{"Content-Type": {"text/plain"}}, "abc"); r.status != 200 || r.header.Get("X-Oss-Next-Append-Position") != "3" {
		t.Fatalf("first append = %d %v %s", r.status, r.header, r.body)
	}
	if r := do(t, http.MethodPost, base+"log?append&position=0", "", nil, "zzz"); r.status != 409 || errorCode(r.body) != "PositionNotEqualToLength" || r.header.Get("X-Oss-Next-Append-Position") != "3" {
		t.Errorf("append at a wrong position = %d %v %s", r.status, r.header, r.body)
	}
	if r := do(t, http.MethodPost, base+"log?append&position=3", "", nil, "def"); r.status != 200 || r.header.Get("X-Oss-Next-Append-Position") != "6" {
		t.Errorf("second append = %d %v", r.status, r.header)
	}
	if got := do(t, http.MethodGet, base+"log", "", nil, ""); got.body != "abcdef" || got.header.Get("X-Oss-Object-Type") != "Appendable" || got.header.Get("Content-Type") != "text/plain" {
		t.Errorf("appended object = %q %v", got.body, got.header)
	}
	if r := do(t, http.MethodPost, base+"k?append&position=11", "", nil, "x"); r.status != 409 || errorCode(r.body) != "ObjectNotAppendable" {
		t.Errorf("append to a normal object = %d %s", r.status, r.body)
	}
	if r := do(t, http.MethodPost, base+"log?append", "", nil, "x"); r.status != 400 {
		t.Errorf("append without position = %d", r.status)
	}
	if r := do(t, http.MethodPost, base+"k", "", nil, "x"); r.status != 405 {
		t.Errorf("POST without append = %d", r.status)
	}

	// DELETE.
	if r := do(t, http.MethodDelete, base+"k", "", nil, ""); r.status != 204 {
		t.Errorf("DELETE = %d", r.status)
	}
	if r := do(t, http.MethodGet, base+"k", "", nil, ""); r.status != 404 {
		t.Errorf("GET after DELETE = %d", r.status)
	}
	if r := do(t, http.MethodDelete, base+"k", "", nil, ""); r.status != 204 {
		t.Errorf("DELETE of a missing key = %d", r.status)
	}
}

func TestListAndBucketInfo(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("priv", Private)
	for _, k := range []string{"a/1", "a/2", "b/1", "c"} {
		e.PutObject("priv", k, []byte(k), nil)
	}
	c := sdkClient(addr, "AKID", "SECRET", "", testRegion)
	ctx := context.Background()
	res, err := c.ListObjectsV2(ctx, &oss.ListObjectsV2Request{Bucket: oss.Ptr("priv"), Delimiter: oss.Ptr("/"), MaxKeys: 2})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	if len(res.CommonPrefixes) != 2 || res.CommonPrefixes[0].Prefix == nil || *res.CommonPrefixes[0].Prefix != "a/" || !res.IsTruncated {
		t.Errorf("ListObjectsV2 = %+v", res)
	}
	next, err := c.ListObjectsV2(ctx, &oss.ListObjectsV2Request{Bucket: oss.Ptr("priv"), Delimiter: oss.Ptr("/"), ContinuationToken: res.NextContinuationToken})
	if err != nil || len(next.Contents) != 1 || *next.Contents[0].Key != "c" {
		t.Errorf("second page = %+v, %v", next, err)
	}
	info, err := c.GetBucketInfo(ctx, &oss.GetBucketInfoRequest{Bucket: oss.Ptr("priv")})
	if err != nil || info.BucketInfo.Name == nil || *info.BucketInfo.Name != "priv" {
		t.Errorf("GetBucketInfo = %+v, %v", info, err)
	}
	if r := do(t, http.MethodGet, "http://"+addr+"/priv/", "", nil, ""); r.status != 403 {
		t.Errorf("anonymous list of a private bucket = %d", r.status)
	}
}

// TestSyntheticStreaming serves a 64 MiB synthetic object and checks a
// range in the middle, and the whole body, byte for byte.
func TestSyntheticStreaming(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("pub", PublicRead)
	const size = 64 << 20
	e.PutSyntheticObject("pub", "big.bin", size, "application/octet-stream")
	if _, ok := e.Object("pub", "big.bin"); ok {
		t.Error("Object returned a synthetic object")
	}

	check := func(rng string, start, n int64) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/pub/big.bin", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := freshClient().Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", rng, err)
		}
		defer resp.Body.Close()
		if resp.ContentLength != n {
			t.Fatalf("Content-Length = %d, want %d", resp.ContentLength, n)
		}
		got, want := make([]byte, 64<<10), make([]byte, 64<<10)
		for off := int64(0); off < n; {
			chunk := min(int64(len(got)), n-off)
			if _, err := io.ReadFull(resp.Body, got[:chunk]); err != nil {
				t.Fatalf("read at %d: %v", start+off, err)
			}
			for i := range chunk {
				want[i] = SyntheticByte(start + off + i)
			}
			if !bytes.Equal(got[:chunk], want[:chunk]) {
				for i := range chunk {
					if got[i] != want[i] {
						t.Fatalf("byte %d = %#x, want %#x", start+off+i, got[i], want[i])
					}
				}
			}
			off += chunk
		}
		if k, err := resp.Body.Read(got[:1]); k != 0 || err != io.EOF {
			t.Fatalf("body longer than %d: %d, %v", n, k, err)
		}
	}
	mid := int64(size/2 - 12345)
	check(fmt.Sprintf("bytes=%d-%d", mid, mid+3<<20-1), mid, 3<<20)
	check("bytes=-1000", size-1000, 1000)
	if !testing.Short() {
		check("", 0, size)
	}
}

// TestSyntheticByteNotPeriodic shows a misplaced range is detected: windows
// shifted by small and large powers of two differ.
func TestSyntheticByteNotPeriodic(t *testing.T) {
	window := func(off int64) []byte {
		b := make([]byte, 4096)
		for i := range b {
			b[i] = SyntheticByte(off + int64(i))
		}
		return b
	}
	base := int64(123456789)
	ref := window(base)
	for _, shift := range []int64{1, 2, 255, 256, 4096, 65536, 1 << 20, 1 << 24, 1 << 32} {
		if string(window(base+shift)) == string(ref) {
			t.Errorf("window repeats after a shift of %d", shift)
		}
	}
	buf := make([]byte, 1000)
	for _, off := range []int64{0, 1, 255, 256, 1<<32 - 7} {
		fillSynthetic(buf, off)
		for i, b := range buf {
			if b != SyntheticByte(off+int64(i)) {
				t.Fatalf("fillSynthetic(%d)[%d] = %#x, want %#x", off, i, b, SyntheticByte(off+int64(i)))
			}
		}
	}
}
