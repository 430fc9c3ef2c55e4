package proxy_test

import (
	"bufio"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// fuzzAllowedParams are the only query parameters a private site may send
// OSS, and fuzzAllowedHeaders the only x-oss-* request headers (the
// signer's own, oss_headers' defaults, x-oss-process).
var (
	fuzzAllowedParams = map[string]bool{
		"versionId": true, "uploads": true, "uploadId": true, "partNumber": true, "append": true, "position": true,
		"response-content-disposition": true, "response-cache-control": true, "response-expires": true,
		"response-content-language": true, "x-oss-process": true, "encoding-type": true, "max-parts": true,
		"part-number-marker": true,
	}
	fuzzAllowedHeaders = map[string]bool{
		"x-oss-date": true, "x-oss-content-sha256": true, "x-oss-forbid-overwrite": true, "x-oss-storage-class": true,
		"x-oss-tagging": true, "x-oss-server-side-encryption": true, "x-oss-server-side-data-encryption": true,
		"x-oss-server-side-encryption-key-id": true, "x-oss-traffic-limit": true, "x-oss-process": true,
	}
	fuzzMethods = []string{"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "COPY"}
)

// FuzzRequestPolicy sends random methods, paths, queries and headers to a
// private site confined to fz/ and checks what the emulator received: the
// site's bucket, a key under fz/, a signed request, and no query
// parameter, x-oss-* header or x-oss-process operation beyond the
// allowlists. Whatever the gateway accepts, OSS sees nothing else.
func FuzzRequestPolicy(f *testing.F) {
	e := newEnv(f, envOpts{sites: `
[[site]]
name = "fz"
domains = ["fz.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
prefix = "fz/"
tls = "off"
methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
[site.process]
actions = ["image/resize", "image/watermark", "style"]
`})
	seeds := []struct {
		m                   uint8
		path, query, hk, hv string
	}{
		{0, "/a.jpg", "x-oss-process=image/resize,w_1", "X-Oss-Meta-A", "b"},
		{2, "/b.txt", "", "X-Oss-Copy-Source", "/other/loot"},
		{2, "/b.txt", "acl", "x-oss-object-acl", "public-read-write"},
		{0, "/a.jpg", "x-oss-process=image/resize,w_1|sys/saveas,o_eA,b_eA", "", ""},
		{0, "/a.jpg", "x-oss-process=image/watermark,image_c2VjcmV0LnR4dA", "", ""},
		{3, "/a.jpg", "x-oss-process", "", ""},
		{0, "/a.jpg", "versionId=1&versionId=2", "", ""},
		{0, "/../secret.txt", "", "", ""},
		{0, "/%2e%2e/secret.txt", "", "", ""},
		{4, "/a.jpg", "tagging", "", ""},
		{2, "/a.jpg", "partNumber=1&uploadId=x", "x_oss_copy_source", "/prv-bucket/secret.txt"},
		{0, "/a.jpg", "uploads&prefix=&delimiter=/", "X-Oss-Process", "style/x"},
		{0, "/", "list-type=2", "", ""},
		{3, "/a", "append&position=0&x-oss-async-process=x", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.m, s.path, s.query, s.hk, s.hv)
	}
	f.Fuzz(func(t *testing.T, m uint8, path, query, hk, hv string) {
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		target := path
		if query != "" {
			target += "?" + query
		}
		raw := method + " " + target + " HTTP/1.1\r\nHost: fz.test\r\n"
		if hk != "" {
			raw += hk + ": " + hv + "\r\n"
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + "\r\n")))
		if err != nil {
			return // net/http would refuse it before the gateway sees it
		}
		req.RemoteAddr = "127.0.0.1:40000"
		if method == "PUT" || method == "POST" {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		e.emu.ResetRequests()
		serve(e, req)
		for _, r := range e.emu.Requests() {
			if r.Bucket != prvBucket || !strings.HasPrefix(r.Key, "fz/") || r.Key == "fz/" || !r.Signed {
				t.Fatalf("%q let OSS see bucket %q key %q signed %v", raw, r.Bucket, r.Key, r.Signed)
			}
			q, err := url.ParseQuery(r.RawQuery)
			if err != nil {
				t.Fatalf("%q sent an unparsable query %q", raw, r.RawQuery)
			}
			for k, vv := range q {
				if !fuzzAllowedParams[k] || len(vv) != 1 {
					t.Fatalf("%q let OSS see query %q", raw, r.RawQuery)
				}
			}
			if p := q.Get("x-oss-process") + r.Header.Get("X-Oss-Process"); strings.Contains(strings.ToLower(p), "sys/") || strings.Contains(strings.ToLower(p), "saveas") {
				t.Fatalf("%q let OSS run %q", raw, p)
			}
			for k := range r.Header {
				lk := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
				if strings.HasPrefix(lk, "x-oss-") && !fuzzAllowedHeaders[lk] && !strings.HasPrefix(lk, "x-oss-meta-") {
					t.Fatalf("%q let OSS see header %s", raw, k)
				}
			}
		}
	})
}

// serve runs req through the gateway's handler, as net/http would.
func serve(e *env, req *http.Request) {
	defer func() {
		if v := recover(); v != nil && !errors.Is(asError(v), http.ErrAbortHandler) {
			panic(v)
		}
	}()
	e.h.ServeHTTP(httptest.NewRecorder(), req)
}

func asError(v any) error {
	err, _ := v.(error)
	return err
}
