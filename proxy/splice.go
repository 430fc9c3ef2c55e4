package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// sendBody streams an OSS body to the client. When both ends are plain TCP
// (HTTP/1.1 without TLS on the client side, as behind a load balancer that
// terminates TLS; plain HTTP to OSS, as to an internal endpoint) and the
// body has a known length, the part not yet read moves from one socket to
// the other inside the kernel with splice(2): no copy through the gateway's
// memory. Otherwise, and for whatever arrived with the headers, it is
// copyBody. Either way each 64 KiB gets the client's progress deadline, and
// an error says which side failed (errClientWrite for the client).
func (h *Handler) sendBody(r *http.Request, x *exchange, dst io.Writer, body io.ReadCloser) (int64, error) {
	src, guard := spliceSource(body)
	rf, ok := x.w.(io.ReaderFrom)
	if src == nil || !ok || r.TLS != nil || r.ProtoMajor != 1 || x.site.egressBytesPerSec > 0 {
		return copyBody(dst, body)
	}
	// What came in with the headers, or is buffered, goes the usual way.
	n, err := copyBody(dst, io.LimitReader(body, int64(src.conn.br.Buffered())))
	if err != nil {
		return n, err
	}
	tcp := src.conn.nc.(*net.TCPConn)
	fb := src.body.(*fixedBody)
	rc := http.NewResponseController(x.w)
	for fb.n > 0 {
		if d := x.st.progressTimeout; d > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(d))
		}
		m, err := rf.ReadFrom(&io.LimitedReader{R: tcp, N: min(fb.n, copyBufSize)})
		n += m
		fb.n -= m
		if m > 0 && guard != nil {
			guard.timer.Reset(guard.d)
		}
		switch {
		case err == nil && m == 0:
			return n, io.ErrUnexpectedEOF // OSS closed early
		case err != nil && src.dead():
			if guard != nil && guard.stalled.Load() {
				return n, errUpstreamStalled
			}
			return n, err
		case err != nil:
			return n, errors.Join(errClientWrite, err)
		}
	}
	src.eof.Store(true) // read to its end: the connection may be reused
	return n, nil
}

// spliceSource unwraps body to the upstream body splice can take from: a
// fixed-length body on a plain TCP connection with more than one buffer of
// it still on the wire (smaller ones are cheaper copied).
func spliceSource(body io.ReadCloser) (*upBody, *stallGuard) {
	guard, _ := body.(*stallGuard)
	if guard != nil {
		body = guard.body
	}
	b, ok := body.(*upBody)
	if !ok {
		return nil, nil
	}
	fb, ok := b.body.(*fixedBody)
	if !ok || fb.n-int64(b.conn.br.Buffered()) <= copyBufSize {
		return nil, nil
	}
	if _, ok := b.conn.nc.(*net.TCPConn); !ok {
		return nil, nil
	}
	return b, guard
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
	return err != nil && !isTimeout(err)
}
