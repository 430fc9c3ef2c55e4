package proxy

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/signer"
)

// signRequest signs out, already addressed and with its final headers and
// query, with the official SDK's V4 signer. The canonical URI the signer
// builds is /bucket/key whatever the Host, as OSS requires.
func signRequest(ctx context.Context, out *http.Request, bucket, key, region string, cred *credentials.Credentials) error {
	product := "oss"
	sc := &signer.SigningContext{
		Product:     &product,
		Region:      &region,
		Bucket:      &bucket,
		Key:         &key,
		Request:     out,
		Credentials: cred,
	}
	var v4 signer.SignerV4
	return v4.Sign(ctx, sc)
}

// Query parameters a private site forwards to OSS. Everything else is dropped
// before signing: client signatures and tokens (the gateway's signature
// replaces them), response-* overrides (OSS refuses them to anonymous
// clients, and a private site's clients are anonymous to OSS), and
// sub-resources like ?acl or ?tagging that would turn the gateway's
// credentials into a way to read or change bucket settings.
var privateQueryParams = map[string]bool{
	"x-oss-process": true,
	"versionId":     true,
	"uploads":       true,
	"uploadId":      true,
	"partNumber":    true,
	"append":        true,
	"position":      true,
}

// privateQuery keeps the forwardable parameters of raw and re-encodes them as
// OSS's canonical query encodes them, so the bytes on the wire and the bytes
// the signer hashes are the same. Malformed escapes drop the parameter.
func privateQuery(raw string) string {
	if raw == "" {
		return ""
	}
	var b strings.Builder
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, hasV := strings.Cut(kv, "=")
		dk, err := queryUnescape(k)
		if err != nil || !privateQueryParams[dk] {
			continue
		}
		dv, err := queryUnescape(v)
		if err != nil {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		escapeQueryComponent(&b, dk)
		if hasV && dv != "" {
			b.WriteByte('=')
			escapeQueryComponent(&b, dv)
		}
	}
	return b.String()
}

func queryUnescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// escapeQueryComponent percent-encodes everything but OSS's unreserved set,
// with upper-case hex: the canonical form of a V4 query component.
func escapeQueryComponent(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
	}
}
