package proxy

import (
	"net/netip"
	"strings"
)

// trustedSet is the [server] trusted_proxies list: the peers whose
// X-Forwarded-For the gateway believes (an SLB, a CDN edge).
type trustedSet []netip.Prefix

func (t trustedSet) contains(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP returns the address of the real client: the socket peer, unless
// the peer is a trusted proxy, in which case X-Forwarded-For is walked from
// the right past every trusted hop (a client can prepend anything it likes,
// so the left-most entry is never believed on its own).
func clientIP(remoteAddr string, xff []string, trusted trustedSet) netip.Addr {
	peer := parseRemoteAddr(remoteAddr)
	if len(trusted) == 0 || !peer.IsValid() || !trusted.contains(peer) {
		return peer
	}
	ip := peer
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			var part string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				part, list = list[j+1:], list[:j]
			} else {
				part, list = list, ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(part))
			if err != nil {
				return ip // garbage: stop at the last hop we could verify
			}
			a = a.Unmap()
			ip = a
			if !trusted.contains(a) {
				return a
			}
		}
	}
	return ip
}

func parseRemoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}
