package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxErrorBody bounds the OSS error body a private site reads to scrub.
// OSS's are a few hundred bytes; anything past this is not one of them.
const maxErrorBody = 64 << 10

// signingElements are the elements of an OSS error body that describe how
// the gateway signed the request: who it is and what it hashed. A client
// of a private site must never see them (they name our AccessKey and let
// anyone check guesses about our signing offline).
var signingElements = map[string]bool{
	"OSSAccessKeyId":    true,
	"AccessKeyId":       true,
	"SecurityToken":     true,
	"StringToSign":      true,
	"StringToSignBytes": true,
	"CanonicalRequest":  true,
	"SignatureProvided": true,
}

// scrubbable reports whether a response from OSS is an error whose body a
// private site must scrub before a client sees it.
func scrubbable(status int) bool {
	return status >= 400 || (status >= 300 && status != http.StatusNotModified)
}

// scrubError replaces the body of OSS's error response resp (and the copy
// of it a HEAD answer carries base64-encoded in x-oss-err) with one that
// keeps Code, Message, RequestId, EC and the other plain elements, drops
// the signing elements and any element that holds one of secrets, and
// names host in HostId and BucketName. A body that is not an OSS error
// document is withheld: the client gets a generic one with the same status.
func scrubError(resp *http.Response, host string, secrets ...string) {
	if v := resp.Header.Get("X-Oss-Err"); v != "" {
		resp.Header.Del("X-Oss-Err")
		if raw, err := base64.StdEncoding.DecodeString(v); err == nil {
			resp.Header.Set("X-Oss-Err", base64.StdEncoding.EncodeToString(scrubErrorBody(raw, host, resp.StatusCode, secrets)))
		}
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
	resp.Body.Close()
	if err != nil || len(raw) > maxErrorBody {
		raw = nil
	}
	body := scrubErrorBody(raw, host, resp.StatusCode, secrets)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set("Content-Type", "application/xml")
	resp.Header.Del("Content-Md5")
	resp.Header.Del("Content-Encoding")
	resp.TransferEncoding = nil
}

// scrubErrorBody is scrubError for one body.
func scrubErrorBody(raw []byte, host string, status int, secrets []string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<Error>\n")
	if !scrubElements(&b, raw, host, secrets) {
		b.Reset()
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<Error>\n")
		writeElement(&b, "Code", "UpstreamError")
		writeElement(&b, "Message", "OSS answered "+strconv.Itoa(status)+" with a body the gateway does not pass on.")
		writeElement(&b, "HostId", host)
	}
	b.WriteString("</Error>\n")
	return []byte(b.String())
}

// scrubElements writes the kept children of raw's <Error> root to b, and
// reports false when raw is not an OSS error document.
func scrubElements(b *strings.Builder, raw []byte, host string, secrets []string) bool {
	if len(raw) == 0 {
		return false
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	root := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return root
		}
		if err != nil {
			return false
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if !root {
			if se.Name.Local != "Error" {
				return false
			}
			root = true
			continue
		}
		text, simple, err := elementText(d)
		if err != nil {
			return false
		}
		name := se.Name.Local
		switch {
		case !simple || signingElements[name] || holdsSecret(text, secrets):
			// Structured details (AccessDeniedDetail names our RAM
			// identity) and anything that carries credentials go.
		case name == "HostId" || name == "BucketName":
			writeElement(b, name, host)
		default:
			writeElement(b, name, text)
		}
	}
}

// elementText reads the rest of an element whose start was just read. It
// returns its text, and simple = false when it has child elements.
func elementText(d *xml.Decoder) (text string, simple bool, err error) {
	var sb strings.Builder
	simple = true
	for depth := 1; depth > 0; {
		tok, err := d.Token()
		if err != nil {
			return "", false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			simple = false
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 1 {
				sb.Write(t)
			}
		}
	}
	return sb.String(), simple, nil
}

// holdsSecret reports whether text contains one of the (non-empty)
// secrets.
func holdsSecret(text string, secrets []string) bool {
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// writeElement writes one indented element with its text escaped.
func writeElement(b *strings.Builder, name, text string) {
	b.WriteString("  <")
	b.WriteString(name)
	b.WriteString(">")
	xmlEscape(b, text)
	b.WriteString("</")
	b.WriteString(name)
	b.WriteString(">\n")
}
