package proxy

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxKeyLen is OSS's limit on object key length in bytes.
const maxKeyLen = 1023

// objectKey maps a request URL to the object key under prefix. It refuses,
// never normalises, anything that could let a key escape prefix or mean
// something else to OSS than to the gateway: dot segments (also
// percent-encoded), encoded slashes, backslashes, NUL, a leading slash in the
// key, invalid UTF-8, and keys longer than OSS allows. With no prefix it does
// not allocate.
//
// pathBucket, when not "", is a path-style site's bucket: a first path
// segment equal to it is dropped, so "/BUCKET/KEY" is KEY and "/BUCKET" or
// "/BUCKET/" the root, as SDKs address a bucket by IP.
func objectKey(prefix, pathBucket string, u *url.URL) (string, bool) {
	p := u.Path
	if len(p) == 0 || p[0] != '/' {
		return "", false
	}
	if u.RawPath != "" && (strings.Contains(u.RawPath, "%2F") || strings.Contains(u.RawPath, "%2f") ||
		strings.Contains(u.RawPath, "%5C") || strings.Contains(u.RawPath, "%5c")) {
		return "", false
	}
	rel := p[1:]
	if pathBucket != "" {
		if rest, ok := strings.CutPrefix(rel, pathBucket); ok && (rest == "" || rest[0] == '/') {
			rel = rest
			if rel != "" {
				rel = rel[1:]
			}
		}
	}
	if !validKeyPath(rel) {
		return "", false
	}
	if prefix == "" {
		return rel, true
	}
	if len(prefix)+len(rel) > maxKeyLen {
		return "", false
	}
	return prefix + rel, true
}

// validKeyPath checks the decoded path below the leading slash.
func validKeyPath(rel string) bool {
	if len(rel) > maxKeyLen || (len(rel) > 0 && rel[0] == '/') {
		return false
	}
	seg := 0 // start of the current segment
	for i := 0; i <= len(rel); i++ {
		if i < len(rel) {
			c := rel[i]
			if c == 0 || c == '\\' {
				return false
			}
			if c != '/' {
				continue
			}
		}
		if s := rel[seg:i]; s == "." || s == ".." {
			return false
		}
		seg = i + 1
	}
	return utf8.ValidString(rel)
}

// escapeKeyPath returns "/" + key percent-encoded as OSS's canonical URI
// encodes it (everything but A-Z a-z 0-9 - _ . ~ and the slash), so the path
// on the wire and the path the signature covers are the same bytes.
func escapeKeyPath(key string) string {
	n := 0
	for i := 0; i < len(key); i++ {
		if !unreserved(key[i]) && key[i] != '/' {
			n++
		}
	}
	if n == 0 {
		return "/" + key
	}
	b := make([]byte, 0, 1+len(key)+2*n)
	b = append(b, '/')
	for i := 0; i < len(key); i++ {
		c := key[i]
		if unreserved(c) || c == '/' {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}
