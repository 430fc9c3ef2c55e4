package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
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
	return New(Options{DialTimeout: time.Second, HeaderTimeout: time.Second}).(*upstreamClient)
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
	if !IsTimeout(err) || time.Since(start) > 2*time.Second {
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
	if d := time.Since(start); !IsTimeout(err) || d < 900*time.Millisecond || d > 2500*time.Millisecond {
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

// benchServer is a keep-alive upstream that allocates nothing per request:
// it finds each request head's end and Content-Length in a fixed buffer,
// skips the body and writes one canned answer. Benchmarks count every
// allocation in the process, the server's included, so it must not add any.
func benchServer(b *testing.B, answer string) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				resp := []byte(answer)
				n := 0
				for {
					m, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += m
					for {
						end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
						if end < 0 {
							break
						}
						total := end + 4 + benchContentLength(buf[:end])
						for n < total {
							if n == len(buf) { // skip body bytes past the buffer
								total -= n
								n = 0
							}
							m, err := c.Read(buf[n:min(len(buf), total)])
							if err != nil {
								return
							}
							n += m
						}
						n = copy(buf, buf[total:n])
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// benchContentLength finds "Content-Length: n" in a request head.
func benchContentLength(head []byte) int {
	i := bytes.Index(head, []byte("\r\nContent-Length: "))
	if i < 0 {
		return 0
	}
	n := 0
	for _, c := range head[i+len("\r\nContent-Length: "):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// BenchmarkUpstream is one small GET and one small PUT to a local upstream
// over a kept-alive connection, per transport: the client's own cost per
// exchange (allocations are the number to watch; time is loopback-bound).
func BenchmarkUpstream(b *testing.B) {
	answer := "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nx-oss-request-id: 5F3A2B1C0D\r\nEtag: \"abc\"\r\n\r\n" + strings.Repeat("x", 1024)
	for _, mode := range []string{"native", "stdlib"} {
		for _, method := range []string{"GET", "PUT"} {
			b.Run(mode+"/"+method, func(b *testing.B) {
				addr := benchServer(b, answer)
				rt := New(Options{Mode: mode, DialTimeout: time.Second, HeaderTimeout: 5 * time.Second})
				payload := strings.Repeat("p", 1024)
				body := strings.NewReader(payload)
				buf := make([]byte, 4096)
				u := &url.URL{Scheme: "http", Host: addr, Opaque: "/bkt/key"}
				hdr := http.Header{"User-Agent": {""}, "X-Forwarded-For": {"203.0.113.9"}}
				b.ReportAllocs()
				for b.Loop() {
					req := &http.Request{Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: hdr, Host: "bkt." + addr}
					req = req.WithContext(context.Background())
					if method == "PUT" {
						body.Reset(payload)
						req.Body = io.NopCloser(body)
						req.ContentLength = int64(len(payload))
					}
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					for {
						if _, err := resp.Body.Read(buf); err != nil {
							break
						}
					}
					resp.Body.Close()
				}
			})
		}
	}
}

// TestUpstreamClientKeysConnectionsByTLSSettings proves a connection is only
// reused under the TLS settings it was verified with: once they change (new
// roots that do not trust the server), the next request verifies a new
// connection, and fails, instead of riding the old one.
func TestUpstreamClientKeysConnectionsByTLSSettings(t *testing.T) {
	srv := newScriptServerTLS(t, func(c *scriptConn) { c.Serve(-1) })
	c := New(Options{DialTimeout: time.Second, HeaderTimeout: 2 * time.Second, RootCAs: srv.roots}).(*upstreamClient)
	get := func() error {
		req, _ := http.NewRequest("GET", srv.url()+"/k", nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			return err
		}
		io.ReadAll(resp.Body)
		return resp.Body.Close()
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}
	if sni := srv.conn(0).sni; sni != "" {
		t.Errorf("SNI %q sent for an IP address", sni)
	}
	c.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
	err := get()
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Fatalf("request under roots that do not trust the server: %v, want an unknown authority error", err)
	}
	if srv.connCount() != 2 {
		t.Fatalf("%d connections, want a second one for the new settings", srv.connCount())
	}
}

// TestUpstreamClientTLSLeftoverAfterExactRead proves bytes past a body that
// stay inside the TLS layer (the rest of the body's last record, when the
// caller reads exactly the body) keep the connection from reuse, as bytes
// in the read buffer or the socket do.
func TestUpstreamClientTLSLeftoverAfterExactRead(t *testing.T) {
	const size = 6*16384 + 12000 - 44 // the last 16 KiB record: 12000 body bytes, then the stray answer
	srv := newScriptServerTLS(t, func(c *scriptConn) {
		if c.id == 0 && c.ReadRequest() != nil {
			c.Write("HTTP/1.1 200 OK\r\nContent-Length: " + itoa(size) + "\r\n\r\n" + strings.Repeat("b", size) + smuggled)
		}
		c.Serve(-1)
	})
	c := New(Options{DialTimeout: time.Second, HeaderTimeout: 2 * time.Second, RootCAs: srv.roots}).(*upstreamClient)
	req, _ := http.NewRequest("GET", srv.url()+"/first", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", srv.url()+"/second", nil)
	resp, err = c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "clean/second" {
		t.Fatalf("second request got %q", b)
	}
}

// pipeConn puts a net.Pipe end into c's idle pool for u, as a connection
// an earlier exchange left there a while ago; the other end goes to the
// caller.
func pipeConn(t testing.TB, c *upstreamClient, u string) net.Conn {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := net.Pipe()
	conn := &upConn{key: c.keyFor(pu), nc: mine}
	conn.br = bufio.NewReaderSize(conn, 8<<10)
	conn.bw = bufio.NewWriterSize(conn, 8<<10)
	c.putConn(conn)
	c.mu.Lock()
	conn.idleAt = conn.idleAt.Add(-headFirstAfter) // idle long enough for an upload's head to go first
	c.mu.Unlock()
	t.Cleanup(func() { mine.Close(); theirs.Close() })
	return theirs
}

// TestUpstreamClientResendsUntakenPut proves a PUT whose reused connection
// turns out dead before it took a single byte goes again, body and all, on
// a new connection; and that one whose head was taken is never sent twice.
func TestUpstreamClientResendsUntakenPut(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	srv := newScriptServer(t, func(c *scriptConn) {
		for {
			r := c.ReadRequest()
			if r == nil {
				return
			}
			mu.Lock()
			bodies = append(bodies, r.Body)
			mu.Unlock()
			c.Write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
	c := newTestClient()
	put := func() error {
		req, _ := http.NewRequest("PUT", srv.url()+"/k", strings.NewReader("the body"))
		resp, err := c.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}

	// Dead before the first byte: the write fails with nothing taken.
	pipeConn(t, c, srv.url()).Close()
	if err := put(); err != nil {
		t.Fatalf("PUT over a dead idle connection: %v, want it sent on a new one", err)
	}
	mu.Lock()
	if len(bodies) != 1 || bodies[0] != "the body" {
		t.Fatalf("server got bodies %q", bodies)
	}
	mu.Unlock()

	// Dead after the head was taken: OSS may have it, so no second send.
	c.CloseIdleConnections()
	theirs := pipeConn(t, c, srv.url())
	go func() {
		br := bufio.NewReader(theirs)
		for {
			l, err := br.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
		}
		theirs.Close()
	}()
	if err := put(); err == nil {
		t.Fatal("PUT whose head was taken before the connection died: no error")
	}
	if srv.connCount() != 1 {
		t.Fatalf("%d connections to the server, want the one of the first PUT: the second was re-sent", srv.connCount())
	}
}

// TestUpstreamClientReapsIdleConnections proves idle connections are closed
// once idle past idleTimeout without any further request, and that the
// reaper stops when the pool is empty.
func TestUpstreamClientReapsIdleConnections(t *testing.T) {
	closed := make(chan time.Time, 4)
	srv := newScriptServer(t, func(c *scriptConn) {
		c.Serve(-1)
		closed <- time.Now()
	})
	c := newTestClient()
	c.idleTimeout = 300 * time.Millisecond
	// Two connections (two requests at once), idle from about the same time.
	req1, _ := http.NewRequest("GET", srv.url()+"/k", nil)
	req2, _ := http.NewRequest("GET", srv.url()+"/k", nil)
	r1, err := c.RoundTrip(req1)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.RoundTrip(req2)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(r1.Body)
	io.ReadAll(r2.Body)
	r1.Body.Close()
	r2.Body.Close()
	start := time.Now()
	for i := 0; i < 2; i++ {
		select {
		case at := <-closed:
			if d := at.Sub(start); d < 100*time.Millisecond {
				t.Errorf("connection closed %s after going idle, before the idle timeout", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("idle connection still open 10s after its idle timeout")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n, reaping := c.nidle, c.reaping
		c.mu.Unlock()
		if n == 0 && !reaping {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool still holds %d connections (reaper armed: %v)", n, reaping)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if srv.connCount() != 2 {
		t.Fatalf("%d connections, want 2", srv.connCount())
	}
}

// TestUpstreamClientWriteTimeout proves an upload to a connection that
// stops taking bytes fails after the write timeout, not when the client
// gives up.
func TestUpstreamClientWriteTimeout(t *testing.T) {
	srv := newScriptServer(t, func(c *scriptConn) {
		if c.ReadHead() != nil {
			c.Wait(time.Minute) // never reads the body
		}
	})
	c := newTestClient()
	c.writeTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "PUT", srv.url()+"/k", strings.NewReader(strings.Repeat("u", 64<<20)))
	start := time.Now()
	_, err := c.RoundTrip(req)
	if err == nil || ctx.Err() != nil || !IsTimeout(err) {
		t.Fatalf("err %v after %s (context: %v), want a write timeout", err, time.Since(start), ctx.Err())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("write timeout took %s", d)
	}

	// The write deadline, renewed on every write, never outlives a
	// cancelled context.
	c.writeTimeout = time.Minute
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "PUT", srv.url()+"/k", strings.NewReader(strings.Repeat("u", 64<<20)))
	start = time.Now()
	if _, err := c.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled upload: %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("cancel took %s", d)
	}
}

// TestStreamBlamesUpstreamReset proves a splice cut by OSS resetting the
// connection is an upstream error (which the resume repairs), not the
// client's: the splice reports both ends' failures alike, and a read with
// the deadline past, which never reaches the socket, cannot tell them apart.
func TestStreamBlamesUpstreamReset(t *testing.T) {
	body := pattern(8 << 20)
	srv := newScriptServer(t, func(c *scriptConn) {
		if c.ReadRequest() != nil {
			c.Write("HTTP/1.1 200 OK\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n")
			c.Write(string(body[:2<<20]))
			c.Wait(100 * time.Millisecond)
			c.Reset()
		}
	})
	c := newTestClient()
	results := make(chan sendResult, 1)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequest("GET", srv.url()+"/k", nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(200)
		results <- streamToClient(w, resp.Body)
	}))
	defer gw.Close()
	resp, err := http.Get(gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	res := <-results
	if !res.spliced || res.err == nil || errors.Is(res.err, ErrClientWrite) {
		t.Fatalf("Stream: %+v (client's fault: %v), want an upstream error", res, errors.Is(res.err, ErrClientWrite))
	}
}
