package ossemu

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// checkConditions evaluates the conditional headers of a GET or HEAD in
// RFC 9110 order and returns 412, 304, or 0 to serve the object.
func checkConditions(h http.Header, etag string, lastModified time.Time) int {
	if v := h.Get("If-Match"); v != "" {
		if !etagListMatches(v, etag) {
			return http.StatusPreconditionFailed
		}
	} else if t, ok := parseHTTPTime(h.Get("If-Unmodified-Since")); ok && lastModified.After(t) {
		return http.StatusPreconditionFailed
	}
	if v := h.Get("If-None-Match"); v != "" {
		if etagListMatches(v, etag) {
			return http.StatusNotModified
		}
	} else if t, ok := parseHTTPTime(h.Get("If-Modified-Since")); ok && !lastModified.After(t) {
		return http.StatusNotModified
	}
	return 0
}

// etagListMatches reports whether a comma-separated If-Match or
// If-None-Match list names etag ("*" names any). Quotes and W/ are ignored,
// since OSS compares the bare hash.
func etagListMatches(list, etag string) bool {
	want := bareETag(etag)
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "*" || bareETag(item) == want {
			return true
		}
	}
	return false
}

// bareETag strips W/ and quotes.
func bareETag(s string) string {
	return strings.Trim(strings.TrimPrefix(s, "W/"), `"`)
}

// parseHTTPTime parses an HTTP date; ok is false when absent or invalid
// (an invalid date is ignored, as OSS does).
func parseHTTPTime(v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	t, err := http.ParseTime(v)
	return t, err == nil
}

// rangeKind is how a Range header applies to an object.
type rangeKind int

const (
	// rangeIgnored: absent, invalid or multi-range; OSS serves the whole
	// object with 200.
	rangeIgnored rangeKind = iota
	// rangeSatisfiable: serve 206 with Content-Range.
	rangeSatisfiable
	// rangeUnsatisfiable: 416 InvalidRange.
	rangeUnsatisfiable
)

// parseRange interprets "bytes=a-b", "bytes=a-" and "bytes=-n" against an
// object of size bytes, returning the first byte and the length to serve.
func parseRange(spec string, size int64) (start, length int64, kind rangeKind) {
	r, ok := strings.CutPrefix(strings.TrimSpace(spec), "bytes=")
	if !ok || strings.Contains(r, ",") {
		return 0, 0, rangeIgnored
	}
	first, last, ok := strings.Cut(strings.TrimSpace(r), "-")
	if !ok {
		return 0, 0, rangeIgnored
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" { // suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, rangeIgnored
		}
		if n == 0 || size == 0 {
			return 0, 0, rangeUnsatisfiable
		}
		n = min(n, size)
		return size - n, n, rangeSatisfiable
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, 0, rangeIgnored
	}
	b := size - 1
	if last != "" {
		b, err = strconv.ParseInt(last, 10, 64)
		if err != nil || b < a {
			return 0, 0, rangeIgnored
		}
	}
	if a >= size {
		return 0, 0, rangeUnsatisfiable
	}
	b = min(b, size-1)
	return a, b - a + 1, rangeSatisfiable
}
