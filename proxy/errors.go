package proxy

import (
	"net/http"
	"strconv"
	"strings"
)

// ossError is an error the gateway answers itself, shaped like the ones OSS
// returns, so that SDKs and operators parse the gateway's refusals exactly as
// they parse OSS's own.
type ossError struct {
	status  int
	code    string
	message string
	reason  string // gateway_denied_total reason; "" when not a policy denial
}

// The gateway's own refusals. Messages are fixed strings: no client input and
// no secret can reach an error body.
var (
	errMisdirected = &ossError{http.StatusMisdirectedRequest, "MisdirectedRequest",
		"The Host of this request is not served by this gateway.", ""}
	errBadObjectName = &ossError{http.StatusBadRequest, "InvalidObjectName",
		"The object key in the request path is not allowed.", "path"}
	errMethodNotAllowed = &ossError{http.StatusMethodNotAllowed, "MethodNotAllowed",
		"The specified method is not allowed against this resource.", "method"}
	errNoCredentials = &ossError{http.StatusServiceUnavailable, "ServiceUnavailable",
		"The gateway cannot resolve credentials to sign this request yet.", ""}
	errBadGateway = &ossError{http.StatusBadGateway, "BadGateway",
		"The gateway could not get a response from OSS.", ""}
	errGatewayTimeout = &ossError{http.StatusGatewayTimeout, "GatewayTimeout",
		"OSS did not send response headers in time.", ""}
	errBodyNotAllowed = &ossError{http.StatusBadRequest, "InvalidRequest",
		"This method does not take a request body.", ""}
	errIPDenied = &ossError{http.StatusForbidden, "AccessDenied",
		"You are not allowed to access this site from your IP address.", "ip"}
	errRateLimited = &ossError{http.StatusTooManyRequests, "TooManyRequests",
		"Please reduce your request rate.", "rate_limit"}
	errCORSForbidden = &ossError{http.StatusForbidden, "AccessForbidden",
		"CORSResponse: This CORS request is not allowed. This is usually because the evaluation of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.", "cors"}
	errURLAuth = &ossError{http.StatusForbidden, "AccessDenied",
		"URL authentication failed: auth_key is missing, expired or invalid.", "url_auth"}
	errRefererDenied = &ossError{http.StatusForbidden, "AccessDenied",
		"You are denied by bucket referer policy.", "referer"}

	// Request framing and uploads: the client's message is broken, so the
	// connection it came on is closed after the answer.
	errIncompleteBody = &ossError{http.StatusBadRequest, "IncompleteBody",
		"The request body ended before its declared length, or its chunked framing is malformed; nothing was stored.", ""}
	errRequestTimeout = &ossError{http.StatusBadRequest, "RequestTimeout",
		"The request body stopped arriving; nothing was stored.", ""}
	errAmbiguousFraming = &ossError{http.StatusBadRequest, "InvalidRequest",
		"A request may not carry both Content-Length and Transfer-Encoding.", ""}

	// Trust boundary refusals on private sites.
	errHeaderRefused = &ossError{http.StatusForbidden, "AccessDenied",
		"This site does not copy objects or change ACLs: x-oss-copy-source, x-oss-object-acl and x-oss-acl are not allowed.", "header"}
	errProcessRefused = &ossError{http.StatusForbidden, "AccessDenied",
		"This x-oss-process operation is not allowed on this site.", "process"}
	errOperationRefused = &ossError{http.StatusForbidden, "AccessDenied",
		"This operation is not allowed on this site: only reads and writes of objects under the site's prefix are.", "method"}
	errDuplicateQuery = &ossError{http.StatusBadRequest, "InvalidArgument",
		"A query parameter appears more than once.", "path"}
	errBadQuery = &ossError{http.StatusBadRequest, "InvalidArgument",
		"The query string is not validly percent-encoded.", "path"}

	// errClientGone is not sent: the client left before OSS answered.
	errClientGone = &ossError{499, "ClientClosedRequest", "", ""}
)

// closesConn reports whether answering e must close the client's
// connection: the request's body was refused or broke, so what follows it
// on the connection cannot be trusted to be the next request.
func (e *ossError) closesConn() bool {
	return e == errIncompleteBody || e == errRequestTimeout || e == errAmbiguousFraming || e == errBodyNotAllowed
}

// writeError sends e as OSS's XML error body. hostID is the Host the client
// asked for; it is escaped, as it is client input. It returns the body
// bytes written.
func writeError(w http.ResponseWriter, r *http.Request, e *ossError, requestID string) int {
	var b strings.Builder
	b.Grow(256 + len(r.Host))
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<Error>\n  <Code>")
	b.WriteString(e.code)
	b.WriteString("</Code>\n  <Message>")
	b.WriteString(e.message)
	b.WriteString("</Message>\n  <RequestId>")
	b.WriteString(requestID)
	b.WriteString("</RequestId>\n  <HostId>")
	xmlEscape(&b, r.Host)
	b.WriteString("</HostId>\n</Error>\n")

	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	if r.Method == http.MethodHead {
		return 0
	}
	n, _ := w.Write([]byte(b.String()))
	return n
}

// xmlEscape writes s with the five XML special characters escaped and any
// control character dropped.
func xmlEscape(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
		default:
			if c >= 0x20 && c != 0x7f {
				b.WriteByte(c)
			}
		}
	}
}
