package proxy

import (
	"net/netip"
	"strings"
)

// normalizeHost reduces a Host header to the form site domains are stored in:
// port stripped, lower case, no trailing dot, IPv6 without brackets. It
// allocates only when the Host has upper-case letters or is an IPv6 literal.
func normalizeHost(host string) string {
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return ""
		}
		a, err := netip.ParseAddr(host[1:end])
		if err != nil {
			return ""
		}
		return a.WithZone("").String()
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if strings.IndexByte(host[:i], ':') >= 0 {
			// A bare IPv6 literal without brackets: not a valid Host, but
			// normalise it rather than cut it at the last colon.
			a, err := netip.ParseAddr(host)
			if err != nil {
				return ""
			}
			return a.WithZone("").String()
		}
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// router maps normalised hosts to sites. It is built once per config and
// never mutated, so lookups need no lock.
type router map[string]*site

func (rt router) lookup(host string) *site {
	return rt[normalizeHost(host)]
}
