package cache_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/oss-gateway/gateway/cache"
)

// Example shows the proxy's use of the cache for one GET of a
// cache-enabled site: a fresh hit served from the cache, a miss or a stale
// hit filled through one coalesced OSS request.
func Example() {
	bytesVec, evictionsVec := cache.NewMetricVecs() // register both on the admin registry
	c, err := cache.Open(cache.Options{
		Dir: "/var/cache/gateway", MaxSize: 10 << 30, Memory: 256 << 20, MaxObjectSize: 256 << 20,
		Bytes: bytesVec, Evictions: evictionsVec,
	})
	if err != nil {
		return
	}
	defer c.Close()

	ttl, staleIfError := 10*time.Minute, time.Hour
	handler := func(w http.ResponseWriter, r *http.Request, k cache.Key, fetch cache.FetchFunc) {
		now := time.Now()
		obj, hit := c.Lookup(k)
		if hit {
			defer obj.Close()
			if obj.Meta().Age(now) <= ttl {
				serveObject(w, obj)
				return
			}
		}
		fl := c.Fill(k, fetch)
		defer fl.Close()
		meta, err := fl.Wait(r.Context())
		switch {
		case err != nil && hit && obj.Meta().Age(now) <= ttl+staleIfError:
			serveObject(w, obj)
		case err != nil:
			http.Error(w, "upstream unavailable", http.StatusBadGateway)
		case meta.Status == http.StatusNotModified && hit:
			serveObject(w, obj)
		default:
			for name, vs := range meta.Header {
				w.Header()[name] = vs
			}
			w.WriteHeader(meta.Status)
			if _, err := io.Copy(w, fl); err != nil {
				panic(http.ErrAbortHandler) // never a short body that looks whole
			}
		}
	}
	_ = handler
}

// serveObject answers from a stored object; conditionals and Range are
// left out here.
func serveObject(w http.ResponseWriter, obj *cache.Object) {
	m := obj.Meta()
	for name, vs := range m.Header {
		w.Header()[name] = vs
	}
	w.Header().Set("Content-Length", strconv.FormatInt(obj.Size(), 10))
	w.WriteHeader(m.Status)
	_, _ = obj.WriteTo(w) // sendfile(2) for a file-backed object on plain HTTP
}

// ExampleFetchFunc is the shape of the proxy's fetch: a GET to OSS whose
// response the cache streams to every waiting client.
func ExampleFetchFunc() {
	var c *cache.Cache
	var k cache.Key
	var stale *cache.Object // the stored copy a stale hit found, if any
	client := &http.Client{}
	fetch := func(ctx context.Context) (cache.Meta, io.ReadCloser, bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://bucket.oss-cn-hangzhou.aliyuncs.com/"+k.Object, nil)
		if err != nil {
			return cache.Meta{}, nil, false, err
		}
		if stale != nil {
			req.Header.Set("If-None-Match", stale.Meta().ETag)
		}
		resp, err := client.Do(req)
		if err != nil {
			return cache.Meta{}, nil, false, err // no connection, timeout: waiters may serve stale
		}
		if resp.StatusCode >= 500 {
			resp.Body.Close()
			return cache.Meta{}, nil, false, errors.New(resp.Status)
		}
		if resp.StatusCode == http.StatusNotModified {
			_ = c.Touch(k, time.Now())
		}
		lm, _ := http.ParseTime(resp.Header.Get("Last-Modified"))
		meta := cache.Meta{
			Status: resp.StatusCode, Header: resp.Header, Size: resp.ContentLength,
			ETag: resp.Header.Get("ETag"), LastModified: lm,
		}
		cc := resp.Header.Get("Cache-Control")
		cacheable := resp.StatusCode == http.StatusOK && meta.ETag != "" && !containsToken(cc, "private") && !containsToken(cc, "no-store")
		return meta, resp.Body, cacheable, nil
	}
	_ = fetch
}

// containsToken reports whether a comma-separated header value has tok
// (a directive, possibly with "=value").
func containsToken(s, tok string) bool {
	for _, part := range strings.Split(s, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(name, tok) {
			return true
		}
	}
	return false
}
