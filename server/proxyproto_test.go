package server

import (
	"bufio"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

var (
	loopback  = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tenOnly   = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	plainHTTP = "GET / HTTP/1.1\r\nHost: img.example.com\r\nConnection: close\r\n\r\n"
)

// ppServer is an http.Server on a wrapped 127.0.0.1 listener whose handler
// answers with r.RemoteAddr and records every address it saw.
type ppServer struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func (s *ppServer) handlerSaw() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func startPP(t *testing.T, trusted []netip.Prefix, headerTimeout time.Duration) *ppServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &ppServer{addr: ln.Addr().String()}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			s.seen = append(s.seen, r.RemoteAddr)
			s.mu.Unlock()
			io.WriteString(w, r.RemoteAddr)
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(wrapProxyProtocol(ln, func() []netip.Prefix { return trusted }, headerTimeout))
	t.Cleanup(func() { srv.Close() })
	return s
}

// exchange sends prefix (a PROXY header or nothing) and a plain GET on a new
// connection. It returns the status and body, the client's own socket
// address, and the error if no response came back.
func exchange(t *testing.T, addr string, prefix []byte) (status int, body, local string, err error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append(append([]byte(nil), prefix...), plainHTTP...)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", c.LocalAddr().String(), err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), c.LocalAddr().String(), nil
}

func v2(t *testing.T, cmd proxyproto.ProtocolVersionAndCommand, tp proxyproto.AddressFamilyAndProtocol, src, dst string) []byte {
	t.Helper()
	h := &proxyproto.Header{Version: 2, Command: cmd, TransportProtocol: tp}
	switch tp {
	case proxyproto.TCPv4, proxyproto.TCPv6:
		h.SourceAddr = net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src))
		h.DestinationAddr = net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst))
	case proxyproto.UDPv4, proxyproto.UDPv6:
		h.SourceAddr = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(src))
		h.DestinationAddr = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst))
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProxyProtocolTrustedPeer(t *testing.T) {
	s := startPP(t, loopback, 5*time.Second)
	for _, tc := range []struct {
		name   string
		header []byte
		want   string // "" = the client's socket address
	}{
		{"v1 tcp4", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 80\r\n"), "203.0.113.7:51234"},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n"), "[2001:db8::7]:4000"},
		{"v2 tcp4", v2(t, proxyproto.PROXY, proxyproto.TCPv4, "198.51.100.9:40000", "192.0.2.1:80"), "198.51.100.9:40000"},
		{"v2 tcp6", v2(t, proxyproto.PROXY, proxyproto.TCPv6, "[2001:db8:abcd:12::beef]:61000", "[2001:db8::1]:443"), "[2001:db8:abcd:12::beef]:61000"},
		{"no header (health check)", nil, ""},
		{"v2 LOCAL (health check)", v2(t, proxyproto.LOCAL, proxyproto.UNSPEC, "", ""), ""},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, local, err := exchange(t, s.addr, tc.header)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			want := tc.want
			if want == "" {
				want = local
			}
			if status != http.StatusOK || body != want {
				t.Fatalf("got %d %q, want 200 %q", status, body, want)
			}
		})
	}
}

// TestProxyProtocolTrustedNonTCPHeader: a UDP source names no client the
// gateway could use; the connection is closed without a response.
func TestProxyProtocolTrustedNonTCPHeader(t *testing.T) {
	s := startPP(t, loopback, 5*time.Second)
	_, _, _, err := exchange(t, s.addr, v2(t, proxyproto.PROXY, proxyproto.UDPv4, "203.0.113.7:53", "192.0.2.1:53"))
	if err == nil {
		t.Fatal("a UDP PROXY header was served")
	}
	if saw := s.handlerSaw(); len(saw) != 0 {
		t.Fatalf("handler ran for %v", saw)
	}
}

// TestProxyProtocolUntrustedPeer: the peer (127.0.0.1) is outside the
// trusted 10.0.0.0/8. Its connection is never parsed for a header (SKIP),
// so a forged header is an invalid HTTP request line: 400, no handler runs,
// the claimed address is never used. Its plain requests are served.
func TestProxyProtocolUntrustedPeer(t *testing.T) {
	s := startPP(t, tenOnly, 5*time.Second)
	for _, tc := range []struct {
		name   string
		header []byte
	}{
		{"v1", []byte("PROXY TCP4 10.1.2.3 192.0.2.1 51234 80\r\n")},
		{"v2", v2(t, proxyproto.PROXY, proxyproto.TCPv4, "10.1.2.3:51234", "192.0.2.1:80")},
		{"v2 tcp6", v2(t, proxyproto.PROXY, proxyproto.TCPv6, "[2001:db8::66]:51234", "[2001:db8::1]:80")},
	} {
		t.Run("forged "+tc.name, func(t *testing.T) {
			status, body, _, err := exchange(t, s.addr, tc.header)
			if err != nil || status != http.StatusBadRequest {
				t.Fatalf("forged header from an untrusted peer got %d %q (%v), want 400", status, body, err)
			}
		})
	}
	if saw := s.handlerSaw(); len(saw) != 0 {
		t.Fatalf("handler ran for forged headers, saw %v", saw)
	}
	status, body, local, err := exchange(t, s.addr, nil)
	if err != nil || status != http.StatusOK || body != local {
		t.Fatalf("plain request from an untrusted peer: %d %q %v, want 200 %q", status, body, err, local)
	}
}

// TestProxyProtocolSilentPeerDoesNotBlockAccept: a trusted peer that
// connects and sends nothing must not hold up other connections, even with
// a long header timeout.
func TestProxyProtocolSilentPeerDoesNotBlockAccept(t *testing.T) {
	s := startPP(t, loopback, time.Minute)
	var silent []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	// exchange's 10 s deadline is far below the minute a blocked Accept
	// would take.
	status, body, _, err := exchange(t, s.addr, []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 80\r\n"))
	if err != nil || status != http.StatusOK || body != "203.0.113.7:51234" {
		t.Fatalf("got %d %q %v while silent peers were connected", status, body, err)
	}
}

// TestProxyProtocolHeaderTimeout: a trusted peer that waits past the header
// timeout is served as header-less with its socket address.
func TestProxyProtocolHeaderTimeout(t *testing.T) {
	s := startPP(t, loopback, 100*time.Millisecond)
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	time.Sleep(300 * time.Millisecond)
	if _, err := io.WriteString(c, plainHTTP); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != c.LocalAddr().String() {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, b, c.LocalAddr())
	}
}

// TestProxyProtocolUnderTLS: the header precedes the TLS handshake, so the
// HTTPS listener is tls.NewListener(wrapProxyProtocol(tcp)).
func TestProxyProtocolUnderTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Listener = wrapProxyProtocol(srv.Listener, func() []netip.Prefix { return loopback }, 5*time.Second)
	srv.StartTLS() // wraps our listener in tls.NewListener
	defer srv.Close()

	raw, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := raw.Write(v2(t, proxyproto.PROXY, proxyproto.TCPv6, "[2001:db8::42]:5555", "[2001:db8::1]:443")); err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true}) // the test server's own certificate
	if _, err := io.WriteString(c, plainHTTP); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "[2001:db8::42]:5555" {
		t.Fatalf("RemoteAddr over TLS = %q", b)
	}
}

func TestWrapProxyProtocolNoTrustedPeers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := wrapProxyProtocol(ln, func() []netip.Prefix { return nil }, time.Second); got != ln {
		t.Fatal("with no trusted peers the listener must be returned unchanged")
	}
}

func TestPeerTrusted(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("2001:db8::/32")}
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("100.100.1.2"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:100.100.1.2"), Port: 1}, true}, // dual-stack socket
		{&net.TCPAddr{IP: net.ParseIP("100.128.0.1"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1, Zone: "eth0"}, true},
		{&net.TCPAddr{IP: net.ParseIP("2001:db9::1"), Port: 1}, false},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, false},
		{nil, false},
	} {
		if got := peerTrusted(tc.addr, nets); got != tc.want {
			t.Errorf("peerTrusted(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
