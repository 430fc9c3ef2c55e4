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

	// errClientGone is not sent: the client left before OSS answered.
	errClientGone = &ossError{499, "ClientClosedRequest", "", ""}
)

// writeError sends e as OSS's XML error body. hostID is the Host the client
// asked for; it is escaped, as it is client input.
func writeError(w http.ResponseWriter, r *http.Request, e *ossError, requestID string) {
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
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(b.String()))
	}
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
