package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The checkers below return "" when a value is well formed and otherwise the
// message of the problem, which quotes the value.

// bucketProblem checks an OSS bucket name.
func bucketProblem(s string) string {
	ok := len(s) >= 3 && len(s) <= 63 && isLowerAlnum(s[0]) && isLowerAlnum(s[len(s)-1])
	for i := 0; ok && i < len(s); i++ {
		ok = isLowerAlnum(s[i]) || s[i] == '-'
	}
	if ok {
		return ""
	}
	return fmt.Sprintf(`%q is not a valid OSS bucket name (3-63 chars of a-z, 0-9 and "-", starting and ending with a letter or digit)`, s)
}

// normalizeDomain lowercases a site domain and drops one trailing dot, the
// form in which the proxy compares Host headers; an IP address is written in
// its canonical form. It returns the normalised name and a problem message.
func normalizeDomain(s string) (string, string) {
	d := strings.TrimSuffix(strings.ToLower(s), ".")
	switch {
	case d == "":
		return d, "must not be empty"
	case strings.Contains(d, "*"):
		return d, fmt.Sprintf("%q: wildcards are not allowed; OSS custom domains are exact names, so list each name", s)
	case strings.HasPrefix(d, "["):
		return d, fmt.Sprintf("%q: write an IP address without brackets", s)
	}
	if a, err := netip.ParseAddr(d); err == nil {
		if a.Zone() != "" {
			return d, fmt.Sprintf("%q: an IP address here must not carry a zone", s)
		}
		return a.String(), ""
	}
	if strings.Contains(d, ":") {
		if _, port, err := net.SplitHostPort(d); err == nil {
			return d, fmt.Sprintf("%q: remove the port %q; a site matches its names on every port", s, port)
		}
		return d, fmt.Sprintf("%q is neither a DNS name nor an IP address", s)
	}
	if msg := dnsNameProblem(d); msg != "" {
		return d, fmt.Sprintf("%q %s", s, msg)
	}
	return d, ""
}

// dnsNameProblem checks a lowercase DNS host name: labels of 1-63 chars of
// a-z, 0-9 and "-" that neither start nor end with "-", 253 chars in all.
func dnsNameProblem(d string) string {
	if !utf8.ValidString(d) || strings.IndexFunc(d, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 {
		return "is not a valid DNS name (write an internationalised name in its punycode xn-- form)"
	}
	if len(d) > 253 {
		return "is not a valid DNS name (longer than 253 characters)"
	}
	labels := strings.Split(d, ".")
	for _, l := range labels {
		ok := len(l) >= 1 && len(l) <= 63 && l[0] != '-' && l[len(l)-1] != '-'
		for i := 0; ok && i < len(l); i++ {
			ok = isLowerAlnum(l[i]) || l[i] == '-'
		}
		if !ok {
			return `is not a valid DNS name (labels of 1-63 chars of a-z, 0-9 and "-", not starting or ending with "-")`
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return "is neither a valid IP address nor a DNS name (a top-level domain is never all digits)"
	}
	return ""
}

// hostProblem checks a host that may be a DNS name or an IP address.
func hostProblem(h string) string {
	if _, err := netip.ParseAddr(h); err == nil {
		return ""
	}
	return dnsNameProblem(strings.ToLower(h))
}

// validPort reports whether p is a decimal port from 1 to 65535.
func validPort(p string) bool {
	if len(p) == 0 || len(p) > 5 || strings.Trim(p, "0123456789") != "" {
		return false
	}
	n, _ := strconv.Atoi(p)
	return n >= 1 && n <= 65535
}

// listenProblem checks a listen address: "host:port" or ":port".
func listenProblem(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf(`%q is not an address of the form "host:port" or ":port"`, s)
	}
	if port != "0" && !validPort(port) { // 0: any free port (tests, the demo)
		return fmt.Sprintf("%q: port must be a number from 0 to 65535", s)
	}
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if dnsNameProblem(strings.ToLower(host)) != "" {
		return fmt.Sprintf("%q: %q is neither an IP address nor a host name", s, host)
	}
	return ""
}

// parseCIDR parses a CIDR, or a bare IP address as a single-address prefix,
// with the host bits cleared. An IPv4-mapped IPv6 prefix becomes the IPv4
// prefix it denotes, since the proxy compares unmapped client addresses.
func parseCIDR(s string) (netip.Prefix, string) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Sprintf("%q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32, nor an IP address", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, fmt.Sprintf("%q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32, nor an IP address", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), ""
}

// parseCIDRs parses list at key (one problem per bad entry) and returns the
// prefixes of the good ones.
func parseCIDRs(p *problems, key string, list []string) []netip.Prefix {
	nets := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		n, msg := parseCIDR(s)
		if msg != "" {
			p.add(indexKey(key, i), "%s", msg)
			continue
		}
		nets = append(nets, n)
	}
	return nets
}

// endpointProblem checks a site endpoint: a keyword or an absolute http(s)
// URL naming only a scheme, a host and optionally a port.
func endpointProblem(s string) string {
	switch s {
	case "public", "internal", "accelerate", "dualstack":
		return ""
	}
	if !strings.Contains(s, "://") {
		return fmt.Sprintf("%q is not one of public, internal, accelerate, dualstack, nor an http:// or https:// URL", s)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a valid URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q: the URL scheme must be http or https", s)
	case u.User != nil:
		return fmt.Sprintf("%q: the URL must not carry a user name or password", s)
	case u.Host == "":
		return fmt.Sprintf("%q: the URL must name a host", s)
	case u.Path != "" && u.Path != "/" || u.Opaque != "":
		return fmt.Sprintf("%q: the URL must not have a path; the gateway adds the bucket and key", s)
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Sprintf("%q: the URL must not have a query", s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Sprintf("%q: the URL must not have a fragment", s)
	case strings.HasSuffix(u.Host, ":") || u.Port() != "" && !validPort(u.Port()):
		return fmt.Sprintf("%q: the URL's port must be a number from 1 to 65535", s)
	case hostProblem(u.Hostname()) != "":
		return fmt.Sprintf("%q: %q is neither an IP address nor a host name", s, u.Hostname())
	}
	return ""
}

// upstreamHostProblem checks upstream_host: host or host:port, no scheme,
// path or user; an IPv6 address is bracketed as in a Host header.
func upstreamHostProblem(s string) string {
	if strings.Contains(s, "://") {
		return fmt.Sprintf("%q: write the host without a scheme; the Host header has none", s)
	}
	if strings.ContainsAny(s, "/?#@ \t") || hasControl(s) {
		return fmt.Sprintf("%q: write only a host or host:port, without path, query or user", s)
	}
	host := s
	switch {
	case strings.HasPrefix(s, "["):
		h, port, err := net.SplitHostPort(s)
		if err != nil && strings.HasSuffix(s, "]") {
			h, port, err = strings.TrimSuffix(s[1:], "]"), "", nil
		}
		if err != nil || port != "" && !validPort(port) {
			return fmt.Sprintf("%q is not a valid host[:port]", s)
		}
		if a, err := netip.ParseAddr(h); err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Sprintf("%q: only an IPv6 address goes in brackets", s)
		}
		return ""
	case strings.Count(s, ":") > 1:
		return fmt.Sprintf("%q: write an IPv6 address in brackets, as in a Host header", s)
	case strings.Contains(s, ":"):
		h, port, err := net.SplitHostPort(s)
		if err != nil || !validPort(port) {
			return fmt.Sprintf("%q: the port must be a number from 1 to 65535", s)
		}
		host = h
	}
	if hostProblem(host) != "" {
		return fmt.Sprintf("%q: %q is neither an IP address nor a host name", s, host)
	}
	return ""
}

// objectKeyProblem checks an object key fragment from the file (a site prefix,
// a website document) against what could escape the site's prefix or be read
// differently by OSS and by the gateway.
func objectKeyProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return fmt.Sprintf("%q is not valid UTF-8", s)
	case strings.HasPrefix(s, "/"):
		return fmt.Sprintf(`%q must not start with "/"; object keys have no leading slash`, s)
	case strings.ContainsRune(s, 0):
		return fmt.Sprintf("%q must not contain NUL", s)
	case strings.Contains(s, `\`):
		return fmt.Sprintf(`%q must not contain "\"`, s)
	case strings.Contains(s, "//"):
		return fmt.Sprintf(`%q must not contain "//"`, s)
	case strings.Contains(s, ".."):
		return fmt.Sprintf(`%q must not contain ".."`, s)
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "." {
			return fmt.Sprintf(`%q must not contain a "." segment`, s)
		}
	}
	return ""
}

// isName reports whether s is 1 to max chars of A-Z, a-z, 0-9, "_" and "-".
func isName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' && s[i] != '-' {
			return false
		}
	}
	return true
}

// isRegion reports whether s looks like an OSS region id: ^[a-z]{2,}(-[a-z0-9]+)+$.
func isRegion(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 2 || len(parts[0]) < 2 {
		return false
	}
	for i, part := range parts {
		if part == "" {
			return false
		}
		for j := 0; j < len(part); j++ {
			c := part[j]
			if !(c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// isEnvName reports whether s is a portable environment variable name.
func isEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

// isToken reports whether s is an HTTP token (RFC 9110), the syntax of a
// header name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds an ASCII control character other than
// tab, which would break a header line.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }
