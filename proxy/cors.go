package proxy

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/oss-gateway/gateway/config"
)

// corsPolicy is a site's OSS CORS configuration (PutBucketCors plus its
// ResponseVary flag), compiled once per config load. Every header value it
// can send, except the echoed Origin of a wildcard rule and the echoed
// Access-Control-Request-Headers, is built here as a one-element []string
// that is put into response headers as is: apply and preflight then cost no
// allocation beyond the header map's own. Those shared slices are read-only;
// http.Header's Add and Set never write into an existing slice in place
// (Add appends to a full one, so it copies), and nothing in the gateway does.
//
// Semantics, as OSS documents them:
//
//   - Rules are tried in order and the first match wins; a request that
//     matches none gets no CORS headers (a preflight gets 403).
//   - A rule matches when the Origin matches one allowed_origins entry, the
//     method (the request's, or Access-Control-Request-Method for a
//     preflight) is in allowed_methods, and, for a preflight, every
//     comma-separated Access-Control-Request-Headers name matches an
//     allowed_headers entry.
//   - Origins and header names are compared case-insensitively (ASCII); an
//     entry holds at most one "*", which matches any run of characters
//     (also none), and "*" alone matches anything. Scheme and port are part
//     of the origin: "http://*.example.org:8080" does not match
//     "http://a.example.org". A default port (https :443, http :80) is
//     dropped from entries and from the request's Origin before matching,
//     as browsers never send it.
//   - Access-Control-Allow-Origin echoes the request's Origin, also when the
//     matching entry is "*": OSS's Options API documents the header as "the
//     origin that is included in the request", and the reference docs
//     advise Vary: Origin "when using multiple origins or wildcard
//     characters", which only matters when the value differs per Origin.
//     Echoing also keeps credentialed requests working, where browsers
//     refuse "*".
type corsPolicy struct {
	rules      []corsRule
	varyOrigin bool
}

// corsRule is one compiled CORSRule with its response header values ready.
type corsRule struct {
	origins []corsWildcard
	methods []string
	headers []corsWildcard

	allowMethods  []string // {"GET, PUT"}
	exposeHeaders []string // nil when the rule exposes none
	maxAge        []string // nil when max_age_seconds is 0
	credentials   bool     // allow_credentials
}

// credentialsValue is Access-Control-Allow-Credentials' one value. Shared
// and read-only, like the rule values.
var credentialsValue = []string{"true"}

// corsWildcard is an allowed_origins or allowed_headers entry, lower-cased,
// split at its one "*".
type corsWildcard struct {
	prefix, suffix string
	wild           bool
	// echo is {prefix} for an exact origin entry: the Access-Control-Allow-Origin
	// value to use, without allocating, when the request's Origin is that
	// entry byte for byte (as browsers, which send lower-case origins, do).
	echo []string
}

// varyOriginValue is the Vary value set when a response had none. Shared
// and read-only, like the rule values.
var varyOriginValue = []string{"Origin"}

// newCORSPolicy compiles rules (already validated by the config package:
// at most one "*" per origin and header entry, known methods) and the
// site's cors_vary_origin flag.
func newCORSPolicy(rules []config.CORSRule, varyOrigin bool) *corsPolicy {
	c := &corsPolicy{varyOrigin: varyOrigin, rules: make([]corsRule, 0, len(rules))}
	for _, r := range rules {
		cr := corsRule{allowMethods: []string{strings.Join(r.AllowedMethods, ", ")}, credentials: r.AllowCredentials}
		for _, o := range r.AllowedOrigins {
			cr.origins = append(cr.origins, compileCORSOrigin(o))
		}
		for _, m := range r.AllowedMethods {
			cr.methods = append(cr.methods, strings.ToUpper(m))
		}
		for _, h := range r.AllowedHeaders {
			cr.headers = append(cr.headers, compileCORSWildcard(foldPrefixASCII(h, len(h))))
		}
		if len(r.ExposeHeaders) > 0 {
			cr.exposeHeaders = []string{strings.Join(r.ExposeHeaders, ", ")}
		}
		if r.MaxAgeSeconds > 0 {
			cr.maxAge = []string{strconv.Itoa(r.MaxAgeSeconds)}
		}
		c.rules = append(c.rules, cr)
	}
	return c
}

// compileCORSOrigin lower-cases an allowed_origins entry and drops its
// scheme's default port, unless what is left would end in "*" (then
// "https://*:443" would grow to match every port).
func compileCORSOrigin(o string) corsWildcard {
	o = foldPrefixASCII(o, len(o))
	if t := trimDefaultPort(o); !strings.HasSuffix(t, "*") {
		o = t
	}
	w := compileCORSWildcard(o)
	if !w.wild {
		w.echo = []string{o}
	}
	return w
}

// compileCORSWildcard splits an already lower-cased entry at its first "*".
func compileCORSWildcard(e string) corsWildcard {
	if i := strings.IndexByte(e, '*'); i >= 0 {
		return corsWildcard{prefix: e[:i], suffix: e[i+1:], wild: true}
	}
	return corsWildcard{prefix: e}
}

// matches reports whether s matches the entry, ignoring ASCII case.
func (w *corsWildcard) matches(s string) bool {
	if !w.wild {
		return equalFoldASCII(s, w.prefix)
	}
	return len(s) >= len(w.prefix)+len(w.suffix) &&
		equalFoldASCII(s[:len(w.prefix)], w.prefix) &&
		equalFoldASCII(s[len(s)-len(w.suffix):], w.suffix)
}

// allowOrigin is the Access-Control-Allow-Origin value for origin, which
// matched w: the shared precomputed slice when origin is byte-identical to
// an exact entry, else a new one-element slice echoing origin.
func (w *corsWildcard) allowOrigin(origin string) []string {
	if w.echo != nil && origin == w.echo[0] {
		return w.echo
	}
	return []string{origin}
}

// preflight handles an OPTIONS request carrying Origin and
// Access-Control-Request-Method. On a match it sets the response headers on
// h (Allow-Origin, Allow-Methods, Allow-Headers echoing reqHeaders when it
// is not blank, Expose-Headers, Max-Age) and returns true; false means 403
// AccessForbidden and no Access-Control-* header is set. With varyOrigin,
// Vary: Origin is added either way, since it belongs on every response of
// the site.
func (c *corsPolicy) preflight(h http.Header, origin, reqMethod, reqHeaders string) bool {
	if c.varyOrigin {
		addVaryOrigin(h)
	}
	if origin == "" || reqMethod == "" {
		return false
	}
	norm := trimDefaultPort(origin)
	for i := range c.rules {
		r := &c.rules[i]
		o := r.matchOrigin(norm)
		if o == nil || !r.allowsMethod(reqMethod) || !r.allowsHeaders(reqHeaders) {
			continue
		}
		h["Access-Control-Allow-Origin"] = o.allowOrigin(origin)
		h["Access-Control-Allow-Methods"] = r.allowMethods
		if strings.TrimSpace(reqHeaders) != "" {
			h["Access-Control-Allow-Headers"] = []string{reqHeaders}
		}
		if r.exposeHeaders != nil {
			h["Access-Control-Expose-Headers"] = r.exposeHeaders
		}
		if r.maxAge != nil {
			h["Access-Control-Max-Age"] = r.maxAge
		}
		r.setCredentials(h)
		return true
	}
	return false
}

// apply fixes the CORS headers of an actual (non-preflight) response after
// the upstream headers were copied into h. It always deletes every
// Access-Control-* header OSS returned (the site's rules, not the bucket's,
// are the truth, and a header must not appear twice), then, if origin is
// not empty and a rule matches origin and method, sets that rule's
// Allow-Origin, Allow-Methods and Expose-Headers. With varyOrigin it adds
// Vary: Origin to every response, matched or not, merged into an existing
// Vary and never twice. For an Origin equal to an exact entry it does not
// allocate.
func (c *corsPolicy) apply(h http.Header, origin, method string) {
	for k := range h {
		if isAccessControlKey(k) {
			delete(h, k)
		}
	}
	if c.varyOrigin {
		addVaryOrigin(h)
	}
	if origin == "" {
		return
	}
	norm := trimDefaultPort(origin)
	for i := range c.rules {
		r := &c.rules[i]
		o := r.matchOrigin(norm)
		if o == nil || !r.allowsMethod(method) {
			continue
		}
		h["Access-Control-Allow-Origin"] = o.allowOrigin(origin)
		h["Access-Control-Allow-Methods"] = r.allowMethods
		if r.exposeHeaders != nil {
			h["Access-Control-Expose-Headers"] = r.exposeHeaders
		}
		r.setCredentials(h)
		return
	}
}

// setCredentials allows credentialed requests when the rule does. The
// Origin is always echoed (never "*", which browsers refuse with
// credentials), and Vary: Origin keeps a shared cache from serving one
// origin's credentialed answer to another.
func (r *corsRule) setCredentials(h http.Header) {
	if r.credentials {
		h["Access-Control-Allow-Credentials"] = credentialsValue
		addVaryOrigin(h)
	}
}

// varyOnly adds Vary: Origin when varyOrigin is set. The lead calls it on
// responses the gateway makes itself, so that a cache in front never serves
// one Origin's answer to another. Calling it twice is harmless.
func (c *corsPolicy) varyOnly(h http.Header) {
	if c.varyOrigin {
		addVaryOrigin(h)
	}
}

// matchOrigin returns the first allowed_origins entry of r that matches the
// (default-port-trimmed) origin, or nil.
func (r *corsRule) matchOrigin(origin string) *corsWildcard {
	for i := range r.origins {
		if r.origins[i].matches(origin) {
			return &r.origins[i]
		}
	}
	return nil
}

// allowsMethod reports whether method is one of the rule's methods. HTTP
// methods are case-sensitive, and browsers send standard ones upper-case.
func (r *corsRule) allowsMethod(method string) bool {
	for _, m := range r.methods {
		if m == method {
			return true
		}
	}
	return false
}

// allowsHeaders reports whether every name in the comma-separated list
// (Access-Control-Request-Headers) matches one of the rule's allowed_headers
// entries. Names are trimmed of spaces and tabs; empty items are skipped.
func (r *corsRule) allowsHeaders(list string) bool {
	for list != "" {
		var name string
		if i := strings.IndexByte(list, ','); i >= 0 {
			name, list = list[:i], list[i+1:]
		} else {
			name, list = list, ""
		}
		name = strings.Trim(name, " \t")
		if name == "" {
			continue
		}
		ok := false
		for i := range r.headers {
			if r.headers[i].matches(name) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// addVaryOrigin adds "Origin" to h's Vary unless it is already listed
// there (or Vary is "*"), so that a cache keys the response by Origin. With
// no Vary it sets the shared value; an existing one is merged into a single
// line ("Accept-Encoding, Origin").
func addVaryOrigin(h http.Header) {
	vs := h["Vary"]
	if len(vs) == 0 {
		h["Vary"] = varyOriginValue
		return
	}
	for _, v := range vs {
		if headerListHas(v, "origin") || headerListHas(v, "*") {
			return
		}
	}
	var b strings.Builder
	for _, v := range vs {
		if v = strings.Trim(v, " \t,"); v != "" {
			b.WriteString(v)
			b.WriteString(", ")
		}
	}
	b.WriteString("Origin")
	h["Vary"] = []string{b.String()}
}

// headerListHas reports whether the comma-separated list holds token
// (lower-case), ignoring ASCII case and surrounding whitespace.
func headerListHas(list, token string) bool {
	for list != "" {
		var item string
		if i := strings.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			item, list = list, ""
		}
		if equalFoldASCII(strings.Trim(item, " \t"), token) {
			return true
		}
	}
	return false
}

// isAccessControlKey reports whether header name k starts with
// "Access-Control-" in any case.
func isAccessControlKey(k string) bool {
	const p = "access-control-"
	return len(k) >= len(p) && equalFoldASCII(k[:len(p)], p)
}

// trimDefaultPort drops ":443" from an https origin and ":80" from an http
// one (scheme compared case-insensitively), returning a substring: browsers
// never send the default port, so "https://a.com:443" means "https://a.com".
func trimDefaultPort(o string) string {
	switch {
	case len(o) > len("https://:443") && equalFoldASCII(o[:len("https://")], "https://") && o[len(o)-4:] == ":443":
		return o[:len(o)-4]
	case len(o) > len("http://:80") && equalFoldASCII(o[:len("http://")], "http://") && o[len(o)-3:] == ":80":
		return o[:len(o)-3]
	}
	return o
}

// equalFoldASCII reports whether s equals lower, a lower-case string, when
// ASCII letters of s are lower-cased. Unlike strings.EqualFold it does not
// apply Unicode folding ("K", the Kelvin sign, is not "k"): origins and
// header names are ASCII, and a Unicode look-alike must not match.
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
