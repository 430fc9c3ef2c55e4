package ossemu

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// apiError is an OSS error response: status, Code, Message, and for
// SignatureDoesNotMatch the extra elements OSS adds to help debug a signer
// (StringToSign, CanonicalRequest; never the secret).
type apiError struct {
	status int
	code   string
	msg    string
	extra  []xmlField
}

// xmlField is one extra <Name>Value</Name> element of an error body.
type xmlField struct {
	name, value string
}

// Error makes apiError usable as an error in helpers that return one.
func (e *apiError) Error() string {
	return fmt.Sprintf("oss %d %s: %s", e.status, e.code, e.msg)
}

// errMethodNotAllowed is OSS's answer to a method it does not support on
// the addressed resource.
func errMethodNotAllowed() *apiError {
	return &apiError{http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.", nil}
}

// errNotImplemented answers operations OSS has but the emulator does not.
func errNotImplemented() *apiError {
	return &apiError{http.StatusNotImplemented, "NotImplemented", "The emulator does not implement this operation.", nil}
}

// errorBody renders the XML body OSS sends with an error.
func errorBody(e *apiError, requestID, hostID string) []byte {
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString("<Error>\n")
	writeElem(&b, "Code", e.code)
	writeElem(&b, "Message", e.msg)
	writeElem(&b, "RequestId", requestID)
	writeElem(&b, "HostId", hostID)
	for _, f := range e.extra {
		writeElem(&b, f.name, f.value)
	}
	b.WriteString("</Error>\n")
	return []byte(b.String())
}

// writeElem writes one indented, escaped element.
func writeElem(b *strings.Builder, name, value string) {
	b.WriteString("  <" + name + ">")
	_ = xml.EscapeText(b, []byte(value))
	b.WriteString("</" + name + ">\n")
}

// fail answers the request with e. HEAD responses carry the body
// base64-encoded in x-oss-err instead, as OSS does, since they have no body.
func (c *call) fail(e *apiError) {
	body := errorBody(e, c.id, c.r.Host)
	h := c.w.Header()
	for _, k := range []string{"Etag", "Last-Modified", "Accept-Ranges", "Content-Disposition", "Cache-Control", "Content-Encoding", "Content-Language", "Expires", "X-Oss-Force-Download"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if c.r.Method == http.MethodHead {
		h.Set("X-Oss-Err", base64.StdEncoding.EncodeToString(body))
	}
	c.w.WriteHeader(e.status)
	_, _ = c.w.Write(body)
}
