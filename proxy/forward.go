package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
)

// dropRequestHeader reports whether a client header must not reach OSS.
// Private sites lose everything that carries or steers the client's own
// authentication, since the gateway's signature replaces it; Cookie never
// goes, as no OSS API reads it and it would leak clients' sessions into
// OSS access logs.
func dropRequestHeader(k string, private bool) bool {
	if isHop(k) {
		return true
	}
	switch k {
	case "Cookie", "X-Forwarded-For", "Host":
		return true
	case "Authorization", "Date", "X-Oss-Date", "X-Oss-Security-Token", "X-Oss-Content-Sha256":
		return private
	}
	return false
}

// forward sends the request to OSS and streams the answer back, applying
// the site's website, CORS and disposition rules to OSS's response. It
// returns true when the response was cut after its headers went out.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, x *exchange) (aborted bool) {
	s := x.site
	s.retry.budget.request(x.start)
	resp, oerr := h.fetch(r, x, r.Method, x.key, true)
	if oerr != nil {
		h.refuse(w, r, x, oerr)
		return false
	}
	status := resp.StatusCode
	if s.cache != nil && status < 300 && (r.Method == http.MethodPut || r.Method == http.MethodPost || r.Method == http.MethodDelete) {
		// The object changed through the gateway: no stored copy of
		// it is served again.
		s.cache.PurgeObject(s.name, x.key)
	}
	if resp.StatusCode == http.StatusNotFound && s.website.active() && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		var redirect string
		resp, status, redirect, oerr = h.websiteNotFound(r, x, resp)
		if oerr != nil {
			h.refuse(w, r, x, oerr)
			return false
		}
		if redirect != "" {
			s.cors.apply(w.Header(), r.Header.Get("Origin"), r.Method)
			w.Header().Set("Location", redirect)
			x.status = http.StatusFound
			w.WriteHeader(http.StatusFound)
			return false
		}
	}
	defer resp.Body.Close()

	hdr := w.Header()
	copyResponseHeader(hdr, resp.Header)
	s.cors.apply(hdr, r.Header.Get("Origin"), r.Method)
	s.disposition.apply(hdr, x.key, status, x.download, x.downloadName)
	x.status = status
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return false
	}
	var dst io.Writer = w
	if d := x.st.progressTimeout; d > 0 {
		dst = &progressWriter{w: w, rc: http.NewResponseController(w), d: d}
	}
	if s.egressBytesPerSec > 0 {
		dst = newEgressWriter(r.Context(), dst, s.egressBytesPerSec)
	}
	n, err := h.sendBody(r, x, dst, resp.Body)
	if err != nil && !errors.Is(err, errClientWrite) && r.Context().Err() == nil {
		if sp, ok := resumable(r.Method, resp); ok {
			var more int64
			more, err = h.resume(r, x, dst, sp, n)
			n += more
		}
	}
	x.bytesOut = n
	if err != nil {
		x.err = err
		return !errors.Is(err, errClientWrite)
	}
	return false
}

// roundTrip sends one request for key to OSS, signed when the site is
// private, and returns OSS's response with its headers read. withBody says
// whether the client's body goes along (only the client's own request has
// one; website follow-ups do not). Errors come back as the gateway's own.
func (h *Handler) roundTrip(r *http.Request, x *exchange, up *upstream, method, key string, withBody bool) (*http.Response, *ossError) {
	s := x.site
	out := h.outgoing(r, s, up, x, method, key, withBody)
	var cred credentials.Credentials
	if s.private {
		var err error
		cred, err = resolveCredentials(r.Context(), h.credentials())
		if err == nil {
			err = s.signatures.sign(r.Context(), out, s.bucket, key, s.region, &cred, time.Now())
		}
		if err != nil {
			x.err = err
			return nil, errNoCredentials
		}
	}
	t0 := time.Now()
	resp, err := x.st.transport.RoundTrip(out)
	x.upstreamWait = time.Since(t0)
	if err == nil || x.upload == nil || x.upload.failed.Load() == nil {
		s.metrics.upstreamDuration(up.label).Observe(x.upstreamWait.Seconds())
	}
	if err != nil && x.upload != nil {
		if e := x.upload.failed.Load(); e != nil {
			// The client's body broke: a client error, not OSS's.
			x.err = err
			return nil, e
		}
	}
	if err != nil {
		s.metrics.upstream(up.label, 0).Inc()
		x.err = err
		switch {
		case r.Context().Err() != nil:
			return nil, errClientGone
		case isTimeout(err):
			return nil, errGatewayTimeout
		default:
			return nil, errBadGateway
		}
	}
	s.metrics.upstream(up.label, resp.StatusCode).Inc()
	up.health.answered(t0)
	x.err = nil // a failure a retry cured is in the retry metrics, not an error
	x.upstreamID = resp.Header.Get("X-Oss-Request-Id")
	if d := x.st.upstreamStall; d > 0 && resp.Body != http.NoBody && !inMemory(resp.Body) {
		resp.Body = newStallGuard(resp.Body, d)
	}
	if s.private && scrubbable(resp.StatusCode) {
		scrubError(resp, r.Host, cred.AccessKeyID, cred.SecurityToken)
	}
	return resp, nil
}

// inMemory reports a body that arrived whole with its headers, which no
// stall can hold up.
func inMemory(body io.ReadCloser) bool {
	b, ok := body.(*upBody)
	return ok && b.inMemory
}

// outgoing builds the request to OSS: addressed to up, carrying the client's
// end-to-end headers (and body, when withBody), with the query a site of this
// access type may forward.
func (h *Handler) outgoing(r *http.Request, s *site, up *upstream, x *exchange, method, key string, withBody bool) *http.Request {
	query := x.query
	hdr := make(http.Header, len(r.Header)+6)
	conn := connectionListed(r.Header["Connection"])
	for k, vv := range r.Header {
		if dropRequestHeader(k, s.private) || listedIn(conn, k) {
			continue
		}
		hdr[k] = vv
	}
	if s.private {
		// Only what the trust policy granted: its query, and of the
		// client's x-oss-* headers only those it let through.
		query = x.grant.query
		for k := range hdr {
			if isOSSHeader(k) {
				delete(hdr, k)
			}
		}
		for k, vv := range x.grant.ossHdr {
			hdr[k] = vv
		}
	}
	hdr["X-Forwarded-For"] = []string{forwardedFor(r, x.st.trusted)}
	if x.resumeRange != "" {
		for _, k := range []string{"If-Range", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
			delete(hdr, k)
		}
		hdr["Range"] = []string{x.resumeRange}
		hdr["If-Match"] = []string{x.resumeETag}
	}
	if _, ok := hdr["User-Agent"]; !ok {
		hdr["User-Agent"] = []string{""} // no Go default in OSS logs
	}

	out := (&http.Request{
		Method: method,
		URL: &url.URL{
			Scheme:   up.scheme,
			Host:     up.addr,
			Opaque:   escapeKeyPath(key),
			RawQuery: query,
		},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Host:       up.host,
	}).WithContext(r.Context()) // the client leaving ends the exchange
	if withBody && r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		ub := &uploadBody{r: r.Body, n: &x.bytesIn}
		if d := x.st.uploadStall; d > 0 {
			ub.rc, ub.d = http.NewResponseController(x.w), d
		}
		x.upload = ub
		out.Body = ub
		out.ContentLength = r.ContentLength
	}
	return out
}

// isOSSHeader reports a header name OSS may read as x-oss-*, in any case
// and with "_" for "-".
func isOSSHeader(k string) bool {
	return len(k) >= 6 && (k[0] == 'x' || k[0] == 'X') && (k[1] == '-' || k[1] == '_') &&
		strings.EqualFold(k[2:5], "oss") && (k[5] == '-' || k[5] == '_')
}

// forwardedFor is the X-Forwarded-For to send: the chain a trusted proxy
// reported, plus the peer; from anyone else, just the peer.
func forwardedFor(r *http.Request, trusted trustedSet) string {
	peer := parseRemoteAddr(r.RemoteAddr)
	prior := r.Header["X-Forwarded-For"]
	if len(prior) == 0 || !peer.IsValid() || !trusted.contains(peer) {
		if host, _, ok := strings.Cut(r.RemoteAddr, ":"); ok && peer.Is4() && !strings.Contains(r.RemoteAddr[len(host)+1:], ":") {
			return host // "1.2.3.4:5678" already spells the peer: no allocation
		}
		return addrString(peer)
	}
	return strings.Join(prior, ", ") + ", " + peer.String()
}

// connectionListed returns the Connection header values that may name
// headers to drop: none when they only say keep-alive or close, as nearly
// all do, so the per-header check is skipped.
func connectionListed(conn []string) []string {
	for _, v := range conn {
		for v != "" {
			var f string
			f, v, _ = strings.Cut(v, ",")
			if f = trimOWS(f); f != "" && !asciiEqualFold(f, "keep-alive") && !asciiEqualFold(f, "close") {
				return conn
			}
		}
	}
	return nil
}

// listedIn reports whether k is named in a Connection header.
func listedIn(conn []string, k string) bool {
	for _, v := range conn {
		for v != "" {
			var f string
			f, v, _ = strings.Cut(v, ",")
			if http.CanonicalHeaderKey(strings.TrimSpace(f)) == k {
				return true
			}
		}
	}
	return false
}

// copyResponseHeader copies OSS's end-to-end headers to the client.
func copyResponseHeader(dst, src http.Header) {
	conn := connectionListed(src["Connection"])
	for k, vv := range src {
		if isHop(k) || listedIn(conn, k) {
			continue
		}
		dst[k] = vv
	}
}

// isHop reports whether k is a hop-by-hop header of RFC 9110 section 7.6.1,
// removed in both directions as net/http/httputil.ReverseProxy removes them.
func isHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// errClientWrite marks a copy that stopped because the client went away, as
// opposed to OSS breaking the body.
var errClientWrite = errors.New("client write failed")

// copyBufSize is large enough that a multi-GiB download costs few syscalls
// and small enough that thousands of concurrent downloads stay in budget.
const copyBufSize = 64 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyBody streams src to w through a pooled buffer. It never holds more than
// one buffer of the body, whatever its size.
func copyBody(w io.Writer, src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, errors.Join(errClientWrite, werr)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
