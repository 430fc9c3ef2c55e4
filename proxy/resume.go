package proxy

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/oss-gateway/gateway/proxy/upstream"
)

// errObjectChanged ends a resume: the object is no longer the one whose
// first bytes the client has, so the only honest answer is a broken
// connection, never a body spliced from two versions.
var errObjectChanged = errors.New("object changed during resume")

// maxResumes bounds how often one response is resumed, so an upstream that
// cuts every body cannot hold a client forever.
const maxResumes = 16

// resumeSpan is the part of the object a response body covers.
type resumeSpan struct {
	etag       string
	start, end int64 // inclusive object offsets
}

// resumable reports whether a broken GET response can be continued: it must
// name its ETag (to pin the object) and its exact extent.
func resumable(method string, resp *http.Response) (resumeSpan, bool) {
	sp := resumeSpan{etag: resp.Header.Get("ETag")}
	if method != http.MethodGet || sp.etag == "" || resp.Header.Get("Content-Encoding") != "" {
		return sp, false
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength <= 0 {
			return sp, false
		}
		sp.end = resp.ContentLength - 1
		return sp, true
	case http.StatusPartialContent:
		start, end, ok := parseContentRange(resp.Header.Get("Content-Range"))
		sp.start, sp.end = start, end
		return sp, ok
	}
	return sp, false
}

// parseContentRange reads "bytes a-b/total".
func parseContentRange(v string) (start, end int64, ok bool) {
	v, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, _, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

// resume continues a GET whose OSS body broke after sent bytes reached the
// client: a Range request from the next byte, pinned to the same object by
// If-Match, repeated while each try makes progress. It returns the bytes it
// added and nil once the body is complete.
func (h *Handler) resume(r *http.Request, x *exchange, dst io.Writer, sp resumeSpan, sent int64) (int64, error) {
	var added int64
	stalls := 0
	for i := 0; i < maxResumes; i++ {
		from := sp.start + sent + added
		if from > sp.end {
			return added, nil
		}
		h.opts.Metrics.UpstreamRetries.WithLabelValues(x.site.name, "body_cut").Inc()
		x.resumes++
		resp, oerr := h.fetch(r, x, ask{
			method:      http.MethodGet,
			key:         x.key,
			resumeRange: "bytes=" + strconv.FormatInt(from, 10) + "-" + strconv.FormatInt(sp.end, 10),
			ifMatch:     sp.etag,
		})
		if oerr != nil {
			return added, errors.New("resume: " + oerr.message)
		}
		start, end, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if resp.StatusCode != http.StatusPartialContent || !ok || start != from || end != sp.end || resp.Header.Get("ETag") != sp.etag {
			discard(resp)
			return added, errObjectChanged
		}
		n, err := h.sendBody(r, x, dst, resp.Body)
		resp.Body.Close()
		added += n
		if err == nil {
			return added, nil
		}
		if errors.Is(err, upstream.ErrClientWrite) {
			return added, err
		}
		if n == 0 {
			if stalls++; stalls >= x.site.retry.maxAttempts {
				return added, err
			}
		}
	}
	return added, errors.New("resume: too many cuts")
}
