package proxy_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// lockstepUpstream is an upstream that only goes on once the other side has
// seen the first part of a body. If the gateway buffered a whole body before
// passing it on, the two sides would wait for each other until the timeout.
func lockstepUpstream(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

const part = 256 << 10

func TestDownloadStreamsBeforeUpstreamFinishes(t *testing.T) {
	clientGotFirst := make(chan struct{})
	addr := lockstepUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "524288")
		w.Write(bytes.Repeat([]byte("a"), part))
		w.(http.Flusher).Flush()
		select {
		case <-clientGotFirst:
		case <-time.After(10 * time.Second):
			t.Error("client never saw the first part: the gateway buffered the response")
			return
		}
		w.Write(bytes.Repeat([]byte("b"), part))
	})
	e := newEnv(t, envOpts{noDefaults: true, sites: siteFor(addr)})
	resp := e.do("GET", "lock.test", "/obj", nil, nil)
	defer resp.Body.Close()
	first := make([]byte, part)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	close(clientGotFirst)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != part || rest[0] != 'b' {
		t.Fatalf("rest: %d bytes, %v", len(rest), err)
	}
}

func TestUploadStreamsBeforeClientFinishes(t *testing.T) {
	upstreamGotFirst := make(chan struct{})
	addr := lockstepUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, part)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			t.Errorf("upstream read: %v", err)
			return
		}
		close(upstreamGotFirst)
		rest, _ := io.ReadAll(r.Body)
		if len(rest) != part {
			t.Errorf("upstream got %d more bytes", len(rest))
		}
		w.WriteHeader(200)
	})
	e := newEnv(t, envOpts{noDefaults: true, sites: siteFor(addr)})
	pr, pw := io.Pipe()
	go func() {
		pw.Write(bytes.Repeat([]byte("a"), part))
		select {
		case <-upstreamGotFirst:
		case <-time.After(10 * time.Second):
			pw.CloseWithError(io.ErrUnexpectedEOF)
			return
		}
		pw.Write(bytes.Repeat([]byte("b"), part))
		pw.Close()
	}()
	resp := e.do("PUT", "lock.test", "/obj", nil, pr)
	readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT %d: the gateway did not stream the upload", resp.StatusCode)
	}
}

func TestResponseHopByHopHeadersRemoved(t *testing.T) {
	addr := lockstepUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Hop-Secret")
		h.Set("X-Hop-Secret", "1")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Upgrade", "h2c")
		h.Set("X-Oss-Request-Id", "UPSTREAMID")
		h.Set("X-End-To-End", "kept")
		io.WriteString(w, "ok")
	})
	e := newEnv(t, envOpts{noDefaults: true, sites: siteFor(addr)})
	resp := e.do("GET", "lock.test", "/obj", nil, nil)
	readBody(t, resp)
	for _, k := range []string{"X-Hop-Secret", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if resp.Header.Get(k) != "" {
			t.Errorf("hop-by-hop %s reached the client", k)
		}
	}
	if resp.Header.Get("X-End-To-End") != "kept" || resp.Header.Get("X-Oss-Request-Id") != "UPSTREAMID" {
		t.Errorf("end-to-end headers lost: %v", resp.Header)
	}
	if line := lastLogLine(t, e.logs); line["upstream_request_id"] != "UPSTREAMID" {
		t.Errorf("access log upstream_request_id %v", line["upstream_request_id"])
	}
}

func siteFor(addr string) string {
	return `
[[site]]
name = "lock"
domains = ["lock.test"]
bucket = "pub-bucket"
region = "cn-hangzhou"
endpoint = "http://` + addr + `"
access = "public"
tls = "off"
methods = ["GET", "HEAD", "PUT"]
`
}

func TestStalledUpstreamBodyIsAbandoned(t *testing.T) {
	upstreamGaveUp := make(chan struct{})
	addr := lockstepUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		w.Write(make([]byte, 64<<10))
		w.(http.Flusher).Flush()
		select { // go silent mid-body
		case <-r.Context().Done():
			close(upstreamGaveUp)
		case <-time.After(20 * time.Second):
		}
	})
	e := newEnv(t, envOpts{noDefaults: true, server: `upstream_header_timeout = "300ms"`, sites: siteFor(addr)})
	resp := e.do("GET", "lock.test", "/obj", nil, nil)
	_, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("a stalled body ended cleanly for the client")
	}
	select {
	case <-upstreamGaveUp:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway kept waiting on a silent upstream")
	}
}
