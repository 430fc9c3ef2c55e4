package upstream

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testcert"
)

// scriptServer is a hostile upstream for tests: a 127.0.0.1 listener (plain
// TCP or TLS) where every accepted connection runs a script that reads
// request heads and bodies and answers with raw bytes, pauses, drips,
// half-closes, closes or resets, as the test needs. Everything that arrives
// is recorded per connection, so a test can tell whether a connection was
// reused and what a reused connection received.
type scriptServer struct {
	t      testing.TB
	ln     net.Listener
	addr   string
	script func(c *scriptConn)
	// roots trusts the TLS variant's certificate (nil for plain TCP).
	roots *x509.CertPool

	mu    sync.Mutex
	conns []*scriptConn
	wg    sync.WaitGroup
	done  chan struct{} // closed when the server closes
}

// scriptConn is one accepted connection and what it received.
type scriptConn struct {
	srv *scriptServer
	id  int // accept order, from 0
	nc  net.Conn
	tcp *net.TCPConn
	br  *bufio.Reader
	sni string // the TLS variant's server name indication

	mu     sync.Mutex
	reqs   []*scriptReq
	closed bool
}

// scriptReq is one request as the server read it.
type scriptReq struct {
	Method, Target string
	Header         http.Header
	Body           string
	BodyErr        error
	req            *http.Request
}

// newScriptServer starts a plain-TCP scripted upstream; script runs once per
// accepted connection, on its own goroutine, and the connection is closed
// when it returns.
func newScriptServer(t testing.TB, script func(c *scriptConn)) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startScriptServer(t, ln, nil, script)
}

// newScriptServerTLS is newScriptServer behind TLS, with a throwaway
// certificate for 127.0.0.1 that s.roots trusts. The client's server name
// indication is recorded per connection.
func newScriptServerTLS(t testing.TB, script func(c *scriptConn)) *scriptServer {
	t.Helper()
	pair := testcert.New(t, testcert.Options{}, "127.0.0.1")
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pair.Leaf)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Full-size records from the start, so a test can place a record
	// boundary where it wants one.
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, DynamicRecordSizingDisabled: true}
	return startScriptServer(t, ln, cfg, script).withRoots(roots)
}

func (s *scriptServer) withRoots(r *x509.CertPool) *scriptServer { s.roots = r; return s }

func startScriptServer(t testing.TB, ln net.Listener, tlsConfig *tls.Config, script func(c *scriptConn)) *scriptServer {
	s := &scriptServer{t: t, ln: ln, addr: ln.Addr().String(), script: script, done: make(chan struct{})}
	t.Cleanup(s.close)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := &scriptConn{srv: s, nc: nc, tcp: nc.(*net.TCPConn)}
			s.mu.Lock()
			c.id = len(s.conns)
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				if tlsConfig != nil {
					tc := tls.Server(nc, tlsConfig)
					_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
					if err := tc.Handshake(); err != nil {
						return
					}
					_ = tc.SetDeadline(time.Time{})
					c.mu.Lock()
					c.nc, c.sni = tc, tc.ConnectionState().ServerName
					c.mu.Unlock()
				}
				c.br = bufio.NewReader(c.nc)
				script(c)
			}()
		}
	}()
	return s
}

// close stops the listener, ends every connection and waits for the
// scripts (a script blocked reading returns once its connection closes).
func (s *scriptServer) close() {
	s.ln.Close()
	close(s.done)
	s.mu.Lock()
	for _, c := range s.conns {
		c.tcp.Close() // ends the TLS connection on it too
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// url is the base URL of the server for the client: http or https.
func (s *scriptServer) url() string {
	if s.roots != nil {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// served lists every request that arrived, in connection order, as
// "conn#:METHOD target".
func (s *scriptServer) served() []string {
	s.mu.Lock()
	conns := append([]*scriptConn(nil), s.conns...)
	s.mu.Unlock()
	var out []string
	for _, c := range conns {
		c.mu.Lock()
		for _, r := range c.reqs {
			out = append(out, strings.Join([]string{itoa(c.id), ":", r.Method, " ", r.Target}, ""))
		}
		c.mu.Unlock()
	}
	return out
}

// find returns the connection that received target (the last one if
// several did) and the request as it arrived, or nil.
func (s *scriptServer) find(target string) (*scriptConn, *scriptReq) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.conns) - 1; i >= 0; i-- {
		c := s.conns[i]
		c.mu.Lock()
		for j := len(c.reqs) - 1; j >= 0; j-- {
			if c.reqs[j].Target == target {
				r := c.reqs[j]
				c.mu.Unlock()
				return c, r
			}
		}
		c.mu.Unlock()
	}
	return nil, nil
}

// count is how many times target arrived, over all connections.
func (s *scriptServer) count(target string) int {
	n := 0
	for _, r := range s.served() {
		if strings.HasSuffix(r, " "+target) {
			n++
		}
	}
	return n
}

// connCount is how many connections were accepted.
func (s *scriptServer) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// conn returns the connection accepted id-th (from 0), or nil.
func (s *scriptServer) conn(id int) *scriptConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < len(s.conns) {
		return s.conns[id]
	}
	return nil
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// ReadHead reads one request head and records it; its body stays on the
// connection for ReadBody (or for nobody: an early answer). nil when the
// connection ended first.
func (c *scriptConn) ReadHead() *scriptReq {
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return nil
	}
	r := &scriptReq{Method: req.Method, Target: req.RequestURI, Header: req.Header, req: req}
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.mu.Unlock()
	return r
}

// ReadBody reads r's body to its end, as its framing says.
func (c *scriptConn) ReadBody(r *scriptReq) {
	b, err := io.ReadAll(r.req.Body)
	c.mu.Lock()
	r.Body, r.BodyErr = string(b), err
	c.mu.Unlock()
}

// ReadRequest reads one whole request, head and body; nil when the
// connection ended first.
func (c *scriptConn) ReadRequest() *scriptReq {
	r := c.ReadHead()
	if r != nil {
		c.ReadBody(r)
	}
	return r
}

// Write sends raw bytes.
func (c *scriptConn) Write(s string) error {
	_, err := io.WriteString(c.nc, s)
	return err
}

// Drip sends s one byte at a time, every d.
func (c *scriptConn) Drip(s string, d time.Duration) error {
	for i := 0; i < len(s); i++ {
		if _, err := io.WriteString(c.nc, s[i:i+1]); err != nil {
			return err
		}
		time.Sleep(d)
	}
	return nil
}

// Wait pauses the script for d, or until the server closes.
func (c *scriptConn) Wait(d time.Duration) {
	select {
	case <-time.After(d):
	case <-c.srv.done:
	}
}

// Close closes the connection (a FIN, or a RST if request bytes are still
// unread in the kernel).
func (c *scriptConn) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.nc.Close()
}

// CloseWrite half-closes: the client sees EOF, the server can still read.
func (c *scriptConn) CloseWrite() {
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.CloseWrite()
		_ = c.tcp.CloseWrite()
		return
	}
	_ = c.tcp.CloseWrite()
}

// Reset aborts the connection with a RST (SO_LINGER 0).
func (c *scriptConn) Reset() {
	_ = c.tcp.SetLinger(0)
	c.Close()
}

// isClosed reports whether the script closed the connection.
func (c *scriptConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// requests is a copy of what this connection received (none for nil).
func (c *scriptConn) requests() []*scriptReq {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*scriptReq(nil), c.reqs...)
}

// Serve answers n requests (n < 0: every request until the connection
// ends) with clean, framed responses: "clean" followed by the target as the
// body. It returns false once the connection has ended.
func (c *scriptConn) Serve(n int) bool {
	for i := 0; n < 0 || i < n; i++ {
		if c.isClosed() {
			return false
		}
		r := c.ReadRequest()
		if r == nil {
			return false
		}
		body := "clean" + r.Target
		if err := c.Write("HTTP/1.1 200 OK\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body); err != nil {
			return false
		}
	}
	return true
}
