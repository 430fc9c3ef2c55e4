package proxy

import (
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/oss-gateway/gateway/config"
)

// dispositionPolicy decides whether a browser previews an object or saves
// it. OSS forces downloads of web pages (and, on newer buckets, images) on
// its own domains and marks that with x-oss-force-download; a gateway on a
// custom domain is where that can be undone, or a download forced on purpose.
type dispositionPolicy struct {
	mode    string // auto | inline | attachment
	param   string // query parameter that forces a download; "" = none
	fixType bool
}

func newDispositionPolicy(c config.Disposition) *dispositionPolicy {
	mode := c.Mode
	if mode == "" {
		mode = "auto"
	}
	return &dispositionPolicy{mode: mode, param: c.DownloadParam, fixType: c.FixContentType}
}

// takeParam removes the download parameter from rawQuery, so it never
// reaches OSS (where it would break a client's signature), and reports
// whether it was there and the file name it asked for.
func (d *dispositionPolicy) takeParam(rawQuery string) (rest string, download bool, name string) {
	if d.param == "" || rawQuery == "" {
		return rawQuery, false, ""
	}
	rest, value, found := cutQueryParam(rawQuery, d.param)
	if !found {
		return rawQuery, false, ""
	}
	if v, err := url.QueryUnescape(value); err == nil {
		name = v
	}
	return rest, true, name
}

// apply sets the response's Content-Disposition and Content-Type for key.
// It touches only successful object responses.
func (d *dispositionPolicy) apply(h http.Header, key string, status int, download bool, name string) {
	if status != http.StatusOK && status != http.StatusPartialContent {
		return
	}
	forced := h.Get("X-Oss-Force-Download") != ""
	switch {
	case download:
		if name == "" {
			name = path.Base(key)
		}
		h.Set("Content-Disposition", contentDisposition("attachment", name))
	case d.mode == "attachment":
		h.Set("Content-Disposition", contentDisposition("attachment", path.Base(key)))
	case d.mode == "inline":
		h.Set("Content-Disposition", "inline")
	case forced:
		// auto: undo only what OSS's domain policy added; a
		// Content-Disposition the object carries itself has no marker.
		h.Del("Content-Disposition")
	}
	h.Del("X-Oss-Force-Download")
	if d.fixType {
		if ct := h.Get("Content-Type"); ct == "" || ct == "application/octet-stream" {
			if t := typeByExtension(key); t != "" {
				h.Set("Content-Type", t)
			}
		}
	}
}

// typeByExtension is the MIME type for key's extension, or "".
func typeByExtension(key string) string {
	ext := path.Ext(key)
	if ext == "" {
		return ""
	}
	return mime.TypeByExtension(strings.ToLower(ext))
}

// contentDisposition builds an RFC 6266 header: a quoted ASCII fallback
// filename for old clients and, when the name is not plain ASCII, an RFC 8187
// filename* with the exact UTF-8 name. Path separators and control
// characters never survive into the name.
func contentDisposition(kind, name string) string {
	name = sanitizeFilename(name)
	if name == "" {
		return kind
	}
	var b strings.Builder
	b.WriteString(kind)
	b.WriteString(`; filename="`)
	plain := true
	for _, r := range name {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('_')
			plain = false
		case r < 0x20 || r >= 0x7f:
			b.WriteByte('_')
			plain = false
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	if !plain {
		b.WriteString("; filename*=UTF-8''")
		for i := 0; i < len(name); i++ {
			c := name[i]
			if unreserved(c) || strings.IndexByte("!#$&+^`|", c) >= 0 {
				b.WriteByte(c)
			} else {
				b.WriteByte('%')
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xf])
			}
		}
	}
	return b.String()
}

// sanitizeFilename keeps the last path segment of name, drops control
// characters and invalid UTF-8, and caps the length.
func sanitizeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			continue
		}
		if b.Len() >= 255 {
			break
		}
		b.WriteRune(r)
	}
	s := strings.TrimSpace(b.String())
	if s == "." || s == ".." {
		return ""
	}
	return s
}

// cutQueryParam removes every occurrence of the parameter name (matched on
// the raw, unescaped-free form) from rawQuery, keeping the other parameters
// byte for byte and in order. value is the raw value of the first
// occurrence.
func cutQueryParam(rawQuery, name string) (rest, value string, found bool) {
	if !strings.Contains(rawQuery, name) {
		return rawQuery, "", false
	}
	var b strings.Builder
	for q := rawQuery; q != ""; {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			if !found {
				value, found = v, true
			}
			continue
		}
		if kv == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv)
	}
	return b.String(), value, found
}
