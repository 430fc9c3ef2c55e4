package framing

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// scriptConn returns its data in one Read, with io.EOF, as a peer that
// pipelines everything and half-closes would.
type scriptConn struct {
	net.Conn // nil: only Read is used
	data     []byte
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	if len(c.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// TestConnReadStopsAtRequestEnds: bytes received past a request's end
// come back on later Reads, in order, and the peer's error after them.
func TestConnReadStopsAtRequestEnds(t *testing.T) {
	stream := get + putCL + putTE + clte + get
	c := &Conn{nc: &scriptConn{data: []byte(stream)}}
	var got []string
	var err error
	for err == nil {
		buf := make([]byte, 4096)
		var n int
		n, err = c.Read(buf)
		if n > 0 {
			got = append(got, string(buf[:n]))
		}
	}
	if err != io.EOF {
		t.Fatalf("err %v, want EOF", err)
	}
	want := []string{get, putCL, putTE, clte + get} // no tracking after a conflict
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("reads\n%q\nwant\n%q", got, want)
	}
}

// TestConflictNamesTheRequestThatHadIt reads pipelined requests the way
// net/http's server does (a 4 KiB bufio.Reader over the connection; the
// head, then the body) from a peer that sent them all at once: each
// request's answer must be its own, not that of a head buffered behind it.
func TestConflictNamesTheRequestThatHadIt(t *testing.T) {
	for _, tc := range []struct {
		stream string
		want   []bool
	}{
		{get + putCL + clte, []bool{false, false, true}},
		{putTrap + get + putTE + tecl + get, []bool{false, false, false, true, true}},
		{clte + get, []bool{true, true}},
		{get + get10 + putTE0 + putCL0 + get, []bool{false, false, false, false, false}},
	} {
		c := &Conn{nc: &scriptConn{data: []byte(tc.stream)}}
		br := bufio.NewReader(c)
		var got []bool
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				break
			}
			got = append(got, c.Conflict())
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				t.Fatal(err)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q: conflicts %v, want %v", tc.stream, got, tc.want)
		}
	}
}

// conflictHandler is the gateway's rule in miniature.
func conflictHandler(w http.ResponseWriter, r *http.Request) {
	if Conflict(r) {
		// Do not wait for a body nobody will read: net/http would
		// otherwise drain up to 256 KiB of it before closing.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		w.Header().Set("Connection", "close")
		http.Error(w, "both Content-Length and Transfer-Encoding", http.StatusBadRequest)
		return
	}
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "ok %d from %s", n, r.RemoteAddr)
}

// startServer serves conflictHandler on ln wrapped by NewListener and
// returns its address.
func startServer(t *testing.T, ln net.Listener) string {
	t.Helper()
	srv := &http.Server{
		Handler:           http.HandlerFunc(conflictHandler),
		ConnContext:       ConnContext,
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(NewListener(ln)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t, c, bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads one response and checks its status and body prefix.
func (c *client) expect(status int, bodyPrefix string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("want %d: %v", status, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != status || !strings.HasPrefix(string(body), bodyPrefix) {
		c.t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, status, bodyPrefix)
	}
	if status == http.StatusBadRequest && !resp.Close {
		c.t.Fatal("400 without Connection: close")
	}
}

// expectEOF checks that the server closed the connection.
func (c *client) expectEOF() {
	c.t.Helper()
	if b, err := c.br.ReadByte(); err != io.EOF {
		c.t.Fatalf("after the 400: byte %q, err %v; want EOF", b, err)
	}
}

func TestServerAnswersConflict(t *testing.T) {
	addr := startServer(t, listen(t))

	t.Run("one at a time", func(t *testing.T) {
		c := dial(t, addr)
		c.send(get)
		c.expect(200, "ok 0")
		c.send(putCL)
		c.expect(200, "ok 11")
		c.send(putTE) // chunked, no Content-Length: fine
		c.expect(200, "ok 21")
		c.send(putTrap)
		c.expect(200, "ok 51")
		c.send(get)
		c.expect(200, "ok 0")
		c.send(clte)
		c.expect(400, "both")
		c.expectEOF()
	})

	t.Run("pipelined in one write", func(t *testing.T) {
		c := dial(t, addr)
		c.send(get + putTrap + putTE + tecl)
		c.expect(200, "ok 0")
		c.expect(200, "ok 51")
		c.expect(200, "ok 21")
		c.expect(400, "both")
		c.expectEOF()
	})

	t.Run("conflict first", func(t *testing.T) {
		c := dial(t, addr)
		c.send(clte)
		c.expect(400, "both")
		c.expectEOF()
	})

	t.Run("body never sent", func(t *testing.T) {
		c := dial(t, addr)
		c.send(get)
		c.expect(200, "ok 0")
		c.send("PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n")
		start := time.Now()
		c.expect(400, "both")
		c.expectEOF()
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("closed after %v", d)
		}
	})

	t.Run("HTTP/1.0", func(t *testing.T) {
		c := dial(t, addr)
		c.send(get10)
		c.expect(200, "ok 0")
		c.send(clte10)
		c.expect(400, "both")
		c.expectEOF()
	})
}

// TestServerBehindProxyProtocol: outermost over a PROXY-protocol listener,
// the tracker sees only HTTP and the client address survives.
func TestServerBehindProxyProtocol(t *testing.T) {
	inner := &proxyproto.Listener{
		Listener: listen(t),
		ConnPolicy: func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			return proxyproto.USE, nil
		},
	}
	addr := startServer(t, inner)
	c := dial(t, addr)
	c.send("PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n" + get)
	c.expect(200, "ok 0 from 203.0.113.7:5555")
	c.send(putTE)
	c.expect(200, "ok 21 from 203.0.113.7:5555")
	c.send(clte)
	c.expect(400, "both")
	c.expectEOF()
}

// rfConn is a TCP connection that counts calls to its ReadFrom.
type rfConn struct {
	*net.TCPConn
	calls *atomic.Int32
}

func (c rfConn) ReadFrom(r io.Reader) (int64, error) {
	c.calls.Add(1)
	return c.TCPConn.ReadFrom(r)
}

type rfListener struct {
	net.Listener
	calls *atomic.Int32
}

func (l rfListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return rfConn{c.(*net.TCPConn), l.calls}, nil
}

// TestResponseReadFromReachesTheSocket: http.response.ReadFrom, which the
// gateway's splice path calls, still hands the copy to the socket's
// ReadFrom (splice/sendfile) through the wrapper.
func TestResponseReadFromReachesTheSocket(t *testing.T) {
	var calls atomic.Int32
	ln := rfListener{listen(t), &calls}
	body := bytes.Repeat([]byte("0123456789abcdef"), 8<<10)
	srv := &http.Server{
		ConnContext: ConnContext,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.(io.ReaderFrom).ReadFrom(bytes.NewReader(body))
		}),
	}
	go func() { _ = srv.Serve(NewListener(ln)) }()
	defer srv.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body %d bytes, err %v", len(got), err)
	}
	if calls.Load() == 0 {
		t.Fatal("the socket's ReadFrom was never called")
	}
}

// TestConnPassesThrough covers the optional interfaces and ConnContext's
// search through NetConn wrappers.
func TestConnPassesThrough(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	raw, err := NewListener(ln).Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := raw.(*Conn)
	if _, ok := c.NetConn().(*net.TCPConn); !ok {
		t.Fatalf("NetConn is %T", c.NetConn())
	}
	if _, err := c.SyscallConn(); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := (&Conn{nc: &scriptConn{}}).CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CloseWrite on a conn without it: %v", err)
	}

	wrapped := struct {
		net.Conn
		netConner
	}{c, netConner{c}}
	ctx := ConnContext(context.Background(), wrapped)
	if got, _ := ctx.Value(connKey{}).(*Conn); got != c {
		t.Fatal("ConnContext did not find the *Conn under a NetConn wrapper")
	}
	if ctx := ConnContext(context.Background(), c.NetConn()); ctx.Value(connKey{}) != nil {
		t.Fatal("ConnContext stored something for an unwrapped conn")
	}
	r := httptestRequest(ctx)
	if Conflict(r) {
		t.Fatal("conflict on a fresh connection")
	}
	c.t.conflict.Store(true)
	if !Conflict(r) {
		t.Fatal("conflict not reported")
	}
	r.ProtoMajor = 2
	if Conflict(r) {
		t.Fatal("conflict reported for HTTP/2")
	}
}

type netConner struct{ c net.Conn }

func (n netConner) NetConn() net.Conn { return n.c }

func httptestRequest(ctx context.Context) *http.Request {
	r, _ := http.NewRequestWithContext(ctx, "GET", "http://x/", nil)
	return r
}

// BenchmarkConnReadBody is the per-Read cost on a Content-Length body:
// one 64 KiB read through the wrapper.
func BenchmarkConnReadBody(b *testing.B) {
	src := &repeatConn{}
	c := &Conn{nc: src}
	c.t.feed([]byte("PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775807\r\n\r\n"))
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := c.Read(buf); n != len(buf) || err != nil {
			b.Fatal(n, err)
		}
	}
}

// repeatConn reads as an endless stream of zeros.
type repeatConn struct{ net.Conn }

func (repeatConn) Read(p []byte) (int, error) { return len(p), nil }
