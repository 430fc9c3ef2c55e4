package server

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// defaultProxyHeaderTimeout bounds the wait for a PROXY header when the
// caller passes no timeout. The library treats 0 as its own default and a
// negative value as "wait forever"; forever is never right here, because
// net/http asks for RemoteAddr (and so reads the header) before any of its
// own read deadlines are armed, so a silent trusted peer would pin its
// connection goroutine indefinitely.
const defaultProxyHeaderTimeout = 10 * time.Second

// wrapProxyProtocol makes ln read a PROXY protocol v1 or v2 header from
// connections whose peer is in trusted, for a layer-4 SLB (Alibaba Cloud
// NLB, or CLB with Proxy Protocol enabled) that would otherwise hide every
// client behind its own address. The connection's RemoteAddr becomes the
// client address the header names, so access logs, allow_ips, the per-IP
// rate limit and X-Forwarded-For all see the real client.
//
// Policy, per peer (go-proxyproto's ConnPolicy):
//
//   - A trusted peer gets USE: a header is used when present and optional
//     when absent. The SLB's health checks connect from the same range
//     (100.64.0.0/10 on Alibaba Cloud) and, depending on the check type, send
//     no header (a TCP check sends nothing at all; an HTTP check may send a
//     bare request). REQUIRE would fail those checks and take every backend
//     out of service, so it is not used. A header with the LOCAL command (a
//     v2 health check) keeps the socket address, as the spec says.
//     Detection cannot be confused by the traffic itself: a header starts
//     with "PROXY " or a 12-byte binary signature, and no real HTTP request
//     or TLS ClientHello begins with either. The cost of USE is that the header must really come from
//     the SLB: only list in trusted_proxies ranges that nobody but the SLB
//     can connect from.
//   - An untrusted peer gets SKIP: its connection is handed to the server
//     untouched, never parsed for a header. Its header is thus never
//     believed: a forged "PROXY ..." line reaches net/http as a malformed
//     request line and is answered 400 Bad Request (a TLS listener fails the
//     handshake), the connection is closed, and no handler runs. Plain HTTP
//     and HTTPS from untrusted peers (clients calling the fixed IP directly,
//     the admin's curl) are served normally with their socket address.
//     REJECT would also refuse forged headers (closing the connection
//     without a response), but only after parsing every untrusted
//     connection for one. IGNORE would parse and silently strip the header
//     and serve the request as the peer's socket address; SKIP is preferred
//     because attacker bytes never reach the header parser (a v2 header may
//     announce up to 64 KiB of TLVs, which IGNORE would read and buffer for
//     every untrusted connection), direct clients pay no detection step, and
//     a proxy missing from trusted_proxies fails loudly (400s) instead of
//     having all its clients silently collapse onto its one address and one
//     rate-limit bucket.
//
// The policy never returns an error, so a strange peer address can never
// make Accept fail and stop the server's accept loop. Accept itself never
// reads from a connection: the header is read on the connection's first
// Read or RemoteAddr call, which net/http makes in the connection's own
// goroutine, so a peer that connects and sends nothing delays only itself,
// for at most headerTimeout (<= 0 means 10 s). After the timeout a trusted
// peer's connection is treated as header-less and served as such.
//
// Headers naming anything but a TCP (v4 or v6) or UNKNOWN source are
// refused: the connection's first read fails and net/http closes it. An
// AF_UNIX or UDP source has no client IP for the rest of the gateway to use.
//
// The PROXY listener must be the innermost wrapper: the header precedes the
// TLS handshake, so the HTTPS listener is tls.NewListener(wrapProxyProtocol(ln, ...)).
// With no trusted peers nobody's header can be believed, and ln is returned
// unchanged. trusted is asked on every connection, so a reload that
// changes trusted_proxies applies to the next connection.
func wrapProxyProtocol(ln net.Listener, trusted func() []netip.Prefix, headerTimeout time.Duration) net.Listener {
	if len(trusted()) == 0 {
		return ln
	}
	if headerTimeout <= 0 {
		headerTimeout = defaultProxyHeaderTimeout
	}
	return &proxyproto.Listener{
		Listener: ln,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if peerTrusted(o.Upstream, trusted()) {
				return proxyproto.USE, nil
			}
			return proxyproto.SKIP, nil
		},
		ValidateHeader:    validateProxyHeader,
		ReadHeaderTimeout: headerTimeout,
	}
}

// peerTrusted reports whether the socket peer a is inside one of the
// trusted prefixes. IPv4 peers on a dual-stack socket arrive IPv4-mapped,
// so the address is unmapped before matching the configured IPv4 ranges.
// An address that cannot be read is untrusted.
func peerTrusted(a net.Addr, trusted []netip.Prefix) bool {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	default:
		if a == nil {
			return false
		}
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return false
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// errProxyHeaderTransport refuses a header whose source is not a TCP
// address.
var errProxyHeaderTransport = errors.New("proxyproto: header source is not a TCP address")

// validateProxyHeader accepts LOCAL headers (health checks; the socket
// address stays), PROXY headers with the UNKNOWN family (the spec says to
// fall back to the socket address, which the library does), and PROXY
// headers for TCP over IPv4 or IPv6 naming a valid source IP. It refuses
// the rest, so RemoteAddr is always either the socket address or a TCP
// client address the proxy package can parse.
func validateProxyHeader(h *proxyproto.Header) error {
	if h.Command.IsLocal() || h.TransportProtocol == proxyproto.UNSPEC {
		return nil
	}
	if h.TransportProtocol != proxyproto.TCPv4 && h.TransportProtocol != proxyproto.TCPv6 {
		return errProxyHeaderTransport
	}
	src, ok := h.SourceAddr.(*net.TCPAddr)
	if !ok || !src.AddrPort().Addr().IsValid() {
		return errProxyHeaderTransport
	}
	return nil
}
