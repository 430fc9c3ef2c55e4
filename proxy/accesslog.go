package proxy

import (
	"net/url"
	"strings"
)

// maxLogField bounds a client-supplied string in the access log, so one
// request cannot write a 64 KiB log line.
const maxLogField = 512

// clip shortens a client-supplied value for the access log.
func clip(s string) string {
	if len(s) > maxLogField {
		return s[:maxLogField] + "..."
	}
	return s
}

// redactQuery is the raw query with the values of parameters that grant
// access (V1 and V4 signatures, credentials, STS tokens, CDN URL-auth keys)
// replaced, so the access log shows which signed URL was used but never a
// reusable one. It allocates only when something may need redacting.
func redactQuery(raw string) string {
	raw = clip(raw)
	if raw == "" || !mayHoldSecret(raw) {
		return raw
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i, pair := range strings.Split(raw, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		name, _, hasValue := strings.Cut(pair, "=")
		if hasValue && isSecretParam(name) {
			b.WriteString(name)
			b.WriteString("=REDACTED")
			continue
		}
		b.WriteString(pair)
	}
	return b.String()
}

// mayHoldSecret is a cheap pre-check: every secret parameter name contains
// one of these fragments, unless it is percent-encoded.
func mayHoldSecret(raw string) bool {
	l := strings.ToLower(raw)
	return strings.Contains(l, "signature") || strings.Contains(l, "credential") ||
		strings.Contains(l, "token") || strings.Contains(l, "accesskey") ||
		strings.Contains(l, "access-key") || strings.Contains(l, "auth_key") ||
		strings.Contains(l, "%")
}

// isSecretParam compares the decoded name, since OSS decodes it too.
func isSecretParam(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	switch strings.ToLower(name) {
	case "signature", "x-oss-signature", "x-oss-credential", "security-token",
		"x-oss-security-token", "ossaccesskeyid", "auth_key", "x-oss-access-key-id":
		return true
	}
	return false
}
