package proxy

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/oss-gateway/gateway/proxy/upstream"
)

// progressWriter gives every write to the client its own deadline, renewed
// on each call: a client that stops reading is dropped after d, while a slow
// one that keeps reading (64 KiB/s on a mobile link) can take as long as its
// download needs. A whole-response write_timeout cannot tell the two apart.
type progressWriter struct {
	w  io.Writer
	rc *http.ResponseController
	d  time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.d)) // unsupported writers keep their own
	return p.w.Write(b)
}

// uploadBody is a client's request body on its way to OSS. Each read has
// its own deadline (read_header_timeout), so an upload that stalls is cut
// while one that trickles along is not. When the client's body breaks
// (short, malformed chunking, stalled), the read fails with a
// upstream.ClientBodyError, which makes the upstream client abort the request
// without finishing its framing, so that OSS stores nothing; failed then
// holds the answer the client gets.
type uploadBody struct {
	r      io.ReadCloser
	rc     *http.ResponseController // nil: no per-read deadline
	d      time.Duration
	n      *int64 // bytes read, for the access log and metrics
	failed atomic.Pointer[ossError]
}

func (u *uploadBody) Read(b []byte) (int, error) {
	if u.rc != nil {
		_ = u.rc.SetReadDeadline(time.Now().Add(u.d))
	}
	n, err := u.r.Read(b)
	*u.n += int64(n)
	if err != nil && err != io.EOF {
		e := errIncompleteBody
		if upstream.IsTimeout(err) {
			e = errRequestTimeout
		}
		u.failed.CompareAndSwap(nil, e)
		return n, &upstream.ClientBodyError{Err: err}
	}
	return n, err
}

func (u *uploadBody) Close() error { return u.r.Close() }
