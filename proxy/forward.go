package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/proxy/upstream"
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
	resp, oerr := h.fetch(r, x, ask{method: r.Method, key: x.key, withBody: true})
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
	if s.egressBytesPerSec == 0 {
		if restore := liftLowat(r, resp.ContentLength, x.st.progressTimeout); restore != nil {
			defer restore()
		}
	}
	dst := h.clientWriter(r, x, w)
	n, err := h.sendBody(r, x, dst, resp.Body)
	if err != nil && !errors.Is(err, upstream.ErrClientWrite) && r.Context().Err() == nil {
		if sp, ok := resumable(r.Method, resp); ok {
			var more int64
			more, err = h.resume(r, x, dst, sp, n)
			n += more
		}
	}
	x.bytesOut = n
	if err != nil {
		x.err = err
		return !errors.Is(err, upstream.ErrClientWrite)
	}
	return false
}

// sendBody streams an OSS body to the client through dst. On a plain-TCP
// HTTP/1.1 client connection with no egress limit, the body may bypass dst
// and go socket to socket (upstream.Stream decides), each chunk with the
// connection's progress deadline.
func (h *Handler) sendBody(r *http.Request, x *exchange, dst io.Writer, body io.Reader) (int64, error) {
	sink := upstream.Sink{W: dst}
	if r.TLS == nil && r.ProtoMajor == 1 && x.site.egressBytesPerSec == 0 {
		sink.Client, sink.Progress = x.w, x.st.progressTimeout
	}
	return upstream.Stream(sink, body)
}

// ask is what one request to OSS is for, beyond what the client sent: the
// method and key (a website follow-up asks for another key than the
// client's), whether the client's body goes along (only the client's own
// request has one), and for a resume the range to continue from, pinned to
// the object's ETag. outgoing turns it into the request.
type ask struct {
	method, key string
	withBody    bool
	// resumeRange and ifMatch, when set, make the request the
	// continuation of a broken body.
	resumeRange, ifMatch string
}

// roundTrip sends one request to up, signed when the site is private, and
// returns OSS's response with its headers read, or the gateway's own error
// and, when a retry may cure the failure, its reason (see upstreamFailure).
func (h *Handler) roundTrip(r *http.Request, x *exchange, up *endpoint, a ask) (*http.Response, *ossError, string) {
	s := x.site
	out := h.outgoing(r, x, up, a)
	var cred credentials.Credentials
	if s.private {
		var err error
		cred, err = resolveCredentials(r.Context(), h.credentials())
		if err == nil {
			err = s.signatures.sign(r.Context(), out, s.bucket, a.key, s.region, &cred, time.Now())
		}
		if err != nil {
			x.err = err
			return nil, errNoCredentials, ""
		}
	}
	t0 := time.Now()
	resp, err := x.st.oss.Do(out)
	x.upstreamWait = time.Since(t0)
	if err != nil {
		x.err = err
		oerr, reason := upstreamFailure(r.Context(), err, x.upload)
		if x.upload == nil || x.upload.failed.Load() == nil {
			// Not the client's broken upload: it counts against OSS.
			s.metrics.upstreamDuration(up.label).Observe(x.upstreamWait.Seconds())
			s.metrics.upstream(up.label, 0).Inc()
		}
		return nil, oerr, reason
	}
	s.metrics.upstreamDuration(up.label).Observe(x.upstreamWait.Seconds())
	s.metrics.upstream(up.label, resp.StatusCode).Inc()
	up.health.answered(t0)
	x.err = nil // a failure a retry cured is in the retry metrics, not an error
	x.upstreamID = resp.Header.Get("X-Oss-Request-Id")
	if s.private && scrubbable(resp.StatusCode) {
		scrubError(resp, r.Host, cred.AccessKeyID, cred.SecurityToken)
	}
	return resp, nil, ""
}

// upstreamFailure is the one place a failed exchange with OSS becomes what
// the layers above need: the answer the client gets (400/408 when the
// client's own upload broke, nothing when the client left, 504 when OSS
// was too slow, 502 otherwise) and the retry reason, empty when no retry
// can help: "timeout", "dial" or "reset" (also the
// gateway_upstream_retries_total label). The error itself is the log cause.
func upstreamFailure(ctx context.Context, err error, upload *uploadBody) (*ossError, string) {
	if upload != nil {
		if e := upload.failed.Load(); e != nil {
			return e, "" // the client's body broke: a client error, not OSS's
		}
	}
	var op *net.OpError
	switch {
	case ctx.Err() != nil:
		return errClientGone, ""
	case upstream.IsTimeout(err):
		return errGatewayTimeout, "timeout"
	case errors.As(err, &op) && op.Op == "dial", errors.Is(err, syscall.ECONNREFUSED):
		return errBadGateway, "dial"
	}
	return errBadGateway, "reset"
}

// outgoing builds the request to OSS, in one place: addressed to up,
// carrying the client's end-to-end headers (and body, when a.withBody),
// with the query and x-oss-* headers a site of this access type may
// forward, and a resume's range.
func (h *Handler) outgoing(r *http.Request, x *exchange, up *endpoint, a ask) *http.Request {
	s := x.site
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
	if a.resumeRange != "" {
		for _, k := range []string{"If-Range", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
			delete(hdr, k)
		}
		hdr["Range"] = []string{a.resumeRange}
		hdr["If-Match"] = []string{a.ifMatch}
	}
	if _, ok := hdr["User-Agent"]; !ok {
		hdr["User-Agent"] = []string{""} // no Go default in OSS logs
	}

	out := (&http.Request{
		Method: a.method,
		URL: &url.URL{
			Scheme:   up.Scheme,
			Host:     up.Addr,
			Opaque:   escapeKeyPath(a.key),
			RawQuery: query,
		},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Host:       up.Host,
	}).WithContext(r.Context()) // the client leaving ends the exchange
	if a.withBody && r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
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
			if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "keep-alive") && !strings.EqualFold(f, "close") {
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

// copyResponseHeader copies OSS's end-to-end headers to the client. The
// value slices are shared with src, capped at their length, so that an Add
// to dst copies instead of writing into src (a stored response's headers
// serve every hit).
func copyResponseHeader(dst, src http.Header) {
	conn := connectionListed(src["Connection"])
	for k, vv := range src {
		if isHop(k) || listedIn(conn, k) {
			continue
		}
		dst[k] = vv[:len(vv):len(vv)]
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
