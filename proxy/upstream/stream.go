package upstream

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClientWrite marks a copy that stopped because the client went away, as
// opposed to OSS breaking the body: the one is the client's business, the
// other a failure the proxy may repair by resuming.
var ErrClientWrite = errors.New("client write failed")

// copyBufSize is large enough that a multi-GiB download costs few syscalls
// and small enough that thousands of concurrent downloads stay in budget.
const copyBufSize = 64 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// Copy streams src to w through a pooled buffer. It never holds more than
// one buffer of the body, whatever its size; a failed write comes back
// wrapped in ErrClientWrite, a failed read as it is.
func Copy(w io.Writer, src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, errors.Join(ErrClientWrite, werr)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Sink is where Stream sends a body: the writer every byte may go through,
// and, when the client's connection is plain TCP that nothing in between
// needs to see (HTTP/1.1 without TLS, no rate limit), the client's
// ResponseWriter, whose ReaderFrom net/http implements with splice(2) from
// a TCP source.
type Sink struct {
	W io.Writer
	// Client is the client's ResponseWriter when the body may bypass W,
	// or nil.
	Client http.ResponseWriter
	// Progress, when set, is the write deadline of each chunk sent by
	// Client, which bypasses W and whatever deadline W keeps.
	Progress time.Duration
}

// splicer is a body that can move itself socket to socket: the native
// client's fixed-length bodies on plain TCP, and the stall guard around
// one. done is false when it cannot (TLS, chunked, little left), and
// nothing was sent.
type splicer interface {
	spliceTo(s Sink, rf io.ReaderFrom, progress func()) (n int64, err error, done bool)
}

// Stream sends an OSS response body to the client. A body of the native
// client on a plain TCP connection with more than a buffer of it still on
// the wire moves from socket to socket inside the kernel when the sink
// allows it (no copy through the gateway's memory); everything else goes
// through Copy. Either way a write failure is wrapped in ErrClientWrite and
// an upstream failure is not. A body that cannot splice costs nothing
// beyond Copy.
func Stream(s Sink, body io.Reader) (int64, error) {
	if sp, ok := body.(splicer); ok && s.Client != nil {
		if rf, ok := s.Client.(io.ReaderFrom); ok {
			if n, err, done := sp.spliceTo(s, rf, nil); done {
				return n, err
			}
		}
	}
	return Copy(s.W, body)
}

func (b *upBody) spliceTo(s Sink, rf io.ReaderFrom, progress func()) (int64, error, bool) {
	fb, ok := b.body.(*fixedBody)
	if !ok || fb.n-int64(b.conn.br.Buffered()) <= copyBufSize {
		return 0, nil, false
	}
	tcp, ok := b.conn.nc.(*net.TCPConn)
	if !ok {
		return 0, nil, false
	}
	// What came in with the headers, or is buffered, goes the usual way.
	n, err := Copy(s.W, io.LimitReader(b, int64(b.conn.br.Buffered())))
	if err != nil {
		return n, err, true
	}
	var rc *http.ResponseController
	if s.Progress > 0 {
		rc = http.NewResponseController(s.Client)
	}
	for fb.n > 0 {
		if rc != nil {
			_ = rc.SetWriteDeadline(time.Now().Add(s.Progress))
		}
		m, err := rf.ReadFrom(&io.LimitedReader{R: tcp, N: min(fb.n, copyBufSize)})
		n += m
		fb.n -= m
		if m > 0 && progress != nil {
			progress()
		}
		switch {
		case err == nil && m == 0:
			return n, io.ErrUnexpectedEOF, true // OSS closed early
		case err != nil && b.dead():
			return n, err, true
		case err != nil:
			return n, errors.Join(ErrClientWrite, err), true
		}
	}
	b.eof.Store(true) // read to its end: the connection may be reused
	return n, nil, true
}

// dead tells, after a splice failed, whether the upstream side is the one
// that broke (splice reports both ends' errors alike): a live connection
// either has body bytes waiting or nothing yet; a broken one, or one the
// stall guard closed, reports EOF, a reset or its closing. (A byte the
// check reads is lost with the connection, which is not reused after a
// failed splice.)
func (b *upBody) dead() bool {
	if conn := b.conn; conn.raw != nil {
		conn.peekState = peekEnded
		if err := conn.raw.Read(conn.peekFn); err != nil {
			return true // closed under us
		}
		return conn.peekState == peekEnded
	}
	// Without a socket to poll, only a connection closed here shows: a
	// read with the deadline past never reaches the socket.
	b.conn.setReadDeadline(aLongTimeAgo)
	_, err := b.conn.br.Peek(1)
	b.conn.setReadDeadline(time.Time{})
	return err != nil && !IsTimeout(err)
}

// stallGuard ends an upstream body that makes no progress for d: OSS (or
// the network) going silent mid-body would otherwise hold the client
// forever. It closes the body under the blocked read, which then fails with
// errStalled, and the proxy's mid-stream resume repairs that.
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
		return n, errStalled
	}
	return n, err
}

func (g *stallGuard) Close() error {
	g.timer.Stop()
	return g.body.Close()
}

func (g *stallGuard) spliceTo(s Sink, rf io.ReaderFrom, _ func()) (int64, error, bool) {
	sp, ok := g.body.(splicer)
	if !ok {
		return 0, nil, false
	}
	n, err, done := sp.spliceTo(s, rf, func() { g.timer.Reset(g.d) })
	if err != nil && g.stalled.Load() && !errors.Is(err, ErrClientWrite) {
		err = errStalled
	}
	return n, err, done
}

type stalledError struct{}

func (stalledError) Error() string   { return "upstream body stalled" }
func (stalledError) Timeout() bool   { return true }
func (stalledError) Temporary() bool { return true }

// errStalled is an OSS body that went silent for the stall timeout. It is
// a timeout, so it is retried and resumed like one.
var errStalled error = stalledError{}

// ClientBodyError is a failure to read the client's request body, as
// opposed to a failure to write it to OSS. The native client aborts such a
// request without finishing its framing, so that OSS stores nothing.
type ClientBodyError struct{ Err error }

func (e *ClientBodyError) Error() string {
	return "reading the client's request body: " + e.Err.Error()
}
func (e *ClientBodyError) Unwrap() error { return e.Err }
