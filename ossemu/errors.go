package ossemu

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// apiError is an OSS error response: status, Code, Message, and the extra
// elements OSS adds after HostId (for SignatureDoesNotMatch the ones that
// help debug a signer: StringToSign, CanonicalRequest, ...; never the
// secret). An extra element named EC also goes out as the x-oss-ec header,
// as on OSS, since SDKs read the EC from either.
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

// ecField names the extra element that carries OSS's error code (EC).
const ecField = "EC"

// errorCodeFields are the trailing <EC> and <RecommendDoc> elements OSS
// appends to an error with a documented EC, so a client can look it up.
func errorCodeFields(ec string) []xmlField {
	return []xmlField{
		{ecField, ec},
		{"RecommendDoc", "https://api.aliyun.com/troubleshoot?q=" + ec},
	}
}

// ec returns the error's EC, or "" when it has none.
func (e *apiError) ec() string {
	for _, f := range e.extra {
		if f.name == ecField {
			return f.value
		}
	}
	return ""
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

// fail answers the request with e, with x-oss-ec when e has an EC. HEAD
// responses carry the body
// base64-encoded in x-oss-err instead, as OSS does, since they have no body.
func (c *call) fail(e *apiError) {
	body := errorBody(e, c.id, c.r.Host)
	h := c.w.Header()
	for _, k := range []string{"Etag", "Last-Modified", "Accept-Ranges", "Content-Disposition", "Cache-Control", "Content-Encoding", "Content-Language", "Expires", "X-Oss-Force-Download"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if ec := e.ec(); ec != "" {
		h.Set("X-Oss-Ec", ec)
	}
	if c.r.Method == http.MethodHead {
		h.Set("X-Oss-Err", base64.StdEncoding.EncodeToString(body))
	}
	c.w.WriteHeader(e.status)
	_, _ = c.w.Write(body)
}
