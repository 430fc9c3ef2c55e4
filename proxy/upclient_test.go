package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer answers each request on a connection with handle, which
// writes a raw HTTP response and says whether to keep the connection.
func rawServer(t testing.TB, handle func(n int64, req *http.Request, w *bufio.Writer) (keep bool)) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = &atomic.Int64{}
	var reqs atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br, bw := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					keep := handle(reqs.Add(1), req, bw)
					bw.Flush()
					if !keep {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), conns
}

func newTestClient() *upstreamClient {
	return NewTransport(TransportOptions{DialTimeout: time.Second, HeaderTimeout: time.Second}).(*upstreamClient)
}

func get(t testing.TB, c *upstreamClient, addr, method string, body io.Reader) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+"/k", body)
	req.Host = "bucket." + addr
	return c.RoundTrip(req)
}

// TestUpstreamClientReusesAndRetriesStale proves a keep-alive connection is
// reused, and that one OSS closed while idle is replaced transparently for
// a body-less request.
func TestUpstreamClientReusesAndRetriesStale(t *testing.T) {
	closeAfter := atomic.Bool{}
	addr, conns := rawServer(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return !closeAfter.Load() // the server closes silently, advertising keep-alive
	})
	c := newTestClient()
	for i := 0; i < 3; i++ {
		resp, err := get(t, c, addr, "GET", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("3 sequential requests used %d connections, want 1", n)
	}

	closeAfter.Store(true)
	resp, _ := get(t, c, addr, "GET", nil) // served, then the server closes
	io.ReadAll(resp.Body)
	resp.Body.Close()
	time.Sleep(50 * time.Millisecond)
	resp, err := get(t, c, addr, "GET", nil)
	if err != nil {
		t.Fatalf("GET on a connection closed while idle: %v", err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()

}

// TestUpstreamClientClosesUnreadBodies proves a body closed before its end
// takes its connection down (never drained, never reused), while a body read
// to the end gives its connection back.
func TestUpstreamClientClosesUnreadBodies(t *testing.T) {
	addr, conns := rawServer(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
		w.WriteString(strings.Repeat("x", 1000000))
		return true
	})
	c := newTestClient()
	resp, err := get(t, c, addr, "GET", nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	resp, err = get(t, c, addr, "GET", nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != 1000000 || conns.Load() != 2 {
		t.Fatalf("read %d bytes over %d connections, want 1000000 over 2", n, conns.Load())
	}
	resp, _ = get(t, c, addr, "GET", nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if conns.Load() != 2 {
		t.Fatalf("a fully read body did not give its connection back: %d connections", conns.Load())
	}
}

// TestUpstreamClientTimeoutsAndCancel proves the header timeout and a
// cancelled context each end a wait for OSS.
func TestUpstreamClientTimeoutsAndCancel(t *testing.T) {
	addr, _ := rawServer(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		time.Sleep(3 * time.Second)
		return false
	})
	c := newTestClient()
	start := time.Now()
	_, err := get(t, c, addr, "GET", nil)
	if !isTimeout(err) || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %s, want a timeout after 1s", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/k", nil)
	start = time.Now()
	if _, err := c.RoundTrip(req); err == nil || time.Since(start) > time.Second {
		t.Fatalf("err %v after %s, want the context's end at 200ms", err, time.Since(start))
	}
}

// TestUpstreamClientChunkedUpload proves a body of unknown length goes as
// chunks and arrives whole.
func TestUpstreamClientChunkedUpload(t *testing.T) {
	var got atomic.Value
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(strings.Join(r.TransferEncoding, ",") + ":" + string(b))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c := newTestClient()
	req, _ := http.NewRequest("PUT", "http://"+ln.Addr().String()+"/k", io.MultiReader(strings.NewReader("abc"), strings.NewReader("defg")))
	req.ContentLength = -1
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.Load() != "chunked:abcdefg" {
		t.Fatalf("server saw %v", got.Load())
	}
}

// TestUpstreamClientReusedDeadline proves the read deadline a connection
// keeps from its last exchange only brings the context check forward: on
// the reused connection an answer after 300 ms still arrives, and the
// header timeout still ends a longer wait at 1 s, not at the old deadline.
func TestUpstreamClientReusedDeadline(t *testing.T) {
	addr, conns := rawServer(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		switch n {
		case 2:
			time.Sleep(300 * time.Millisecond)
		case 3:
			time.Sleep(3 * time.Second)
		}
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	c := newTestClient()
	for i, want := range []string{"ok", "ok"} {
		resp, err := get(t, c, addr, "GET", nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Fatalf("request %d: %q", i+1, b)
		}
	}
	start := time.Now()
	_, err := get(t, c, addr, "GET", nil)
	if d := time.Since(start); !isTimeout(err) || d < 900*time.Millisecond || d > 2500*time.Millisecond {
		t.Fatalf("third request: %v after %s, want the 1s header timeout", err, d)
	}
	if conns.Load() != 1 {
		t.Fatalf("%d connections, want the first one reused", conns.Load())
	}
}

// TestUpstreamClientSlowHead proves a head that arrives in pieces, with a
// pause longer than the context check between them, is waited for up to
// the header timeout, not cut at the check.
func TestUpstreamClientSlowHead(t *testing.T) {
	addr, _ := rawServer(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
		w.Flush()
		time.Sleep(3 * cancelCheck)
		w.WriteString("X-Oss-Request-Id: slow\r\n\r\nok")
		return true
	})
	c := newTestClient()
	for i := 0; i < 2; i++ { // fresh, then reused with the old check deadline
		resp, err := get(t, c, addr, "GET", nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" || resp.Header.Get("X-Oss-Request-Id") != "slow" {
			t.Fatalf("request %d: %q %v", i+1, b, resp.Header)
		}
	}
}
