package proxy

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"
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
// clientBodyError, which makes the upstream client abort the request
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
		if isTimeout(err) {
			e = errRequestTimeout
		}
		u.failed.CompareAndSwap(nil, e)
		return n, &clientBodyError{err}
	}
	return n, err
}

func (u *uploadBody) Close() error { return u.r.Close() }

// clientBodyError is a failure to read the client's request body, as
// opposed to a failure to write it to OSS.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string {
	return "reading the client's request body: " + e.err.Error()
}
func (e *clientBodyError) Unwrap() error { return e.err }

// stallGuard ends an upstream body that makes no progress for d: OSS (or
// the network) going silent mid-body would otherwise hold the client
// forever. It closes the body under the blocked read, which then fails with
// errUpstreamStalled, and the mid-stream resume repairs that.
type stallGuard struct {
	body    io.ReadCloser
	timer   *time.Timer
	d       time.Duration
	stalled atomic.Bool
}

func newStallGuard(body io.ReadCloser, d time.Duration) *stallGuard {
	g := &stallGuard{body: body, d: d}
	g.timer = time.AfterFunc(d, func() {
		g.stalled.Store(true)
		_ = body.Close() // bodies may be closed while a Read is blocked
	})
	return g
}

func (g *stallGuard) Read(b []byte) (int, error) {
	n, err := g.body.Read(b)
	if n > 0 {
		g.timer.Reset(g.d)
	}
	if err != nil && err != io.EOF && g.stalled.Load() {
		return n, errUpstreamStalled
	}
	return n, err
}

func (g *stallGuard) Close() error {
	g.timer.Stop()
	return g.body.Close()
}

type stalledError struct{}

func (stalledError) Error() string   { return "upstream body stalled" }
func (stalledError) Timeout() bool   { return true }
func (stalledError) Temporary() bool { return true }

// errUpstreamStalled is a timeout, so it is retried like one.
var errUpstreamStalled error = stalledError{}
